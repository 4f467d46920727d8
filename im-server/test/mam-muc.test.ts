// Room archives through the MUC contract hooks (muc-message, muc-mam-query, muc-room-destroyed),
// in-process: the MUC module is written separately, so the hooks are fired here as it would.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { validateConfig } from '../src/config.js';
import { Host, type StanzaEvent } from '../src/core/host.js';
import { parseJid } from '../src/core/jid.js';
import { createMetrics } from '../src/core/metrics.js';
import { parseElement } from '../src/core/parser.js';
import type { Session } from '../src/core/session.js';
import { type Element, xml } from '../src/core/xml.js';
import mam from '../src/modules/mam/index.js';
import { SqliteStorage } from '../src/storage/sqlite.js';
import { SqliteBackend } from '../src/storage/sqlite-backend.js';
import { Accounts } from '../src/storage/accounts.js';

const ROOM = 'den@conference.localhost';
const NS_MAM = 'urn:xmpp:mam:2';
const NS_SID = 'urn:xmpp:sid:0';

async function setup(): Promise<{ host: Host; storage: SqliteStorage }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pi-im-mam-muc-'));
  const config = validateConfig({ domain: 'localhost', dataDir });
  const storage = new SqliteStorage({ path: join(dataDir, 'db.sqlite'), commitWindowMs: 1, maxBatch: 512, synchronous: 'normal' });
  const db = new SqliteBackend(storage);
  const host = new Host(config, db, await Accounts.open(db), pino({ level: 'silent' }), createMetrics());
  await mam(host);
  return { host, storage };
}

/** A session that records what it is sent; resolves `done` with the IQ reply. */
function fakeSession(jid: string): { session: Session; out: Element[]; reply: Promise<Element> } {
  const out: Element[] = [];
  let resolve!: (e: Element) => void;
  const reply = new Promise<Element>((r) => { resolve = r; });
  const session = {
    jid: parseJid(jid)!, username: jid.split('@')[0]!,
    send: (el: Element) => out.push(el),
    sendXml: (s: string) => out.push(parseElement(s)!),
    sendDurable: (el: Element) => resolve(el),
  } as unknown as Session;
  return { session, out, reply };
}

const groupchat = (nick: string, body: string, extra?: Element): Element =>
  xml('message', { xmlns: 'jabber:client', from: `${ROOM}/${nick}`, to: 'ann@localhost/x', type: 'groupchat' }, xml('body', {}, body), extra);

async function query(host: Host, requester: string, q: Element, allowed = true): Promise<{ results: Element[]; reply: Element }> {
  const f = fakeSession(requester);
  const stanza = xml('iq', { xmlns: 'jabber:client', type: 'set', id: 'q1', from: requester, to: ROOM }, q);
  const event: StanzaEvent = { stanza, origin: f.session, from: parseJid(requester)!, to: parseJid(ROOM)!, rx: 0 };
  t0(await host.hooks.fire('muc-mam-query', { event, room: ROOM, allowed }));
  return { results: f.out, reply: await f.reply };
}
function t0(handled: boolean): void { if (!handled) throw new Error('muc-mam-query was not handled'); }

test('room messages get a stanza-id by the room, are archived once, and are served from the room JID', async (t) => {
  const { host, storage } = await setup();
  const m1 = groupchat('ann', 'first', xml('stanza-id', { xmlns: NS_SID, by: ROOM, id: 'forged' }));
  host.hooks.fire('muc-message', { room: ROOM, stanza: m1, occupant: 'ann@localhost' });
  const sid = m1.getChildren('stanza-id', NS_SID);
  t.is(sid.length, 1);
  t.not(sid[0]!.attrs.id, 'forged');
  host.hooks.fire('muc-message', { room: ROOM, stanza: groupchat('bob', 'second', xml('x', { xmlns: 'http://jabber.org/protocol/muc#user' }, xml('item', { jid: 'evil@x' }))), occupant: 'bob@localhost' });
  host.hooks.fire('muc-message', { room: ROOM, stanza: xml('message', { from: `${ROOM}/bob`, type: 'groupchat' }, xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' })), occupant: 'bob@localhost' });

  const { results, reply } = await query(host, 'cid@localhost/phone', xml('query', { xmlns: NS_MAM, queryid: 'r1' }));
  t.is(results.length, 2);
  const r0 = results[0]!;
  t.is(r0.attrs.from, ROOM);
  t.is(r0.attrs.to, 'cid@localhost/phone');
  const res = r0.getChild('result', NS_MAM)!;
  t.is(res.attrs.queryid, 'r1');
  t.is(res.attrs.id, sid[0]!.attrs.id);
  const fwd = res.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!;
  t.is(fwd.attrs.from, `${ROOM}/ann`);
  t.is(fwd.attrs.to, undefined, 'no to in room results');
  t.falsy(results[1]!.getChild('result', NS_MAM)!.getChild('forwarded')!.getChild('message')!.getChild('x', 'http://jabber.org/protocol/muc#user'), 'forged muc#user x stripped');
  t.is(reply.attrs.type, 'result');
  t.is(reply.attrs.from, ROOM);
  t.is(reply.getChild('fin', NS_MAM)?.attrs.complete, 'true');

  const denied = await query(host, 'eve@localhost/x', xml('query', { xmlns: NS_MAM }), false);
  t.is(denied.reply.attrs.type, 'error');
  t.truthy(denied.reply.getChild('error')!.getChild('forbidden'));

  host.hooks.fire('muc-room-destroyed', { room: ROOM });
  t.is((await query(host, 'cid@localhost/phone', xml('query', { xmlns: NS_MAM }))).results.length, 0);
  storage.close();
});
