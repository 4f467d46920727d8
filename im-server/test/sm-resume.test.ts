// XEP-0198 resumption: a session whose TCP connection is cut stays bound; <resume/> on a new
// connection gets exactly the stanzas the client had not acknowledged, once each, with the
// right h both ways; a session not resumed in time ends and its unacked messages go offline.
import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, rawLogin, startServer, stopClient, uniq, type TestServer, type XmppClient } from './helpers.js';
import { SM, bodiesIn, rawResume, rawWsAuthenticated, resumableLogin, serverLogged, stanzaCount } from './sm-helpers.js';
import { mamQuery } from './mam-helpers.js';

async function sender(server: TestServer): Promise<XmppClient> {
  return connect(server, { username: uniq('alice'), password: 'pw', register: true });
}

/** Sends chat messages and waits until the server has handled them (a ping round trip). */
async function sendAll(alice: XmppClient, to: string, bodies: string[]): Promise<void> {
  for (const b of bodies) await alice.send(xml('message', { to, type: 'chat', id: b }, xml('body', {}, b)));
  await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
}

async function register(server: TestServer, user: string): Promise<void> {
  await stopClient(await connect(server, { username: user, password: 'pw', register: true }));
}

test('resume after a cut connection: unacked stanzas once each, acked ones not again, h both ways; whenAcked survives', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const alice = await sender(server);
    const aliceFull = alice.jid!.toString();
    await sendAll(alice, `${bob}@localhost`, ['offline0']);

    // Sent to bob, in order: 1 his own presence, 2 offline0, 3 the ping result, 4 m1, 5 m2, 6 m3, 7 m4.
    const { c: first, id } = await resumableLogin(server.c2sPort, bob, 'phone');
    await sendAll(alice, `${bob}@localhost`, ['m1', 'm2', 'm3']);
    await first.until('<body>m3</body>');
    t.deepEqual(bodiesIn(first.data), ['offline0', 'm1', 'm2', 'm3']);
    t.is(stanzaCount(first.data), 6);
    const mark = server.logs.length;
    first.socket.destroy();
    await first.closed;
    await serverLogged(server, 'session waits to be resumed', mark);
    await sendAll(alice, `${bob}@localhost`, ['m4']); // arrives while the session hibernates

    // Only the presence acknowledged: everything after it comes again, in order.
    const second = await rawResume(server.c2sPort, bob, id, 1);
    t.regex(second.data, new RegExp(`<resumed xmlns="${SM}" previd="${id}" h="2"/>`), 'the server handled 2 stanzas: presence and ping');
    await second.until('<body>m4</body>');
    t.deepEqual(bodiesIn(second.data), ['offline0', 'm1', 'm2', 'm3', 'm4']);
    t.is(stanzaCount(second.data), 6, 'the acked presence is not resent');
    second.send(`<a xmlns='${SM}' h='5'/>`); // through m2: covers the offline message
    second.send(`<r xmlns='${SM}'/>`);
    await second.until(`<a xmlns="${SM}" h="2"/>`);
    const mark2 = server.logs.length;
    second.socket.destroy();
    await second.closed;

    // Resumed again, acking through m2: m3 and m4 only, once each.
    await serverLogged(server, 'session waits to be resumed', mark2);
    const third = await rawResume(server.c2sPort, bob, id, 5);
    t.regex(third.data, /<resumed [^>]*h="2"\/>/);
    await third.until('<body>m4</body>');
    t.deepEqual(bodiesIn(third.data), ['m3', 'm4']);

    // Same session: same full JID, routing works both ways, counters continue.
    await sendAll(alice, `${bob}@localhost/phone`, ['m5']);
    await third.until('<body>m5</body>');
    const back = new Promise<string>((resolve) => alice.on('stanza', (s) => { if (s.getChildText('body') === 'back') resolve(s.attrs.from as string); }));
    third.send(`<message to='${aliceFull}' type='chat' id='back'><body>back</body></message>`);
    t.is(await back, `${bob}@localhost/phone`);
    third.send(`<a xmlns='${SM}' h='8'/><r xmlns='${SM}'/>`);
    await third.until(`<a xmlns="${SM}" h="3"/>`);
    third.send('</stream:stream>');
    await third.closed;

    // The offline row was deleted by the ack on the resumed stream; nothing was re-handled.
    const next = await rawLogin(server.c2sPort, bob, 'pw', 'desk');
    next.send(`<presence/><iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await next.until(/<iq[^>]*id="sync"/);
    t.deepEqual(bodiesIn(next.data), []);
    next.end();
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});

test('resume with an unknown id or another user\'s id fails with item-not-found; binding still works', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    const eve = uniq('eve');
    await register(server, bob);
    await register(server, eve);
    const { c: first, id } = await resumableLogin(server.c2sPort, bob, 'phone');
    first.socket.destroy();
    await first.closed;

    const stranger = await rawResume(server.c2sPort, eve, id, 0);
    t.regex(stranger.data, /<failed xmlns="urn:xmpp:sm:3"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/);
    const unknown = await rawResume(server.c2sPort, bob, 'no-such-id', 0);
    t.regex(unknown.data, /<failed xmlns="urn:xmpp:sm:3"><item-not-found /);
    unknown.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind></iq>`);
    await unknown.until(`<jid>${bob}@localhost/again</jid>`);
    t.pass();
    // Bob's real session is still there to be resumed.
    const resumed = await rawResume(server.c2sPort, bob, id, 0);
    t.regex(resumed.data, /<resumed /);
    stranger.end();
    unknown.end();
    resumed.end();
  } finally {
    await server.stop();
  }
});

test('a session not resumed in time ends; its unacked messages (and those sent meanwhile) are stored offline', async (t) => {
  const server = await startServer({ config: { streamManagement: { resumeTimeoutSeconds: 1 } } });
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const alice = await sender(server);
    const { c: first, id } = await resumableLogin(server.c2sPort, bob, 'phone');
    await sendAll(alice, `${bob}@localhost`, ['u1']);
    await first.until('<body>u1</body>');
    const mark = server.logs.length;
    first.socket.destroy();
    await first.closed;
    await serverLogged(server, 'session waits to be resumed', mark);
    await sendAll(alice, `${bob}@localhost/phone`, ['u2']);
    // An IQ request queued for the hibernating session gets an error when it ends.
    const iq = alice.iqCaller.request(xml('iq', { type: 'get', to: `${bob}@localhost/phone` }, xml('query', { xmlns: 'jabber:iq:version' })));
    await serverLogged(server, 'hibernating session ended', mark);
    const err = await iq.then(() => 'result', (e: { condition?: string }) => e.condition);
    t.is(err, 'service-unavailable');

    const late = await rawResume(server.c2sPort, bob, id, 0);
    t.regex(late.data, /<failed xmlns="urn:xmpp:sm:3" h="2"><item-not-found /, 'expired: fails, with the h the server had reached');
    late.end();
    const next = await rawLogin(server.c2sPort, bob, 'pw', 'desk');
    next.send(`<presence/><iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await next.until(/<iq[^>]*id="sync"/);
    t.deepEqual(bodiesIn(next.data), ['u1', 'u2'], 'each unacked message once, in order');
    t.regex(next.data, /<delay xmlns="urn:xmpp:delay"/);
    next.end();
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});

test('without resumption, messages not acked when the connection drops go offline', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const alice = await sender(server);
    const c = await rawLogin(server.c2sPort, bob, 'pw', 'phone');
    c.send(`<enable xmlns='${SM}'/><presence/>`);
    await c.until('<enabled');
    await sendAll(alice, `${bob}@localhost`, ['n1', 'n2']);
    await c.until('<body>n2</body>');
    c.send(`<a xmlns='${SM}' h='2'/>`); // his presence and n1
    const mark = server.logs.length;
    c.socket.destroy();
    await c.closed;
    await serverLogged(server, ['session ended', `"user":"${bob}"`], mark); // not resumable: ends at once
    const next = await rawLogin(server.c2sPort, bob, 'pw', 'desk');
    next.send(`<presence/><iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await next.until(/<iq[^>]*id="sync"/);
    t.deepEqual(bodiesIn(next.data), ['n2']);
    // Routed again, n2 is still one archive entry with the id it was first given (XEP-0313/0359).
    const archive = await mamQuery(await connect(server, { username: bob, password: 'pw', resource: 'reader' }), { with: `${alice.jid!.local}@localhost` });
    t.deepEqual(archive.items.map((i) => i.body), ['n1', 'n2']);
    const n2 = [...next.data.matchAll(/<message[\s\S]*?<\/message>/g)].map((m) => m[0]).find((m) => m.includes('<body>n2</body>'));
    t.is(/<stanza-id[^>]*\sid="([^"]+)"/.exec(n2 ?? '')?.[1], archive.items[1]!.id);
    next.end();
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});

test('resuming while the old connection is still up takes the session over; the old connection gets conflict', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const { c: old, id } = await resumableLogin(server.c2sPort, bob, 'phone');
    const fresh = await rawResume(server.c2sPort, bob, id, 2);
    t.regex(fresh.data, /<resumed [^>]*h="2"\/>/);
    await old.until('<conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>');
    await old.closed;
    fresh.send(`<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await fresh.until(/<iq[^>]*id="p2"[^>]*type="result"|<iq[^>]*type="result"[^>]*id="p2"/);
    t.false(fresh.data.includes('stream:error'), 'the session goes on on the new connection');
    fresh.end();
  } finally {
    await server.stop();
  }
});

test('a resumable session whose client stops answering pings waits to be resumed instead of ending', async (t) => {
  const server = await startServer({ config: { limits: { idleSeconds: 1, pingTimeoutSeconds: 1 } } });
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const { c: mute, id } = await resumableLogin(server.c2sPort, bob, 'phone');
    const mark = server.logs.length;
    await mute.until('<connection-timeout xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>');
    await serverLogged(server, 'session waits to be resumed', mark);
    const ping = /<iq [^>]*id="(idle-\d+)"/.exec(mute.data)?.[1];
    t.truthy(ping, 'the server pinged first');
    const back = await rawResume(server.c2sPort, bob, id, 2); // presence and ping result acked: the server's ping comes again
    t.regex(back.data, /<resumed /);
    await back.until(`id="${ping}"`);
    mute.end();
    back.end();
  } finally {
    await server.stop();
  }
});

test('a session started over TCP resumes over WebSocket', async (t) => {
  const server = await startServer();
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const alice = await sender(server);
    const { c: tcp, id } = await resumableLogin(server.c2sPort, bob, 'phone');
    const mark = server.logs.length;
    tcp.socket.destroy();
    await tcp.closed;
    await serverLogged(server, 'session waits to be resumed', mark);
    await sendAll(alice, `${bob}@localhost`, ['w1']);
    const ws = await rawWsAuthenticated(server.httpPort, bob);
    ws.send(`<resume xmlns='${SM}' previd='${id}' h='2'/>`);
    await ws.until('<body>w1</body>');
    t.regex(ws.data, /^<resumed xmlns="urn:xmpp:sm:3" previd="[^"]+" h="2"\/>/, 'one frame per element, <resumed/> first');
    await sendAll(alice, `${bob}@localhost/phone`, ['w2']);
    await ws.until('<body>w2</body>');
    ws.send(`<iq xmlns='jabber:client' type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await ws.until(/<iq[^>]*id="p"/);
    ws.end();
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});

test('a client that does not acknowledge more than maxUnacked stanzas is disconnected; its messages go offline', async (t) => {
  const server = await startServer({ config: { streamManagement: { maxUnacked: 10 } } });
  try {
    const bob = uniq('bob');
    await register(server, bob);
    const alice = await sender(server);
    const { c } = await resumableLogin(server.c2sPort, bob, 'phone'); // 2 unacked already
    const bodies = [...Array(10).keys()].map((i) => `x${i}`);
    await sendAll(alice, `${bob}@localhost`, bodies);
    await c.until('<resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>');
    await c.closed;
    const next = await rawLogin(server.c2sPort, bob, 'pw', 'desk');
    next.send(`<presence/><iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await next.until(/<iq[^>]*id="sync"/);
    t.deepEqual(bodiesIn(next.data), bodies, 'every unacknowledged message, once, in order');
    next.end();
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});
