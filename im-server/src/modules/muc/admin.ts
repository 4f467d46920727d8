// Moderator, admin and owner requests (XEP-0045 §8-10): roles (kick, voice, moderator) and
// affiliations (member, admin, owner, ban) by muc#admin items, their lists; room configuration
// and destruction by muc#owner.
import type { StanzaEvent } from '../../core/host.js';
import { parseJid } from '../../core/jid.js';
import { errorReply, iqResult } from '../../core/stanza.js';
import { Element, xml } from '../../core/xml.js';
import { applyConfigForm, configForm, NS_DATA, type FormContext } from './config.js';
import { removeOccupant } from './occupants.js';
import { AFF_RANK, AFFILIATIONS, NS_ADMIN, NS_OWNER, ROLES, type Affiliation, type Occupant, type Role, type Room } from './room.js';
import type { MucService } from './service.js';

class Refusal { constructor(readonly condition: string, readonly text: string) {} }

function formContext(svc: MucService, room: Room): FormContext {
  return { owners: room.owners(), admins: room.admins(), maxOccupants: svc.maxOccupants, maxHistory: svc.maxHistory };
}

// ---- muc#admin ----

export function handleAdmin(svc: MucService, room: Room, e: StanzaEvent): void {
  const reply = (el: Element): void => svc.host.reply(e, el);
  try {
    if (e.stanza.attrs.type === 'get') reply(iqResult(e.stanza, adminList(room, e)));
    else { adminSet(svc, room, e); reply(iqResult(e.stanza)); }
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    reply(errorReply(e.stanza, err.condition, err.text));
  }
}

function adminList(room: Room, e: StanzaEvent): Element {
  const items = e.stanza.firstElement()!.getChildren('item');
  if (items.length !== 1) throw new Refusal('bad-request', 'ask for one list: <item affiliation="..."/> or <item role="..."/>');
  const item = items[0]!;
  const myAff = room.affiliation(e.from.bare);
  const me = room.occupantOf(e.from.full);
  const q = xml('query', { xmlns: NS_ADMIN });
  const aff = item.attrs.affiliation;
  if (aff !== undefined) {
    if (!AFFILIATIONS.includes(aff as Affiliation) || aff === 'none') throw new Refusal('bad-request', `no list for affiliation "${aff}"`);
    // Members may see who belongs to a non-anonymous room (clients need it for end-to-end encryption).
    const mayRead = AFF_RANK[myAff] >= AFF_RANK.admin || (aff !== 'outcast' && AFF_RANK[myAff] >= AFF_RANK.member && room.config.whois === 'anyone');
    if (!mayRead) throw new Refusal('forbidden', 'only admins and owners may read this list');
    for (const [jid, a] of [...room.affiliations].sort(([x], [y]) => x.localeCompare(y))) {
      if (a !== aff) continue;
      const nick = room.occupantsOf(jid)[0]?.nick;
      q.append(xml('item', { affiliation: a, jid, nick }));
    }
    return q;
  }
  const role = item.attrs.role;
  if (role === undefined || !ROLES.includes(role as Role) || role === 'none') throw new Refusal('bad-request', 'give an affiliation or a role (moderator, participant, visitor)');
  if (me?.role !== 'moderator') throw new Refusal('forbidden', 'only moderators may read the role lists');
  for (const o of room.occupants.values()) {
    if (o.role === role) q.append(xml('item', { role, nick: o.nick, affiliation: room.affiliation(o.bare), jid: o.jid }));
  }
  return q;
}

interface AffChange { kind: 'aff'; jid: string; to: Affiliation; reason?: string | undefined }
interface RoleChange { kind: 'role'; occ: Occupant; to: Role; reason?: string | undefined }

function adminSet(svc: MucService, room: Room, e: StanzaEvent): void {
  const items = e.stanza.firstElement()!.getChildren('item');
  if (items.length === 0) throw new Refusal('bad-request', 'no <item/> to change');
  const myAff = room.affiliation(e.from.bare);
  const me = room.occupantOf(e.from.full);
  const changes: (AffChange | RoleChange)[] = [];
  for (const item of items) {
    const reason = item.getChildText('reason');
    if (item.attrs.affiliation !== undefined) {
      const to = item.attrs.affiliation as Affiliation;
      if (!AFFILIATIONS.includes(to)) throw new Refusal('bad-request', `unknown affiliation "${to}"`);
      let jid: string | undefined;
      if (item.attrs.jid !== undefined) jid = parseJid(item.attrs.jid)?.bare;
      else if (item.attrs.nick !== undefined) jid = room.occupants.get(item.attrs.nick)?.bare;
      if (!jid) throw new Refusal(item.attrs.jid !== undefined ? 'jid-malformed' : 'item-not-found', 'give the jid (or the nick of an occupant) to change');
      const current = room.affiliations.get(jid) ?? 'none';
      if (AFF_RANK[myAff] < AFF_RANK.admin) throw new Refusal('forbidden', 'only admins and owners may change affiliations');
      if (myAff !== 'owner' && (AFF_RANK[current] >= AFF_RANK.admin || AFF_RANK[to] >= AFF_RANK.admin)) {
        throw new Refusal('not-allowed', 'only owners may grant or revoke admin and owner affiliations');
      }
      if (svc.isServiceAdmin(jid) && to === 'outcast') throw new Refusal('not-allowed', 'a service administrator cannot be banned');
      changes.push({ kind: 'aff', jid, to, reason });
    } else if (item.attrs.role !== undefined) {
      const to = item.attrs.role as Role;
      if (!ROLES.includes(to)) throw new Refusal('bad-request', `unknown role "${to}"`);
      if (item.attrs.nick === undefined) throw new Refusal('bad-request', 'a role change needs the nick of an occupant');
      const occ = room.occupants.get(item.attrs.nick);
      if (!occ) throw new Refusal('item-not-found', `no occupant has the nick "${item.attrs.nick}"`);
      if (me?.role !== 'moderator') throw new Refusal('forbidden', 'only moderators may change roles');
      const targetAff = room.affiliation(occ.bare);
      if (AFF_RANK[targetAff] >= AFF_RANK.admin && to !== 'moderator') throw new Refusal('not-allowed', 'the roles of admins and owners follow their affiliation');
      if (AFF_RANK[targetAff] > AFF_RANK[myAff]) throw new Refusal('not-allowed', 'you cannot change the role of an occupant with a higher affiliation');
      if ((to === 'moderator' || occ.role === 'moderator') && AFF_RANK[myAff] < AFF_RANK.admin) {
        throw new Refusal('not-allowed', 'only admins and owners may grant or revoke the moderator role');
      }
      changes.push({ kind: 'role', occ, to, reason });
    } else throw new Refusal('bad-request', 'an item needs an affiliation or a role');
  }
  // The room keeps at least one owner (§10.6).
  const owners = new Set(room.owners());
  for (const c of changes) if (c.kind === 'aff') { if (c.to === 'owner') owners.add(c.jid); else owners.delete(c.jid); }
  if (owners.size === 0 && room.owners().length > 0) throw new Refusal('conflict', 'a room needs an owner: make someone else owner first');

  const actor = me?.nick;
  for (const c of changes) {
    if (c.kind === 'aff') applyAffiliation(svc, room, c.jid, c.to, { actor, reason: c.reason });
    else applyRole(svc, room, c.occ, c.to, { actor, reason: c.reason });
  }
}

interface Why { actor?: string | undefined; reason?: string | undefined }

export function applyAffiliation(svc: MucService, room: Room, jid: string, to: Affiliation, why: Why): void {
  room.setAffiliation(jid, to);
  for (const occ of room.occupantsOf(jid)) {
    if (to === 'outcast') removeOccupant(svc, room, occ, { codes: ['301'], ...why, forceAffiliation: 'outcast' });
    else if (room.config.membersOnly && AFF_RANK[to] < AFF_RANK.member) removeOccupant(svc, room, occ, { codes: ['321'], ...why });
    else setRole(room, occ, room.defaultRole(to), why);
  }
}

function applyRole(svc: MucService, room: Room, occ: Occupant, to: Role, why: Why): void {
  if (to === 'none') removeOccupant(svc, room, occ, { codes: ['307'], ...why });
  else setRole(room, occ, to, why);
}

function setRole(room: Room, occ: Occupant, to: Role, why: Why): void {
  const was = occ.role;
  occ.role = to;
  room.broadcastPresence(occ, { reason: why.reason, actor: why.actor });
  // A new moderator of a semi-anonymous room now sees real JIDs: tell it (§7.2.4 / §9.x).
  if (to === 'moderator' && was !== 'moderator' && room.config.whois === 'moderators') {
    for (const other of room.occupants.values()) if (other !== occ) room.sendTo(occ, room.presenceOf(other, occ));
  }
}

// ---- muc#owner ----

export function handleOwner(svc: MucService, room: Room, e: StanzaEvent): void {
  const reply = (el: Element): void => svc.host.reply(e, el);
  if (room.affiliation(e.from.bare) !== 'owner') { reply(errorReply(e.stanza, 'forbidden', 'only owners may configure or destroy the room')); return; }
  const query = e.stanza.firstElement()!;
  if (e.stanza.attrs.type === 'get') {
    reply(iqResult(e.stanza, xml('query', { xmlns: NS_OWNER }, configForm(room.config, formContext(svc, room)))));
    return;
  }
  const destroy = query.getChild('destroy');
  if (destroy) {
    const alt = destroy.attrs.jid !== undefined ? parseJid(destroy.attrs.jid)?.bare : undefined;
    destroyRoom(svc, room, destroy.getChildText('reason'), alt, destroy.getChildText('password'));
    reply(iqResult(e.stanza));
    return;
  }
  const form = query.getChild('x', NS_DATA);
  if (!form) { reply(errorReply(e.stanza, 'bad-request', 'send a muc#roomconfig form or <destroy/>')); return; }
  if (form.attrs.type === 'cancel') {
    // Cancelling the first configuration of a new room drops the room (§10.1.3).
    if (room.locked) destroyRoom(svc, room, undefined, undefined, undefined);
    reply(iqResult(e.stanza));
    return;
  }
  if (form.attrs.type !== 'submit') { reply(errorReply(e.stanza, 'bad-request', 'the form must be of type submit or cancel')); return; }
  const change = applyConfigForm(room.config, form, formContext(svc, room));
  if (typeof change === 'string') { reply(errorReply(e.stanza, 'not-acceptable', change)); return; }
  const old = room.config;
  const wasLocked = room.locked;
  room.config = change.config;
  room.locked = false;
  const nowPersistent = change.config.persistent;
  if (nowPersistent && !old.persistent) room.saveAll();
  else if (nowPersistent) room.save();
  else if (old.persistent) svc.store.deleteRoom(room.jid);
  if (change.config.historyLength < room.history.length) room.history.splice(0, room.history.length - change.config.historyLength);
  const demoted = room.config.membersOnly ? 'member' : 'none';
  const setList = (list: string[] | undefined, aff: Affiliation): void => {
    if (!list) return;
    if (aff === 'owner' && list.length === 0) return; // a room keeps an owner
    for (const jid of [...room.affiliations.keys()]) if (room.affiliations.get(jid) === aff && !list.includes(jid)) applyAffiliation(svc, room, jid, demoted, {});
    for (const jid of list) if (room.affiliations.get(jid) !== aff) applyAffiliation(svc, room, jid, aff, {});
  };
  setList(change.owners, 'owner');
  setList(change.admins, 'admin');
  if (room.config.membersOnly && !old.membersOnly) {
    for (const occ of [...room.occupants.values()]) {
      if (AFF_RANK[room.affiliation(occ.bare)] < AFF_RANK.member) removeOccupant(svc, room, occ, { codes: ['322'] });
    }
  }
  if (!wasLocked) {
    const codes = ['104'];
    if (old.whois !== room.config.whois) codes.push(room.config.whois === 'anyone' ? '172' : '173');
    room.broadcast(room.statusMessage(codes));
  }
  reply(iqResult(e.stanza));
  if (room.occupants.size === 0) svc.afterLeave(room);
}

/** Ends the room: every occupant is told (with the alternate venue, if any) and removed. */
export function destroyRoom(svc: MucService, room: Room, reason: string | undefined, alt: string | undefined, password: string | undefined): void {
  const d = xml('destroy', { jid: alt }, reason ? xml('reason', {}, reason) : undefined, password ? xml('password', {}, password) : undefined);
  for (const occ of [...room.occupants.values()]) {
    room.sendTo(occ, room.presenceOf(occ, occ, { unavailable: true, destroy: d, forceAffiliation: 'none' }));
    for (const full of occ.sessions.keys()) svc.untrack(full, room);
  }
  room.occupants.clear();
  room.byJid.clear();
  svc.removeRoom(room);
}
