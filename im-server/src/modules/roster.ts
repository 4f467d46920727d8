// Roster management (RFC 6121 §2) with roster versioning (§2.6): get, set, remove, pushes, and the
// approved flag of subscription pre-approvals (§3.4).
// Subscription states are changed by the presence module only.
import type { Host, StanzaEvent } from '../core/host.js';
import { parseJid } from '../core/jid.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { Element, xml } from '../core/xml.js';
import type { RosterItem } from '../storage/types.js';

// Subscription pre-approvals (RFC 6121 §3.4): kept in the module's own table, shown as approved='true'.
interface Approvals { has(u: string, c: string): boolean; set(u: string, c: string, on: boolean): void; clear(u: string): void }
const preApprovals = new WeakMap<Host, Approvals>();

function approvals(host: Host): Approvals {
  let a = preApprovals.get(host);
  if (!a) {
    const store = host.storage.moduleStore('roster', ['CREATE TABLE roster_approved (username TEXT NOT NULL, contact TEXT NOT NULL, PRIMARY KEY (username, contact));']);
    const get = store.db.prepare('SELECT 1 FROM roster_approved WHERE username = ? AND contact = ?').pluck();
    const add = store.db.prepare('INSERT OR IGNORE INTO roster_approved VALUES (?, ?)');
    const del = store.db.prepare('DELETE FROM roster_approved WHERE username = ? AND contact = ?');
    const delUser = store.db.prepare('DELETE FROM roster_approved WHERE username = ?');
    a = {
      has: (u, c) => { store.sync(); return get.get(u, c) === 1; },
      set: (u, c, on) => { void store.write(() => (on ? add : del).run(u, c)); },
      clear: (u) => { void store.write(() => delUser.run(u)); },
    };
    preApprovals.set(host, a);
  }
  return a;
}

export function isPreApproved(host: Host, username: string, contact: string): boolean {
  return approvals(host).has(username, contact);
}

/** Records or clears a pre-approval; the caller saves (and so pushes) the item afterwards. */
export function setPreApproved(host: Host, username: string, contact: string, on: boolean): void {
  if (on || approvals(host).has(username, contact)) approvals(host).set(username, contact, on);
}

/** Why a new item for `contact` cannot be added to the user's roster (limits.maxRosterItems), or undefined. */
export function rosterFull(host: Host, username: string, contact: string): string | undefined {
  const max = host.config.limits.maxRosterItems;
  if (host.storage.countRoster(username) < max || host.storage.getRosterItem(username, contact)) return undefined;
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

/** Stores an item (or removes it) and pushes the change to the user's interested resources. */
export function saveRosterItem(host: Host, username: string, item: RosterItem, remove = false): void {
  const { version } = remove ? host.storage.removeRosterItem(username, item.contact) : host.storage.setRosterItem(username, item);
  const bare = `${username}@${host.domain}`;
  if (remove) setPreApproved(host, username, item.contact, false);
  const approved = !remove && isPreApproved(host, username, item.contact);
  for (const s of host.router.sessionsOf(bare)) {
    if (!s.interested) continue;
    s.send(xml('iq', { type: 'set', id: 'push' + version, to: s.jid.full },
      xml('query', { xmlns: NS.roster, ver: String(version) }, itemElement(item, remove, approved))));
  }
}

export default function roster(host: Host): void {
  const isSelf = (e: StanzaEvent): boolean => e.origin !== undefined && e.to.bare === e.from.bare;

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.roster}:query`, (e) => {
    if (!isSelf(e)) return false;
    const session = e.origin!;
    session.interested = true;
    const { version, items } = host.storage.getRoster(session.username);
    const ver = e.stanza.firstElement()!.attrs.ver;
    if (ver !== undefined && ver === String(version)) {
      // Roster versioning: the client's copy is current; changes since come as pushes.
      host.reply(e, iqResult(e.stanza));
      return true;
    }
    const query = xml('query', { xmlns: NS.roster, ver: String(version) });
    for (const item of items) query.append(itemElement(item, false, isPreApproved(host, session.username, item.contact)));
    host.reply(e, iqResult(e.stanza, query));
    return true;
  });

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => approvals(host).clear(username));

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS.roster}:query`, (e) => {
    if (!isSelf(e)) return false;
    const username = e.origin!.username;
    const items = e.stanza.firstElement()!.getChildren('item');
    if (items.length !== 1) { host.reply(e, errorReply(e.stanza, 'bad-request', 'a roster set holds exactly one item')); return true; }
    const el = items[0]!;
    const jid = parseJid(el.attrs.jid ?? '');
    if (!jid || jid.resource) { host.reply(e, errorReply(e.stanza, 'jid-malformed', 'item jid must be a bare JID')); return true; }
    const contact = jid.bare;
    const existing = host.storage.getRosterItem(username, contact);
    if (el.attrs.subscription === 'remove') {
      if (!existing) { host.reply(e, errorReply(e.stanza, 'item-not-found')); return true; }
      // Cancels subscriptions both ways first (presence module), then drops the item.
      host.hooks.fire('roster-remove', { username, item: existing, from: e.from });
      saveRosterItem(host, username, existing, true);
      host.reply(e, iqResult(e.stanza));
      return true;
    }
    const groups = el.getChildren('group').map((g) => g.text());
    if (groups.some((g) => g === '' || g.length > 1023) || new Set(groups).size !== groups.length) {
      host.reply(e, errorReply(e.stanza, 'not-acceptable', 'groups must be distinct and not empty'));
      return true;
    }
    const full = existing ? undefined : rosterFull(host, username, contact);
    if (full) { host.reply(e, errorReply(e.stanza, 'not-allowed', full)); return true; }
    const name = el.attrs.name ? el.attrs.name.slice(0, 1023) : undefined;
    // Clients cannot set subscription or ask: those follow the presence protocol only.
    const item: RosterItem = existing ? { ...existing, name, groups } : { contact, name, groups, subscription: 'none', ask: false };
    saveRosterItem(host, username, item);
    host.reply(e, iqResult(e.stanza));
    return true;
  });
}
