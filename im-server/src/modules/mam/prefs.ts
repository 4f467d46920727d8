// Archiving preferences (XEP-0441, the <prefs/> of urn:xmpp:mam:2): a default policy and JIDs
// always or never archived. Deciding whether a message with a contact goes into a user archive.
import type { Awaitable } from '../../core/hooks.js';
import type { Host, StanzaEvent } from '../../core/host.js';
import { parseJid } from '../../core/jid.js';
import { errorReply, iqResult } from '../../core/stanza.js';
import { type Element, xml } from '../../core/xml.js';
import { rosterStore } from '../roster-store.js';
import { NS_MAM } from './query.js';
import type { ArchiveStore, Policy, Prefs } from './store.js';

const POLICIES = new Set<string>(['always', 'roster', 'never']);

export function effectivePrefs(host: Host, store: ArchiveStore, owner: string): Prefs {
  return store.getPrefs(owner) ?? { default: host.config.mam.defaultPolicy, always: [], never: [] };
}

/** Whether user `username` archives a message exchanged with `contact` (a bare JID). Answered at
 * once unless the 'roster' default policy decides it: then the user's roster is read (a promise). */
export function shouldArchive(host: Host, store: ArchiveStore, username: string, contact: string): Awaitable<boolean> {
  const p = effectivePrefs(host, store, `${username}@${host.domain}`);
  if (p.never.includes(contact)) return false;
  if (p.always.includes(contact)) return true;
  if (p.default === 'always') return true;
  if (p.default === 'never') return false;
  if (contact === `${username}@${host.domain}`) return true;
  return rosterStore(host).getItem(username, contact).then((it) => it !== undefined);
}

function prefsElement(p: Prefs): Element {
  const list = (name: string, jids: string[]): Element => xml(name, {}, ...jids.map((j) => xml('jid', {}, j)));
  return xml('prefs', { xmlns: NS_MAM, default: p.default }, list('always', p.always), list('never', p.never));
}

function parseList(el: Element | undefined): string[] | string {
  const out: string[] = [];
  for (const j of el?.getChildren('jid') ?? []) {
    const jid = parseJid(j.text().trim());
    if (!jid) return `not a valid JID: ${j.text()}`;
    if (!out.includes(jid.bare)) out.push(jid.bare);
  }
  return out;
}

export function hookPrefs(host: Host, store: ArchiveStore): void {
  const own = (e: StanzaEvent): boolean => host.accountExists(e.to.local);
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_MAM}:prefs`, (e) => {
    if (!own(e)) return false;
    if (e.from.bare !== e.to.bare) { host.reply(e, errorReply(e.stanza, 'forbidden', 'only the account owner can read its archiving preferences')); return true; }
    host.reply(e, iqResult(e.stanza, prefsElement(effectivePrefs(host, store, e.to.bare))));
    return true;
  });
  // Answered once the preferences are durable.
  const setPrefs = async (e: StanzaEvent): Promise<boolean> => {
    if (e.from.bare !== e.to.bare) { host.reply(e, errorReply(e.stanza, 'forbidden', 'only the account owner can change its archiving preferences')); return true; }
    const el = e.stanza.firstElement()!;
    const dflt = el.attrs.default ?? effectivePrefs(host, store, e.to.bare).default;
    if (!POLICIES.has(dflt)) { host.reply(e, errorReply(e.stanza, 'bad-request', `default must be always, roster or never, not '${dflt}'`)); return true; }
    const always = parseList(el.getChild('always'));
    const never = parseList(el.getChild('never'));
    if (typeof always === 'string' || typeof never === 'string') {
      host.reply(e, errorReply(e.stanza, 'jid-malformed', typeof always === 'string' ? always : never as string));
      return true;
    }
    const p: Prefs = { default: dflt as Policy, always: always.filter((j) => !never.includes(j)), never };
    await store.setPrefs(e.to.bare, p);
    host.reply(e, iqResult(e.stanza, prefsElement(p)));
    return true;
  };
  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_MAM}:prefs`, (e) => {
    if (!own(e)) return false;
    return setPrefs(e);
  });
}
