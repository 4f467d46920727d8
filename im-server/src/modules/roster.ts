// Roster management (RFC 6121 §2) with roster versioning (§2.6): get, set, remove, pushes, and the
// approved flag of subscription pre-approvals (§3.4).
// Subscription states are changed by the presence module only.
import type { Host, StanzaEvent } from '../core/host.js';
import { parseJid } from '../core/jid.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { Element, xml } from '../core/xml.js';
import type { RosterItem } from '../storage/types.js';
import { initRosterStore, rosterStore } from './roster-store.js';

export { rosterStore, type RosterStore } from './roster-store.js';

export function isPreApproved(host: Host, username: string, contact: string): Promise<boolean> {
  return rosterStore(host).isPreApproved(username, contact);
}

/** Records or clears a pre-approval; the caller saves (and so pushes) the item afterwards. */
export function setPreApproved(host: Host, username: string, contact: string, on: boolean): Promise<void> {
  return rosterStore(host).setPreApproved(username, contact, on);
}

/** Why a new item for `contact` cannot be added to the user's roster (limits.maxRosterItems), or undefined. */
export async function rosterFull(host: Host, username: string, contact: string): Promise<string | undefined> {
  const max = host.config.limits.maxRosterItems;
  const store = rosterStore(host);
  if (await store.count(username) < max || await store.getItem(username, contact)) return undefined;
  return `your roster is full: it holds at most ${max} contacts (limits.maxRosterItems); remove some first`;
}

export function itemElement(item: RosterItem, remove = false, approved = false): Element {
  const el = xml('item', {
    jid: item.contact, name: remove ? undefined : item.name,
    subscription: remove ? 'remove' : item.subscription, ask: !remove && item.ask ? 'subscribe' : undefined,
    approved: !remove && approved ? 'true' : undefined,
  });
  if (!remove) for (const g of item.groups) el.append(xml('group', {}, g));
  return el;
}

/** Stores an item (or removes it) and, once that is durable, pushes the change (with the new
 * roster version) to the user's interested resources. Resolves after the pushes. */
export async function saveRosterItem(host: Host, username: string, item: RosterItem, remove = false): Promise<void> {
  const store = rosterStore(host);
  const version = remove ? await store.removeItem(username, item.contact) : await store.setItem(username, item);
  const approved = !remove && await store.isPreApproved(username, item.contact);
  const bare = `${username}@${host.domain}`;
  for (const s of host.router.sessionsOf(bare)) {
    if (!s.interested) continue;
    s.send(xml('iq', { type: 'set', id: 'push' + version, to: s.jid.full },
      xml('query', { xmlns: NS.roster, ver: String(version) }, itemElement(item, remove, approved))));
  }
}

export default async function roster(host: Host): Promise<void> {
  const store = await initRosterStore(host);
  const isSelf = (e: StanzaEvent): boolean => e.origin !== undefined && e.to.bare === e.from.bare;

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.roster}:query`, async (e) => {
    if (!isSelf(e)) return false;
    const session = e.origin!;
    session.interested = true;
    const { version, items } = await store.getRoster(session.username);
    const ver = e.stanza.firstElement()!.attrs.ver;
    if (ver !== undefined && ver === String(version)) {
      // Roster versioning: the client's copy is current; changes since come as pushes.
      host.reply(e, iqResult(e.stanza));
      return true;
    }
    const query = xml('query', { xmlns: NS.roster, ver: String(version) });
    const approved = await store.preApproved(session.username);
    for (const item of items) query.append(itemElement(item, false, approved.has(item.contact)));
    host.reply(e, iqResult(e.stanza, query));
    return true;
  });

  // The user's contacts are told (presence module: subscriptions cancelled both ways), then
  // everything stored for the user here goes.
  host.hooks.on<{ username: string }>('account-removing', async ({ username }) => {
    for (const item of (await store.getRoster(username)).items) await host.hooks.fire('roster-remove', { username, item });
    await store.removeUser(username);
  });

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS.roster}:query`, async (e) => {
    if (!isSelf(e)) return false;
    const username = e.origin!.username;
    const items = e.stanza.firstElement()!.getChildren('item');
    if (items.length !== 1) { host.reply(e, errorReply(e.stanza, 'bad-request', 'a roster set holds exactly one item')); return true; }
    const el = items[0]!;
    const jid = parseJid(el.attrs.jid ?? '');
    if (!jid || jid.resource) { host.reply(e, errorReply(e.stanza, 'jid-malformed', 'item jid must be a bare JID')); return true; }
    const contact = jid.bare;
    const existing = await store.getItem(username, contact);
    if (el.attrs.subscription === 'remove') {
      if (!existing) { host.reply(e, errorReply(e.stanza, 'item-not-found')); return true; }
      // Cancels subscriptions both ways first (presence module), then drops the item.
      await host.hooks.fire('roster-remove', { username, item: existing, from: e.from });
      await saveRosterItem(host, username, existing, true);
      host.reply(e, iqResult(e.stanza));
      return true;
    }
    const groups = el.getChildren('group').map((g) => g.text());
    if (groups.some((g) => g === '' || g.length > 1023) || new Set(groups).size !== groups.length) {
      host.reply(e, errorReply(e.stanza, 'not-acceptable', 'groups must be distinct and not empty'));
      return true;
    }
    const full = existing ? undefined : await rosterFull(host, username, contact);
    if (full) { host.reply(e, errorReply(e.stanza, 'not-allowed', full)); return true; }
    const name = el.attrs.name ? el.attrs.name.slice(0, 1023) : undefined;
    // Clients cannot set subscription or ask: those follow the presence protocol only.
    const item: RosterItem = existing ? { ...existing, name, groups } : { contact, name, groups, subscription: 'none', ask: false };
    await saveRosterItem(host, username, item);
    host.reply(e, iqResult(e.stanza));
    return true;
  });
}
