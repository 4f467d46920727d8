// XEP-0352: an inactive client is not woken for presence noise; a message with a body arrives at
// once (with the latest held presence before it), and <active/> delivers the latest presence only.
import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, rawLogin, rawScramSha256, rawSecure, startServer, stopClient, streamHeader, uniq } from './helpers.js';

const CSI = 'urn:xmpp:csi:0';
const statuses = (data: string): string[] => [...data.matchAll(/<status>([^<]*)<\/status>/g)].map((m) => m[1]!);

test('inactive: presences held (latest kept), chat states held, a message goes at once; active: the latest presence', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    const alice = await connect(server, { username: uniq('alice'), password: 'pw', register: true });
    await stopClient(await connect(server, { username: bob, password: 'pw', register: true }));
    const c = await rawLogin(server.c2sPort, bob, 'pw', 'phone');
    c.send(`<presence/>`);
    const bobFull = `${bob}@localhost/phone`;
    const sync = async (): Promise<void> => { await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' }))); };
    const presence = (s: string): Promise<void> => alice.send(xml('presence', { to: bobFull }, xml('status', {}, s)));

    c.send(`<inactive xmlns='${CSI}'/><iq type='get' id='in' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await c.until(/<iq[^>]*id="in"/); // an IQ result goes through at once: inactive is in effect
    for (const s of ['one', 'two', 'three']) await presence(s);
    await alice.send(xml('message', { to: bobFull, type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
    await sync();
    await alice.send(xml('message', { to: bobFull, type: 'chat', id: 'hello' }, xml('body', {}, 'hello')));
    await c.until('<body>hello</body>');
    t.deepEqual(statuses(c.data), ['three'], 'only the latest presence, sent just before the message');
    t.true(c.data.indexOf('<status>three') < c.data.indexOf('<body>hello'));
    t.regex(c.data, /<composing /, 'the held chat state comes along, before the message');

    c.data = '';
    for (const s of ['four', 'five']) await presence(s);
    await sync();
    c.send(`<active xmlns='${CSI}'/>`);
    await c.until('<status>five</status>');
    t.deepEqual(statuses(c.data), ['five']);
    await presence('six'); // active again: at once
    await c.until('<status>six</status>');
    c.end();
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});

test('the csi stream feature is offered after authentication', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    await stopClient(await connect(server, { username: bob, password: 'pw', register: true }));
    const c = await rawSecure(server.c2sPort);
    t.false(c.data.includes(CSI), 'not before authentication');
    t.true(await rawScramSha256(c, bob, 'pw'));
    c.data = '';
    c.send(streamHeader);
    await c.until('</stream:features>');
    t.true(c.data.includes(`<csi xmlns="${CSI}"/>`));
    c.end();
  } finally {
    await server.stop();
  }
});
