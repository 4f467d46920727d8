// XEP-0191: a blocked contact's messages do not arrive (it gets service-unavailable, as if the
// user were offline) and sees the user go offline; the user's own messages to it are refused
// with the blocked error; the list is pushed to the user's other resource; unblocking restores.
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type XmppClient } from './helpers.js';

const BL = 'urn:xmpp:blocking';
const ping = (c: XmppClient): Promise<unknown> => c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
const itemsOf = (el: Element | undefined): string[] => (el?.getChildren('item') ?? []).map((i) => i.attrs.jid as string);
const body = (c: XmppClient, text: string): boolean => c.received.some((s) => s.is('message') && s.getChildText('body') === text);

test('block: messages refused both ways, presence goes unavailable, push to the other resource; unblock restores', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    const bobBare = `${bob}@localhost`;
    const alice = await connect(server, { username: uniq('alice'), password: 'pw', register: true });
    const aliceBare = `${alice.jid!.local}@localhost`;
    const phone = await connect(server, { username: bob, password: 'pw', register: true, resource: 'phone' });
    const desk = await connect(server, { username: bob, password: 'pw', resource: 'desk' });
    for (const c of [alice, phone, desk]) await c.send(xml('presence'));

    // Alice subscribes to bob's presence and sees him online.
    await alice.send(xml('presence', { to: bobBare, type: 'subscribe' }));
    await waitFor(phone, (s) => s.is('presence') && s.attrs.type === 'subscribe', 'subscribe');
    await phone.send(xml('presence', { to: aliceBare, type: 'subscribed' }));
    await waitFor(alice, (s) => s.is('presence') && s.attrs.from === `${bobBare}/phone` && !s.attrs.type, 'bob online');

    for (const c of [phone, desk]) {
      const list = await c.iqCaller.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: BL })));
      t.deepEqual(itemsOf(list.getChild('blocklist', BL)), []);
    }

    await phone.iqCaller.request(xml('iq', { type: 'set' }, xml('block', { xmlns: BL }, xml('item', { jid: aliceBare }))));
    const pushed = await waitFor(desk, (s) => s.is('iq') && s.attrs.type === 'set' && !!s.getChild('block', BL), 'block push');
    t.deepEqual(itemsOf(pushed.getChild('block', BL)), [aliceBare]);
    await waitFor(alice, (s) => s.is('presence') && s.attrs.from === `${bobBare}/phone` && s.attrs.type === 'unavailable', 'bob offline for alice');

    // Alice -> bob: an error, as if bob were offline; bob gets nothing.
    await alice.send(xml('message', { to: bobBare, type: 'chat', id: 'a1' }, xml('body', {}, 'hi bob')));
    const bounced = await waitFor(alice, (s) => s.is('message') && s.attrs.type === 'error', 'bounce');
    t.truthy(bounced.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    // Her presence is dropped, her IQ requests get service-unavailable.
    await alice.send(xml('presence', { to: `${bobBare}/phone` }, xml('status', {}, 'hidden')));
    const vcard = await alice.iqCaller.request(xml('iq', { type: 'get', to: bobBare }, xml('vCard', { xmlns: 'vcard-temp' })))
      .then(() => 'result', (e: { condition?: string }) => e.condition);
    t.is(vcard, 'service-unavailable');
    await ping(phone); // processed after alice's stanzas: they would have arrived before the result
    t.false(body(phone, 'hi bob'));
    t.false(phone.received.some((s) => s.is('presence') && s.getChildText('status') === 'hidden'));

    // Bob -> alice: refused with the blocked error.
    await phone.send(xml('message', { to: aliceBare, type: 'chat', id: 'b1' }, xml('body', {}, 'hi alice')));
    const refused = await waitFor(phone, (s) => s.is('message') && s.attrs.type === 'error', 'refusal');
    const err = refused.getChild('error')!;
    t.truthy(err.getChild('not-acceptable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    t.truthy(err.getChild('blocked', 'urn:xmpp:blocking:errors'));
    await ping(alice);
    t.false(body(alice, 'hi alice'));

    const list = await desk.iqCaller.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: BL })));
    t.deepEqual(itemsOf(list.getChild('blocklist', BL)), [aliceBare]);

    // Unblock from the other resource: pushed, presence back, messages flow.
    await desk.iqCaller.request(xml('iq', { type: 'set' }, xml('unblock', { xmlns: BL }, xml('item', { jid: aliceBare }))));
    await waitFor(phone, (s) => s.is('iq') && s.attrs.type === 'set' && itemsOf(s.getChild('unblock', BL)).includes(aliceBare), 'unblock push');
    await waitFor(alice, (s) => s.is('presence') && s.attrs.from === `${bobBare}/phone` && !s.attrs.type, 'bob online again');
    await alice.send(xml('message', { to: `${bobBare}/phone`, type: 'chat', id: 'a2' }, xml('body', {}, 'hello again')));
    await waitFor(phone, (s) => s.is('message') && s.getChildText('body') === 'hello again', 'message after unblock');
    for (const c of [alice, phone, desk]) await stopClient(c);
  } finally {
    await server.stop();
  }
});

test('bad blocking requests get the XEP\'s errors; a domain item blocks every JID of it', async (t) => {
  const server = await startServer();
  try {
    const bob = await connect(server, { username: uniq('bob'), password: 'pw', register: true });
    const err = async (payload: Element): Promise<string> => {
      try { await bob.iqCaller.request(xml('iq', { type: 'set' }, payload)); return 'none'; } catch (e) { return (e as { condition: string }).condition; }
    };
    t.is(await err(xml('block', { xmlns: BL })), 'bad-request');
    t.is(await err(xml('block', { xmlns: BL }, xml('item', { jid: 'a@b@c' }))), 'jid-malformed');
    await bob.iqCaller.request(xml('iq', { type: 'set' }, xml('block', { xmlns: BL }, xml('item', { jid: 'conference.localhost' }))));
    await bob.send(xml('message', { to: 'room@conference.localhost', type: 'chat', id: 'r1' }, xml('body', {}, 'x')));
    const refused = await waitFor(bob, (s) => s.is('message') && s.attrs.type === 'error', 'refusal');
    t.truthy(refused.getChild('error')?.getChild('blocked', 'urn:xmpp:blocking:errors'));
    // Unblock all: the list is empty.
    await bob.iqCaller.request(xml('iq', { type: 'set' }, xml('unblock', { xmlns: BL })));
    const list = await bob.iqCaller.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: BL })));
    t.deepEqual(itemsOf(list.getChild('blocklist', BL)), []);

    // Removing the account removes its list: a new account of the same name starts empty.
    await bob.iqCaller.request(xml('iq', { type: 'set' }, xml('block', { xmlns: BL }, xml('item', { jid: 'eve@localhost' }))));
    const name = bob.jid!.local;
    await bob.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
    await stopClient(bob);
    const again = await connect(server, { username: name, password: 'pw2', register: true });
    const fresh = await again.iqCaller.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: BL })));
    t.deepEqual(itemsOf(fresh.getChild('blocklist', BL)), []);
    await stopClient(again);
  } finally {
    await server.stop();
  }
});
