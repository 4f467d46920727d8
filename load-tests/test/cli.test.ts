// The runner as an admin uses it: a subprocess against a real Prosody; exit codes and summary.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../testing/lib/run.js';
import { startProsody, prosodyAvailable, type Peer } from '../src/peers/prosody.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let peer: Peer | undefined;

test.before(async () => {
  if (!prosodyAvailable()) throw new Error('prosody is not installed: apt-get install prosody (npm run setup does it)');
  peer = await startProsody();
});
test.after.always(async () => {
  await peer?.stop();
});

const load = (args: string[]) => run(process.execPath, ['--import=tsx', join(root, 'src/cli.ts'), ...args], { cwd: root, timeoutMs: 90_000 });

const scratch = (t: { teardown(fn: () => void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'lt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

const target = () => ['--host', '127.0.0.1', '--port', String(peer!.c2sPort), '--domain', peer!.domain, '--ws', peer!.wsUrl, '--tls-ca', peer!.caFile, '--no-progress'];

test('chat over TCP and WebSocket meets sane thresholds, writes the JSON summary, and removes its accounts', async (t) => {
  const json = join(scratch(t), 'summary.json');
  const r = await load([...target(), '--users', '6', '--duration', '3s', '--ramp', '1s', '--think', '100ms', '--user-prefix', 'clitest_',
    '--threshold', 'delivery_p95<2000', '--threshold', 'errors==0', '--threshold', 'messages_received>20', '--summary-json', json]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /all thresholds met/);
  const s = JSON.parse(readFileSync(json, 'utf8'));
  t.true(s.passed);
  t.true(s.metrics.delivery.count > 20);
  for (const k of ['p50', 'p90', 'p95', 'p99', 'max']) t.is(typeof s.metrics.delivery[k], 'number');
  t.is(s.metrics.messages_lost.count, 0);
  t.true(s.metrics.connect_tcp.count > 0 && s.metrics.connect_ws.count > 0, 'both transports used');
  // The accounts are gone: the same names can be registered again.
  const again = await load([...target(), '--users', '2', '--duration', '1s', '--user-prefix', 'clitest_', '--threshold', 'errors==0']);
  t.is(again.code, 0, again.stdout + again.stderr);
});

test('an impossible threshold makes the exit code non-zero and the summary names it', async (t) => {
  const file = join(scratch(t), 'thresholds.txt');
  writeFileSync(file, '# nothing is delivered in no time\ndelivery_p95<0\n');
  const r = await load([...target(), '--users', '4', '--duration', '2s', '--think', '100ms', '--transport', 'tcp', '--thresholds-file', file, '--threshold', 'errors==0']);
  t.is(r.code, 99, r.stdout + r.stderr);
  t.regex(r.stdout, /FAIL\s+delivery_p95<0/);
  t.regex(r.stdout, /PASS\s+errors==0/);
  t.regex(r.stdout, /FAILED: 1 threshold\(s\) not met: delivery_p95<0/);
});

test('a capacity search finds the largest user count that meets the thresholds', async (t) => {
  // register_count<=12 (one registration per user, before the load) stands in for a server that serves 12 users: the search must land on exactly 12.
  const json = join(scratch(t), 'search.json');
  const r = await load([...target(), '--transport', 'tcp', '--users', '3', '--search-max', '40', '--duration', '1s', '--think', '200ms',
    '--threshold', 'register_count<=12', '--threshold', 'errors==0', '--summary-json', json]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /capacity: 12 users meet every threshold \(13 do not\)/);
  const s = JSON.parse(readFileSync(json, 'utf8'));
  t.deepEqual(s.steps.map((x: { users: number }) => x.users), [3, 6, 12, 24, 18, 15, 13]);
  t.true(s.steps.every((x: { errors: number }) => x.errors === 0), 'every step ran cleanly');
  const none = await load([...target(), '--users', '2', '--search-max', '4', '--duration', '1s', '--threshold', 'register_count<1']);
  t.is(none.code, 99, none.stdout + none.stderr);
  t.regex(none.stdout, /capacity: none/);
});

test('bad usage exits 2 with a clear message', async (t) => {
  const r = await load(['--domain', 'x', '--threshold', 'delivery_p95 about 5']);
  t.is(r.code, 2);
  t.regex(r.stderr, /bad threshold/);
  const r2 = await load(['--domain', 'x', '--tls-ca', '/nonexistent', '--insecure']);
  t.is(r2.code, 2);
  t.regex(r2.stderr, /not both/);
  const r3 = await load(['--domain', 'x', '--users', '10', '--search-max', '5', '--threshold', 'errors==0']);
  t.is(r3.code, 2);
  t.regex(r3.stderr, /--search-max \(5\) must be at least --users \(10\)/);
  const r4 = await load(['--domain', 'x', '--search-max', '50']);
  t.is(r4.code, 2);
  t.regex(r4.stderr, /needs thresholds/);
});

test('a server that refuses the accounts makes the run fail with a hint, not a pass', async (t) => {
  const r = await load([...target(), '--users', '2', '--duration', '1s', '--no-register', '--user-prefix', 'nobody_', '--password', 'x', '--threshold', 'errors==0']);
  t.is(r.code, 99, r.stdout + r.stderr);
  t.regex(r.stdout, /not-authorized/);
});
