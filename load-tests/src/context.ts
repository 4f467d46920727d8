import { performance } from 'node:perf_hooks';
import { XmppClient, XmppError } from './xmpp/client.js';
import type { Mechanism } from './xmpp/sasl.js';
import { Metrics } from './metrics.js';

export type Transport = 'tcp' | 'ws';

/** What a VU needs to reach the server; shared by the runner, provisioning and the bench. */
export interface Target {
  host: string;
  port: number;
  domain: string;
  wsUrl?: string;
  ca?: Buffer;
  insecure: boolean;
  mechanism: Mechanism | 'auto';
  timeoutMs: number;
  /** Local addresses to spread connections over (e.g. 127.0.0.1-127.0.0.8); empty: the OS picks. */
  sourceAddresses: string[];
}

/** Wall-clock milliseconds with sub-ms precision, comparable between processes on one host. */
export const nowMs = () => performance.timeOrigin + performance.now();

export function newClient(t: Target, transport: Transport, n: number): XmppClient {
  if (transport === 'ws' && !t.wsUrl) throw new Error('WebSocket transport needs --ws URL');
  return new XmppClient({
    domain: t.domain,
    host: t.host,
    port: t.port,
    wsUrl: transport === 'ws' ? t.wsUrl : undefined,
    ca: t.ca,
    insecure: t.insecure,
    mechanism: t.mechanism,
    timeoutMs: t.timeoutMs,
    localAddress: t.sourceAddresses.length ? t.sourceAddresses[n % t.sourceAddresses.length] : undefined,
  });
}

/** Connect, STARTTLS, SASL and bind, recording each step; errors propagate to the caller. */
export async function connectAndLogin(
  t: Target,
  metrics: Metrics,
  transport: Transport,
  n: number,
  username: string,
  password: string,
  resource?: string,
): Promise<XmppClient> {
  const c = newClient(t, transport, n);
  const t0 = performance.now();
  try {
    const { tcpMs, tlsMs } = await c.connect();
    const { authMs, bindMs } = await c.login(username, password, resource);
    const total = performance.now() - t0;
    metrics.trend('connect', 'connect + TLS + SASL + bind, ms').add(total);
    metrics.trend(`connect_${transport}`, `connect over ${transport === 'tcp' ? 'TCP+STARTTLS' : 'WebSocket'}, ms`).add(total);
    metrics.trend('tcp_connect', 'TCP/WebSocket connect, ms').add(tcpMs);
    if (transport === 'tcp') metrics.trend('tls_handshake', 'STARTTLS negotiation + TLS handshake, ms').add(tlsMs);
    metrics.trend('auth', 'SASL authentication + stream restart, ms').add(authMs);
    metrics.trend('bind', 'resource binding, ms').add(bindMs);
    metrics.counter('logins', 'successful logins').add();
    return c;
  } catch (e) {
    c.destroy();
    throw e;
  }
}

/** Errors counted by kind and message; the summary lists the most frequent ones. */
export class ErrorLog {
  readonly byMessage = new Map<string, number>();
  constructor(private metrics: Metrics) {}
  add(kind: string, e: unknown, n = 1): void {
    this.metrics.counter('errors', 'all failures: connects, logins, iterations, disconnects, lost messages').add(n);
    this.metrics.counter(`errors_${kind}`, `failures in ${kind}`).add(n);
    const msg = e instanceof XmppError ? e.message : e instanceof Error ? e.message : String(e);
    const key = `${kind}: ${msg.slice(0, 160)}`;
    if (this.byMessage.size < 200 || this.byMessage.has(key)) this.byMessage.set(key, (this.byMessage.get(key) ?? 0) + n);
  }
  top(n = 10): Array<[string, number]> {
    return [...this.byMessage].sort((a, b) => b[1] - a[1]).slice(0, n);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `fn` over 0..n-1 with at most `limit` in flight. */
export async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** `127.0.0.1-127.0.0.8` or `127.0.0.1,127.0.0.2` -> list. */
export function parseAddresses(s: string): string[] {
  const out: string[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+\.\d+\.\d+\.)(\d+)-(?:\d+\.\d+\.\d+\.)?(\d+)$/.exec(part);
    if (m) {
      const lo = Number(m[2]);
      const hi = Number(m[3]);
      if (hi < lo || hi > 255) throw new Error(`bad address range "${part}"`);
      for (let i = lo; i <= hi; i++) out.push(`${m[1]}${i}`);
    } else out.push(part);
  }
  return out;
}
