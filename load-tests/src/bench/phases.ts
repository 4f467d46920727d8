// The measurements of one server in the benchmark: idle connections and their memory, then
// 1:1 message load at a fixed rate and at saturation. Same client, same load for every server.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { connectAndLogin, newClient, nowMs, pool, sleep, type Target, type Transport } from '../context.js';
import { Histogram, Metrics } from '../metrics.js';
import { chatBody, sentAtOf } from '../scenarios/chat.js';
import { cpuSeconds, rssKiB } from '../peers/proc.js';
import { piImFsyncs } from '../peers/piim.js';
import type { Peer } from '../peers/prosody.js';
import type { XmppClient } from '../xmpp/client.js';

export interface BenchOptions {
  connections: number;
  /** Sender→receiver pairs for message load (at most half the connections). */
  senders: number;
  /** Closed loop: messages in flight per sender at saturation. */
  window: number;
  /** Messages delivered in the saturation phase. */
  messages: number;
  /** Fixed-rate phase: messages per second and duration. */
  rate: number;
  rateSeconds: number;
  /** Offline-storage phase: messages per second to accounts that are not logged in. */
  offlineRate: number;
  offlineSeconds: number;
  messageSize: number;
  transport: Transport;
  sourceAddresses: string[];
  concurrency: number;
  holdSeconds: number;
  strace: boolean;
  log: (s: string) => void;
}

export interface LatencyFigures {
  p50: number;
  p99: number;
  max: number;
}

export interface BenchResult {
  server: string;
  error?: string;
  connectionsWanted: number;
  connectionsHeld: number;
  connectFailures: number;
  connect?: LatencyFigures;
  registrationsPerSec?: number;
  rssBaseKiB?: number;
  rssIdleKiB?: number;
  rssPerIdleConnKiB?: number;
  /**
   * The load generator's own memory per connection (TLS socket, parser, client state). In the JSON
   * only: the first server's run also pays the client process's one-time heap growth.
   */
  clientRssPerConnKiB?: number;
  fixedRate?: { rate: number; sent: number; delivered: number; lost: number; serverCores: number } & LatencyFigures;
  saturation?: { messages: number; seconds: number; msgsPerSec: number; serverCpuSeconds: number; serverCpuPer1000: number; clientCpuPer1000: number } & LatencyFigures;
  offline?: { rate: number; seconds: number; sent: number; serverCpuPer1000: number; deliveredAtLogin?: string };
  fsyncsPerSec?: number;
  fsyncSource?: string;
  notes: string[];
}

const figures = (h: Histogram): LatencyFigures => ({ p50: round(h.percentile(50)), p99: round(h.percentile(99)), max: round(h.max) });
const round = (x: number) => Math.round(x * 1000) / 1000;
const clientCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Pairs of clients with message accounting; the receiver measures latency from the body. */
class Pairs {
  delivered = 0;
  hist = new Histogram();
  onDelivered: ((sender: number) => void) | undefined;
  constructor(
    readonly senders: XmppClient[],
    readonly receivers: XmppClient[],
    private size: number,
  ) {
    receivers.forEach((r, i) => {
      r.onMessage = (el) => {
        const body = el.child('body')?.text();
        const t = body === undefined ? undefined : sentAtOf(body);
        if (t === undefined) return;
        this.delivered++;
        this.hist.add(nowMs() - t);
        this.onDelivered?.(i);
      };
    });
  }
  send(i: number): void {
    const s = this.senders[i]!;
    if (s.isOpen) s.sendMessage(this.receivers[i]!.jid.split('/')[0]!, chatBody(this.size));
  }
  reset(): void {
    this.delivered = 0;
    this.hist = new Histogram();
  }
}

async function waitUntil(pred: () => boolean, stallMs: number, progress: () => number): Promise<boolean> {
  let last = progress();
  let lastChange = Date.now();
  while (!pred()) {
    await sleep(10);
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) return false;
  }
  return true;
}

/** Counts fsync-family syscalls of `pid` (all threads) while `during` runs, with strace -c. */
async function straceFsyncs(pid: number, during: () => Promise<void>): Promise<number | undefined> {
  const st = spawn('strace', ['-f', '--seccomp-bpf', '-c', '-e', 'trace=fsync,fdatasync,sync_file_range,msync', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  st.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => st.on('exit', r));
  st.on('error', () => {});
  await sleep(500); // attach to all threads
  await during();
  st.kill('SIGINT');
  await exited;
  if (!/attached/.test(err)) return undefined; // strace prints no table when it counted nothing
  let calls = 0;
  for (const line of err.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols[cols.length - 1];
    if (name && /^(fsync|fdatasync|sync_file_range|msync)$/.test(name)) calls += Number(cols[3]) || 0;
  }
  return calls;
}

export async function benchServer(peer: Peer, o: BenchOptions): Promise<BenchResult> {
  const r: BenchResult = { server: peer.name, connectionsWanted: o.connections, connectionsHeld: 0, connectFailures: 0, notes: [] };
  const target: Target = {
    host: peer.host, port: peer.c2sPort, domain: peer.domain, wsUrl: peer.wsUrl, ca: readFileSync(peer.caFile), insecure: false,
    mechanism: 'auto', timeoutMs: 60_000, sourceAddresses: o.sourceAddresses,
  };
  const log = (s: string) => o.log(`[${peer.name}] ${s}`);
  // The bench shares the machine: a busy neighbour (a QEMU guest, a test suite) skews every figure.
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  r.notes.push(`load average at start ${load()}`);
  const password = 'bench-password';
  const name = (i: number) => `b${i}`;
  const offlineName = (k: number) => `off${k}`;
  const offlineCount = Math.max(1, Math.min(50, o.senders));
  const clients: Array<XmppClient | undefined> = new Array(o.connections);
  try {
    // 1. Accounts.
    log(`registering ${o.connections} accounts`);
    let t0 = performance.now();
    let regErrors = 0;
    let firstRegError = '';
    await pool(o.connections, o.concurrency, async (i) => {
      const c = newClient(target, o.transport, i);
      try {
        await c.connect();
        await c.register(name(i), password);
      } catch (e) {
        regErrors++;
        firstRegError ||= (e as Error).message;
      } finally {
        c.destroy();
      }
    });
    await pool(offlineCount, o.concurrency, async (k) => {
      const c = newClient(target, o.transport, k);
      try {
        await c.connect();
        await c.register(offlineName(k), password);
      } catch (e) {
        regErrors++;
        firstRegError ||= (e as Error).message;
      } finally {
        c.destroy();
      }
    });
    if (regErrors) throw new Error(`${regErrors} registrations failed, first: ${firstRegError}`);
    r.registrationsPerSec = round(o.connections / ((performance.now() - t0) / 1000));
    await sleep(1000);
    r.rssBaseKiB = rssKiB(peer.pid);

    // 2. Idle connections.
    log(`logging in ${o.connections} connections (${o.transport}, ${o.concurrency} at a time)`);
    const metrics = new Metrics();
    const clientRss0 = process.memoryUsage().rss;
    let firstLoginError = '';
    t0 = performance.now();
    await pool(o.connections, o.concurrency, async (i) => {
      try {
        const c = await connectAndLogin(target, metrics, o.transport, i, name(i), password, 'bench');
        c.sendPresence();
        clients[i] = c;
      } catch (e) {
        r.connectFailures++;
        firstLoginError ||= (e as Error).message;
      }
    });
    if (firstLoginError) r.notes.push(`${r.connectFailures} logins failed, first: ${firstLoginError}`);
    const connect = metrics.trend('connect').all;
    if (connect.count) r.connect = figures(connect);
    log(`${connect.count} logged in after ${((performance.now() - t0) / 1000).toFixed(1)} s; holding idle for ${o.holdSeconds} s`);
    await sleep(o.holdSeconds * 1000);
    const open = clients.filter((c): c is XmppClient => Boolean(c?.isOpen));
    r.connectionsHeld = open.length;
    r.rssIdleKiB = rssKiB(peer.pid);
    if (open.length) {
      r.rssPerIdleConnKiB = round((r.rssIdleKiB - r.rssBaseKiB) / open.length);
      r.clientRssPerConnKiB = round((process.memoryUsage().rss - clientRss0) / 1024 / open.length);
    }

    // 3. Messages between pairs of the held connections.
    const s = Math.min(o.senders, Math.floor(open.length / 2));
    if (s < 1) throw new Error('fewer than 2 connections held: no message load possible');
    const pairs = new Pairs(open.slice(0, s), open.slice(s, 2 * s), o.messageSize);

    // 3a. Warm-up (JIT, caches), not measured.
    const warm = Math.min(2000, Math.max(s, Math.floor(o.messages / 10)));
    for (let i = 0; i < warm; i++) pairs.send(i % s);
    await waitUntil(() => pairs.delivered >= warm, 10_000, () => pairs.delivered);
    pairs.reset();

    // 3b. Fixed rate: the same offered load for every server.
    log(`fixed rate: ${o.rate} msg/s for ${o.rateSeconds} s over ${s} pairs`);
    let sent = 0;
    const frCpu0 = cpuSeconds(peer.pid);
    t0 = performance.now();
    while (performance.now() - t0 < o.rateSeconds * 1000) {
      const due = Math.floor(((performance.now() - t0) / 1000) * o.rate);
      for (; sent < due; sent++) pairs.send(sent % s);
      await sleep(5);
    }
    await waitUntil(() => pairs.delivered >= sent, 5000, () => pairs.delivered);
    const frCores = round((cpuSeconds(peer.pid) - frCpu0) / ((performance.now() - t0) / 1000));
    r.fixedRate = { rate: o.rate, sent, delivered: pairs.delivered, lost: sent - pairs.delivered, serverCores: frCores, ...figures(pairs.hist) };
    pairs.reset();

    // 3c. Saturation: closed loop, `window` messages in flight per sender.
    log(`saturation: ${o.messages} messages, ${s} senders × window ${o.window}`);
    let budget = o.messages;
    pairs.onDelivered = (i) => {
      if (budget > 0) {
        budget--;
        pairs.send(i);
      }
    };
    const fs0 = peer.name === 'pi-im' ? await piImFsyncs(peer.httpPort) : undefined;
    const cpu0 = cpuSeconds(peer.pid);
    const ccpu0 = clientCpu();
    t0 = performance.now();
    for (let k = 0; k < o.window; k++) for (let i = 0; i < s && budget > 0; i++, budget--) pairs.send(i);
    const done = await waitUntil(() => pairs.delivered >= o.messages, 10_000, () => pairs.delivered);
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(peer.pid) - cpu0;
    const ccpu = clientCpu() - ccpu0;
    pairs.onDelivered = undefined;
    if (!done) r.notes.push(`saturation stalled: ${pairs.delivered} of ${o.messages} delivered`);
    const n = pairs.delivered;
    r.saturation = {
      messages: n, seconds: round(secs), msgsPerSec: round(n / secs), serverCpuSeconds: round(cpu),
      serverCpuPer1000: round((cpu / n) * 1000), clientCpuPer1000: round((ccpu / n) * 1000), ...figures(pairs.hist),
    };
    if (fs0 !== undefined) {
      const fs1 = await piImFsyncs(peer.httpPort);
      if (fs1 !== undefined) r.notes.push(`pi_im_storage_fsyncs_total grew by ${round((fs1 - fs0) / secs)}/s during saturation (online messages)`);
    }

    r.notes.push(`load average after the message phases ${load()}`);

    // 4. Offline storage: messages to accounts that are not logged in must be stored durably;
    //    this is where fsyncs happen. strace counts them for both servers alike.
    log(`offline: ${o.offlineRate} msg/s for ${o.offlineSeconds} s to ${offlineCount} offline accounts`);
    let offSent = 0;
    const sentTo = new Array<number>(offlineCount).fill(0);
    const offCpu0 = cpuSeconds(peer.pid);
    const fsOff0 = peer.name === 'pi-im' ? await piImFsyncs(peer.httpPort) : undefined;
    const offline = async () => {
      const p0 = performance.now();
      while (performance.now() - p0 < o.offlineSeconds * 1000) {
        const due = Math.floor(((performance.now() - p0) / 1000) * o.offlineRate);
        for (; offSent < due; offSent++) {
          const k = offSent % offlineCount;
          const sender = open[offSent % s]!;
          if (sender.isOpen) {
            sender.sendMessage(`${offlineName(k)}@${peer.domain}`, chatBody(o.messageSize));
            sentTo[k]!++;
          }
        }
        await sleep(5);
      }
      await sleep(1000); // let the last group commit land
    };
    const calls = o.strace ? await straceFsyncs(peer.pid, offline) : (await offline(), undefined);
    const offCpu = cpuSeconds(peer.pid) - offCpu0;
    r.offline = { rate: o.offlineRate, seconds: o.offlineSeconds, sent: offSent, serverCpuPer1000: round((offCpu / offSent) * 1000) };
    if (calls !== undefined) {
      r.fsyncsPerSec = round(calls / o.offlineSeconds);
      r.fsyncSource = `strace -f -c (fsync, fdatasync, sync_file_range, msync) while storing ${o.offlineRate} offline msg/s`;
    } else if (o.strace) r.notes.push('strace could not attach; fsyncs unknown');
    if (fsOff0 !== undefined) {
      const fsOff1 = await piImFsyncs(peer.httpPort);
      if (fsOff1 !== undefined) r.notes.push(`pi_im_storage_fsyncs_total grew by ${round((fsOff1 - fsOff0) / o.offlineSeconds)}/s while storing offline messages`);
    }
    // Check that storing was real: the first offline account logs in and gets its messages.
    const check = await connectAndLogin(target, new Metrics(), o.transport, 0, offlineName(0), password, 'check');
    let got = 0;
    check.onMessage = (el) => {
      if (sentAtOf(el.child('body')?.text() ?? '') !== undefined) got++;
    };
    check.sendPresence();
    await waitUntil(() => got >= sentTo[0]!, 3000, () => got);
    check.destroy();
    r.offline.deliveredAtLogin = `${got} of ${sentTo[0]}`;
    r.notes.push(`offline check: ${offlineName(0)} got ${got} of the ${sentTo[0]} messages sent to it while offline, at its next login${got === sentTo[0] ? '' : ' (MISSING MESSAGES)'}`);
  } catch (e) {
    r.error = (e as Error).message.split('\n')[0];
    log(`FAILED: ${(e as Error).message}`);
  } finally {
    for (const c of clients) c?.destroy();
  }
  return r;
}
