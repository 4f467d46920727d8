// XEP-0191 blocking command: a user's list of blocked JIDs (full, bare, domain/resource or
// domain, matched as XEP-0016 says), stored in the module's own table and cached per user.
// A blocked entity's stanzas to the user: presence dropped, messages and IQ requests answered
// with <service-unavailable/> (the user looks offline). The user's stanzas to a blocked JID are
// refused with <not-acceptable/> + <blocked xmlns='urn:xmpp:blocking:errors'/>. Blocking sends
// unavailable presence to the blocked contacts that could see the user; unblocking sends the
// current presence again and probes theirs. Changes are pushed to every resource of the user
// that has retrieved the list.
import { after, type Awaitable } from '../core/hooks.js';
import type { Host, StanzaEvent } from '../core/host.js';
import { parseJid, type Jid } from '../core/jid.js';
import type { Session } from '../core/session.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { xml, type Element } from '../core/xml.js';
import type { Backend, ModuleDb } from '../storage/store.js';
import { rosterStore } from './roster-store.js';

const NS_BLOCKING = 'urn:xmpp:blocking';
const NS_ERRORS = 'urn:xmpp:blocking:errors';
const MAX_ITEMS = 1000;
/** Users whose lists are cached (the table is the truth; a miss reads it again). */
const MAX_CACHED = 10_000;

export interface BlockingTables {
  blocklist: { username: string; jid: string };
}
export const BLOCKING_MIGRATIONS = [
  'CREATE TABLE blocklist (username TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (username, jid)) WITHOUT ROWID',
];

export class BlockStore {
  private constructor(private readonly db: ModuleDb<BlockingTables>) {}

  static async open(backend: Backend): Promise<BlockStore> {
    return new BlockStore(await backend.open<BlockingTables>('blocking', BLOCKING_MIGRATIONS));
  }

  /** The user's blocked JIDs, sorted. */
  async list(username: string): Promise<string[]> {
    return (await this.db.read(this.db.q.selectFrom('blocklist').select('jid').where('username', '=', username).orderBy('jid'))).map((r) => r.jid);
  }

  /** Adds the JIDs (those on the list already stay as they are). */
  async add(username: string, jids: string[]): Promise<void> {
    await this.db.write(this.db.q.insertInto('blocklist').values(jids.map((jid) => ({ username, jid }))).onConflict((oc) => oc.doNothing()));
  }

  async remove(username: string, jids: string[]): Promise<void> {
    await this.db.write(this.db.q.deleteFrom('blocklist').where('username', '=', username).where('jid', 'in', jids));
  }

  /** Empties the user's list (queued at once). */
  async clear(username: string): Promise<void> {
    await this.db.write(this.db.q.deleteFrom('blocklist').where('username', '=', username));
  }
}

export default async function blocking(host: Host): Promise<void> {
  host.features.add(NS_BLOCKING);
  const store = await BlockStore.open(host.db);
  const log = host.log.child({ module: 'blocking' });
  // The cache saves a read per stanza; a user's first stanza waits for one read, and stanzas
  // that arrive while it runs share it (so they are handled in the order they came).
  const cache = new Map<string, Set<string>>();
  const loading = new Map<string, Promise<Set<string>>>();
  /** Resources that retrieved the list: they get pushes (§3.3). */
  const interested = new WeakSet<Session>();

  function listOf(username: string): Awaitable<Set<string>> {
    const set = cache.get(username);
    if (set) return set;
    let p = loading.get(username);
    if (!p) {
      const read: Promise<Set<string>> = store.list(username).then((jids) => {
        const fresh = new Set(jids);
        // Not when the account was removed meanwhile (the read may predate its deletion).
        if (loading.get(username) === read) {
          loading.delete(username);
          if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
          cache.set(username, fresh);
        }
        return fresh;
      }, (err: unknown) => {
        if (loading.get(username) === read) loading.delete(username);
        throw err;
      });
      p = read;
      loading.set(username, p);
    }
    return p;
  }

  /** Does the user's list block this JID? (full, bare, domain/resource, domain) */
  function blocks(username: string, jid: Jid): Awaitable<boolean> {
    return after(listOf(username), (set) => set.size > 0 && (set.has(jid.full) || set.has(jid.bare) || set.has(jid.domain) || (jid.resource !== '' && set.has(`${jid.domain}/${jid.resource}`))));
  }

  /** Does this blocklist item cover the JID? */
  function covers(item: string, jid: Jid): boolean {
    return item === jid.full || item === jid.bare || item === jid.domain || item === `${jid.domain}/${jid.resource}`;
  }

  const blockedError = (stanza: Element): Element => {
    const reply = errorReply(stanza, 'not-acceptable', 'you have blocked this JID; unblock it first');
    reply.getChild('error')!.append(xml('blocked', { xmlns: NS_ERRORS }));
    return reply;
  };

  // ---- the user's own stanzas to a JID they blocked ----
  for (const kind of ['message', 'presence', 'iq']) {
    host.hooks.on<StanzaEvent>(`out/${kind}`, (e) => {
      const { stanza, origin } = e;
      if (stanza.attrs.to === undefined || !origin) return false;
      return after(blocks(origin.username, e.to), (blocked) => {
        if (!blocked) return false;
        const type = stanza.attrs.type;
        if (type === 'error' || (kind === 'iq' && type === 'result') || (kind === 'presence' && type === 'unavailable')) return true;
        origin.send(blockedError(stanza));
        return true;
      });
    }, 'policy');
  }

  // ---- stanzas to a user from a JID the user blocked (or from a user to a JID it blocked,
  // for what the server routes on its behalf, e.g. presence broadcasts) ----
  function inbound(e: StanzaEvent): Awaitable<boolean> {
    const { stanza, to, from } = e;
    const senderBlocks = host.isLocal(from) && from.local !== '' ? blocks(from.local, to) : false;
    return after(senderBlocks, (bySender) => after(!bySender && to.local ? blocks(to.local, from) : false, (byRecipient) => {
      if (!bySender && !byRecipient) return false;
      const type = stanza.attrs.type;
      if (bySender || stanza.name === 'presence' || type === 'error' || type === 'result') return true;
      host.bounce(e, 'service-unavailable');
      return true;
    }));
  }
  for (const kind of ['message', 'presence', 'iq']) for (const target of ['bare', 'full']) host.hooks.on<StanzaEvent>(`${kind}/${target}`, inbound, 'policy');
  // A local sender's message or IQ request to a user who blocked it is refused before anything
  // else sees it (the policy phase of out/*): no copy lands in the sender's archive or carbons.
  // IQ requests to a bare JID are also dispatched by payload before iq/bare, so they need this too.
  for (const kind of ['message', 'iq']) {
    host.hooks.on<StanzaEvent>(`out/${kind}`, (e) => {
      const type = e.stanza.attrs.type;
      if (!e.to.local || !host.isLocal(e.to)) return false;
      if (kind === 'iq' && (type !== 'get' && type !== 'set')) return false; // results and errors: as before, by inbound()
      return after(blocks(e.to.local, e.from), (blocked) => {
        if (!blocked) return false;
        if (type === 'error') return true;
        host.bounce(e, 'service-unavailable');
        return true;
      });
    }, 'policy');
  }

  // ---- the protocol ----
  const own = (e: StanzaEvent): boolean => !!e.origin && e.from.bare === e.to.bare;

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_BLOCKING}:blocklist`, (e) => {
    if (!own(e)) return false;
    interested.add(e.origin!);
    return after(listOf(e.origin!.username), (set) => {
      const list = xml('blocklist', { xmlns: NS_BLOCKING });
      for (const jid of set) list.append(xml('item', { jid }));
      host.reply(e, iqResult(e.stanza, list));
      return true;
    });
  });

  /** The JIDs of the items, prepared; a string when one is bad (the error text). */
  function items(el: Element): string[] | string {
    const out: string[] = [];
    for (const item of el.getChildren('item')) {
      const jid = parseJid(item.attrs.jid ?? '');
      if (!jid) return `"${item.attrs.jid ?? ''}" is not a valid JID`;
      out.push(jid.full);
    }
    return out;
  }

  function push(username: string, payload: Element): void {
    for (const s of host.router.sessionsOf(`${username}@${host.domain}`)) {
      if (!interested.has(s)) continue;
      s.send(xml('iq', { type: 'set', id: 'push' + Math.random().toString(36).slice(2, 10), to: s.jid.full }, payload.clone()));
    }
  }

  /** Presence the user's available resources send to the contacts an item covers (roster from/both, directed). */
  async function presenceTo(username: string, covered: string[], send: (s: Session, to: string) => void): Promise<void> {
    const bare = `${username}@${host.domain}`;
    if (covered.length === 0 || !host.router.sessionsOf(bare).some((s) => s.available)) return;
    const roster = (await rosterStore(host).getRoster(username)).items.filter((it) => it.subscription === 'from' || it.subscription === 'both');
    for (const s of host.router.sessionsOf(bare)) {
      if (!s.available) continue;
      const targets = new Set<string>();
      for (const it of roster) { const j = parseJid(it.contact); if (j && covered.some((c) => covers(c, j))) targets.add(it.contact); }
      for (const d of s.directed ?? []) { const j = parseJid(d); if (j && covered.some((c) => covers(c, j))) targets.add(d); }
      for (const to of targets) send(s, to);
    }
  }

  /** Stores a change of the list; the answer waits until it is durable. When it fails, the
   * cached list (changed already) is dropped, so the next stanza reads the table again. */
  async function stored(e: StanzaEvent, username: string, change: Promise<void>): Promise<boolean> {
    try {
      await change;
      return true;
    } catch (err) {
      cache.delete(username);
      loading.delete(username);
      log.error({ err: (err as Error).message, user: username }, 'block list not stored');
      host.reply(e, errorReply(e.stanza, 'internal-server-error', 'the block list could not be stored; try again'));
      return false;
    }
  }

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_BLOCKING}:block`, async (e) => {
    if (!own(e)) return false;
    const username = e.origin!.username;
    const jids = items(e.stanza.firstElement()!);
    if (typeof jids === 'string') { host.reply(e, errorReply(e.stanza, 'jid-malformed', jids)); return true; }
    if (jids.length === 0) { host.reply(e, errorReply(e.stanza, 'bad-request', '<block/> needs at least one <item jid/>')); return true; }
    const set = await listOf(username);
    const unique = [...new Set(jids)];
    const added = unique.filter((j) => !set.has(j));
    if (set.size + added.length > MAX_ITEMS) { host.reply(e, errorReply(e.stanza, 'resource-constraint', `a blocklist holds at most ${MAX_ITEMS} JIDs`)); return true; }
    // Before the list changes: our own unavailable presence must still get through.
    await presenceTo(username, added, (s, to) => host.route(xml('presence', { xmlns: NS.client, type: 'unavailable', from: s.jid.full, to })));
    for (const j of added) set.add(j);
    // Every item, not only the new ones: the answer then also waits for an earlier, still
    // queued write of the same item (by another resource).
    if (!(await stored(e, username, store.add(username, unique)))) return true;
    host.reply(e, iqResult(e.stanza));
    push(username, xml('block', { xmlns: NS_BLOCKING }, ...jids.map((jid) => xml('item', { jid }))));
    return true;
  });

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_BLOCKING}:unblock`, async (e) => {
    if (!own(e)) return false;
    const username = e.origin!.username;
    const jids = items(e.stanza.firstElement()!);
    if (typeof jids === 'string') { host.reply(e, errorReply(e.stanza, 'jid-malformed', jids)); return true; }
    const set = await listOf(username);
    const removed = jids.length === 0 ? [...set] : jids.filter((j) => set.has(j));
    for (const j of removed) set.delete(j);
    if (!(await stored(e, username, jids.length === 0 ? store.clear(username) : store.remove(username, [...new Set(jids)])))) return true;
    host.reply(e, iqResult(e.stanza));
    push(username, xml('unblock', { xmlns: NS_BLOCKING }, ...jids.map((jid) => xml('item', { jid }))));
    // The contacts see the user again, and the user learns their presence again.
    await presenceTo(username, removed, (s, to) => {
      const p = s.presence!.clone();
      p.attrs.from = s.jid.full;
      p.attrs.to = to;
      host.route(p);
    });
    const bare = `${username}@${host.domain}`;
    if (host.router.sessionsOf(bare).some((s) => s.available)) {
      for (const it of (await rosterStore(host).getRoster(username)).items) {
        const j = parseJid(it.contact);
        if ((it.subscription === 'to' || it.subscription === 'both') && j && removed.some((c) => covers(c, j))) {
          host.route(xml('presence', { xmlns: NS.client, type: 'probe', from: bare, to: it.contact }));
        }
      }
    }
    return true;
  });

  // Queued at once, before the account is deleted: a name registered again starts with an empty
  // list. The promise settles when the delete is durable (a failure is the removal's).
  host.hooks.on<{ username: string }>('account-removing', async ({ username }) => {
    cache.delete(username);
    loading.delete(username);
    await store.clear(username);
  });
  // Removed by pi-im-admin (another process) and registered again here: forget what was cached.
  host.hooks.on<{ username: string }>('account-created', ({ username }) => {
    cache.delete(username);
    loading.delete(username);
  });
}
