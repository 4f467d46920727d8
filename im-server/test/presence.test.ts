import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open' }); });
test.after.always(async () => { await server?.stop(); });

const isPresence = (from: string, type?: string) => (s: Element): boolean =>
  s.is('presence') && (s.attrs.from ?? '').startsWith(from) && s.attrs.type === type;
const isPush = (contact: string, sub: string) => (s: Element): boolean =>
  s.is('iq') && s.attrs.type === 'set' && s.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.jid === contact
  && s.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.subscription === sub;

async function roster(c: XmppClient, ver?: string): Promise<Element> {
  return c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster', ver }));
}

test('subscription both ways, roster pushes and versioning, presence broadcast and unavailable on disconnect', async (t) => {
  const a = uniq('ann'), b = uniq('ben');
  const A = `${a}@localhost`, B = `${b}@localhost`;
  const ann = await connect(server, { username: a, password: 'pw-a', register: true, resource: 'r1' });
  const ben = await connect(server, { username: b, password: 'pw-b', register: true, resource: 'r1' });
  const r0 = await roster(ann);
  t.is(r0.getChildren('item').length, 0);
  const ver0 = r0.attrs.ver!;
  await roster(ben);
  await ann.send(xml('presence'));
  await ben.send(xml('presence'));

  // ann asks to see ben's presence: pending-out on ann's roster, request at ben.
  await ann.send(xml('presence', { to: B, type: 'subscribe' }));
  const pushAsk = await waitFor(ann, isPush(B, 'none'), 'roster push with ask');
  t.is(pushAsk.getChild('query')!.getChild('item')!.attrs.ask, 'subscribe');
  const req = await waitFor(ben, isPresence(A, 'subscribe'), 'subscription request');
  t.is(req.attrs.from, A);

  // ben approves: ann gets "to", ben "from", ann sees ben online.
  await ben.send(xml('presence', { to: A, type: 'subscribed' }));
  await waitFor(ben, isPush(A, 'from'), 'push from');
  await waitFor(ann, isPush(B, 'to'), 'push to');
  await waitFor(ann, isPresence(B, 'subscribed'), 'subscribed');
  await waitFor(ann, (s) => s.is('presence') && s.attrs.from === `${B}/r1` && s.attrs.type === undefined, 'ben available');

  // and the other way round: both.
  await ben.send(xml('presence', { to: A, type: 'subscribe' }));
  await waitFor(ann, isPresence(B, 'subscribe'), 'request to ann');
  await ann.send(xml('presence', { to: B, type: 'subscribed' }));
  await waitFor(ann, isPush(B, 'both'), 'ann both');
  await waitFor(ben, isPush(A, 'both'), 'ben both');
  await waitFor(ben, (s) => s.is('presence') && s.attrs.from === `${A}/r1` && s.attrs.type === undefined, 'ann available at ben');

  // Roster versioning: an old version gets the full roster, the current one an empty result.
  const full = await roster(ann, ver0);
  t.deepEqual(full.getChildren('item').map((i) => [i.attrs.jid, i.attrs.subscription]), [[B, 'both']]);
  const same = await ann.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: 'jabber:iq:roster', ver: full.attrs.ver })));
  t.is(same.getChild('query'), undefined, 'current version: no items sent');

  // Presence broadcast: a status change reaches ben.
  await ann.send(xml('presence', {}, xml('show', {}, 'away'), xml('status', {}, 'lunch')));
  const away = await waitFor(ben, (s) => s.is('presence') && s.getChildText('show') === 'away', 'away');
  t.is(away.getChildText('status'), 'lunch');

  // A second resource of ben gets ann's presence by probe.
  const ben2 = await connect(server, { username: b, password: 'pw-b', resource: 'r2' });
  await ben2.send(xml('presence'));
  const probed = await waitFor(ben2, (s) => s.is('presence') && s.attrs.from === `${A}/r1`, 'presence from probe');
  t.is(probed.getChildText('show'), 'away');
  await waitFor(ben2, (s) => s.is('presence') && s.attrs.from === `${B}/r1`, 'own other resource');

  // Disconnect: contacts see unavailable.
  await stopClient(ann);
  await waitFor(ben, isPresence(`${A}/r1`, 'unavailable'), 'unavailable on disconnect');
  await waitFor(ben2, isPresence(`${A}/r1`, 'unavailable'), 'unavailable on disconnect (r2)');

  // Unsubscribe: ben stops seeing ann.
  await ben.send(xml('presence', { to: A, type: 'unsubscribe' }));
  await waitFor(ben, isPush(A, 'from'), 'ben back to from');
  await stopClient(ben);
  await stopClient(ben2);
});

test('a subscription request made while the contact is offline is shown at its next login', async (t) => {
  const a = uniq('cat'), b = uniq('dan');
  const cat = await connect(server, { username: a, password: 'pw', register: true });
  await roster(cat);
  const dan = await connect(server, { username: b, password: 'pw', register: true });
  await stopClient(dan);
  await cat.send(xml('presence', { to: `${b}@localhost`, type: 'subscribe' }));
  await cat.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  const dan2 = await connect(server, { username: b, password: 'pw' });
  await dan2.send(xml('presence'));
  const req = await waitFor(dan2, isPresence(`${a}@localhost`, 'subscribe'), 'stored request');
  t.is(req.attrs.to, `${b}@localhost`);
  // Denying it clears the pending-out on cat's side.
  await dan2.send(xml('presence', { to: `${a}@localhost`, type: 'unsubscribed' }));
  const push = await waitFor(cat, (s) => s.is('iq') && s.getChild('query')?.getChild('item')?.attrs.ask === undefined
    && s.getChild('query')?.getChild('item')?.attrs.jid === `${b}@localhost`, 'ask cleared');
  t.is(push.getChild('query')!.getChild('item')!.attrs.subscription, 'none');
  await stopClient(cat);
  await stopClient(dan2);
});

test('directed presence reaches a non-contact and is followed by unavailable', async (t) => {
  const a = uniq('eve'), b = uniq('fay');
  const eve = await connect(server, { username: a, password: 'pw', register: true, resource: 'e' });
  const fay = await connect(server, { username: b, password: 'pw', register: true, resource: 'f' });
  await fay.send(xml('presence'));
  await eve.send(xml('presence'));
  await eve.send(xml('presence', { to: `${b}@localhost/f` }, xml('status', {}, 'hi fay')));
  const p = await waitFor(fay, (s) => s.is('presence') && s.attrs.from === `${a}@localhost/e`, 'directed presence');
  t.is(p.getChildText('status'), 'hi fay');
  await stopClient(eve);
  await waitFor(fay, isPresence(`${a}@localhost/e`, 'unavailable'), 'unavailable after directed');
  await stopClient(fay);
});
