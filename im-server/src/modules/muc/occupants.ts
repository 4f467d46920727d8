// Presence to a room (XEP-0045 §7.1-7.3, 7.6, 7.14): entering (and creating), the checks that
// may refuse entry, presence updates, nickname changes, leaving; and removal of occupants by
// moderators, bans, destruction and ended sessions.
import type { StanzaEvent } from '../../core/host.js';
import { Element } from '../../core/xml.js';
import { AFF_RANK, NS_MUC, NS_USER, type Occupant, type PresenceOpts, type Room } from './room.js';
import type { MucService } from './service.js';

/** The presence as the room keeps it: the client's payload without MUC protocol elements. */
function cleanPresence(p: Element): Element {
  const out = new Element('presence');
  for (const c of p.children) {
    if (typeof c === 'string') continue;
    const ns = c.ns;
    if (c.name === 'x' && (ns === NS_MUC || ns === NS_USER)) continue;
    out.append(c.clone());
  }
  return out;
}

function refuse(svc: MucService, e: StanzaEvent, condition: string, text: string): void {
  svc.host.bounce(e, condition, text);
}

export function handlePresence(svc: MucService, room: Room | undefined, e: StanzaEvent): void {
  const { stanza, from, to } = e;
  const type = stanza.attrs.type;
  if (type === 'error') {
    // A bounced presence from a joined session: it is gone (a "ghost"), so it leaves.
    const occ = room?.occupantOf(from.full);
    if (room && occ) removeSession(svc, room, occ, from.full, {});
    return;
  }
  if (type === 'unavailable') {
    const occ = room?.occupantOf(from.full);
    if (room && occ) removeSession(svc, room, occ, from.full, { status: stanza.getChildText('status') });
    return;
  }
  if (type !== undefined) return; // subscriptions and probes mean nothing to a room
  if (to.resource === '') { refuse(svc, e, 'jid-malformed', 'give a nickname: send your presence to room@service/nick'); return; }
  const nick = to.resource;
  if (nick.trim() === '') { refuse(svc, e, 'jid-malformed', 'the nickname is empty'); return; }
  const occ = room?.occupantOf(from.full);
  if (room && occ) {
    if (occ.nick === nick) update(svc, room, occ, e);
    else changeNick(svc, room, occ, e, nick);
    return;
  }
  join(svc, room, e, nick);
}

function join(svc: MucService, existing: Room | undefined, e: StanzaEvent, nick: string): void {
  const { stanza, from } = e;
  const bare = from.bare;
  const mucX = stanza.getChild('x', NS_MUC);
  let room = existing;
  let created = false;
  if (!room) {
    const why = svc.mayCreate(bare);
    if (why) { refuse(svc, e, 'not-allowed', why); return; }
    room = svc.createRoom(e.to.bare, bare, mucX !== undefined);
    created = true;
  } else if (room.locked && room.affiliation(bare) !== 'owner') {
    refuse(svc, e, 'item-not-found', 'the room is being set up by its owner; try again shortly');
    return;
  }
  const aff = room.affiliation(bare);
  if (aff === 'outcast') { refuse(svc, e, 'forbidden', 'you are banned from this room'); return; }
  const sameNick = room.occupants.get(nick);
  if (sameNick && sameNick.bare !== bare) { refuse(svc, e, 'conflict', 'that nickname is taken in this room'); return; }
  if (!sameNick) {
    if (room.config.membersOnly && AFF_RANK[aff] < AFF_RANK.member) { refuse(svc, e, 'registration-required', 'this room is for members only'); return; }
    if (room.occupants.size >= room.maxUsers && AFF_RANK[aff] < AFF_RANK.admin) { refuse(svc, e, 'service-unavailable', 'the room is full'); return; }
  }
  if (room.config.password !== '' && aff !== 'owner' && mucX?.getChildText('password') !== room.config.password) {
    refuse(svc, e, 'not-authorized', 'this room needs a password');
    return;
  }
  const occ: Occupant = sameNick ?? { nick, bare, sessions: new Map(), jid: from.full, role: room.defaultRole(aff) };
  occ.sessions.set(from.full, cleanPresence(stanza));
  occ.jid = from.full;
  room.occupants.set(nick, occ);
  room.byJid.set(from.full, occ);
  svc.track(from.full, room);
  sendRoomState(svc, room, occ, from.full, mucX, created);
}

/** What a session gets on entering: the others' presence, its own (last), history, subject. */
function sendRoomState(svc: MucService, room: Room, occ: Occupant, full: string, mucX: Element | undefined, created: boolean): void {
  const toSession = (el: Element): void => { el.attrs.to = full; svc.send(el); };
  for (const other of room.occupants.values()) if (other !== occ) toSession(room.presenceOf(other, occ));
  const selfCodes = [...(created ? ['201'] : []), ...(room.config.whois === 'anyone' ? ['100'] : [])];
  // Everyone else first, then the newcomer's own sessions (self-presence last for the new one).
  for (const r of room.occupants.values()) if (r !== occ) room.sendTo(r, room.presenceOf(occ, r));
  const self = room.presenceOf(occ, occ, { selfCodes });
  for (const s of occ.sessions.keys()) if (s !== full) { const c = self.clone(); c.attrs.to = s; svc.send(c); }
  toSession(self);
  if (!created) for (const m of room.historyFor(mucX?.getChild('history'))) toSession(m);
  toSession(room.subjectMessage());
}

function update(svc: MucService, room: Room, occ: Occupant, e: StanzaEvent): void {
  const mucX = e.stanza.getChild('x', NS_MUC);
  occ.sessions.set(e.from.full, cleanPresence(e.stanza));
  occ.jid = e.from.full;
  if (mucX) { sendRoomState(svc, room, occ, e.from.full, mucX, false); return; } // a client re-joining to resync
  room.broadcastPresence(occ);
}

function changeNick(svc: MucService, room: Room, occ: Occupant, e: StanzaEvent, nick: string): void {
  if (occ.sessions.size > 1) { refuse(svc, e, 'not-acceptable', 'you are joined from several devices under this nickname; leave with the others first'); return; }
  const taken = room.occupants.get(nick);
  if (taken) { refuse(svc, e, 'conflict', 'that nickname is taken in this room'); return; }
  room.broadcastPresence(occ, { unavailable: true, newNick: nick, codes: ['303'] });
  room.occupants.delete(occ.nick);
  occ.nick = nick;
  room.occupants.set(nick, occ);
  occ.sessions.set(e.from.full, cleanPresence(e.stanza));
  room.broadcastPresence(occ);
}

/** One session leaves; the occupant goes when it was its last. */
export function removeSession(svc: MucService, room: Room, occ: Occupant, full: string, opts: PresenceOpts): void {
  if (occ.sessions.size > 1) {
    const p = room.presenceOf(occ, occ, { ...opts, unavailable: true });
    p.attrs.to = full;
    svc.send(p);
    occ.sessions.delete(full);
    room.byJid.delete(full);
    svc.untrack(full, room);
    if (occ.jid === full) occ.jid = occ.sessions.keys().next().value!;
    return;
  }
  removeOccupant(svc, room, occ, opts);
}

/** The occupant leaves (or is removed) with all its sessions; everyone is told. */
export function removeOccupant(svc: MucService, room: Room, occ: Occupant, opts: PresenceOpts): void {
  if (room.occupants.get(occ.nick) !== occ) return;
  room.occupants.delete(occ.nick);
  room.broadcastPresence(occ, { ...opts, unavailable: true }, occ);
  for (const full of occ.sessions.keys()) { room.byJid.delete(full); svc.untrack(full, room); }
  svc.afterLeave(room);
}
