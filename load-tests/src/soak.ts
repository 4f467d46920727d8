#!/usr/bin/env node
// Soak test (not in CI): one pi-im server started here, N clients with mixed good and bad traffic
// for a long time (default 1 h), the server's RSS, heap and event-loop delay printed every
// interval (default 1 min). Good clients log in (TCP+STARTTLS and WebSocket), chat, join rooms,
// use roster, vCard, private storage, PEP, MAM, ping and disco, and reconnect now and then. Bad
// clients guess passwords, send malformed XML, oversized and too-deep stanzas, random bytes,
// floods, never read their socket, or connect and say nothing. At the end: growth of RSS, the
// server still alive and healthy, and no uncaught error in its log.
//
//   npm run soak -- [--clients 50] [--duration 1h] [--interval 1m] [--bad-share 0.3] [--json FILE]
//
// RSS comes from /proc/<pid>/status (Linux); the event-loop delay from the server's /metrics
// (prom-client's default metrics: max and p99 since the previous scrape, so per interval).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import WebSocket from 'ws';
import { parseDuration, formatDuration } from './duration.js';
import { makeCert } from './peers/cert.js';
import { REPO_ROOT } from './peers/piim.js';
import { cpuSeconds, freePort, rssKiB, waitForPort } from './peers/proc.js';
import { XmppClient, XmppError } from './xmpp/client.js';
import { escape } from './xmpp/xml.js';

export const USAGE = `usage: npm run soak -- [--clients 50] [--duration 1h] [--interval 1m] [--bad-share 0.3]
  --clients N        clients at once (default 50): good ones keep a session, bad ones misbehave
  --duration D       how long (default 1h; e.g. 10m, 90s)
  --interval D       how often to print the server's figures (default 1m)
  --bad-share F      share of the clients that misbehave (default 0.3)
  --im-server DIR    the im-server directory to run (default: this repository's)
  --bad-actions A,B  only these misbehaviours (default all): wrongPassword,malformed,randomBytes,oversized,
                     deep,silent,halfStanza,preauthStanza,flood,slowReader,wsGarbage
  --json FILE        also write every sample and the summary as JSON
  --keep             keep the server's data directory and log`;

interface Sample {
  minute: number;
  rssMiB: number;
  heapUsedMiB: number | undefined;
  loopMaxMs: number | undefined;
  loopP99Ms: number | undefined;
  connections: number | undefined;
  sessions: number | undefined;
  /** The server's CPU use over the interval (100 = one core). */
  cpuPercent: number | undefined;
  /** Event-loop delay of an idle thread in this process: what the machine's load alone causes. */
  refMaxMs: number | undefined;
  /** Storage commits in the interval, and those that took over 100 ms (they block the event loop). */
  commits: number | undefined;
  slowCommits: number | undefined;
  goodOps: number;
  goodErrors: number;
  badOps: number;
  hung: number;
  messagesReceived: number;
}

const DOMAIN = 'soak.local';
const GOOD_ADDRESSES = Array.from({ length: 15 }, (_, i) => `127.0.0.${i + 2}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pick = <T>(a: readonly T[]): T => a[Math.floor(Math.random() * a.length)]!;
const between = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);

/** Counters the clients update; reset per interval except the totals. */
const counts = { goodOps: 0, goodErrors: 0, badOps: 0, hung: 0, messagesReceived: 0 };
const errorKinds = new Map<string, number>();
const noteError = (what: string): void => { errorKinds.set(what, (errorKinds.get(what) ?? 0) + 1); };

function config(): Record<string, unknown> {
  const exempt = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];
  for (const a of GOOD_ADDRESSES) exempt.push(a, `::ffff:${a}`);
  return {
    logLevel: 'warn',
    // Good clients share 16 loopback addresses; bad ones come from 127.0.0.100-199 and meet
    // every default limit except a shorter ban, so addresses are banned and freed during the run.
    // authTimeoutSeconds: a connection that never logs in is closed within the bad clients' patience.
    limits: { connectionLimitExempt: exempt, maxConnectionsPerAddress: 20, authLockoutSeconds: 60, authTimeoutSeconds: 30 },
  };
}

interface Server { pid: number; c2sPort: number; httpPort: number; logFile: string; dir: string; alive(): boolean; stop(): Promise<void> }

async function startServer(imServerDir: string): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-soak-'));
  const c2sPort = await freePort();
  const httpPort = await freePort();
  const { cert, key } = makeCert(dir, DOMAIN);
  const cfg = join(dir, 'soak-config.json');
  writeFileSync(cfg, JSON.stringify(config(), null, 2));
  const logFile = join(dir, 'server.log');
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--domain', DOMAIN, '--data-dir', join(dir, 'data'),
    '--c2s-port', String(c2sPort), '--http-port', String(httpPort), '--c2s-host', '127.0.0.1', '--http-host', '127.0.0.1',
    '--registration', 'open', '--config', cfg, '--tls-cert', cert, '--tls-key', key], { cwd: imServerDir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  let exited: string | undefined;
  child.on('exit', (code, sig) => { exited = `server exited (code ${code}, signal ${sig}); log: ${logFile}`; });
  await waitForPort('127.0.0.1', c2sPort, 60_000, () => exited);
  await waitForPort('127.0.0.1', httpPort, 10_000, () => exited);
  return {
    pid: child.pid!, c2sPort, httpPort, logFile, dir,
    alive: () => exited === undefined,
    async stop() {
      if (exited === undefined) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await done;
        clearTimeout(t);
      }
      log.end();
    },
  };
}

/** Values of one metric family (labels summed) from Prometheus text. */
function metric(text: string, name: string, labels = ''): number | undefined {
  let sum: number | undefined;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*${labels}[^}]*\\})?\\s+([0-9.eE+-]+|NaN)$`, 'gm'))) {
    const v = Number(m[1]);
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

// ---- good clients ----

interface Ctx { server: Server; users: string[]; rooms: string[]; stopAt: number; password: string }

function goodClient(ctx: Ctx, i: number): XmppClient {
  const ws = i % 3 === 2;
  return new XmppClient({
    domain: DOMAIN, insecure: true, timeoutMs: 30_000,
    // Plain ws is accepted from trusted proxies only (loopback 127.0.0.1 by default).
    ...(ws ? { wsUrl: `ws://127.0.0.1:${ctx.server.httpPort}/xmpp-websocket`, localAddress: '127.0.0.1' }
      : { host: '127.0.0.1', port: ctx.server.c2sPort, localAddress: GOOD_ADDRESSES[i % GOOD_ADDRESSES.length] }),
  });
}

async function goodLoop(ctx: Ctx, i: number): Promise<void> {
  const me = ctx.users[i]!;
  const nsAttr = i % 3 === 2 ? ' xmlns="jabber:client"' : '';
  while (Date.now() < ctx.stopAt) {
    const c = goodClient(ctx, i);
    c.onMessage = () => { counts.messagesReceived++; };
    try {
      await c.connect();
      await c.login(me, ctx.password, `r${Math.floor(Math.random() * 1e6)}`);
      c.sendPresence({}, '<status>soaking</status>');
      await c.iq('get', undefined, '<query xmlns="jabber:iq:roster"/>');
      const room = pick(ctx.rooms);
      c.send(`<presence${nsAttr} to="${room}/${me}"><x xmlns="http://jabber.org/protocol/muc"><history maxstanzas="5"/></x></presence>`);
      // The first joiner owns a locked room: make it instant (others get an error, ignored).
      await c.iq('set', room, '<query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query>').catch(() => undefined);
      const sessionEnd = Math.min(ctx.stopAt, Date.now() + between(60_000, 300_000));
      while (Date.now() < sessionEnd && c.isOpen) {
        await sleep(between(500, 3000));
        if (!c.isOpen) break;
        try {
          await goodAction(c, ctx, me, room, nsAttr);
          counts.goodOps++;
        } catch (e) {
          counts.goodErrors++;
          noteError(`good: ${(e as XmppError).condition ?? (e as Error).message}`);
        }
      }
      if (c.isOpen) {
        if (Math.random() < 0.2) c.destroy(); else await c.close();
      } else {
        counts.goodErrors++;
        noteError('good: connection lost');
      }
    } catch (e) {
      counts.goodErrors++;
      noteError(`good login: ${(e as XmppError).condition ?? (e as Error).message}`);
      c.destroy();
    }
    await sleep(between(200, 5000));
  }
}

async function goodAction(c: XmppClient, ctx: Ctx, me: string, room: string, nsAttr: string): Promise<void> {
  const peer = `${pick(ctx.users)}@${DOMAIN}`;
  const n = Math.random();
  if (n < 0.3) return c.sendMessage(peer, `hello ${Date.now()} ${'x'.repeat(Math.floor(between(10, 400)))}`);
  if (n < 0.4) return c.send(`<message${nsAttr} to="${room}" type="groupchat" id="g${Date.now()}"><body>room talk ${Date.now()}</body></message>`);
  if (n < 0.45) return c.sendPresence({}, `<show>${pick(['away', 'chat', 'dnd', 'xa'])}</show><status>${escape(`status ${Date.now()}`)}</status>`);
  if (n < 0.5) return c.send(`<message${nsAttr} to="${peer}" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`);
  if (n < 0.55) { await c.iq('get', DOMAIN, '<ping xmlns="urn:xmpp:ping"/>'); return; }
  if (n < 0.6) { await c.iq('get', DOMAIN, '<query xmlns="http://jabber.org/protocol/disco#info"/>'); return; }
  if (n < 0.63) { await c.iq('get', DOMAIN, '<query xmlns="http://jabber.org/protocol/disco#items"/>'); return; }
  if (n < 0.67) { await c.iq('set', undefined, `<vCard xmlns="vcard-temp"><FN>${escape(me)}</FN><NICKNAME>n${Date.now() % 1000}</NICKNAME></vCard>`); return; }
  if (n < 0.7) { await c.iq('get', peer, '<vCard xmlns="vcard-temp"/>'); return; }
  if (n < 0.74) { await c.iq('set', undefined, `<query xmlns="jabber:iq:private"><prefs xmlns="soak:prefs"><v>${Date.now()}</v></prefs></query>`); return; }
  if (n < 0.76) { await c.iq('get', undefined, '<query xmlns="jabber:iq:private"><prefs xmlns="soak:prefs"/></query>'); return; }
  if (n < 0.82) {
    await c.iq('set', undefined, `<query xmlns="urn:xmpp:mam:2" queryid="q${Date.now()}"><set xmlns="http://jabber.org/protocol/rsm"><max>10</max><before/></set></query>`);
    return;
  }
  if (n < 0.87) {
    await c.iq('set', undefined, `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="http://jabber.org/protocol/tune"><item id="current"><tune xmlns="http://jabber.org/protocol/tune"><title>${Date.now()}</title></tune></item></publish></pubsub>`);
    return;
  }
  if (n < 0.92) {
    const contact = `${pick(ctx.users)}@${DOMAIN}`;
    await c.iq('set', undefined, `<query xmlns="jabber:iq:roster"><item jid="${contact}" name="friend"><group>soak</group></item></query>`);
    return;
  }
  if (n < 0.95) { await c.iq('get', undefined, '<blocklist xmlns="urn:xmpp:blocking"/>'); return; }
  await c.iq('get', undefined, '<query xmlns="jabber:iq:roster"/>');
}

// ---- bad clients ----

const HEADER = `<?xml version='1.0'?><stream:stream to='${DOMAIN}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

/** A raw socket from a bad address; resolves once it is closed by either side or after `ms`. */
function rawSession(ctx: Ctx, from: string, script: (s: net.Socket | tls.TLSSocket, got: () => string) => Promise<void>, ms = 45_000): Promise<'closed' | 'hung'> {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const sock = net.connect({ host: '127.0.0.1', port: ctx.server.c2sPort, localAddress: from });
    // Destroying the TCP socket also ends a TLS socket layered on it.
    const finish = (r: 'closed' | 'hung'): void => { if (done) return; done = true; clearTimeout(timer); sock.destroy(); resolve(r); };
    const timer = setTimeout(() => finish('hung'), ms);
    sock.on('error', () => {});
    sock.on('close', () => finish('closed'));
    sock.on('data', (b) => { data += b.toString('latin1'); });
    sock.once('connect', () => {
      script(sock, () => data).then(() => finish('closed'), () => finish('closed'));
    });
  });
}

async function waitFor(got: () => string, re: RegExp, ms = 15_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (re.test(got())) return true; await sleep(50); }
  return false;
}

async function starttls(sock: net.Socket): Promise<{ t: tls.TLSSocket; got: () => string; reset(): void }> {
  sock.write(HEADER);
  let data = '';
  const onData = (b: Buffer): void => { data += b.toString('latin1'); };
  sock.on('data', onData);
  if (!(await waitFor(() => data, /<\/stream:features>/))) throw new Error('no features');
  sock.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  if (!(await waitFor(() => data, /<proceed/))) throw new Error('no proceed');
  sock.removeListener('data', onData);
  const t = tls.connect({ socket: sock, servername: DOMAIN, rejectUnauthorized: false });
  t.on('error', () => {});
  await new Promise<void>((res, rej) => { t.once('secureConnect', res); t.once('error', rej); });
  let tdata = '';
  t.on('data', (b: Buffer) => { tdata += b.toString('latin1'); });
  t.write(HEADER);
  await waitFor(() => tdata, /<\/stream:features>/);
  return { t, got: () => tdata, reset: () => { tdata = ''; } };
}

type BadAction = (ctx: Ctx, from: string) => Promise<'closed' | 'hung'>;

const BAD: Record<string, BadAction> = {
  wrongPassword: async (ctx, from) => {
    const c = new XmppClient({ domain: DOMAIN, insecure: true, host: '127.0.0.1', port: ctx.server.c2sPort, localAddress: from, timeoutMs: 40_000 });
    try {
      await c.connect();
      await c.login(pick(ctx.users), 'not-the-password');
      noteError('bad: wrong password accepted!');
    } catch (e) {
      const cond = (e as XmppError).condition ?? 'other';
      if (cond === 'timeout') { c.destroy(); return 'hung'; }
    }
    c.destroy();
    return 'closed';
  },
  malformed: (ctx, from) => rawSession(ctx, from, async (s, got) => {
    s.write(HEADER);
    await waitFor(got, /<\/stream:features>/);
    s.write(pick(['<message><body>unclosed</message>', '<a b="1" b="2"/>', '<iq type="get" id="1"><query xmlns="jabber:iq:roster"/></iq></x>', '<&&&>', '<message to="a@b"><body>&undefined;</body></message>']));
    await waitFor(got, /<\/stream:stream>/);
  }),
  randomBytes: (ctx, from) => rawSession(ctx, from, async (s, got) => {
    if (Math.random() < 0.5) { s.write(HEADER); await waitFor(got, /<\/stream:features>/); }
    s.write(Buffer.from(Array.from({ length: Math.floor(between(1, 4096)) }, () => Math.floor(Math.random() * 256))));
    await waitFor(got, /<\/stream:stream>/, 10_000);
  }),
  oversized: (ctx, from) => rawSession(ctx, from, async (s, got) => {
    s.write(HEADER);
    await waitFor(got, /<\/stream:features>/);
    s.write(`<message to="x@${DOMAIN}"><body>${'A'.repeat(300 * 1024)}</body></message>`);
    await waitFor(got, /<\/stream:stream>/);
  }),
  deep: (ctx, from) => rawSession(ctx, from, async (s, got) => {
    s.write(HEADER);
    await waitFor(got, /<\/stream:features>/);
    s.write(`<iq type="get" id="d">${'<a>'.repeat(200)}`);
    await waitFor(got, /<\/stream:stream>/);
  }),
  silent: (ctx, from) => rawSession(ctx, from, async (s) => {
    if (Math.random() < 0.5) s.write(HEADER);
    await sleep(between(5_000, 40_000)); // hangs up before the login timeout, or is timed out
  }, 60_000),
  halfStanza: (ctx, from) => rawSession(ctx, from, async (s, got) => {
    s.write(HEADER);
    await waitFor(got, /<\/stream:features>/);
    s.write(`<message to="x@${DOMAIN}"><body>half`);
    await sleep(between(10, 2000));
    s.destroy();
  }),
  preauthStanza: (ctx, from) => rawSession(ctx, from, async (s) => {
    const { t, got } = await starttls(s as net.Socket);
    t.write(`<message to="${pick(ctx.users)}@${DOMAIN}"><body>before auth</body></message>`);
    await waitFor(got, /<\/stream:stream>/);
    t.destroy();
  }),
  flood: async (ctx, from) => {
    // A bad user's own account, logged in: far more stanzas per second than allowed.
    const c = new XmppClient({ domain: DOMAIN, insecure: true, host: '127.0.0.1', port: ctx.server.c2sPort, localAddress: from, timeoutMs: 30_000 });
    try {
      await c.connect();
      await c.login(`soakbad${Math.floor(Math.random() * 10)}`, ctx.password);
      for (let k = 0; k < 3000 && c.isOpen; k++) c.sendMessage(`${pick(ctx.users)}@${DOMAIN}`, `flood ${k}`, 'normal');
      await waitFor(() => (c.isOpen ? '' : 'x'), /x/, 20_000);
    } catch { /* the expected policy-violation, or a ban of the address */ }
    const r = c.isOpen ? 'hung' : 'closed';
    c.destroy();
    return r;
  },
  slowReader: (ctx, from) => rawSession(ctx, from, async (s) => {
    // Logs in, then asks for a lot without ever reading: the server must drop it (output buffer).
    const { t, got, reset } = await starttls(s as net.Socket);
    const user = `soakbad${Math.floor(Math.random() * 10)}`;
    reset();
    t.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${ctx.password}`).toString('base64')}</auth>`);
    if (!(await waitFor(got, /<success|<failure/))) return;
    if (!/<success/.test(got())) return;
    t.write(HEADER);
    await waitFor(got, /<\/stream:features>/);
    t.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
    await waitFor(got, /<\/jid>/);
    t.pause();
    for (let k = 0; k < 900; k++) t.write(`<iq type='get' id='v${k}' to='${DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    await sleep(20_000);
  }, 60_000),
  wsGarbage: async (ctx, from) => {
    const ws = new WebSocket(`ws://127.0.0.1:${ctx.server.httpPort}/xmpp-websocket`, pick(['xmpp', 'bogus']), { localAddress: from });
    ws.on('error', () => {});
    const closed = new Promise<'closed'>((r) => ws.once('close', () => r('closed')));
    ws.once('open', () => {
      ws.send(pick([`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="${DOMAIN}" version="1.0"/><message>`, '<message><body>no open</body></message>', 'garbage<<<', '']));
    });
    return Promise.race([closed, sleep(45_000).then(() => { ws.terminate(); return 'hung' as const; })]);
  },
};

async function badLoop(ctx: Ctx, names: string[]): Promise<void> {
  while (Date.now() < ctx.stopAt) {
    const name = pick(names);
    const from = `127.0.0.${100 + Math.floor(Math.random() * 100)}`;
    try {
      const r = await BAD[name]!(ctx, from);
      counts.badOps++;
      if (r === 'hung') { counts.hung++; noteError(`bad ${name}: not answered or closed in time`); }
    } catch (e) {
      noteError(`bad ${name}: ${(e as Error).message}`);
    }
    await sleep(between(300, 3000));
  }
}

// ---- main ----

/**
 * An idle event loop on its own thread, as a control: its worst delay per interval is what CPU
 * contention on the machine causes, whatever the server does.
 */
function referenceLoop(): { sample(): Promise<number>; stop(): void } {
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    const { monitorEventLoopDelay } = require('node:perf_hooks');
    const h = monitorEventLoopDelay({ resolution: 10 }); h.enable();
    parentPort.on('message', () => { parentPort.postMessage(h.max / 1e6); h.reset(); });
  `, { eval: true });
  w.unref();
  return {
    sample: () => new Promise((resolve) => { w.once('message', (v: number) => resolve(v)); w.postMessage('sample'); }),
    stop: () => { void w.terminate(); },
  };
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      clients: { type: 'string', default: '50' }, duration: { type: 'string', default: '1h' }, interval: { type: 'string', default: '1m' },
      'bad-share': { type: 'string', default: '0.3' }, 'bad-actions': { type: 'string' }, 'im-server': { type: 'string', default: join(REPO_ROOT, 'im-server') },
      json: { type: 'string' }, keep: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  });
  if (values.help) { console.log(USAGE); return 0; }
  const clients = Number(values.clients);
  const badShare = Number(values['bad-share']);
  const duration = parseDuration(values.duration!);
  const interval = parseDuration(values.interval!);
  if (!(clients >= 1) || !(badShare >= 0 && badShare <= 1)) throw new Error(`bad --clients or --bad-share\n${USAGE}`);
  const badActions = values['bad-actions'] ? values['bad-actions'].split(',') : Object.keys(BAD);
  const unknown = badActions.filter((a) => !(a in BAD));
  if (unknown.length) throw new Error(`unknown --bad-actions ${unknown.join(',')}\n${USAGE}`);
  const nBad = Math.round(clients * badShare);
  const nGood = clients - nBad;

  let unhandled = 0;
  process.on('unhandledRejection', (e) => { unhandled++; noteError(`soak script: unhandled ${(e as Error)?.message ?? e}`); });

  const server = await startServer(values['im-server']!);
  console.log(`pi-im pid ${server.pid}, c2s ${server.c2sPort}, http ${server.httpPort}, log ${server.logFile}`);
  console.log(`${nGood} good + ${nBad} bad clients for ${formatDuration(duration)}, figures every ${formatDuration(interval)}`);
  const password = 'soak-password';
  const users = Array.from({ length: Math.max(nGood, 2) }, (_, i) => `soakgood${i}`);
  const rooms = Array.from({ length: Math.max(1, Math.ceil(nGood / 10)) }, (_, i) => `room${i}@conference.${DOMAIN}`);
  for (const u of [...users, ...Array.from({ length: 10 }, (_, i) => `soakbad${i}`)]) {
    const c = new XmppClient({ domain: DOMAIN, insecure: true, host: '127.0.0.1', port: server.c2sPort });
    await c.connect();
    await c.register(u, password);
    await c.close();
  }
  const ctx: Ctx = { server, users, rooms, stopAt: Date.now() + duration, password };
  const t0 = Date.now();
  const loops = [...Array.from({ length: nGood }, (_, i) => goodLoop(ctx, i)), ...Array.from({ length: nBad }, () => badLoop(ctx, badActions))];

  const samples: Sample[] = [];
  const header = 'minute  rss MiB  heap MiB  loop max ms  loop p99 ms  ref max ms  cpu %  conns  sessions  commits  >100ms  good ops  good err  bad ops  hung  msgs in';
  let lastCommits = 0, lastFast = 0;
  let lastCpu = cpuSeconds(server.pid), lastAt = Date.now();
  const ref = referenceLoop();
  console.log(header);
  const sample = async (): Promise<void> => {
    if (!server.alive()) return;
    const rss = rssKiB(server.pid) / 1024;
    let text = '';
    try { text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text(); } catch { /* counted as missing */ }
    const ms = (v: number | undefined): number | undefined => (v === undefined ? undefined : v * 1000);
    const s: Sample = {
      minute: Math.round((Date.now() - t0) / 60_000 * 10) / 10,
      rssMiB: rss,
      heapUsedMiB: ((v) => (v === undefined ? undefined : v / 1048576))(metric(text, 'pi_im_nodejs_heap_size_used_bytes')),
      loopMaxMs: ms(metric(text, 'pi_im_nodejs_eventloop_lag_max_seconds')),
      loopP99Ms: ms(metric(text, 'pi_im_nodejs_eventloop_lag_p99_seconds')),
      connections: metric(text, 'pi_im_connections'),
      sessions: metric(text, 'pi_im_sessions'),
      commits: undefined, slowCommits: undefined, cpuPercent: undefined, refMaxMs: await ref.sample(),
      ...counts,
    };
    try {
      const cpu = cpuSeconds(server.pid), now = Date.now();
      s.cpuPercent = ((cpu - lastCpu) / ((now - lastAt) / 1000)) * 100;
      lastCpu = cpu; lastAt = now;
    } catch { /* exited */ }
    const commits = metric(text, 'pi_im_storage_commit_seconds_count');
    const fast = metric(text, 'pi_im_storage_commit_seconds_bucket', 'le="0.1"');
    if (commits !== undefined && fast !== undefined) {
      s.commits = commits - lastCommits;
      s.slowCommits = (commits - fast) - (lastCommits - lastFast);
      lastCommits = commits; lastFast = fast;
    }
    counts.goodOps = counts.goodErrors = counts.badOps = counts.hung = counts.messagesReceived = 0;
    samples.push(s);
    const f = (v: number | undefined, d = 1): string => (v === undefined ? '-' : v.toFixed(d));
    console.log([f(s.minute).padStart(6), f(s.rssMiB).padStart(8), f(s.heapUsedMiB).padStart(9), f(s.loopMaxMs).padStart(12), f(s.loopP99Ms).padStart(12), f(s.refMaxMs).padStart(11), f(s.cpuPercent, 0).padStart(6),
      f(s.connections, 0).padStart(6), f(s.sessions, 0).padStart(9), f(s.commits, 0).padStart(8), f(s.slowCommits, 0).padStart(7), String(s.goodOps).padStart(9), String(s.goodErrors).padStart(9),
      String(s.badOps).padStart(8), String(s.hung).padStart(5), String(s.messagesReceived).padStart(8)].join(' '));
  };
  await sample(); // the baseline, and the first scrape resets the loop-delay histogram
  const timer = setInterval(() => { void sample(); }, interval);
  const deathWatch = setInterval(() => { if (!server.alive()) ctx.stopAt = 0; }, 1000);
  await Promise.all(loops.map((p) => p.catch((e) => noteError(`client loop: ${(e as Error).message}`))));
  clearInterval(timer);
  clearInterval(deathWatch);
  await sample();
  ref.stop();

  const alive = server.alive();
  let health = 0;
  try { health = (await fetch(`http://127.0.0.1:${server.httpPort}/health`)).status; } catch { /* dead */ }
  await server.stop();
  const log = readFileSync(server.logFile, 'utf8');
  const suspicious = log.split('\n').filter((l) => /uncaught|unhandled|internal-server-error|error while handling input|"level":(50|60)/i.test(l));
  const rss = samples.map((s) => s.rssMiB);
  const summary = {
    alive, health, rssFirstMiB: rss[0], rssLastMiB: rss.at(-1), rssMaxMiB: Math.max(...rss),
    loopMaxMs: Math.max(...samples.map((s) => s.loopMaxMs ?? 0)),
    errors: Object.fromEntries([...errorKinds].sort((a, b) => b[1] - a[1])), suspiciousLogLines: suspicious.length, unhandled,
  };
  console.log(`\nserver alive at the end: ${alive}, /health ${health}`);
  console.log(`RSS: first ${summary.rssFirstMiB?.toFixed(1)} MiB, last ${summary.rssLastMiB?.toFixed(1)} MiB, max ${summary.rssMaxMiB.toFixed(1)} MiB; worst event-loop delay ${summary.loopMaxMs.toFixed(1)} ms`);
  console.log('client-side outcomes that were not the expected ones:');
  for (const [k, v] of Object.entries(summary.errors)) console.log(`  ${String(v).padStart(6)}  ${k}`);
  console.log(`server log lines with errors: ${suspicious.length}${suspicious.length ? `\n  ${suspicious.slice(0, 10).join('\n  ')}` : ''}`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ samples, summary }, null, 2));
  if (!values.keep) rmSync(server.dir, { recursive: true, force: true });
  else console.log(`kept ${server.dir}`);
  return alive && health === 200 && suspicious.length === 0 ? 0 : 1;
}

if (process.argv[1] && /soak\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e) => { console.error((e as Error).stack ?? e); process.exit(2); });
}
