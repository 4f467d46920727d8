// One room: its config, affiliations (kept), occupants and roles (in memory only), subject and
// recent history, and how its presence and messages are addressed to each occupant.
import type { Host } from '../../core/host.js';
import { NS } from '../../core/stanza.js';
import { Element, xml } from '../../core/xml.js';
import type { RoomConfig } from './config.js';
import type { MucStore } from './store.js';

export const NS_MUC = 'http://jabber.org/protocol/muc';
export const NS_USER = `${NS_MUC}#user`;
export const NS_ADMIN = `${NS_MUC}#admin`;
export const NS_OWNER = `${NS_MUC}#owner`;

export type Affiliation = 'owner' | 'admin' | 'member' | 'none' | 'outcast';
export type Role = 'moderator' | 'participant' | 'visitor' | 'none';
export const AFFILIATIONS: readonly Affiliation[] = ['owner', 'admin', 'member', 'none', 'outcast'];
export const ROLES: readonly Role[] = ['moderator', 'participant', 'visitor', 'none'];
export const AFF_RANK: Record<Affiliation, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };
export const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };

/** What a room needs from the service around it. */
export interface MucContext {
  host: Host;
  store: MucStore;
  /** Routes a stanza from the room to a user. */
  send(el: Element): void;
  isServiceAdmin(bare: string): boolean;
  maxOccupants: number;
  maxHistory: number;
}

export interface Occupant {
  nick: string;
  /** The real bare JID (one user may be joined from several devices under one nick). */
  bare: string;
  /** Joined sessions (full JID) -> the last presence each sent (children only). */
  sessions: Map<string, Element>;
  /** The session whose presence the room shows. */
  jid: string;
  role: Role;
}

export interface HistoryEntry { stanza: Element; stamp: number; chars: number }
export interface Subject { text: string; nick: string; stamp: number }

export class Room {
  readonly local: string;
  readonly occupants = new Map<string, Occupant>();
  /** Session full JID -> its occupant. */
  readonly byJid = new Map<string, Occupant>();
  /** Bare JID (or domain) -> affiliation other than none. */
  readonly affiliations = new Map<string, Affiliation>();
  subject: Subject | undefined;
  history: HistoryEntry[] = [];
  /** Created by a MUC join and not configured yet: only its owner may enter (XEP-0045 §10.1.1). */
  locked = false;
  destroyed = false;

  constructor(readonly jid: string, public config: RoomConfig, readonly ctx: MucContext) {
    this.local = jid.slice(0, jid.indexOf('@'));
  }

  get name(): string { return this.config.name || this.local; }

  affiliation(bare: string): Affiliation {
    if (this.ctx.isServiceAdmin(bare)) return 'owner';
    const a = this.affiliations.get(bare);
    if (a) return a;
    const domain = bare.slice(bare.indexOf('@') + 1);
    return this.affiliations.get(domain) === 'outcast' ? 'outcast' : 'none';
  }

  defaultRole(aff: Affiliation): Role {
    if (aff === 'owner' || aff === 'admin') return 'moderator';
    if (aff === 'outcast') return 'none';
    if (this.config.moderated && aff !== 'member') return 'visitor';
    return 'participant';
  }

  /** The room's limit, never above the service's. */
  get maxUsers(): number {
    return this.config.maxUsers > 0 ? Math.min(this.config.maxUsers, this.ctx.maxOccupants) : this.ctx.maxOccupants;
  }

  owners(): string[] { return [...this.affiliations].filter(([, a]) => a === 'owner').map(([j]) => j).sort(); }
  admins(): string[] { return [...this.affiliations].filter(([, a]) => a === 'admin').map(([j]) => j).sort(); }

  /** Sets (and, for persistent rooms, stores) an affiliation; the caller updates occupants. */
  setAffiliation(bare: string, aff: Affiliation): void {
    if (aff === 'none') this.affiliations.delete(bare); else this.affiliations.set(bare, aff);
    if (this.config.persistent) this.ctx.store.setAffiliation(this.jid, bare, aff);
  }

  occupantOf(fullJid: string): Occupant | undefined { return this.byJid.get(fullJid); }

  /** Occupants whose real bare JID is this one. */
  occupantsOf(bare: string): Occupant[] {
    return [...this.occupants.values()].filter((o) => o.bare === bare);
  }

  mayKnowJids(recipient: Occupant): boolean {
    return this.config.whois === 'anyone' || recipient.role === 'moderator';
  }

  /** The muc#user item describing `occ` to `recipient`. */
  item(occ: Occupant, recipient: Occupant | undefined, role: Role = occ.role): Element {
    const showJid = !recipient || this.mayKnowJids(recipient) || recipient === occ;
    return xml('item', { affiliation: this.affiliation(occ.bare), role, jid: showJid ? occ.jid : undefined });
  }

  /** Presence of `occ` as `recipient` sees it (no `to`). */
  presenceOf(occ: Occupant, recipient: Occupant, opts: PresenceOpts = {}): Element {
    const base = opts.unavailable ? undefined : occ.sessions.get(occ.jid);
    const p = xml('presence', { xmlns: NS.client, from: `${this.jid}/${occ.nick}`, type: opts.unavailable ? 'unavailable' : undefined });
    for (const c of base?.children ?? []) p.append(typeof c === 'string' ? c : c.clone());
    if (opts.unavailable && opts.status) p.append(xml('status', {}, opts.status));
    const item = this.item(occ, recipient, opts.unavailable ? 'none' : occ.role);
    if (opts.unavailable && opts.forceAffiliation) item.attrs.affiliation = opts.forceAffiliation;
    if (opts.newNick) item.attrs.nick = opts.newNick;
    if (opts.actor) item.append(xml('actor', { nick: opts.actor }));
    if (opts.reason) item.append(xml('reason', {}, opts.reason));
    const x = xml('x', { xmlns: NS_USER }, item);
    if (opts.destroy) x.append(opts.destroy.clone());
    const codes = [...(opts.codes ?? []), ...(recipient === occ ? ['110', ...(opts.selfCodes ?? [])] : [])];
    for (const code of [...new Set(codes)].sort()) x.append(xml('status', { code }));
    p.append(x);
    return p;
  }

  /** Sends a copy of the stanza to every joined session of the occupant. */
  sendTo(occ: Occupant, el: Element): void {
    for (const full of occ.sessions.keys()) {
      const copy = el.clone();
      copy.attrs.to = full;
      this.ctx.send(copy);
    }
  }

  /** Tells every occupant (and `extra`, e.g. one that just left) about `occ`'s presence. */
  broadcastPresence(occ: Occupant, opts: PresenceOpts = {}, extra?: Occupant): void {
    for (const r of this.occupants.values()) this.sendTo(r, this.presenceOf(occ, r, opts));
    if (extra && !this.occupants.has(extra.nick)) this.sendTo(extra, this.presenceOf(occ, extra, opts));
  }

  broadcast(el: Element): void {
    for (const r of this.occupants.values()) this.sendTo(r, el);
  }

  /** A groupchat message from the room itself with status codes (e.g. 104 config changed). */
  statusMessage(codes: string[]): Element {
    const x = xml('x', { xmlns: NS_USER });
    for (const code of codes) x.append(xml('status', { code }));
    return xml('message', { xmlns: NS.client, type: 'groupchat', from: this.jid, id: `muc-${Date.now().toString(36)}` }, x);
  }

  subjectMessage(): Element {
    const s = this.subject;
    const from = s && s.nick ? `${this.jid}/${s.nick}` : this.jid;
    const m = xml('message', { xmlns: NS.client, type: 'groupchat', from, id: `subject-${s?.stamp ?? 0}` }, xml('subject', {}, s?.text ?? ''));
    if (s && s.stamp) m.append(xml('delay', { xmlns: NS.delay, from: this.jid, stamp: new Date(s.stamp).toISOString() }));
    return m;
  }

  setSubject(subject: Subject): void {
    this.subject = subject;
    this.save();
  }

  addHistory(stanza: Element): void {
    const keep = this.config.historyLength;
    if (keep <= 0) return;
    const stamp = Date.now();
    const text = stanza.toString();
    this.history.push({ stanza, stamp, chars: text.length });
    if (this.history.length > keep) this.history.splice(0, this.history.length - keep);
    if (this.config.persistent) this.ctx.store.addHistory(this.jid, stamp, text, keep);
  }

  /** History for a new occupant as its <history/> asks (XEP-0045 §7.2.15), with delay stamps. */
  historyFor(req: Element | undefined): Element[] {
    let list = this.history;
    const num = (name: string): number | undefined => {
      const v = req?.attrs[name];
      if (v === undefined) return undefined;
      const n = Number(v);
      return Number.isFinite(n) && n >= 0 ? n : undefined;
    };
    const maxStanzas = num('maxstanzas');
    const seconds = num('seconds');
    const since = req?.attrs.since ? Date.parse(req.attrs.since) : NaN;
    if (seconds !== undefined) list = list.filter((h) => h.stamp >= Date.now() - seconds * 1000);
    if (!Number.isNaN(since)) list = list.filter((h) => h.stamp > since);
    if (maxStanzas !== undefined) list = maxStanzas === 0 ? [] : list.slice(-maxStanzas);
    const maxChars = num('maxchars');
    if (maxChars !== undefined) {
      let total = 0, i = list.length;
      while (i > 0 && total + list[i - 1]!.chars <= maxChars) total += list[--i]!.chars;
      list = list.slice(i);
    }
    return list.map((h) => {
      const m = h.stanza.clone();
      m.append(xml('delay', { xmlns: NS.delay, from: this.jid, stamp: new Date(h.stamp).toISOString() }));
      return m;
    });
  }

  /** Config and subject to the store (persistent rooms only). */
  save(): void {
    if (this.config.persistent && !this.destroyed) this.ctx.store.saveRoom({ jid: this.jid, config: JSON.stringify(this.config), subject: this.subject });
  }

  /** A room that just became persistent writes all it has. */
  saveAll(): void {
    this.ctx.store.saveAll({ jid: this.jid, config: JSON.stringify(this.config), subject: this.subject },
      [...this.affiliations], this.history.map((h) => ({ stamp: h.stamp, stanza: h.stanza.toString() })));
  }
}

export interface PresenceOpts {
  unavailable?: boolean;
  /** Status codes for everyone; `selfCodes` only for the occupant itself (110 is added for it). */
  codes?: string[];
  selfCodes?: string[];
  newNick?: string;
  actor?: string;
  reason?: string;
  status?: string;
  destroy?: Element;
  forceAffiliation?: Affiliation;
}
