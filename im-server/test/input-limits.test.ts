// Input no client may use to freeze, fill or crash the server: deep nesting, huge start tags,
// attribute floods, whitespace floods, text outside stanzas, invalid UTF-8, half elements in a
// WebSocket message. Each is measured from outside: /health latency, the server's CPU and RSS.
import { readFileSync } from 'node:fs';
import test from 'ava';
import { WebSocket } from 'ws';
import { connect, raw, rawLogin, startServer, stopClient, streamHeader, uniq, waitFor, type RawConn, type TestServer } from './helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open', config: { limits: { maxConnectionsPerAddress: 1000 } } }); });
test.after.always(async () => { await server?.stop(); });

const streamError = (cond: string): RegExp => new RegExp(`<stream:error[^>]*><${cond} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`);

/** CPU seconds the server process has used (user + system). */
function cpuSeconds(s: TestServer): number {
  const f = readFileSync(`/proc/${s.proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
function rssMiB(s: TestServer): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${s.proc.pid}/status`, 'utf8'))![1]) / 1024;
}
/** The slowest /health answer while `work` runs (the event loop's worst stall, seen from outside). */
async function worstHealthLatency(s: TestServer, work: () => Promise<void>): Promise<number> {
  let worst = 0;
  let done = false;
  const probe = (async () => {
    while (!done) {
      const t0 = performance.now();
      await fetch(`http://127.0.0.1:${s.httpPort}/health`).then((r) => r.text());
      worst = Math.max(worst, performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try { await work(); await new Promise((r) => setTimeout(r, 300)); } finally { done = true; await probe; }
  return worst;
}

async function wsOpen(s: TestServer): Promise<{ ws: WebSocket; msgs: string[]; closed: Promise<unknown> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${s.httpPort}/xmpp-websocket`, 'xmpp');
  const msgs: string[] = [];
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise((r) => ws.once('close', r));
  ws.on('message', (d) => msgs.push(d.toString()));
  ws.on('error', () => {});
  ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`);
  return { ws, msgs, closed };
}

const nested = (n: number): string => '<a>'.repeat(n);

test('deeply nested XML is refused at the depth limit at once: no stall, O(n) work (TCP and WebSocket, before and after login)', async (t) => {
  const user = uniq('deep');
  await stopClient(await connect(server, { username: user, password: 'pw', register: true }));
  const cases: [string, () => Promise<void>][] = [
    ['TCP before login', async () => {
      const c = await raw(server.c2sPort);
      c.send(streamHeader + nested(40_000));
      await c.until(streamError('policy-violation'), 20_000);
      t.regex(c.data, /nested deeper than 32/);
    }],
    ['TCP after login', async () => {
      const c = await rawLogin(server.c2sPort, user, 'pw');
      c.send(`<message to="${user}@localhost">` + nested(40_000));
      await c.until(streamError('policy-violation'), 20_000);
    }],
    ['WebSocket after login, one 160 KB message', async () => {
      const c = await connect(server, { username: user, password: 'pw', transport: 'ws', resource: 'deep' });
      const gone = new Promise((r) => c.once('disconnect', r));
      const errors: string[] = [];
      c.on('error', (e: Error) => errors.push(String((e as { condition?: string }).condition ?? e.message)));
      await c.write(`<message xmlns="jabber:client" to="${user}@localhost">` + nested(40_000)).catch(() => {});
      await gone;
      t.true(errors.includes('policy-violation'), errors.join(','));
    }],
    ['WebSocket before login, one 160 KB message', async () => {
      const { ws, msgs, closed } = await wsOpen(server);
      ws.send('<message xmlns="jabber:client">' + nested(40_000));
      await closed;
      t.regex(msgs.join(''), /policy-violation/);
    }],
  ];
  for (const [name, run] of cases) {
    const cpu0 = cpuSeconds(server);
    const worst = await worstHealthLatency(server, run);
    const cpu = cpuSeconds(server) - cpu0;
    t.log(`${name}: worst /health ${worst.toFixed(0)} ms, server CPU ${cpu.toFixed(2)} s`);
    // Before the fix: 6.8 s (TCP, 20,000 levels) and 22 s (WebSocket) of frozen event loop.
    t.true(worst < 2000, `${name}: /health waited ${worst.toFixed(0)} ms`);
    t.true(cpu < 1.5, `${name}: the server spent ${cpu.toFixed(2)} s of CPU on 120 KB`);
  }
});

test('the size limit counts the start tag: a huge attribute is refused and nothing is stored', async (t) => {
  const to = uniq('offline');
  await stopClient(await connect(server, { username: to, password: 'pw', register: true }));
  const sender = uniq('pad');
  const c = await rawLogin(server.c2sPort, sender, 'pw').catch(async () => {
    await stopClient(await connect(server, { username: sender, password: 'pw', register: true }));
    return rawLogin(server.c2sPort, sender, 'pw');
  });
  c.send(`<message to="${to}@localhost" type="chat" pad="${'x'.repeat(3 * 1024 * 1024)}"><body>big</body></message>`);
  await c.until(streamError('policy-violation'), 20_000);
  t.regex(c.data, /stanza larger than 262144 bytes/);
  const r = await connect(server, { username: to, password: 'pw' });
  await t.throwsAsync(waitFor(r, (s) => s.is('message') && s.getChildText('body') === 'big', 'the padded message', 1500));
  await stopClient(r);
});

test('too many attributes on one element are refused with policy-violation', async (t) => {
  const c = await raw(server.c2sPort);
  c.send(streamHeader);
  await c.until('</stream:features>');
  const attrs = Array.from({ length: 500 }, (_, i) => `a${i}=""`).join(' ');
  c.send(`<message ${attrs}/>`);
  await c.until(streamError('policy-violation'));
  t.regex(c.data, /more than 100 attributes/);
});

async function flood(c: RawConn, mib: number): Promise<void> {
  const chunk = ' '.repeat(1024 * 1024);
  for (let i = 0; i < mib && !c.socket.destroyed; i++) {
    if (!c.socket.write(chunk)) await new Promise((r) => { c.socket.once('drain', r); c.socket.once('close', r); });
  }
}

test('a flood of whitespace between stanzas is refused, before and after login, and memory stays put', async (t) => {
  const user = uniq('ws');
  await stopClient(await connect(server, { username: user, password: 'pw', register: true }));
  const rss0 = rssMiB(server);
  const pre = await raw(server.c2sPort);
  pre.send(streamHeader);
  await pre.until('</stream:features>');
  await flood(pre, 100);
  await pre.until(streamError('policy-violation'));
  t.regex(pre.data, /bytes of whitespace between stanzas/);
  const post = await rawLogin(server.c2sPort, user, 'pw');
  await flood(post, 300);
  await post.until(streamError('policy-violation'));
  const grew = rssMiB(server) - rss0;
  t.log(`RSS grew by ${grew.toFixed(1)} MiB after 400 MiB of whitespace`);
  t.true(grew < 40, `RSS grew by ${grew.toFixed(1)} MiB`);
  // Keep-alives themselves are fine: a single space, many times, keeps a session.
  const k = await rawLogin(server.c2sPort, user, 'pw', 'keepalive');
  for (let i = 0; i < 20; i++) { k.send(' '); await new Promise((r) => setTimeout(r, 10)); }
  k.send(`<iq type="get" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>`);
  await k.until(/id="p1"/);
  t.notRegex(k.data, /stream:error/);
});

test('text between stanzas and invalid UTF-8 are not-well-formed', async (t) => {
  const c = await raw(server.c2sPort);
  c.send(streamHeader);
  await c.until('</stream:features>');
  c.send('hello, this is not XMPP<presence/>');
  await c.until(streamError('not-well-formed'));
  t.regex(c.data, /text outside of any stanza/);

  const u = await raw(server.c2sPort);
  u.send(streamHeader);
  await u.until('</stream:features>');
  u.socket.write(Buffer.concat([Buffer.from('<message><body>'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('</body></message>')]));
  await u.until(streamError('not-well-formed'));
  t.regex(u.data, /not valid UTF-8/);
});

test('WebSocket: non-XMPP text and a message that leaves an element open get stream errors', async (t) => {
  const a = await wsOpen(server);
  a.ws.send('hello, this is not XMPP');
  await a.closed;
  t.regex(a.msgs.join(''), /not-well-formed/);

  const b = await wsOpen(server);
  b.ws.send('<message xmlns="jabber:client" to="nobody@localhost"><body>');
  await b.closed;
  t.regex(b.msgs.join(''), /an element was left open/);
});

test('a stanza whose end tag does not match is refused and not delivered', async (t) => {
  const to = uniq('mis');
  const r = await connect(server, { username: to, password: 'pw', register: true });
  const s = await rawLogin(server.c2sPort, to, 'pw', 'mismatch');
  s.send(`<message to="${to}@localhost/${r.jid!.resource}" type="chat"><body>mismatched</body></iq>`);
  await s.until(streamError('not-well-formed'));
  await t.throwsAsync(waitFor(r, (m) => m.getChildText('body') === 'mismatched', 'the mismatched message', 1000));
  await stopClient(r);
});

test('a burst from one client does not hold the others: their stanzas are handled between parts of it', async (t) => {
  const s = await startServer({ registration: 'open', config: { limits: { stanzaBurst: 100_000, stanzasPerSecond: 100_000 } } });
  try {
    const user = uniq('burst');
    await stopClient(await connect(s, { username: user, password: 'pw', register: true }));
    const a = await rawLogin(s.c2sPort, user, 'pw', 'a');
    const b = await rawLogin(s.c2sPort, user, 'pw', 'b');
    a.data = ''; b.data = '';
    const n = 700; // about 60 KB: one read for the server
    const burst = Array.from({ length: n }, (_, i) => `<iq type="get" id="a${i}"><ping xmlns="urn:xmpp:ping"/></iq>`).join('');
    let answersBeforePong = -1;
    const counted = b.until(/id="bping"/, 20_000).then(() => { answersBeforePong = (a.data.match(/type="result"/g) ?? []).length; });
    a.socket.write(burst);
    b.socket.write(`<iq type="get" id="bping"><ping xmlns="urn:xmpp:ping"/></iq>`);
    await counted;
    await a.until(`id="a${n - 1}"`, 20_000);
    t.log(`${answersBeforePong} of ${n} answers to the burst were out when the other client's ping was answered`);
    // Before: the whole read (all 700) was handled before anything else; now at most 32 stanzas a turn.
    t.true(answersBeforePong < n, `the burst was handled in one go (${answersBeforePong} of ${n} answers before the other client's)`);
  } finally { await s.stop(); }
});
