// `npm run bench`: the same 1:1 chat load against one pi-im node and a throw-away Prosody, in one run.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAddresses, type Transport } from '../context.js';
import { startPiIm, REPO_ROOT } from '../peers/piim.js';
import { startProsody, type Peer } from '../peers/prosody.js';
import { benchServer, type BenchOptions, type BenchResult } from './phases.js';
import { medianResult, renderBench } from './report.js';

const USAGE = `usage: npm run bench -- [--connections 2000] [--messages 50000] [--senders 200] [--window 10]
         [--rate 1000] [--rate-seconds 10] [--offline-rate 500] [--offline-seconds 5] [--message-size 100] [--transport tcp|ws] [--servers pi-im,prosody]
         [--concurrency 100] [--hold 5] [--source-addresses auto|127.0.0.1-127.0.0.8] [--no-strace] [--repeat N] [--prosody-config LUA] [--out DIR]
Defaults finish in a few minutes on 2 cores. --connections 10000 tries the 10,000-idle-connections target
(loopback; connections are spread over 127.0.0.x source addresses to stay clear of the ephemeral port range).
--repeat N alternates the servers N times and reports the median of each figure (the host is shared: runs vary).`;

function openFilesLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

function ephemeralPorts(): number {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return hi! - lo! + 1;
  } catch {
    return 28_000;
  }
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({
    options: {
      connections: { type: 'string' }, messages: { type: 'string' }, senders: { type: 'string' }, window: { type: 'string' },
      rate: { type: 'string' }, 'rate-seconds': { type: 'string' }, 'offline-rate': { type: 'string' }, 'offline-seconds': { type: 'string' }, 'message-size': { type: 'string' }, transport: { type: 'string' },
      servers: { type: 'string' }, concurrency: { type: 'string' }, hold: { type: 'string' }, 'source-addresses': { type: 'string' },
      'no-strace': { type: 'boolean' }, repeat: { type: 'string' }, 'prosody-config': { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' },
    },
    strict: true,
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const num = (k: keyof typeof v, def: number) => {
    const x = v[k] === undefined ? def : Number(v[k]);
    if (!Number.isFinite(x) || x <= 0) throw new Error(`--${k} must be a positive number`);
    return x;
  };
  const connections = num('connections', 2000);
  const servers = ((v.servers as string | undefined) ?? 'pi-im,prosody').split(',').map((s) => s.trim());
  for (const s of servers) if (s !== 'pi-im' && s !== 'prosody') throw new Error(`unknown server "${s}" in --servers (pi-im, prosody)`);
  // Each server run opens `connections` sessions plus `connections` short registration connections,
  // and closed ones linger in TIME_WAIT on our side: keep each source address under its port range.
  const sa = (v['source-addresses'] as string | undefined) ?? 'auto';
  let sourceAddresses: string[] = [];
  if (sa === 'auto') {
    const needed = Math.ceil((connections * 2 * servers.length) / (ephemeralPorts() * 0.8));
    if (needed > 1) sourceAddresses = parseAddresses(`127.0.0.1-127.0.0.${Math.min(16, needed)}`);
  } else if (sa !== 'none') sourceAddresses = parseAddresses(sa);
  const limit = openFilesLimit();
  if (connections + 200 > limit) throw new Error(`open-files limit ${limit} is below ${connections} connections: run "ulimit -n ${connections + 1000}" (as root, or raise the hard limit) and retry`);
  const o: BenchOptions = {
    connections,
    senders: Math.min(num('senders', 200), Math.floor(connections / 2)),
    window: num('window', 10),
    messages: num('messages', 50_000),
    rate: num('rate', 1000),
    rateSeconds: num('rate-seconds', 10),
    offlineRate: num('offline-rate', 500),
    offlineSeconds: num('offline-seconds', 5),
    messageSize: num('message-size', 100),
    transport: ((v.transport as string | undefined) ?? 'tcp') as Transport,
    sourceAddresses,
    concurrency: num('concurrency', 100),
    holdSeconds: num('hold', 5),
    strace: !v['no-strace'],
    log: (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`),
  };
  if (sourceAddresses.length) o.log(`spreading connections over ${sourceAddresses.length} source addresses (${sourceAddresses[0]}…${sourceAddresses.at(-1)})`);

  const rounds = num('repeat', 1);
  const perServer = new Map<string, BenchResult[]>(servers.map((s) => [s, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const name of servers) {
      let peer: Peer | undefined;
      try {
        o.log(`[${name}] starting${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}`);
        peer = name === 'pi-im' ? await startPiIm() : await startProsody({ extraConfig: v['prosody-config'] as string | undefined });
        o.log(`[${name}] pid ${peer.pid}, c2s ${peer.c2sPort}`);
        perServer.get(name)!.push(await benchServer(peer, o));
      } catch (e) {
        o.log(`[${name}] could not start: ${(e as Error).message}`);
        perServer.get(name)!.push({ server: name, error: `could not start: ${(e as Error).message.split('\n')[0]}`, connectionsWanted: connections, connectionsHeld: 0, connectFailures: 0, notes: [] });
      } finally {
        await peer?.stop();
      }
    }
  }
  const results = servers.map((s) => medianResult(perServer.get(s)!));
  const date = new Date().toISOString();
  const md = renderBench(results, o, { date, host: `${hostname()}, ${cpus().length} cores, Node ${process.version}`, rounds });
  process.stdout.write(`\n${md}`);
  const dir = v.out === undefined ? join(REPO_ROOT, 'load-tests', 'results') : resolve(process.env.INIT_CWD ?? process.cwd(), v.out as string);
  mkdirSync(dir, { recursive: true });
  const stamp = date.replace(/[:.]/g, '-');
  const json = JSON.stringify({ date, options: { ...o, log: undefined, rounds }, rounds: Object.fromEntries(perServer), results: results.map(({ medians, ...r }) => ({ ...r, medians: medians && Object.fromEntries(medians) })) }, null, 2);
  for (const base of [`bench-${stamp}`, 'bench-latest']) {
    writeFileSync(join(dir, `${base}.md`), md);
    writeFileSync(join(dir, `${base}.json`), `${json}\n`);
  }
  process.stdout.write(`\nwritten: ${join(dir, `bench-${stamp}.md`)} and .json\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  },
);
