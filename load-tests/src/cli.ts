#!/usr/bin/env node
// k6-shaped XMPP load test. `npm run load -- --help` for the flags.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration, parseRange } from './duration.js';
import { parseAddresses, type Target } from './context.js';
import { parseMix, SCENARIOS } from './scenarios/index.js';
import { parseStages, stagesFromFlags } from './stages.js';
import { parseThreshold, parseThresholdList, type Threshold } from './thresholds.js';
import { randomPassword, randomPrefix, run, type RunOptions } from './runner.js';
import { renderSummary } from './report.js';
import { renderSearch, search, type SearchOptions } from './search.js';
import type { Mechanism } from './xmpp/sasl.js';

export const USAGE = `usage: npm run load -- --domain D [--host H] [--port P] [--ws URL] [--tls-ca FILE | --insecure]
       --users N --duration 60s [--ramp 10s] [--scenario chat] [--threshold 'delivery_p95<500'] [--summary-json FILE]

target
  --host H                 server address (default 127.0.0.1)
  --port P                 XMPP client port, STARTTLS required (default 5222)
  --domain D               XMPP domain (required)
  --ws URL                 XMPP over WebSocket endpoint, e.g. wss://chat.example.org/xmpp-websocket
  --transport T            tcp | ws | both (VUs alternate); default: both when --ws is given, else tcp
  --tls-ca FILE            PEM CA that signed the server certificate (your site CA)
  --insecure               accept any certificate (throw-away test servers only)
  --sasl M                 auto | SCRAM-SHA-256 | SCRAM-SHA-1 | PLAIN (default auto: best offered)
  --source-addresses A     spread connections over local addresses, e.g. 127.0.0.1-127.0.0.8

load
  --scenario MIX           ${Object.keys(SCENARIOS).join(' | ')}, or weighted: chat:70,roster:20,connect:10
  --users N                VUs (ramping-vus: the target; constant-arrival-rate: VUs held)
  --ramp 10s               ramp 0→N first (default 0); then --duration holds N; total = ramp + duration
  --duration 60s           how long to hold the load
  --stages 30s:50,1m:50,10s:0   k6 stages instead of --users/--ramp/--duration
  --executor E             ramping-vus (default) | constant-arrival-rate
  --rate R                 constant-arrival-rate: iterations started per second
  --think T                pause between iterations: 1s or a range 0.5s-2s (default per scenario)
  --message-size B         chat body bytes: 100 or a range 50-500 (default 100)
  --file-size B            upload: file bytes, e.g. 100000 or 10000-2000000 (default 100000)
  --upload-service JID     upload: the XEP-0363 service (default upload.<domain>)
  --http-base URL          upload: send PUT/GET to this origin instead of the one in the slot URLs
                           (a site reached through another address, e.g. https://127.0.0.1:8443)
  --muc-service JID        groupchat: the XEP-0045 service (default conference.<domain>)
  --room-size N            groupchat: occupants per room (default 10)

accounts
  --user-prefix P          account names P0, P1, ... (default lt<random>_)
  --password W             (default random; env LOAD_PASSWORD)
  --no-register            accounts exist already (admin-created): do not register or remove them
  --keep-accounts          register but do not remove them afterwards
  --provision-concurrency N   parallel registrations/removals (default 50)

capacity search (instead of one run)
  --search-max N           search the largest user count that meets every threshold: start at --users,
                           double until a run fails or N is reached, then bisect; each step is a full run
  --search-resolution F    stop bisecting when the gap is within F of the passing count (default 0.1)
  --search-min N           exit 99 when the capacity found is below N (default 1)

results
  --threshold EXPR         repeatable: delivery_p95<500, errors==0, connect_p95<2s, messages_received_rate>10
  --thresholds-file FILE   one threshold per line (# comments)
  --config FILE            JSON with any of these flags as keys ("threshold": [...] for several)
  --summary-json FILE      write all metrics (p50/p90/p95/p99/max, counts) and threshold results
  --no-progress            no live progress line on stderr
  --timeout 30s            per protocol step
  --drain 5s               wait for in-flight messages at the end

exit code: 0 all thresholds met, 99 a threshold failed, 2 bad usage, 1 the run could not be done`;

const OPTIONS = {
  host: { type: 'string' }, port: { type: 'string' }, domain: { type: 'string' }, ws: { type: 'string' },
  transport: { type: 'string' }, 'tls-ca': { type: 'string' }, insecure: { type: 'boolean' }, sasl: { type: 'string' },
  'source-addresses': { type: 'string' }, scenario: { type: 'string' }, users: { type: 'string' }, ramp: { type: 'string' },
  duration: { type: 'string' }, stages: { type: 'string' }, executor: { type: 'string' }, rate: { type: 'string' },
  think: { type: 'string' }, 'message-size': { type: 'string' }, 'user-prefix': { type: 'string' }, password: { type: 'string' },
  'no-register': { type: 'boolean' }, 'keep-accounts': { type: 'boolean' }, 'provision-concurrency': { type: 'string' },
  threshold: { type: 'string', multiple: true }, 'thresholds-file': { type: 'string' }, config: { type: 'string' },
  'summary-json': { type: 'string' }, 'no-progress': { type: 'boolean' }, timeout: { type: 'string' }, drain: { type: 'string' },
  'file-size': { type: 'string' }, 'upload-service': { type: 'string' }, 'http-base': { type: 'string' },
  'muc-service': { type: 'string' }, 'room-size': { type: 'string' },
  'search-max': { type: 'string' }, 'search-resolution': { type: 'string' }, 'search-min': { type: 'string' },
  help: { type: 'boolean' },
} as const;

export class UsageError extends Error {}

/** Paths on the command line are relative to where the user typed it (npm -w changes the cwd). */
export const userPath = (p: string) => resolve(process.env.INIT_CWD ?? process.cwd(), p);

type Values = Record<string, string | boolean | string[] | undefined>;

function int(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

/** Reads --config (JSON), then lets command-line flags override it. */
function merged(argv: string[]): Values {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  const v = values as Values;
  if (typeof v.config !== 'string') return v;
  let file: Record<string, unknown>;
  try {
    file = JSON.parse(readFileSync(userPath(v.config), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`--config ${v.config}: ${(e as Error).message}`);
  }
  const out: Values = {};
  for (const [k, val] of Object.entries(file)) {
    if (!(k in OPTIONS)) throw new UsageError(`--config ${v.config}: unknown key "${k}" (keys are the flag names, e.g. "users", "threshold")`);
    if (k === 'threshold') out[k] = (Array.isArray(val) ? val : [val]).map(String);
    else out[k] = typeof val === 'boolean' ? val : String(val);
  }
  for (const [k, val] of Object.entries(v)) if (val !== undefined) out[k] = k === 'threshold' ? [...((out[k] as string[]) ?? []), ...(val as string[])] : val;
  return out;
}

export type CliOptions = RunOptions & { summaryJson?: string; search?: SearchOptions & { min: number } };

export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliOptions {
  let v: Values;
  try {
    v = merged(argv);
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  }
  if (v.help) throw new UsageError('');
  const s = (k: string) => v[k] as string | undefined;
  const domain = s('domain');
  if (!domain) throw new UsageError('--domain is required (the XMPP domain of the site, e.g. chat.example.org)');
  if (v.insecure && s('tls-ca')) throw new UsageError('give --tls-ca FILE or --insecure, not both');
  let ca: Buffer | undefined;
  if (s('tls-ca')) {
    try {
      ca = readFileSync(userPath(s('tls-ca')!));
    } catch (e) {
      throw new UsageError(`--tls-ca: cannot read ${s('tls-ca')}: ${(e as Error).message}`);
    }
  }
  const wsUrl = s('ws');
  if (wsUrl && !/^wss?:\/\//.test(wsUrl)) throw new UsageError(`--ws must be a ws:// or wss:// URL, got "${wsUrl}"`);
  const transport = (s('transport') ?? (wsUrl ? 'both' : 'tcp')) as RunOptions['transport'];
  if (!['tcp', 'ws', 'both'].includes(transport)) throw new UsageError(`--transport must be tcp, ws or both, got "${transport}"`);
  if (transport !== 'tcp' && !wsUrl) throw new UsageError(`--transport ${transport} needs --ws URL`);
  const sasl = (s('sasl') ?? 'auto') as Mechanism | 'auto';
  if (!['auto', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'].includes(sasl)) throw new UsageError(`--sasl must be auto, SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN, got "${sasl}"`);
  const dur = (k: string, def: string) => {
    try {
      return parseDuration(s(k) ?? def);
    } catch (e) {
      throw new UsageError(`--${k}: ${(e as Error).message}`);
    }
  };
  const executor = (s('executor') ?? 'ramping-vus') as RunOptions['executor'];
  if (!['ramping-vus', 'constant-arrival-rate'].includes(executor)) throw new UsageError(`--executor must be ramping-vus or constant-arrival-rate, got "${executor}"`);
  const users = int(s('users'), 'users', 10, 1);
  const rampMs = dur('ramp', '0s');
  const durationMs = dur('duration', '30s');
  let stages;
  try {
    stages = s('stages') ? parseStages(s('stages')!) : stagesFromFlags(users, rampMs, durationMs);
  } catch (e) {
    throw new UsageError(`--stages: ${(e as Error).message}`);
  }
  const rate = Number(s('rate') ?? 0);
  if (executor === 'constant-arrival-rate' && !(rate > 0)) throw new UsageError('--executor constant-arrival-rate needs --rate R (iterations per second, > 0)');
  let mix;
  let think;
  let messageSize;
  const thresholds: Threshold[] = [];
  try {
    mix = parseMix(s('scenario') ?? 'chat');
    think = s('think') ? parseRange(s('think')!) : undefined;
    messageSize = parseRange(s('message-size') ?? '100', (x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 0) throw new Error(`bad size "${x}": bytes, e.g. 100 or 50-500`);
      return n;
    });
    for (const t of (v.threshold as string[] | undefined) ?? []) thresholds.push(parseThreshold(t));
    if (s('thresholds-file')) thresholds.push(...parseThresholdList(readFileSync(userPath(s('thresholds-file')!), 'utf8')));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let fileSize;
  try {
    fileSize = parseRange(s('file-size') ?? '100000', (x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 1) throw new Error(`bad --file-size "${x}": bytes, e.g. 100000 or 10000-2000000`);
      return n;
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const httpBase = s('http-base');
  if (httpBase !== undefined && !/^https?:\/\/[^/]+\/?$/.test(httpBase)) throw new UsageError(`--http-base must be an origin such as https://127.0.0.1:8443, got "${httpBase}"`);
  const features = {
    fileSize, httpBase: httpBase?.replace(/\/$/, ''),
    uploadService: s('upload-service') ?? `upload.${domain}`,
    mucService: s('muc-service') ?? `conference.${domain}`,
    roomSize: int(s('room-size'), 'room-size', 10, 2),
  };
  const target: Target = {
    host: s('host') ?? '127.0.0.1',
    port: int(s('port'), 'port', 5222, 1),
    domain,
    wsUrl,
    ca,
    insecure: Boolean(v.insecure),
    mechanism: sasl,
    timeoutMs: dur('timeout', '30s'),
    sourceAddresses: s('source-addresses') ? parseAddresses(s('source-addresses')!) : [],
  };
  let searchOpts: CliOptions['search'];
  if (s('search-max') !== undefined) {
    const max = int(s('search-max'), 'search-max', 0, 1);
    const resolution = Number(s('search-resolution') ?? '0.1');
    if (!(resolution > 0 && resolution < 1)) throw new UsageError(`--search-resolution must be a fraction between 0 and 1, got "${s('search-resolution')}"`);
    if (s('stages')) throw new UsageError('--search-max uses --users (start), --ramp and --duration for each step; drop --stages');
    if (executor !== 'ramping-vus') throw new UsageError('--search-max searches a number of users: use the ramping-vus executor');
    if (thresholds.length === 0) throw new UsageError('--search-max needs thresholds (--threshold or --thresholds-file): they define what "still serves" means');
    if (max < users) throw new UsageError(`--search-max (${max}) must be at least --users (${users}), where the search starts`);
    searchOpts = { start: users, max, resolution, min: int(s('search-min'), 'search-min', 1, 0) };
  } else if (s('search-resolution') !== undefined || s('search-min') !== undefined) {
    throw new UsageError('--search-resolution and --search-min only apply with --search-max N');
  }
  const register = !v['no-register'];
  const password = s('password') ?? env.LOAD_PASSWORD;
  if (!register && (!s('user-prefix') || !password)) throw new UsageError('--no-register needs --user-prefix and --password (or LOAD_PASSWORD) for the existing accounts');
  return {
    target, transport, executor, stages, users, rate, rampMs, durationMs, mix, think, messageSize, features, thresholds,
    register, keepAccounts: Boolean(v['keep-accounts']),
    userPrefix: s('user-prefix') ?? randomPrefix(),
    password: password ?? randomPassword(),
    provisionConcurrency: int(s('provision-concurrency'), 'provision-concurrency', 50, 1),
    drainMs: dur('drain', '5s'),
    progress: !v['no-progress'],
    summaryJson: s('summary-json') === undefined ? undefined : userPath(s('summary-json')!),
    search: searchOpts,
  };
}

function writeJson(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  process.stdout.write(`summary written to ${file}\n`);
}

async function runSearch(opts: CliOptions, o: SearchOptions & { min: number }): Promise<number> {
  const result = await search(opts, o, (x) => parseRange(x), (step, r) => {
    process.stdout.write(`\n${renderSummary(r)}\n\nstep: ${step.users} users ${step.passed ? 'PASS' : `FAIL (${step.failed.join(', ')})`}\n`);
  });
  process.stdout.write(`\ncapacity search (${opts.target.domain}, ${(opts.rampMs / 1000).toFixed(0)} s ramp + ${(opts.durationMs / 1000).toFixed(0)} s hold per step):\n${renderSearch(result)}\n`);
  if (opts.summaryJson) writeJson(opts.summaryJson, result);
  return result.capacity >= o.min ? 0 : 99;
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseCli(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(e.message ? `error: ${e.message}\n\n${USAGE}\n` : `${USAGE}\n`);
      return e.message ? 2 : 0;
    }
    throw e;
  }
  // First Ctrl-C ends the load early but still removes the accounts and prints the summary (like k6).
  const abort = new AbortController();
  opts.signal = abort.signal;
  process.on('SIGINT', () => {
    if (abort.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping: removing test accounts and printing the summary (Ctrl-C again to quit now)\n');
    abort.abort();
  });
  if (opts.search) {
    try {
      return await runSearch(opts, opts.search);
    } catch (e) {
      process.stderr.write(`\ncapacity search could not run: ${(e as Error).message}\n`);
      return 1;
    }
  }
  let result;
  try {
    result = await run(opts, (x) => parseRange(x));
  } catch (e) {
    process.stderr.write(`\nload test could not run: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`${renderSummary(result)}\n`);
  if (opts.summaryJson) writeJson(opts.summaryJson, result);
  return result.passed ? 0 : 99;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli.ts')) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
