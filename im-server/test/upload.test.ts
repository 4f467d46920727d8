import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, type TestServer } from './helpers.js';
import { freePort, isSlot, requestSlot, type SlotError, type SlotUrls } from './upload-helpers.js';

const NS = 'urn:xmpp:http:upload:0';
// The server listens on 127.0.0.1; "localhost" may resolve to ::1 first.
const local = (url: string): string => url.replace('//localhost:', '//127.0.0.1:');
const slot = (r: SlotUrls | SlotError): SlotUrls => { if (!isSlot(r)) throw new Error(`no slot: ${r.condition} ${r.text}`); return r; };
const put = (url: string, body: Uint8Array | string, type?: string): Promise<Response> =>
  fetch(local(url), { method: 'PUT', body: body as BodyInit, headers: type ? { 'content-type': type } : {} });
const uploads = (s: TestServer): string[] => readdirSync(join(s.dataDir, 'uploads'));

async function server(config: Record<string, unknown>, dataDir?: string, port?: number): Promise<TestServer> {
  const httpPort = port ?? await freePort();
  return startServer({ config: { upload: config }, dataDir, args: ['--http-port', String(httpPort)] });
}

test('upload: a slot, PUT over HTTP, and another user GETs the same bytes; files survive a restart', async (t) => {
  let s = await server({ maxFileSize: 1000, quotaPerUser: 2500 });
  const port = s.httpPort;
  try {
    const a = await connect(s, { username: uniq('up'), password: 'pw', register: true });
    const items = await a.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }), 'localhost');
    t.true(items.getChildren('item').some((i) => i.attrs.jid === 'upload.localhost'));
    const info = await a.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'upload.localhost');
    t.is(info.getChild('identity')!.attrs.category, 'store');
    t.true(info.getChildren('feature').some((f) => f.attrs.var === NS));
    const field = info.getChild('x', 'jabber:x:data')!.getChildren('field').find((f) => f.attrs.var === 'max-file-size');
    t.is(field?.getChildText('value'), '1000');

    const bytes = new Uint8Array(700).map((_, i) => (i * 7) % 256);
    const s1 = slot(await requestSlot(a, 'photo one.png', bytes.length, 'image/png'));
    t.true(s1.get.startsWith(`http://localhost:${port}/upload/`), s1.get);
    t.regex(s1.get, /\/photo%20one\.png$/);
    t.is((await put(s1.put, bytes, 'image/png')).status, 201);
    t.is((await put(s1.put, bytes, 'image/png')).status, 409, 'a slot takes one PUT');

    const b = await connect(s, { username: uniq('down'), password: 'pw', register: true });
    const got = await fetch(local(s1.get));
    t.is(got.status, 200);
    t.is(got.headers.get('content-type'), 'image/png');
    t.is(got.headers.get('x-content-type-options'), 'nosniff');
    t.is(got.headers.get('access-control-allow-origin'), '*');
    t.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes);
    const range = await fetch(local(s1.get), { headers: { range: 'bytes=10-19' } });
    t.is(range.status, 206);
    t.deepEqual(new Uint8Array(await range.arrayBuffer()), bytes.slice(10, 20));
    const pre = await fetch(local(s1.put), { method: 'OPTIONS' });
    t.is(pre.status, 204);
    t.regex(pre.headers.get('access-control-allow-methods') ?? '', /PUT/);

    // Too large: not-acceptable with the limit in <file-too-large/>.
    const big = await requestSlot(b, 'big.bin', 1001);
    t.false(isSlot(big));
    t.is((big as SlotError).condition, 'not-acceptable');
    t.is((big as SlotError).element.getChild('file-too-large', NS)?.getChildText('max-file-size'), '1000');

    // Quota: 700 stored + 1000 + 700 reserved fits 2500, another 200 does not.
    const s2 = slot(await requestSlot(a, 'x.bin', 1000));
    slot(await requestSlot(a, 'y.bin', 700));
    const over = await requestSlot(a, 'z.bin', 200);
    t.is((over as SlotError).condition, 'resource-constraint');
    t.regex((over as SlotError).text, /quota/);
    t.true(isSlot(await requestSlot(b, 'z.bin', 200)), 'the quota is per user');

    // A body that is not the declared size is refused and leaves no file; the slot stays usable.
    const before = uploads(s).length;
    t.is((await put(s2.put, new Uint8Array(999))).status, 400);
    t.is((await put(s2.put, new Uint8Array(1001))).status, 413);
    t.is(uploads(s).length, before);
    t.is((await fetch(local(s2.get))).status, 404);
    t.is((await put(s2.put, new Uint8Array(1000))).status, 201);

    // Unknown or guessed paths.
    t.is((await fetch(`http://127.0.0.1:${port}/upload/AAAAAAAAAAAAAAAAAAAAAAAA/photo.png`)).status, 404);
    t.is((await fetch(s1.get.replace('photo%20one', 'other').replace('//localhost:', '//127.0.0.1:'))).status, 404);

    // A name with a path is made safe; active content is a download, never a page of this origin.
    const s3 = slot(await requestSlot(b, '../../etc/evil.html', 5, 'text/html'));
    t.notRegex(s3.get, /\.\.|%2F/i);
    t.regex(s3.get, /etc_evil\.html$/);
    t.is((await put(s3.put, 'hello', 'text/css')).status, 400, 'content type must match the slot');
    t.is((await put(s3.put, 'hello', 'text/html')).status, 201);
    const page = await fetch(local(s3.get));
    t.regex(page.headers.get('content-disposition') ?? '', /^attachment/);
    t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);

    // Removing an account deletes its files.
    const c = await connect(s, { username: uniq('gone'), password: 'pw', register: true });
    const s4 = slot(await requestSlot(c, 'mine.txt', 3, 'text/plain'));
    t.is((await put(s4.put, 'abc', 'text/plain')).status, 201);
    const closed = new Promise<void>((resolve) => c.on('error', () => resolve()));
    await c.iqCaller.set(xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    await closed;
    for (let i = 0; i < 50 && (await fetch(local(s4.get))).status !== 404; i++) await sleep(100);
    t.is((await fetch(local(s4.get))).status, 404);

    await stopClient(a);
    await stopClient(b);
    t.is(await s.stop(), 0);
    s = await server({ maxFileSize: 1000, quotaPerUser: 2500 }, s.dataDir, port);
    const again = await fetch(local(s1.get));
    t.is(again.status, 200, 'files and slots survive a restart');
    t.deepEqual(new Uint8Array(await again.arrayBuffer()), bytes);
  } finally { await s.stop(); }
});

test('upload: files expire (expirySeconds) and are deleted from disk', async (t) => {
  const s = await server({ expirySeconds: 2 });
  try {
    const a = await connect(s, { username: uniq('exp'), password: 'pw', register: true });
    const s1 = slot(await requestSlot(a, 'short.txt', 4, 'text/plain'));
    t.is((await put(s1.put, 'data', 'text/plain')).status, 201);
    t.is((await fetch(local(s1.get))).status, 200);
    const id = new URL(s1.get).pathname.split('/')[2]!;
    t.true(existsSync(join(s.dataDir, 'uploads', id)));
    for (let i = 0; i < 80 && existsSync(join(s.dataDir, 'uploads', id)); i++) await sleep(100);
    t.false(existsSync(join(s.dataDir, 'uploads', id)), 'the file is deleted');
    t.is((await fetch(local(s1.get))).status, 404);
    await stopClient(a);
  } finally { await s.stop(); }
});

// A full disk needs a small file system: a tmpfs, which only root can mount.
(process.getuid?.() === 0 ? test : test.skip)('upload: a full disk answers 507 and leaves no partial file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir]);
  const s = await server({ dir }).catch(async (e: Error) => { execFileSync('umount', [dir]); throw e; });
  try {
    const a = await connect(s, { username: uniq('full'), password: 'pw', register: true });
    const s1 = slot(await requestSlot(a, 'big.bin', 1024 * 1024));
    t.is((await put(s1.put, new Uint8Array(1024 * 1024))).status, 507);
    t.deepEqual(readdirSync(dir), [], 'no partial file is left');
    t.is((await fetch(local(s1.get))).status, 404);
    const s2 = slot(await requestSlot(a, 'small.txt', 5, 'text/plain'));
    t.is((await put(s2.put, 'small', 'text/plain')).status, 201, 'the space is free again');
    await stopClient(a);
  } finally {
    await s.stop();
    execFileSync('umount', [dir]);
  }
});
