// The feature scenarios (upload, groupchat) against a real pi-im node, through the CLI as an admin
// runs them. pi-im rather than Prosody: these need services Debian's Prosody is not set up for here.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../testing/lib/run.js';
import { startPiIm } from '../src/peers/piim.js';
import type { Peer } from '../src/peers/prosody.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let peer: Peer | undefined;

test.before(async () => {
  peer = await startPiIm({ domain: 'scenarios.test' });
});
test.after.always(async () => {
  await peer?.stop();
});

const load = (args: string[]) => run(process.execPath, ['--import=tsx', join(root, 'src/cli.ts'), ...args], { cwd: root, timeoutMs: 120_000 });

const target = () => ['--host', '127.0.0.1', '--port', String(peer!.c2sPort), '--domain', peer!.domain, '--tls-ca', peer!.caFile, '--no-progress', '--transport', 'tcp'];

test('upload: files go up through a slot and come back intact, with per-step latencies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'summary.json');
  // The slot URLs name the site (http://scenarios.test:<port>/upload/...), which does not resolve
  // here: --http-base sends the requests to the node's address instead.
  const r = await load([...target(), '--scenario', 'upload', '--users', '3', '--duration', '3s', '--think', '100ms',
    '--file-size', '1000-200000', '--http-base', `http://127.0.0.1:${peer!.httpPort}`,
    '--threshold', 'errors==0', '--threshold', 'files_uploaded>5', '--summary-json', json]);
  t.is(r.code, 0, r.stdout + r.stderr);
  const s = JSON.parse(readFileSync(json, 'utf8'));
  for (const m of ['upload_slot', 'upload_put', 'upload_get']) t.true(s.metrics[m].count > 5, m);
  t.true(s.metrics.upload_bytes.count >= 1000 * s.metrics.files_uploaded.count, 'bytes add up to at least the smallest size per file');
});

test('upload: a file over the server\'s limit fails the run with the server\'s error', async (t) => {
  const r = await load([...target(), '--scenario', 'upload', '--users', '1', '--duration', '3s', '--think', '200ms', '--file-size', '200000000',
    '--threshold', 'errors==0']);
  t.is(r.code, 99, r.stdout + r.stderr);
  t.regex(r.stdout, /not-acceptable/);
});

test('groupchat: rooms of --room-size fill, every message reaches every other occupant, latency measured', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'summary.json');
  // Mixed with chat, the groupchat VUs are every other one: rooms still get --room-size of them.
  const r = await load([...target(), '--scenario', 'chat:1,groupchat:1', '--users', '12', '--room-size', '3', '--duration', '4s', '--think', '200ms',
    '--threshold', 'errors==0', '--threshold', 'muc_delivery_p95<2000', '--summary-json', json]);
  t.is(r.code, 0, r.stdout + r.stderr);
  const s = JSON.parse(readFileSync(json, 'utf8'));
  t.is(s.metrics.muc_join.count, 6, 'every groupchat VU joined');
  const sent = s.metrics.muc_messages_sent.count;
  t.true(sent > 10, `sent ${sent}`);
  // Rooms of 3: each message reaches the 2 others (those still in the room while it is delivered).
  t.true(s.metrics.muc_messages_received.count >= sent * 2 * 0.9 && s.metrics.muc_messages_received.count <= sent * 2,
    `received ${s.metrics.muc_messages_received.count} for ${sent} sent`);
});
