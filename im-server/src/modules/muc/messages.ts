// Messages in a room (XEP-0045 §7.4-7.5, 7.8, 7.13, 8.1): groupchat fan-out (archived by the MAM
// module through the muc-message hook), subject changes, private messages between occupants,
// mediated invitations and declines, voice requests.
import type { StanzaEvent } from '../../core/host.js';
import { parseJid } from '../../core/jid.js';
import { NS } from '../../core/stanza.js';
import { Element, xml } from '../../core/xml.js';
import { NS_DATA } from './config.js';
import { AFF_RANK, NS_USER, ROLE_RANK, type Room } from './room.js';
import type { MucService } from './service.js';

const NS_SID = 'urn:xmpp:sid:0';
const FORM_REQUEST = 'http://jabber.org/protocol/muc#request';

export interface MucMessageEvent {
  /** The room's bare JID. */
  room: string;
  /** The message as it will be broadcast (from room/nick, no `to`); handlers may add children. */
  stanza: Element;
  /** The sender's real bare JID. */
  occupant: string;
}

export function handleRoomMessage(svc: MucService, room: Room, e: StanzaEvent): void {
  const { stanza } = e;
  const type = stanza.attrs.type ?? 'normal';
  if (type === 'error') return;
  const x = stanza.getChild('x', NS_USER);
  if (type !== 'groupchat' && x && (x.getChild('invite') || x.getChild('decline'))) { invitations(svc, room, e, x); return; }
  const form = stanza.getChild('x', NS_DATA);
  if (type !== 'groupchat' && form && formType(form) === FORM_REQUEST) { voiceRequest(svc, room, e, form); return; }
  if (type !== 'groupchat') { svc.host.bounce(e, 'bad-request', 'messages to a room must be of type groupchat'); return; }
  groupchat(svc, room, e);
}

function groupchat(svc: MucService, room: Room, e: StanzaEvent): void {
  const { stanza } = e;
  const occ = room.occupantOf(e.from.full);
  if (!occ) { svc.host.bounce(e, 'not-acceptable', 'you are not in this room; join it first'); return; }
  if (ROLE_RANK[occ.role] < ROLE_RANK.participant) { svc.host.bounce(e, 'forbidden', 'you have no voice in this moderated room'); return; }
  const body = stanza.getChild('body');
  const subject = stanza.getChild('subject');
  if (subject && !body) {
    if (occ.role !== 'moderator' && !room.config.changeSubject) { svc.host.bounce(e, 'forbidden', 'only moderators may change the subject of this room'); return; }
    room.setSubject({ text: subject.text(), nick: occ.nick, stamp: Date.now() });
  }
  const out = stanza.clone();
  out.attrs.from = `${room.jid}/${occ.nick}`;
  delete out.attrs.to;
  // Only the room may stamp its own stanza-id (XEP-0359 §5).
  out.children = out.children.filter((c) => typeof c === 'string' || !(c.name === 'stanza-id' && c.ns === NS_SID && c.attrs.by === room.jid));
  if (body || subject) svc.host.hooks.notify<MucMessageEvent>('muc-message', { room: room.jid, stanza: out, occupant: occ.bare });
  if (body) room.addHistory(out);
  room.broadcast(out);
}

/** A message to room/nick: a private message between occupants. */
export function handlePrivateMessage(svc: MucService, room: Room, e: StanzaEvent): void {
  const { stanza } = e;
  const type = stanza.attrs.type ?? 'normal';
  if (type === 'error') return;
  if (type === 'groupchat') { svc.host.bounce(e, 'bad-request', 'groupchat messages go to the room, not to an occupant'); return; }
  const occ = room.occupantOf(e.from.full);
  if (!occ) { svc.host.bounce(e, 'not-acceptable', 'only occupants may send private messages in this room'); return; }
  const target = room.occupants.get(e.to.resource);
  if (!target) { svc.host.bounce(e, 'item-not-found', 'no occupant has that nickname'); return; }
  const pm = room.config.allowPm;
  const allowed = occ.role === 'moderator' || pm === 'anyone' || (pm === 'participants' && ROLE_RANK[occ.role] >= ROLE_RANK.participant);
  if (!allowed) { svc.host.bounce(e, 'forbidden', 'private messages are not allowed in this room'); return; }
  const out = stanza.clone();
  out.attrs.from = `${room.jid}/${occ.nick}`;
  // Marks it as a MUC private message, e.g. for carbons (XEP-0045 §7.5).
  if (!out.getChild('x', NS_USER)) out.append(xml('x', { xmlns: NS_USER }));
  room.sendTo(target, out);
}

function invitations(svc: MucService, room: Room, e: StanzaEvent, x: Element): void {
  const { from } = e;
  for (const invite of x.getChildren('invite')) {
    const to = parseJid(invite.attrs.to ?? '');
    if (!to) { svc.host.bounce(e, 'jid-malformed', 'the invitation has no valid "to" address'); return; }
    const occ = room.occupantOf(from.full);
    const aff = room.affiliation(from.bare);
    if (!occ && AFF_RANK[aff] < AFF_RANK.admin) { svc.host.bounce(e, 'not-acceptable', 'only occupants may invite others'); return; }
    if (room.config.membersOnly) {
      if (AFF_RANK[aff] < AFF_RANK.admin && !room.config.allowInvites) { svc.host.bounce(e, 'forbidden', 'only admins may invite to this members-only room'); return; }
      if (room.affiliation(to.bare) === 'none') room.setAffiliation(to.bare, 'member');
    }
    const reason = invite.getChildText('reason');
    const ux = xml('x', { xmlns: NS_USER }, xml('invite', { from: from.full }, reason ? xml('reason', {}, reason) : undefined));
    if (room.config.password) ux.append(xml('password', {}, room.config.password));
    svc.send(xml('message', { xmlns: NS.client, from: room.jid, to: to.full, id: e.stanza.attrs.id }, ux,
      xml('body', {}, `${from.bare} invites you to the room ${room.jid}${reason ? `: ${reason}` : ''}`)));
  }
  const decline = x.getChild('decline');
  if (decline) {
    const to = parseJid(decline.attrs.to ?? '');
    if (!to) { svc.host.bounce(e, 'jid-malformed', 'the decline has no valid "to" address'); return; }
    const reason = decline.getChildText('reason');
    svc.send(xml('message', { xmlns: NS.client, from: room.jid, to: to.full, id: e.stanza.attrs.id },
      xml('x', { xmlns: NS_USER }, xml('decline', { from: from.bare }, reason ? xml('reason', {}, reason) : undefined))));
  }
}

const formType = (form: Element): string | undefined => form.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE')?.getChildText('value');
const fieldValue = (form: Element, name: string): string | undefined => form.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');

/** Voice requests (XEP-0045 §7.13, §8.6): a visitor asks, moderators get a form; one approving grants voice. */
function voiceRequest(svc: MucService, room: Room, e: StanzaEvent, form: Element): void {
  const occ = room.occupantOf(e.from.full);
  if (!occ) { svc.host.bounce(e, 'not-acceptable', 'join the room first'); return; }
  if (form.attrs.type !== 'submit') return;
  if (occ.role === 'moderator' && fieldValue(form, 'muc#roomnick') !== undefined) {
    // A moderator's answer to a request.
    const allow = fieldValue(form, 'muc#request_allow');
    const target = room.occupants.get(fieldValue(form, 'muc#roomnick')!);
    if ((allow === '1' || allow === 'true') && target && target.role === 'visitor') {
      target.role = 'participant';
      room.broadcastPresence(target, { actor: occ.nick });
    }
    return;
  }
  if (occ.role !== 'visitor') return; // voice already
  const field = (type: string, v: string, label: string, value: string): Element => xml('field', { type, var: v, label }, xml('value', {}, value));
  const request = xml('message', { xmlns: NS.client, from: room.jid, id: `voice-${Date.now().toString(36)}` },
    xml('x', { xmlns: NS_DATA, type: 'form' },
      xml('title', {}, 'Voice request'),
      xml('instructions', {}, `To give ${occ.nick} voice in this room, approve this request.`),
      field('hidden', 'FORM_TYPE', '', FORM_REQUEST),
      field('list-single', 'muc#role', 'Requested role', 'participant'),
      field('jid-single', 'muc#jid', 'User ID', occ.bare), // moderators may always see real JIDs
      field('text-single', 'muc#roomnick', 'Room nickname', occ.nick),
      field('boolean', 'muc#request_allow', 'Grant voice to this person?', 'false')));
  for (const m of room.occupants.values()) if (m.role === 'moderator') room.sendTo(m, request);
}
