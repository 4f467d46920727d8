// Test harness: the real server as a child process on free ports with a temp data dir, and
// real clients: @xmpp/client (written by others) and raw sockets for bad input.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { client, xml, type Client, type Element } from '@xmpp/client';
import { WebSocket } from 'ws';
import { dbArgs, dbEnv } from './test-db.js';

// Node 20 has no global WebSocket (Node 22 has); @xmpp/websocket expects the browser API.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

// The servers under test use a self-signed certificate made at their first start.
// @xmpp/client cannot be given a CA, so its TLS is not verified here; test/tls.test.ts
// checks the certificate itself with the CA pinned.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

const SERVER_DIR = fileURLToPath(new URL('..', import.meta.url));

export interface TestServer {
  proc: ChildProcess;
  dataDir: string;
  c2sPort: number;
  /** The XEP-0368 direct TLS port, when the server was started with --c2s-direct-tls-port. */
  c2sDirectTlsPort?: number;
  httpPort: number;
  logs: string[];
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export interface ServerOptions {
  registration?: 'open' | 'invite' | 'closed';
  config?: Record<string, unknown>;
  dataDir?: string;
  args?: string[];
}

/** pi-im-admin on the data dir (and database) of a server under test. */
export async function admin(dataDir: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/admin.ts', ...args, '--data-dir', dataDir],
    { cwd: SERVER_DIR, env: { ...process.env, ...(await dbEnv(dataDir)) } });
}

export async function startServer(opts: ServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'pi-im-test-'));
  const args = ['--import', 'tsx', 'src/main.ts', '--domain', 'localhost', '--data-dir', dataDir,
    '--c2s-port', '0', '--http-port', '0', '--c2s-host', '127.0.0.1', '--http-host', '127.0.0.1',
    '--registration', opts.registration ?? 'open', '--log-level', 'debug', ...(await dbArgs(dataDir)), ...(opts.args ?? [])];
  if (opts.config) {
    const file = join(dataDir, 'test-config.json');
    writeFileSync(file, JSON.stringify(opts.config));
    args.push('--config', file);
  }
  const proc = spawn(process.execPath, args, { cwd: SERVER_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const ready = await new Promise<{ c2sPort: number; httpPort: number; c2sDirectTlsPort?: number }>((resolve, reject) => {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        logs.push(line);
        if (line.includes('pi-im server ready')) {
          const j = JSON.parse(line) as { c2sPort: number; httpPort: number; c2sDirectTlsPort?: number };
          resolve({ c2sPort: j.c2sPort, httpPort: j.httpPort, c2sDirectTlsPort: j.c2sDirectTlsPort });
        }
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => logs.push(d));
    void exited.then((code) => reject(new Error(`server exited (${code}) before it was ready:\n${logs.join('\n')}`)));
  });
  return {
    proc, dataDir, logs, ...ready,
    async stop() { proc.kill('SIGTERM'); return exited; },
    async kill9() { proc.kill('SIGKILL'); await exited; },
  };
}

export interface ClientOptions {
  username: string;
  password: string;
  resource?: string;
  /** Register in-band first (XEP-0077), optionally with an invite token (XEP-0401). */
  register?: boolean;
  invite?: string;
  /** tcp: STARTTLS on the c2s port; tls: XEP-0368 direct TLS; ws: WebSocket. */
  transport?: 'tcp' | 'tls' | 'ws';
}

export type XmppClient = Client & { received: Element[] };

export function makeClient(server: TestServer, o: ClientOptions): XmppClient {
  const service = o.transport === 'ws' ? `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`
    : o.transport === 'tls' ? `xmpps://127.0.0.1:${server.c2sDirectTlsPort}` : `xmpp://127.0.0.1:${server.c2sPort}`;
  const c = client({
    service, domain: 'localhost', resource: o.resource, timeout: 15_000,
    credentials: async (authenticate: (c: { username: string; password: string }, m: string) => Promise<void>, mechanisms: string[]) => {
      if (o.register) {
        if (o.invite) await c.iqCaller.set(xml('preauth', { xmlns: 'urn:xmpp:pars:0', token: o.invite }));
        await c.iqCaller.set(xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, o.username), xml('password', {}, o.password)));
      }
      await authenticate({ username: o.username, password: o.password }, mechanisms[0]!);
    },
  }) as XmppClient;
  c.reconnect.stop();
  // Stream management acks are requested on demand only (see ack()).
  c.streamManagement.requestAckInterval = 0;
  c.received = [];
  c.on('stanza', (s: Element) => c.received.push(s));
  c.on('error', () => {});
  return c;
}

/** Connects and logs in (and registers when asked). */
export async function connect(server: TestServer, o: ClientOptions): Promise<XmppClient> {
  const c = makeClient(server, o);
  await c.start();
  return c;
}

/** Resolves with the first received stanza (past or future) matching; rejects after a timeout. */
export function waitFor(c: XmppClient, pred: (s: Element) => boolean, what = 'stanza', ms = 10_000): Promise<Element> {
  const seen = c.received.find(pred);
  if (seen) { c.received.splice(c.received.indexOf(seen), 1); return Promise.resolve(seen); }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { c.off('stanza', on); reject(new Error(`timed out waiting for ${what}`)); }, ms);
    const on = (s: Element): void => {
      if (!pred(s)) return;
      clearTimeout(timer);
      c.off('stanza', on);
      c.received.splice(c.received.indexOf(s), 1);
      resolve(s);
    };
    c.on('stanza', on);
  });
}

export async function stopClient(c: XmppClient): Promise<void> {
  try { await c.stop(); } catch { /* already gone */ }
}

// ---- raw sockets, for what a well-behaved client never sends ----

export interface RawConn {
  data: string;
  send(s: string): void;
  /** Resolves when the accumulated input contains the text (or matches). */
  until(what: string | RegExp, ms?: number): Promise<string>;
  closed: Promise<void>;
  socket: net.Socket | tls.TLSSocket;
  starttls(ca?: string): Promise<tls.TLSSocket>;
  end(): void;
}

const HEADER = `<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
export const streamHeader = HEADER;

/** localAddress: another loopback address (127.0.0.2 ...) to stand for another client. */
export async function raw(port: number, localAddress?: string): Promise<RawConn> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  await new Promise<void>((res, rej) => { socket.once('connect', res); socket.once('error', rej); });
  return wrap(socket);
}

/** Resolves once the accumulated data matches; `listeners` are called by the owner on each input. */
export function waitForData(data: () => string, listeners: Set<() => void>, what: string | RegExp, ms: number): Promise<string> {
  const test = (): boolean => (typeof what === 'string' ? data().includes(what) : what.test(data()));
  if (test()) return Promise.resolve(data());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { listeners.delete(check); reject(new Error(`timed out waiting for ${String(what)}; got: ${data().slice(-600)}`)); }, ms);
    const check = (): void => { if (test()) { clearTimeout(timer); listeners.delete(check); resolve(data()); } };
    listeners.add(check);
  });
}

function wrap(socket: net.Socket | tls.TLSSocket): RawConn {
  socket.setEncoding('utf8');
  const listeners = new Set<() => void>();
  let closedResolve!: () => void;
  const conn: RawConn = {
    data: '',
    socket,
    closed: new Promise<void>((r) => { closedResolve = r; }),
    send(s) { conn.socket.write(s); },
    until(what, ms = 10_000) { return waitForData(() => conn.data, listeners, what, ms); },
    async starttls(ca) {
      conn.socket.removeAllListeners('data');
      const t = tls.connect({ socket: conn.socket as net.Socket, servername: 'localhost', ca, rejectUnauthorized: !!ca });
      await new Promise<void>((res, rej) => { t.once('secureConnect', res); t.once('error', rej); });
      conn.socket = t;
      attach(t);
      return t;
    },
    end() { conn.socket.destroy(); },
  };
  const attach = (s: net.Socket | tls.TLSSocket): void => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => { conn.data += d; for (const l of [...listeners]) l(); });
    s.on('error', () => {});
  };
  attach(socket);
  socket.on('close', () => closedResolve());
  return conn;
}

/** A raw TCP stream, upgraded with STARTTLS, at the point where SASL can start. */
export async function rawSecure(port: number, localAddress?: string): Promise<RawConn> {
  const c = await raw(port, localAddress);
  c.send(HEADER);
  await c.until('<required/></starttls>');
  c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await c.until('<proceed');
  await c.starttls();
  c.data = '';
  c.send(HEADER);
  await c.until('</stream:features>');
  return c;
}

export const uniq = (p: string): string => `${p}${Math.random().toString(36).slice(2, 8)}`;

// ---- a minimal SCRAM-SHA-256 client for raw streams (@xmpp/client only speaks SCRAM-SHA-1) ----
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

export async function rawScramSha256(c: RawConn, username: string, password: string): Promise<boolean> {
  const cnonce = randomBytes(12).toString('base64');
  const first = `n=${username},r=${cnonce}`;
  c.data = '';
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from('n,,' + first).toString('base64')}</auth>`);
  const got = await c.until(/<\/challenge>|<\/failure>|<failure[^>]*\/>/);
  const ch = /<challenge[^>]*>([^<]*)<\/challenge>/.exec(got);
  if (!ch) return false;
  const serverFirst = Buffer.from(ch[1]!, 'base64').toString();
  const attrs = Object.fromEntries(serverFirst.split(',').map((p) => [p[0], p.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const stored = createHash('sha256').update(clientKey).digest();
  const finalNoProof = `c=biws,r=${attrs.r}`;
  const authMessage = `${first},${serverFirst},${finalNoProof}`;
  const sig = createHmac('sha256', stored).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!));
  c.data = '';
  c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(`${finalNoProof},p=${proof.toString('base64')}`).toString('base64')}</response>`);
  const res = await c.until(/<\/success>|<success[^>]*\/>|<\/failure>/);
  const ok = /<success[^>]*>([^<]*)<\/success>/.exec(res);
  if (!ok) return false;
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const expected = 'v=' + createHmac('sha256', serverKey).update(authMessage).digest('base64');
  if (Buffer.from(ok[1]!, 'base64').toString() !== expected) throw new Error('server signature does not verify');
  return true;
}

/** Raw TCP + STARTTLS + SCRAM-SHA-256 + bind: a session that answers nothing on its own. */
export async function rawLogin(port: number, username: string, password: string, resource = 'raw'): Promise<RawConn> {
  const c = await rawSecure(port);
  if (!(await rawScramSha256(c, username, password))) throw new Error('login failed: ' + c.data);
  c.data = '';
  c.send(streamHeader);
  await c.until('</stream:features>');
  c.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.until(/<jid>[^<]+<\/jid>/);
  c.data = '';
  return c;
}
