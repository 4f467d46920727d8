import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, makeClient, startServer, stopClient, uniq, waitFor, type TestServer } from './helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open' }); });
test.after.always(async () => { await server?.stop(); });

test('offline messages are stored and delivered at the next login, in order, with a delay stamp', async (t) => {
  const a = uniq('gus'), b = uniq('hal');
  const hal = await connect(server, { username: b, password: 'pw', register: true });
  await stopClient(hal);
  const gus = await connect(server, { username: a, password: 'pw', register: true });
  for (let i = 0; i < 50; i++) await gus.send(xml('message', { to: `${b}@localhost`, type: 'chat', id: `o${i}` }, xml('body', {}, `n${i}`)));
  await gus.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  const hal2 = await connect(server, { username: b, password: 'pw' });
  await hal2.send(xml('presence'));
  const got = [];
  for (let i = 0; i < 50; i++) got.push(await waitFor(hal2, (s) => s.is('message'), `offline message ${i}`));
  t.deepEqual(got.map((m) => m.getChildText('body')), Array.from({ length: 50 }, (_, i) => `n${i}`));
  t.truthy(got[0]!.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp);
  t.is(got[0]!.attrs.from, `${a}@localhost/${gus.jid!.resource}`);
  // Delivered once: a new login gets none.
  await stopClient(hal2);
  const hal3 = await connect(server, { username: b, password: 'pw' });
  await hal3.send(xml('presence'));
  await hal3.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(hal3.received.filter((s) => s.is('message')).length, 0);
  await stopClient(hal3);
  await stopClient(gus);
});

test('messages to unknown users and to remote domains bounce with errors', async (t) => {
  const ivy = await connect(server, { username: uniq('ivy'), password: 'pw', register: true });
  await ivy.send(xml('message', { to: 'nobody@localhost', id: 'u1', type: 'chat' }, xml('body', {}, 'x')));
  const e1 = await waitFor(ivy, (s) => s.is('message') && s.attrs.id === 'u1', 'error for unknown user');
  t.is(e1.attrs.type, 'error');
  t.truthy(e1.getChild('error')!.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  await ivy.send(xml('message', { to: 'someone@example.org', id: 'u2', type: 'chat' }, xml('body', {}, 'x')));
  const e2 = await waitFor(ivy, (s) => s.is('message') && s.attrs.id === 'u2', 'error for remote domain');
  t.truthy(e2.getChild('error')!.getChild('remote-server-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  const err = await ivy.iqCaller.request(xml('iq', { type: 'get', to: 'nobody@localhost/x' }, xml('query', { xmlns: 'jabber:iq:version' }))).catch((e: { condition: string }) => e);
  t.is((err as { condition: string }).condition, 'service-unavailable');
  await stopClient(ivy);
});

test('a bare-JID message goes to the highest-priority resource; negative priority gets none', async (t) => {
  const u = uniq('jon');
  const hi = await connect(server, { username: u, password: 'pw', register: true, resource: 'hi' });
  const lo = await connect(server, { username: u, password: 'pw', resource: 'lo' });
  await hi.send(xml('presence', {}, xml('priority', {}, '10')));
  await lo.send(xml('presence', {}, xml('priority', {}, '1')));
  await waitFor(hi, (s) => s.is('presence') && s.attrs.from === `${u}@localhost/lo`, 'lo presence at hi');
  const sender = await connect(server, { username: uniq('kim'), password: 'pw', register: true });
  await sender.send(xml('message', { to: `${u}@localhost`, type: 'chat', id: 'p1' }, xml('body', {}, 'to the best')));
  await waitFor(hi, (s) => s.is('message') && s.attrs.id === 'p1', 'message at highest priority');
  await sender.send(xml('message', { to: `${u}@localhost/lo`, type: 'chat', id: 'p2' }, xml('body', {}, 'to lo')));
  await waitFor(lo, (s) => s.is('message') && s.attrs.id === 'p2', 'message to full JID');
  t.falsy(lo.received.find((s) => s.attrs.id === 'p1'), 'lower priority did not get the bare message');
  await Promise.all([stopClient(hi), stopClient(lo), stopClient(sender)]);
});

test('resource conflict: a new login with the same resource replaces the old one', async (t) => {
  const u = uniq('lea');
  const first = await connect(server, { username: u, password: 'pw', register: true, resource: 'same' });
  const closed = new Promise<string>((resolve) => first.on('error', (e: { condition?: string }) => resolve(e.condition ?? String(e))));
  const second = await connect(server, { username: u, password: 'pw', resource: 'same' });
  t.is(await closed, 'conflict');
  t.is(second.jid!.toString(), `${u}@localhost/same`);
  await second.send(xml('message', { to: `${u}@localhost/same`, id: 'self' }, xml('body', {}, 'me')));
  await waitFor(second, (s) => s.attrs.id === 'self', 'second session works');
  await stopClient(second);
});

test('wrong password is refused with not-authorized', async (t) => {
  const u = uniq('max');
  await stopClient(await connect(server, { username: u, password: 'right', register: true }));
  const c = makeClient(server, { username: u, password: 'wrong' });
  const err = await c.start().catch((e: { condition?: string }) => e);
  t.is((err as { condition?: string }).condition, 'not-authorized');
  await stopClient(c);
  const ok = await connect(server, { username: u, password: 'right', transport: 'ws' });
  t.is(ok.jid!.toString().split('/')[0], `${u}@localhost`);
  await stopClient(ok);
});

test('ping, disco, vcard and version answer as advertised', async (t) => {
  const u = uniq('ned');
  const c = await connect(server, { username: u, password: 'pw', register: true, transport: 'ws' });
  const pong = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
  const info = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'localhost');
  t.is(info.getChild('identity')!.attrs.category, 'server');
  const features = info.getChildren('feature').map((f) => f.attrs.var).filter((f) => !f!.startsWith('http://jabber.org/protocol/pubsub')).sort(); // PEP's: test/pep.test.ts
  t.deepEqual(features, ['http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/disco#items', 'jabber:iq:private', 'jabber:iq:register',
    'jabber:iq:version', 'msgoffline', 'urn:xmpp:blocking', 'urn:xmpp:carbons:2', 'urn:xmpp:ping', 'vcard-temp']);
  const items = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }), 'localhost');
  t.deepEqual(items.getChildren('item').map((i) => i.attrs.jid), ['conference.localhost', 'upload.localhost']);
  const version = await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:version' }), 'localhost');
  t.is(version.getChildText('name'), 'pi-im');
  t.regex(version.getChildText('version') ?? '', /^\d+\.\d+\.\d+/);

  const empty = await c.iqCaller.get(xml('vCard', { xmlns: 'vcard-temp' }));
  t.is(empty.children.length, 0);
  await c.iqCaller.set(xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Ned Stark'), xml('NICKNAME', {}, 'ned')));
  const other = await connect(server, { username: uniq('oz'), password: 'pw', register: true });
  const card = await other.iqCaller.get(xml('vCard', { xmlns: 'vcard-temp' }), `${u}@localhost`);
  t.is(card.getChildText('FN'), 'Ned Stark');
  const forbidden = await other.iqCaller.set(xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'x')), `${u}@localhost`).catch((e: { condition: string }) => e);
  t.is((forbidden as { condition: string }).condition, 'forbidden');
  const unknown = await c.iqCaller.get(xml('query', { xmlns: 'urn:example:unknown' }), 'localhost').catch((e: { condition: string }) => e);
  t.is((unknown as { condition: string }).condition, 'service-unavailable');
  await stopClient(c);
  await stopClient(other);
});

test('the server pings idle clients itself and @xmpp/client answers (XEP-0199 both ways)', async (t) => {
  const s2 = await startServer({ registration: 'open', config: { limits: { idleSeconds: 1, pingTimeoutSeconds: 5 } } });
  try {
    const c = await connect(s2, { username: uniq('pia'), password: 'pw', register: true });
    const ping = await waitFor(c, (s) => s.is('iq') && s.attrs.type === 'get' && !!s.getChild('ping', 'urn:xmpp:ping'), 'server ping');
    t.is(ping.attrs.from, 'localhost');
    // Answered automatically by @xmpp/client, so the session stays up past the ping timeout.
    await waitFor(c, (s) => s.is('iq') && s.attrs.type === 'get' && !!s.getChild('ping', 'urn:xmpp:ping'), 'second server ping');
    t.is(c.status, 'online');
    await stopClient(c);
  } finally {
    await s2.stop();
  }
});
