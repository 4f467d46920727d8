import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { xml } from '@xmpp/client';
import { admin, connect, makeClient, raw, rawSecure, startServer, stopClient, streamHeader, uniq, type TestServer } from './helpers.js';

const run = promisify(execFile);
const SERVER_DIR = fileURLToPath(new URL('..', import.meta.url));

async function attempt(s: TestServer, o: Parameters<typeof makeClient>[1]): Promise<string> {
  const c = makeClient(s, o);
  const r = await c.start().then(() => 'ok', (e: { condition?: string; message?: string }) => e.condition ?? e.message ?? String(e));
  await stopClient(c);
  return r;
}

test('invite policy: registration needs a token made by the admin command, used once', async (t) => {
  const s = await startServer({ registration: 'invite' });
  try {
    t.is(await attempt(s, { username: uniq('no'), password: 'pw', register: true }), 'forbidden');
    const { stdout } = await admin(s.dataDir, 'invite', '--ttl-hours', '1');
    const token = stdout.split('\n')[0]!;
    t.regex(token, /^[\w-]{20,}$/);
    const u = uniq('inv');
    t.is(await attempt(s, { username: u, password: 'pw', register: true, invite: token }), 'ok');
    t.is(await attempt(s, { username: uniq('again'), password: 'pw', register: true, invite: token }), 'item-not-found', 'a token works once');
    const list = await admin(s.dataDir, 'invites');
    t.regex(list.stdout, new RegExp(`used by ${u}`));
  } finally { await s.stop(); }
});

test('closed policy: no registration offered; admin-created and config accounts log in', async (t) => {
  const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'pi-im-acc-'));
  writeFileSync(join(dir, 'pw'), 'from-file\n');
  writeFileSync(join(dir, 'admin-pw'), 's3cret\n');
  await admin(dir, 'adduser', 'root@localhost', '--password-file', join(dir, 'admin-pw'));
  const s = await startServer({ registration: 'closed', dataDir: dir, config: { accounts: [{ username: 'Op', passwordFile: join(dir, 'pw') }] } });
  try {
    const c = await rawSecure(s.c2sPort);
    t.notRegex(c.data, /iq-register/);
    c.send(`<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>x</username><password>y</password></query></iq>`);
    await c.until('<service-unavailable');
    t.is(await attempt(s, { username: 'op', password: 'from-file' }), 'ok');
    t.is(await attempt(s, { username: 'root', password: 's3cret' }), 'ok');
    const users = await admin(dir, 'users');
    t.deepEqual(users.stdout.trim().split('\n'), ['op', 'root']);
    await admin(dir, 'deluser', 'root@localhost');
    t.is(await attempt(s, { username: 'root', password: 's3cret' }), 'not-authorized');
    const dup = await admin(dir, 'adduser', 'op', '--password-file', join(dir, 'pw')).catch((e: { stderr: string }) => e);
    t.regex((dup as { stderr: string }).stderr, /exists already/);
  } finally { await s.stop(); }
});

test('open policy: conflict on a taken name, password change and account removal (XEP-0077)', async (t) => {
  const s = await startServer({ registration: 'open' });
  try {
    const u = uniq('acc');
    const c = await connect(s, { username: u, password: 'old', register: true });
    t.is(await attempt(s, { username: u, password: 'x', register: true }), 'conflict');
    const info = await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:register' }));
    t.truthy(info.getChild('registered'));
    await c.iqCaller.set(xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, u), xml('password', {}, 'new')));
    t.is(await attempt(s, { username: u, password: 'old' }), 'not-authorized');
    t.is(await attempt(s, { username: u, password: 'new', transport: 'ws' }), 'ok');
    const closed = new Promise<string>((resolve) => c.on('error', (e: { condition?: string }) => resolve(e.condition ?? '')));
    await c.iqCaller.set(xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    t.is(await closed, 'not-authorized');
    t.is(await attempt(s, { username: u, password: 'new' }), 'not-authorized');
    // The name is free again.
    t.is(await attempt(s, { username: u, password: 'again', register: true }), 'ok');
  } finally { await s.stop(); }
});

test('a bad configuration is refused with a message naming the key and the fix', async (t) => {
  const bad = async (...args: string[]): Promise<{ code: number; stderr: string }> =>
    run(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: SERVER_DIR }).then(
      () => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }));
  const r1 = await bad('--registration', 'sometimes');
  t.is(r1.code, 2);
  t.regex(r1.stderr, /registration: expected one of closed\|invite\|open, got "sometimes" \(set by --registration/);
  const r2 = await bad('--c2s-port', 'many');
  t.regex(r2.stderr, /--c2s-port: expected a number, got "many"/);
  const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'pi-im-cfg-'));
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ limits: { maxStanzaSize: 'big', maxStanzas: 3 } }));
  const r3 = await bad('--config', join(dir, 'c.json'));
  t.regex(r3.stderr, /limits\.maxStanzaSize: Expected number, received string/);
  t.regex(r3.stderr, /unknown key\(s\) "maxStanzas"/);
  const r4 = await bad('--bogus-flag');
  t.regex(r4.stderr, /Unknown option '--bogus-flag'/);
});

test('the self-signed certificate made at first start verifies for the domain; health and metrics answer', async (t) => {
  const s = await startServer({ registration: 'open', args: ['--commit-window-ms', '20'] });
  try {
    const { readFileSync } = await import('node:fs');
    const ca = readFileSync(join(s.dataDir, 'tls', 'localhost.crt'), 'utf8');
    const c = await raw(s.c2sPort);
    c.send(streamHeader);
    await c.until('</stream:features>');
    c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
    await c.until('<proceed');
    const tls = await c.starttls(ca);
    t.true(tls.authorized, 'certificate chains to the generated cert and names localhost');

    const health = await fetch(`http://127.0.0.1:${s.httpPort}/health`);
    t.is(health.status, 200);
    t.is(((await health.json()) as { status: string }).status, 'ok');

    // Group commit: a burst of offline messages shares few transactions.
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${s.httpPort}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    const rcv = uniq('rcv');
    await stopClient(await connect(s, { username: rcv, password: 'pw', register: true }));
    const snd = await connect(s, { username: uniq('snd'), password: 'pw', register: true });
    const fsyncs0 = await metric('pi_im_storage_fsyncs_total');
    const writes0 = await metric('pi_im_storage_writes_total');
    await Promise.all(Array.from({ length: 200 }, (_, i) => snd.send(xml('message', { to: `${rcv}@localhost`, type: 'chat' }, xml('body', {}, `m${i}`)))));
    await snd.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    const fsyncs = (await metric('pi_im_storage_fsyncs_total')) - fsyncs0;
    const writes = (await metric('pi_im_storage_writes_total')) - writes0;
    t.is(writes, 600, 'each message: an offline row and a row in each party\'s archive (mam)');
    t.true(fsyncs >= 1 && fsyncs <= 50, `200 writes in ${fsyncs} transactions`);
    t.log(`200 offline messages: ${fsyncs} commits`);
    const text = await (await fetch(`http://127.0.0.1:${s.httpPort}/metrics`)).text();
    for (const m of ['pi_im_connections', 'pi_im_stanzas_in_total', 'pi_im_stanzas_out_total', 'pi_im_auth_failures_total',
      'pi_im_delivery_latency_seconds_bucket', 'pi_im_storage_commit_seconds_bucket']) t.regex(text, new RegExp(m));
    await stopClient(snd);
  } finally { await s.stop(); }
});
