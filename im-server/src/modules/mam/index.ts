// XEP-0313 message archive management with XEP-0359 stanza ids. A 1:1 message worth keeping
// (chat/normal with a body or an encrypted payload) goes into the archive of each local party:
// the sender's when a client sends it (out/message), the recipient's when it is routed to them
// (message/bare|full, before message.ts delivers or stores it offline), and the recipient's copy
// gets <stanza-id by=user id=UID/>. Room archives are filled through the MUC module's
// muc-message hook. Items older than mam.retentionDays are deleted at start and hourly.
import { after, type Awaitable } from '../../core/hooks.js';
import type { Host, StanzaEvent } from '../../core/host.js';
import type { Jid } from '../../core/jid.js';
import { NS, errorReply, iqResult } from '../../core/stanza.js';
import { type Element, xml } from '../../core/xml.js';
import { hookPrefs, shouldArchive } from './prefs.js';
import { NS_MAM, NS_MAM_EXT, queryForm } from './query.js';
import { serveMetadata, serveQuery } from './serve.js';
import { ArchiveStore, MIGRATIONS, type Tables } from './store.js';

export const NS_SID = 'urn:xmpp:sid:0';
const NS_HINTS = 'urn:xmpp:hints';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const HOUR = 3600_000;

export interface MucMessageEvent { room: string; stanza: Element; occupant: string }
export interface MucMamQueryEvent { event: StanzaEvent; room: string; allowed: boolean }

/** Worth archiving in a user archive (XEP-0313 §5.1.1): a body or an end-to-end encrypted payload
 * (OMEMO, OpenPGP), honouring XEP-0334 store hints. */
export function archivable(stanza: Element): boolean {
  const type = stanza.attrs.type ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return false;
  if (stanza.getChild('no-store', NS_HINTS) || stanza.getChild('no-permanent-store', NS_HINTS)) return false;
  return stanza.getChild('body') !== undefined || stanza.getChild('encrypted') !== undefined
    || stanza.getChild('openpgp', 'urn:xmpp:openpgp:0') !== undefined || stanza.getChild('store', NS_HINTS) !== undefined;
}

/** The ids of the stanza-ids claiming to be by `by` on this stanza. */
function stanzaIdsBy(stanza: Element, by: string): string[] {
  return stanza.children.flatMap((c) => (typeof c !== 'string' && c.name === 'stanza-id' && c.ns === NS_SID && c.attrs.by === by ? [c.attrs.id ?? ''] : []));
}

/** XEP-0359 §3: ids claiming to be by `by` can only be forged; drop them. */
function stripStanzaIds(stanza: Element, by: string): void {
  stanza.children = stanza.children.filter((c) => typeof c === 'string' || !(c.name === 'stanza-id' && c.ns === NS_SID && c.attrs.by === by));
}

/** The copy kept in the archive: a jabber:client stanza as it was. */
function serialise(stanza: Element, drop?: (c: Element) => boolean): string {
  const copy = stanza.clone();
  copy.attrs.xmlns = NS.client;
  if (drop) copy.children = copy.children.filter((c) => typeof c === 'string' || !drop(c));
  return copy.toString();
}

export default async function mam(host: Host): Promise<void> {
  const failed = (what: string, err: unknown): void => host.log.error({ err: (err as Error)?.stack ?? String(err) }, `mam: ${what} failed`);
  const store = await ArchiveStore.open(await host.db.open<Tables>('mam', MIGRATIONS), failed);
  const domain = host.domain;
  const isKnown = (jid: Jid): boolean => (jid.domain === domain ? host.accountExists(jid.local) : host.components.has(jid.domain));

  // Outgoing: into the sender's archive. Messages to oneself are archived once, as incoming.
  // (The 'roster' policy reads the sender's roster first: carbons and routing, later phases, wait.)
  host.hooks.on<StanzaEvent>('out/message', (e) => {
    const { stanza, from, to } = e;
    if (!archivable(stanza) || to.bare === from.bare || !isKnown(to)) return false;
    return after(shouldArchive(host, store, from.local, to.bare), (yes) => {
      if (yes) store.append(from.bare, to.full, to.bare, serialise(stanza, (c) => c.name === 'stanza-id' && c.ns === NS_SID && c.attrs.by === from.bare));
      return false;
    });
  }, 'archive');

  // Incoming: into the recipient's archive, with the UID on the stanza delivered or stored offline
  // (made in memory: carbons and delivery, later phases, see the stamped stanza; when the
  // 'roster' policy reads the recipient's roster first, those phases wait for it).
  const incoming = (e: StanzaEvent): Awaitable<boolean> => {
    const { stanza, to } = e;
    if (!host.accountExists(to.local)) return false;
    // Routed again by the server (a session ended before its client acked it): archived already
    // when the archive holds the id it carries. Only then is the archive read.
    const sids = e.origin ? [] : stanzaIdsBy(stanza, to.bare);
    if (sids.length === 0) return archiveIncoming(e);
    return store.seqsOf(to.bare, sids).then((found) => (found.size > 0 ? false : archiveIncoming(e)));
  };
  const archiveIncoming = (e: StanzaEvent): Awaitable<boolean> => {
    const { stanza, from, to } = e;
    stripStanzaIds(stanza, to.bare);
    if (!archivable(stanza)) return false;
    return after(shouldArchive(host, store, to.local, from.bare), (yes) => {
      if (!yes) return false;
      const id = store.append(to.bare, from.full, from.bare, serialise(stanza));
      stanza.append(xml('stanza-id', { xmlns: NS_SID, by: to.bare, id }));
      return false;
    });
  };
  host.hooks.on<StanzaEvent>('message/bare', incoming, 'archive');
  host.hooks.on<StanzaEvent>('message/full', incoming, 'archive');

  // Queries, the form, metadata: only the owner reads a user archive.
  const ownArchive = (e: StanzaEvent, what: () => Awaitable<void>): Awaitable<boolean> => {
    if (!host.accountExists(e.to.local)) return false;
    if (e.from.bare !== e.to.bare) { host.reply(e, errorReply(e.stanza, 'forbidden', 'only its owner can read this archive')); return true; }
    const r = what();
    return r instanceof Promise ? r.then(() => true) : true;
  };
  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_MAM}:query`, (e) => ownArchive(e, () => serveQuery(host, store, e, e.to.bare)));
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_MAM}:query`, (e) => ownArchive(e, () => host.reply(e, iqResult(e.stanza, queryForm()))));
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_MAM}:metadata`, (e) => ownArchive(e, () => serveMetadata(host, store, e, e.to.bare)));
  hookPrefs(host, store);

  // The account's own disco#info lists MAM (clients look there); only the owner sees it.
  for (const f of [NS_MAM, NS_MAM_EXT, NS_SID]) host.ownerFeatures.add(f);

  // Rooms (the MUC module fires these): archive what the room broadcasts, answer room queries.
  host.hooks.on<MucMessageEvent>('muc-message', ({ room, stanza }) => {
    stripStanzaIds(stanza, room);
    if (!stanza.getChild('body') && !stanza.getChild('subject') && !stanza.getChild('encrypted')) return false;
    if (stanza.getChild('no-store', NS_HINTS) || stanza.getChild('no-permanent-store', NS_HINTS)) return false;
    const nick = stanza.attrs.from ?? room;
    // XEP-0313 §5.1.2: no 'to' in room results, and no muc#user x the sender could have forged.
    const copy = stanza.clone();
    delete copy.attrs.to;
    const id = store.append(room, nick, nick, serialise(copy, (c) => c.name === 'x' && c.ns === NS_MUC_USER));
    stanza.append(xml('stanza-id', { xmlns: NS_SID, by: room, id }));
    return false;
  });
  host.hooks.on<MucMamQueryEvent>('muc-mam-query', async ({ event, room, allowed }) => {
    if (!allowed) { host.reply(event, errorReply(event.stanza, 'forbidden', 'you may not read this room\'s archive')); return true; }
    if (event.stanza.attrs.type === 'set') await serveQuery(host, store, event, room);
    else if (event.stanza.firstElement()!.name === 'metadata') await serveMetadata(host, store, event, room);
    else host.reply(event, iqResult(event.stanza, queryForm()));
    return true;
  });
  host.hooks.on<{ room: string }>('muc-room-destroyed', ({ room }) => { store.deleteOwner(room).catch((err: unknown) => failed(`deleting the archive of ${room}`, err)); return false; });
  host.hooks.on<{ username: string }>('account-removing', ({ username }) => {
    store.deleteOwner(`${username}@${domain}`).catch((err: unknown) => failed(`deleting the archive of ${username}`, err));
    return false;
  });

  // Retention.
  const days = host.config.mam.retentionDays;
  if (days > 0) {
    const expire = (): void => { store.expire(Date.now() - days * 24 * HOUR).catch((err: unknown) => failed('expiring old items', err)); };
    expire();
    setInterval(expire, HOUR).unref();
  }
}
