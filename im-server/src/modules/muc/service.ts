// The MUC service at conference.<domain>: its rooms, routing of every stanza sent to it, service
// and room discovery, IQs to occupants (proxied, XEP-0045 §7.x; self-pings answered, XEP-0410),
// and the hand-off of room archive queries to the MAM module.
import { after, type Awaitable } from '../../core/hooks.js';
import { randomBytes } from 'node:crypto';
import type { Component, Host, StanzaEvent } from '../../core/host.js';
import { parseJid } from '../../core/jid.js';
import { parseElement } from '../../core/parser.js';
import { NS, errorReply, iqResult } from '../../core/stanza.js';
import { Element, xml } from '../../core/xml.js';
import { handleAdmin, handleOwner } from './admin.js';
import { defaultConfig, loadConfig, roomInfoForm } from './config.js';
import { handlePrivateMessage, handleRoomMessage } from './messages.js';
import { handlePresence } from './occupants.js';
import { AFF_RANK, NS_ADMIN, NS_MUC, NS_OWNER, Room, type Affiliation, type MucContext } from './room.js';
import { MIGRATIONS, MucStore, type StoredRoom, type Tables } from './store.js';

export const NS_SELF_PING = `${NS_MUC}#self-ping-optimization`;
export const NS_STABLE_ID = `${NS_MUC}#stable_id`;
const NS_MAM = 'urn:xmpp:mam:2';
const NS_SID = 'urn:xmpp:sid:0';
const PROXY_TIMEOUT_MS = 60_000;

export interface MucMamQueryEvent { event: StanzaEvent; room: string; allowed: boolean }

interface Proxied { requester: string; id: string | undefined; fromNick: string; target: string }

export class MucService implements MucContext, Component {
  readonly name = 'Chatrooms';
  readonly domain: string;
  readonly store: MucStore;
  readonly rooms = new Map<string, Room>();
  readonly maxOccupants: number;
  readonly maxHistory: number;
  private readonly admins: Set<string>;
  /** Session full JID -> the rooms it is joined to. */
  private readonly joined = new Map<string, Set<Room>>();
  private readonly proxied = new Map<string, Proxied>();

  /** Opens the store and loads the stored rooms. */
  static async start(host: Host): Promise<MucService> {
    const failed = (what: string, err: unknown): void => host.log.error({ err: (err as Error)?.stack ?? String(err) }, `muc: ${what} failed`);
    const store = new MucStore(await host.db.open<Tables>('muc', MIGRATIONS), failed);
    return new MucService(host, store, await store.loadAll(host.config.muc.historyMessages));
  }

  private constructor(readonly host: Host, store: MucStore, stored: StoredRoom[]) {
    const c = host.config.muc;
    this.domain = `conference.${host.domain}`;
    this.maxOccupants = c.maxOccupants;
    this.maxHistory = c.historyMessages;
    this.admins = new Set(c.admins.map((a) => (a.includes('@') ? parseJid(a)?.bare ?? a : `${a}@${host.domain}`)));
    this.store = store;
    for (const r of stored) {
      const room = new Room(r.jid, loadConfig(r.config, this.maxHistory), this);
      for (const [jid, a] of r.affiliations) room.affiliations.set(jid, a as Affiliation);
      room.subject = r.subject;
      for (const h of r.history) {
        const stanza = parseElement(h.stanza);
        if (stanza) room.history.push({ stanza, stamp: h.stamp, chars: h.stanza.length });
      }
      this.rooms.set(r.jid, room);
    }
  }

  send(el: Element): void { this.host.route(el); }

  isServiceAdmin(bare: string): boolean { return this.admins.has(bare); }

  /** Why `bare` may not create a room, or undefined when it may. */
  mayCreate(bare: string): string | undefined {
    const jid = parseJid(bare);
    if (!jid || jid.domain !== this.host.domain || !jid.local) return 'only users of this server may create rooms';
    if (this.isServiceAdmin(bare)) return undefined;
    if (this.host.config.muc.roomCreation === 'admins') return 'only administrators may create rooms on this service';
    let owned = 0;
    for (const r of this.rooms.values()) if (r.affiliations.get(bare) === 'owner') owned++;
    if (owned >= this.host.config.muc.maxRoomsPerUser) return `you already own ${owned} rooms, the most this service allows`;
    return undefined;
  }

  createRoom(jid: string, owner: string, locked: boolean): Room {
    const room = new Room(jid, defaultConfig(this.maxHistory), this);
    room.affiliations.set(owner, 'owner');
    room.locked = locked;
    this.rooms.set(jid, room);
    this.host.log.info({ room: jid, owner }, 'room created');
    return room;
  }

  track(full: string, room: Room): void {
    let set = this.joined.get(full);
    if (!set) this.joined.set(full, (set = new Set()));
    set.add(room);
  }

  untrack(full: string, room: Room): void {
    const set = this.joined.get(full);
    if (!set) return;
    set.delete(room);
    if (set.size === 0) this.joined.delete(full);
  }

  roomsOf(full: string): Room[] { return [...(this.joined.get(full) ?? [])]; }

  /** An empty room that is temporary (or never configured) vanishes. */
  afterLeave(room: Room): void {
    if (room.occupants.size > 0 || room.destroyed) return;
    if (room.config.persistent && !room.locked) return;
    this.removeRoom(room);
  }

  removeRoom(room: Room): void {
    if (room.destroyed) return;
    room.destroyed = true;
    this.rooms.delete(room.jid);
    if (room.config.persistent) this.store.deleteRoom(room.jid);
    this.host.log.info({ room: room.jid }, 'room removed');
    this.host.hooks.notify('muc-room-destroyed', { room: room.jid });
  }

  // ---- routing ----

  handle(e: StanzaEvent): Awaitable<void> {
    const { to, stanza } = e;
    if (to.local === '') { this.serviceStanza(e); return; }
    const room = this.rooms.get(to.bare);
    const kind = stanza.name;
    if (kind === 'presence') { handlePresence(this, room, e); return; }
    const type = stanza.attrs.type;
    if (!room || (room.locked && room.affiliation(e.from.bare) !== 'owner')) {
      if (type !== 'error' && type !== 'result') this.host.bounce(e, 'item-not-found', `there is no room ${to.bare}`);
      return;
    }
    if (kind === 'message') {
      if (to.resource) handlePrivateMessage(this, room, e); else handleRoomMessage(this, room, e);
      return;
    }
    if (kind !== 'iq') return;
    if (to.resource) { this.occupantIq(room, e); return; }
    if (type !== 'get' && type !== 'set') return;
    return this.roomIq(room, e);
  }

  private serviceStanza(e: StanzaEvent): void {
    const { stanza } = e;
    const type = stanza.attrs.type;
    if (stanza.name !== 'iq') {
      if (stanza.name === 'message' && type !== 'error') this.host.bounce(e, 'service-unavailable', 'send messages to a room, not to the service');
      return;
    }
    if (type !== 'get' && type !== 'set') return;
    const q = stanza.firstElement();
    const key = `${type}:${q?.ns}:${q?.name}`;
    if (q?.attrs.node && (key === `get:${NS.discoInfo}:query` || key === `get:${NS.discoItems}:query`)) { this.host.reply(e, errorReply(stanza, 'item-not-found')); return; }
    if (key === `get:${NS.discoInfo}:query`) {
      const r = xml('query', { xmlns: NS.discoInfo }, xml('identity', { category: 'conference', type: 'text', name: this.name }));
      for (const f of [NS.discoInfo, NS.discoItems, NS_MUC, NS_SELF_PING, NS.ping]) r.append(xml('feature', { var: f }));
      this.host.reply(e, iqResult(stanza, r));
    } else if (key === `get:${NS.discoItems}:query`) {
      const r = xml('query', { xmlns: NS.discoItems });
      for (const room of [...this.rooms.values()].sort((a, b) => a.jid.localeCompare(b.jid))) {
        if (room.config.public && !room.locked) r.append(xml('item', { jid: room.jid, name: room.name }));
      }
      this.host.reply(e, iqResult(stanza, r));
    } else if (key === `get:${NS.ping}:ping`) this.host.reply(e, iqResult(stanza));
    else this.host.reply(e, errorReply(stanza, 'service-unavailable'));
  }

  private roomIq(room: Room, e: StanzaEvent): Awaitable<void> {
    const { stanza } = e;
    const q = stanza.firstElement();
    if (!q) { this.host.reply(e, errorReply(stanza, 'bad-request')); return; }
    const ns = q.ns;
    const type = stanza.attrs.type;
    if (ns === NS_ADMIN && q.name === 'query') { handleAdmin(this, room, e); return; }
    if (ns === NS_OWNER && q.name === 'query') { handleOwner(this, room, e); return; }
    if (ns === NS_MAM) return this.mamQuery(room, e);
    if (type === 'get' && ns === NS.discoInfo && q.name === 'query') { this.host.reply(e, iqResult(stanza, this.roomInfo(room, q.attrs.node))); return; }
    if (type === 'get' && ns === NS.discoItems && q.name === 'query') { this.host.reply(e, iqResult(stanza, this.roomItems(room, e, q.attrs.node))); return; }
    if (type === 'get' && ns === NS.ping && q.name === 'ping') { this.host.reply(e, iqResult(stanza)); return; }
    this.host.reply(e, errorReply(stanza, 'service-unavailable'));
  }

  roomInfo(room: Room, node: string | undefined): Element {
    const q = xml('query', { xmlns: NS.discoInfo, node });
    if (node) return q; // e.g. x-roomuser-item: this service reserves no nicknames
    q.append(xml('identity', { category: 'conference', type: 'text', name: room.name }));
    const c = room.config;
    const features = [NS.discoInfo, NS.discoItems, NS_MUC, `${NS_MUC}#request`, NS_SELF_PING, NS_STABLE_ID, NS.ping,
      c.public ? 'muc_public' : 'muc_hidden', c.persistent ? 'muc_persistent' : 'muc_temporary',
      c.membersOnly ? 'muc_membersonly' : 'muc_open', c.moderated ? 'muc_moderated' : 'muc_unmoderated',
      c.password ? 'muc_passwordprotected' : 'muc_unsecured', c.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous'];
    if (this.host.hooks.has('muc-mam-query')) features.push(NS_MAM, NS_SID);
    for (const f of features.sort()) q.append(xml('feature', { var: f }));
    q.append(roomInfoForm(c, room.occupants.size, room.subject?.text ?? ''));
    return q;
  }

  /** The occupants' nicknames (never their real JIDs), where anyone could learn them by joining (§6.5). */
  private roomItems(room: Room, e: StanzaEvent, node: string | undefined): Element {
    const q = xml('query', { xmlns: NS.discoItems, node });
    const c = room.config;
    const open = c.public && !c.membersOnly && c.password === '';
    if (node || !(open || room.occupantsOf(e.from.bare).length > 0)) return q;
    for (const o of room.occupants.values()) q.append(xml('item', { jid: `${room.jid}/${o.nick}`, name: o.nick }));
    return q;
  }

  private mamQuery(room: Room, e: StanzaEvent): Awaitable<void> {
    const bare = e.from.bare;
    const aff = room.affiliation(bare);
    let allowed: boolean;
    if (room.occupantsOf(bare).length > 0) allowed = true;
    else if (aff === 'outcast') allowed = false;
    else if (room.config.membersOnly) allowed = AFF_RANK[aff] >= AFF_RANK.member;
    else allowed = room.config.password === '' || AFF_RANK[aff] >= AFF_RANK.member;
    if (!allowed) { this.host.reply(e, errorReply(e.stanza, 'forbidden', 'join the room (or become a member) to read its archive')); return; }
    return after(this.host.hooks.fire<MucMamQueryEvent>('muc-mam-query', { event: e, room: room.jid, allowed }), (handled) => {
      if (!handled) this.host.reply(e, errorReply(e.stanza, 'service-unavailable', 'this server keeps no room archives'));
    });
  }

  /** IQs to room/nick: self-pings are answered here, others go to the occupant under the room's address. */
  private occupantIq(room: Room, e: StanzaEvent): void {
    const { stanza } = e;
    const type = stanza.attrs.type;
    if (type === 'result' || type === 'error') { this.proxyReply(room, e); return; }
    if (type !== 'get' && type !== 'set') return;
    const sender = room.occupantOf(e.from.full);
    const q = stanza.firstElement();
    if (!sender) {
      // Disco of an occupant by a non-occupant: bad-request (§6.6); anything else, self-pings included: not-acceptable (XEP-0410).
      const disco = q?.ns === NS.discoInfo || q?.ns === NS.discoItems;
      this.host.reply(e, errorReply(stanza, disco ? 'bad-request' : 'not-acceptable', 'you are not an occupant of this room'));
      return;
    }
    if (sender.nick === e.to.resource && q?.name === 'ping' && q.ns === NS.ping) { this.host.reply(e, iqResult(stanza)); return; }
    const target = room.occupants.get(e.to.resource);
    if (!target) { this.host.reply(e, errorReply(stanza, 'item-not-found', 'no occupant has that nickname')); return; }
    // vCards are served for the account (bare JID), e.g. occupant avatars.
    const to = q?.ns === NS.vcard ? target.bare : target.jid;
    const id = randomBytes(9).toString('base64url');
    this.proxied.set(id, { requester: e.from.full, id: stanza.attrs.id, fromNick: target.nick, target: to });
    setTimeout(() => this.proxied.delete(id), PROXY_TIMEOUT_MS).unref();
    const out = stanza.clone();
    out.attrs.from = `${room.jid}/${sender.nick}`;
    out.attrs.to = to;
    out.attrs.id = id;
    this.send(out);
  }

  private proxyReply(room: Room, e: StanzaEvent): void {
    const id = e.stanza.attrs.id ?? '';
    const p = this.proxied.get(id);
    if (!p || (e.from.full !== p.target && e.from.bare !== p.target)) return;
    this.proxied.delete(id);
    const out = e.stanza.clone();
    out.attrs.from = `${room.jid}/${p.fromNick}`;
    out.attrs.to = p.requester;
    if (p.id === undefined) delete out.attrs.id; else out.attrs.id = p.id;
    this.send(out);
  }
}
