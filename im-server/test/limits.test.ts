// Bad input and abuse: each gets the right stream or stanza error, only the offending
// connection is affected, and the server keeps serving.
import test from 'ava';
import { xml } from '@xmpp/client';
import { WebSocket } from 'ws';
import { connect, raw, rawLogin, rawScramSha256, rawSecure, startServer, stopClient, streamHeader, uniq, waitFor, type TestServer } from './helpers.js';

let server: TestServer;
const limits = {
  maxStanzaSize: 10_000, maxDepth: 10, stanzasPerSecond: 20, stanzaBurst: 40, maxConnectionsPerAddress: 6, connectionLimitExempt: [],
  authFailuresPerAccount: 3, authFailuresPerAddress: 6, authLockoutSeconds: 60,
};
// Each test gets its own server: limits like per-address counters must not interfere.
async function withServer(fn: (s: TestServer) => Promise<void>, extra: Record<string, unknown> = {}): Promise<void> {
  const s = await startServer({ registration: 'open', config: { limits: { ...limits, ...extra } } });
  try { await fn(s); } finally { await s.stop(); }
}
test.before(async () => { server = await startServer({ registration: 'open', config: { limits: { ...limits, maxConnectionsPerAddress: 100, authFailuresPerAddress: 1000, authFailuresPerAccount: 1000, idleSeconds: 300 } } }); });
test.after.always(async () => { await server?.stop(); });

const streamError = (cond: string): RegExp => new RegExp(`<stream:error[^>]*><${cond} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`);

async function healthy(t: { is: (a: unknown, b: unknown) => void }, s: TestServer): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${s.httpPort}/health`);
  t.is(res.status, 200);
}

test('malformed XML closes that stream with not-well-formed; others carry on', async (t) => {
  const bystander = await connect(server, { username: uniq('by'), password: 'pw', register: true });
  const c = await raw(server.c2sPort);
  c.send(streamHeader);
  await c.until('</stream:features>');
  c.send(`<message><body>unclosed</message>`);
  await c.until(streamError('not-well-formed'));
  await c.closed;
  const pong = await bystander.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
  await stopClient(bystander);
  await healthy(t, server);
});

test('DTDs and entity declarations are refused with restricted-xml', async (t) => {
  const c = await raw(server.c2sPort);
  c.send(`<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  await c.until(streamError('restricted-xml'));
  await c.closed;
  const d = await raw(server.c2sPort);
  d.send(streamHeader + '<!-- a comment -->');
  await d.until(streamError('restricted-xml'));
  t.pass();
});

test('unknown namespaces: wrong stream namespace is invalid-namespace, unknown top-level element unsupported-stanza-type', async (t) => {
  const c = await raw(server.c2sPort);
  c.send(`<?xml version='1.0'?><stream:stream to='localhost' xmlns='urn:bogus' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  await c.until(streamError('invalid-namespace'));
  const d = await raw(server.c2sPort);
  d.send(streamHeader);
  await d.until('</stream:features>');
  d.send(`<thing xmlns='urn:example:unknown'/>`);
  await d.until(streamError('unsupported-stanza-type'));
  const e = await raw(server.c2sPort);
  e.send(streamHeader.replace("to='localhost'", "to='elsewhere.example'"));
  await e.until(streamError('host-unknown'));
  t.pass();
});

test('a stanza over the size limit gets policy-violation', async (t) => {
  const c = await rawSecure(server.c2sPort);
  c.send(`<iq type='get' id='big'><query xmlns='jabber:iq:register'><username>${'a'.repeat(20_000)}</username></query></iq>`);
  await c.until(streamError('policy-violation'));
  t.regex(c.data, /larger than 10000/);
  await c.closed;
  await healthy(t, server);
});

test('too-deep nesting gets policy-violation', async (t) => {
  const c = await rawSecure(server.c2sPort);
  c.send(`<iq type='get' id='deep'>${'<a>'.repeat(30)}`);
  await c.until(streamError('policy-violation'));
  t.regex(c.data, /nested deeper than 10/);
});

test('a flood of stanzas from one connection closes it with policy-violation; another client is unaffected', async (t) => {
  const bystander = await connect(server, { username: uniq('calm'), password: 'pw', register: true });
  const flooder = await connect(server, { username: uniq('flood'), password: 'pw', register: true });
  const closed = new Promise<string>((resolve) => flooder.on('error', (e: { condition?: string }) => resolve(e.condition ?? String(e))));
  for (let i = 0; i < 200; i++) flooder.send(xml('message', { to: bystander.jid!.toString(), id: `f${i}` }, xml('body', {}, 'spam'))).catch(() => {});
  t.is(await closed, 'policy-violation');
  const pong = await bystander.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
  t.true(bystander.received.filter((s) => s.is('message')).length < 60, 'the flood was cut short');
  await stopClient(bystander);
  await healthy(t, server);
});

test('TLS first: no mechanisms before STARTTLS, auth attempts without it are refused', async (t) => {
  const c = await raw(server.c2sPort);
  c.send(streamHeader);
  const features = await c.until('</stream:features>');
  t.notRegex(features, /mechanisms/);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0x\0y').toString('base64')}</auth>`);
  await c.until('<encryption-required/>');
  await c.until(streamError('policy-violation'));
  const s = await rawSecure(server.c2sPort);
  t.regex(s.data, /<mechanism>SCRAM-SHA-256<\/mechanism><mechanism>SCRAM-SHA-1<\/mechanism><mechanism>PLAIN<\/mechanism>/);
  s.send(`<message to='x@localhost'><body>before auth</body></message>`);
  await s.until(streamError('not-authorized'));
});

test('SCRAM-SHA-256 and PLAIN (over TLS) log in; the server signature verifies', async (t) => {
  const u = uniq('sha');
  await stopClient(await connect(server, { username: u, password: 'pässword', register: true }));
  const c = await rawSecure(server.c2sPort);
  t.true(await rawScramSha256(c, u, 'pässword'));
  const bad = await rawSecure(server.c2sPort);
  t.false(await rawScramSha256(bad, u, 'nope'));
  t.regex(bad.data, /<not-authorized\/>/);
  const p = await rawSecure(server.c2sPort);
  p.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${u}\0pässword`).toString('base64')}</auth>`);
  await p.until('<success');
});

// Failed logins (growing delay, ban per address, never a lockout of an account): test/auth-throttle.test.ts.

test('too many connections from one address: the extra one is refused', async (t) => {
  await withServer(async (s) => {
    const conns = [];
    for (let i = 0; i < 6; i++) { const c = await raw(s.c2sPort); c.send(streamHeader); await c.until('</stream:features>'); conns.push(c); }
    const extra = await raw(s.c2sPort);
    await extra.until(streamError('policy-violation'));
    t.regex(extra.data, /too many connections/);
    await extra.closed;
    conns[0]!.end();
    await conns[0]!.closed;
    // The slot is free again once the server saw the close.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      const again = await raw(s.c2sPort);
      again.send(streamHeader);
      ok = /<\/stream:features>|stream:error/.test(await again.until(/<\/stream:features>|<\/stream:error>/)) && again.data.includes('</stream:features>');
      if (!ok) { await again.closed; await new Promise((r) => setImmediate(r)); }
    }
    t.true(ok);
  });
});

test('idle connections time out: no login in time, and no answer to the server ping', async (t) => {
  await withServer(async (s) => {
    const u = uniq('idle');
    await stopClient(await connect(s, { username: u, password: 'pw', register: true }));
    const silent = await raw(s.c2sPort);
    silent.send(streamHeader);
    const tlsAt = Date.now();
    await silent.until(streamError('connection-timeout'));
    t.regex(silent.data, /no STARTTLS within 2 s/);
    // After TLS the client gets the longer login window (a person may be filling in a form).
    const secure = await rawSecure(s.c2sPort);
    await secure.until(streamError('connection-timeout'));
    t.regex(secure.data, /no login within 5 s/);
    t.true(Date.now() - tlsAt > 4000, 'the login window after TLS is the longer one');
    const c = await rawLogin(s.c2sPort, u, 'pw');
    await c.until(/<iq[^>]*type="get"[^>]*><ping xmlns="urn:xmpp:ping"\/><\/iq>/);
    await c.until(streamError('connection-timeout'));
    t.regex(c.data, /no answer to ping/);
  // 5 s: the in-band registration (TLS + SCRAM) must fit in the login window even on a busy 2-core CI machine.
  }, { idleSeconds: 1, pingTimeoutSeconds: 1, tlsTimeoutSeconds: 2, authTimeoutSeconds: 5 });
});

test('WebSocket: bad framing and malformed XML get stream errors', async (t) => {
  const ws = new WebSocket(`ws://127.0.0.1:${server.httpPort}/xmpp-websocket`, 'xmpp');
  const msgs: string[] = [];
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise((r) => ws.once('close', r));
  ws.on('message', (d) => msgs.push(d.toString()));
  ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`);
  ws.send(`<message><body>x</message>`);
  await closed;
  t.regex(msgs.join(''), /<not-well-formed xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
  t.regex(msgs.at(-1)!, /<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"\/>/);
  const noProto = await fetch(`http://127.0.0.1:${server.httpPort}/xmpp-websocket`, { headers: { connection: 'upgrade', upgrade: 'websocket' } }).catch(() => undefined);
  t.not(noProto?.status, 101);
});
