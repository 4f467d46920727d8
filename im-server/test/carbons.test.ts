import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';
import { NS_CARBONS, NS_SID, chat, got } from './mam-helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer(); });
test.after.always(async () => { await server?.stop(); });

const FWD = 'urn:xmpp:forward:0';

/** The forwarded message of a <sent/> or <received/> carbon with this body. */
const carbon = async (c: XmppClient, dir: 'sent' | 'received', body: string): Promise<{ wrapper: Element; inner: Element }> => {
  const w = await waitFor(c, (s) => s.is('message') && s.getChild(dir, NS_CARBONS)?.getChild('forwarded', FWD)?.getChild('message')?.getChildText('body') === body, `${dir} carbon "${body}"`);
  return { wrapper: w, inner: w.getChild(dir, NS_CARBONS)!.getChild('forwarded', FWD)!.getChild('message')! };
};
const carbonsOf = (c: XmppClient, body: string): Element[] => c.received.filter((s) => s.is('message') && ['sent', 'received']
  .some((d) => s.getChild(d, NS_CARBONS)?.getChild('forwarded', FWD)?.getChild('message')?.getChildText('body') === body));

test('three resources: received and sent carbons go to the other enabled resources only; private is not copied', async (t) => {
  const u = uniq('uma'), v = uniq('vic');
  const r1 = await connect(server, { username: u, password: 'pw', register: true, resource: 'r1' });
  const r2 = await connect(server, { username: u, password: 'pw', resource: 'r2' });
  const r3 = await connect(server, { username: u, password: 'pw', resource: 'r3' });
  const vic = await connect(server, { username: v, password: 'pw', register: true });
  await vic.send(xml('presence'));
  for (const [c, prio] of [[r1, '5'], [r2, '1'], [r3, '1']] as const) {
    await c.iqCaller.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS })));
    await c.send(xml('presence', {}, xml('priority', {}, prio)));
  }
  const me = `${u}@localhost`;
  await waitFor(r1, (s) => s.is('presence') && s.attrs.from === `${me}/r3`, 'r3 available at r1');

  // Received, to a full JID: the others get a copy carrying the stanza-id the original has.
  await vic.send(chat(`${me}/r2`, 'to r2'));
  const orig = await got(r2, 'to r2');
  for (const c of [r1, r3]) {
    const { wrapper, inner } = await carbon(c, 'received', 'to r2');
    t.is(wrapper.attrs.from, me);
    t.is(inner.attrs.from, vic.jid!.toString());
    t.is(inner.getChild('stanza-id', NS_SID)?.attrs.id, orig.getChild('stanza-id', NS_SID)?.attrs.id);
  }
  // Received, to the bare JID: delivered to r1 (highest priority), copied to r2 and r3.
  await vic.send(chat(me, 'to bare'));
  await got(r1, 'to bare');
  await carbon(r2, 'received', 'to bare');
  await carbon(r3, 'received', 'to bare');

  // Sent from r3: copies at r1 and r2, none back at r3.
  await r3.send(chat(`${v}@localhost`, 'from r3'));
  await got(vic, 'from r3');
  const sent = await carbon(r1, 'sent', 'from r3');
  t.is(sent.inner.attrs.from, `${me}/r3`);
  t.is(sent.inner.attrs.to, `${v}@localhost`);
  await carbon(r2, 'sent', 'from r3');

  // Private, both ways, then a normal message each way as a barrier: no copies of the private ones.
  await r3.send(xml('message', { to: `${v}@localhost`, type: 'chat' }, xml('body', {}, 'secret out'), xml('private', { xmlns: NS_CARBONS }), xml('no-copy', { xmlns: 'urn:xmpp:hints' })));
  await vic.send(xml('message', { to: `${me}/r2`, type: 'chat' }, xml('body', {}, 'secret in'), xml('private', { xmlns: NS_CARBONS }), xml('no-copy', { xmlns: 'urn:xmpp:hints' })));
  const secretIn = await got(r2, 'secret in');
  t.falsy(secretIn.getChild('private', NS_CARBONS), 'private is stripped before delivery');
  await r3.send(chat(`${v}@localhost`, 'barrier out'));
  await vic.send(chat(`${me}/r2`, 'barrier in'));
  for (const c of [r1, r2]) await carbon(c, 'sent', 'barrier out');
  for (const c of [r1, r3]) await carbon(c, 'received', 'barrier in');
  for (const c of [r1, r2, r3]) t.deepEqual([...carbonsOf(c, 'secret out'), ...carbonsOf(c, 'secret in')], []);

  // Disabled at r3: no more copies there. A headline is never copied.
  await r3.iqCaller.request(xml('iq', { type: 'set' }, xml('disable', { xmlns: NS_CARBONS })));
  await vic.send(chat(`${me}/r1`, 'after disable'));
  await vic.send(xml('message', { to: `${me}/r1`, type: 'headline' }, xml('body', {}, 'news')));
  await got(r1, 'news');
  await r1.send(chat(`${v}@localhost`, 'barrier 2'));
  await carbon(r2, 'received', 'after disable');
  await carbon(r2, 'sent', 'barrier 2');
  // Copies are written while the original is routed: a ping answered after r2's copy came follows any copy to r3.
  await r3.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.deepEqual([...carbonsOf(r3, 'after disable'), ...carbonsOf(r3, 'barrier 2')], []);
  t.deepEqual(carbonsOf(r2, 'news'), []);
  await Promise.all([r1, r2, r3, vic].map(stopClient));
});

test('a bare-JID message delivered to several resources of equal priority is not also copied to them', async (t) => {
  const u = uniq('wes'), v = uniq('xia');
  const a = await connect(server, { username: u, password: 'pw', register: true, resource: 'a' });
  const b = await connect(server, { username: u, password: 'pw', resource: 'b' });
  const xia = await connect(server, { username: v, password: 'pw', register: true });
  for (const c of [a, b]) {
    await c.iqCaller.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS })));
    await c.send(xml('presence'));
  }
  await waitFor(a, (s) => s.is('presence') && s.attrs.from === `${u}@localhost/b`, 'b available at a');
  await xia.send(chat(`${u}@localhost`, 'to both'));
  await got(a, 'to both');
  await got(b, 'to both');
  // Barrier: a later message to a's full JID gives b a carbon; any copy of 'to both' would have come first.
  await xia.send(chat(`${u}@localhost/a`, 'to a'));
  await carbon(b, 'received', 'to a');
  t.deepEqual([...carbonsOf(a, 'to both'), ...carbonsOf(b, 'to both')], []);
  const info = await a.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_CARBONS));
  await Promise.all([a, b, xia].map(stopClient));
});
