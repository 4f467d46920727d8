// One pi-im node for the benchmark, started the way an admin does (`npm start -- ...` from the
// repo root, flags fixed by issue 3), with a config file that lifts the per-connection limits a
// benchmark on loopback would otherwise hit. This module does not import im-server code.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCert } from './cert.js';
import { freePort, pidListeningOn, waitForPort } from './proc.js';
import type { Peer } from './prosody.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * Limits raised for the bench (keys of im-server's config file; each would otherwise throttle a
 * load generator on loopback, which is one "address" holding thousands of connections):
 * - maxConnectionsPerAddress: default 100 per source address; the bench opens thousands from 127.0.0.x.
 * - connectionLimitExempt: loopback source addresses the bench spreads over (127.0.0.1-16).
 * - stanzasPerSecond / stanzaBurst: per-connection flood limits (200/s, burst 1000) would cap senders.
 * - idleSeconds: idle connections must be held for the RSS measurement without traffic.
 * - logLevel warn: no per-login info lines on stdout in the middle of a measurement.
 */
export function benchConfig(): Record<string, unknown> {
  const exempt = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];
  for (let i = 2; i <= 16; i++) exempt.push(`127.0.0.${i}`, `::ffff:127.0.0.${i}`);
  return {
    logLevel: 'warn',
    limits: {
      maxConnectionsPerAddress: 1_000_000,
      connectionLimitExempt: exempt,
      stanzasPerSecond: 1_000_000,
      stanzaBurst: 1_000_000,
      idleSeconds: 3600,
    },
  };
}

export interface PiImOptions {
  domain?: string;
  c2sPort?: number;
  httpPort?: number;
  keep?: boolean;
  /** Extra flags after `npm start --`. */
  extraArgs?: string[];
}

export async function startPiIm(opts: PiImOptions = {}): Promise<Peer> {
  const domain = opts.domain ?? 'bench.local';
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-bench-'));
  const c2sPort = opts.c2sPort ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const { cert, key } = makeCert(dir, domain);
  const cfg = join(dir, 'bench-config.json');
  writeFileSync(cfg, JSON.stringify(benchConfig(), null, 2));
  const args = ['start', '--', '--domain', domain, '--data-dir', join(dir, 'data'), '--c2s-port', String(c2sPort), '--http-port', String(httpPort),
    '--registration', 'open', '--config', cfg, '--tls-cert', cert, '--tls-key', key, '--c2s-host', '127.0.0.1', '--http-host', '127.0.0.1', ...(opts.extraArgs ?? [])];
  // Own process group: npm -> sh -> tsx -> node; stop() signals the whole group.
  const child = spawn('npm', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keepTail = (b: Buffer) => {
    output = (output + b.toString()).slice(-8000);
  };
  child.stdout!.on('data', keepTail);
  child.stderr!.on('data', keepTail);
  let exited: string | undefined;
  child.on('exit', (code, sig) => {
    exited = `pi-im exited (code ${code}, signal ${sig}) while starting:\n${output}`;
  });
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* gone */
    }
  };
  try {
    await waitForPort('127.0.0.1', c2sPort, 60_000, () => exited);
    await waitForPort('127.0.0.1', httpPort, 10_000, () => exited);
  } catch (e) {
    killGroup('SIGKILL');
    throw new Error(`${(e as Error).message}\n${output}`);
  }
  const pid = pidListeningOn(c2sPort);
  if (!pid) {
    killGroup('SIGKILL');
    throw new Error(`pi-im listens on ${c2sPort} but its process was not found in /proc`);
  }
  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => child.once('exit', r));
      killGroup('SIGTERM');
      const t = setTimeout(() => killGroup('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
    }
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  };
  return { name: 'pi-im', pid, domain, host: '127.0.0.1', c2sPort, httpPort, wsUrl: `ws://127.0.0.1:${httpPort}/xmpp-websocket`, caFile: cert, dir, stop };
}

/** pi-im's fsync counter from /metrics (Prometheus text), or undefined if not exported. */
export async function piImFsyncs(httpPort: number): Promise<number | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    const text = await res.text();
    const m = /^pi_im_storage_fsyncs_total(?:\{[^}]*\})?\s+([0-9.e+]+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
