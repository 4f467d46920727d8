// XEP-0363 HTTP File Upload on upload.<domain>: local users request a slot (size, quota and
// name checked), get PUT and GET URLs under upload.publicUrl with a random secret segment, and
// the HTTP side (http.ts) stores and serves the file. Files expire after upload.expiryDays and
// go with their owner's account.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Host, StanzaEvent } from '../../core/host.js';
import { NS, errorReply, iqResult } from '../../core/stanza.js';
import { xml } from '../../core/xml.js';
import { filePath, uploadHandler } from './http.js';
import { parseContentType, safeFilename } from './names.js';
import { UploadStore } from './store.js';

export const NS_UPLOAD = 'urn:xmpp:http:upload:0';
/** Unused slot rows (and their quota) are kept this long after the slot expired, for PUTs still running. */
const SLOT_GRACE_MS = 6 * 3600_000;

export default async function upload(host: Host): Promise<void> {
  const cfg = host.config.upload;
  const domain = `upload.${host.domain}`;
  const dir = resolve(cfg.dir ?? join(host.config.dataDir, 'uploads'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const base = (cfg.publicUrl ?? `http://${host.domain}:${host.config.httpPort}/upload`).replace(/\/+$/, '');
  const store = await UploadStore.open(host.db);
  const slotMs = cfg.slotSeconds * 1000;
  const expiryMs = (cfg.expirySeconds ?? cfg.expiryDays * 86400) * 1000;
  const log = host.log.child({ module: 'upload' });

  host.addHttpRoute('/upload/', uploadHandler({ store, dir, log, slotMs, expiryMs }));

  const info = (): ReturnType<typeof xml> => xml('query', { xmlns: NS.discoInfo },
    xml('identity', { category: 'store', type: 'file', name: 'HTTP File Upload' }),
    xml('feature', { var: NS.discoInfo }),
    xml('feature', { var: NS_UPLOAD }),
    xml('x', { xmlns: 'jabber:x:data', type: 'result' },
      xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS_UPLOAD)),
      xml('field', { var: 'max-file-size' }, xml('value', {}, String(cfg.maxFileSize)))));

  const fail = (e: StanzaEvent, condition: string, text: string): void => host.reply(e, errorReply(e.stanza, condition, text));

  async function requestSlot(e: StanzaEvent): Promise<void> {
    const req = e.stanza.firstElement()!;
    if (!e.origin || !host.isLocal(e.from) || !e.from.local) return fail(e, 'not-allowed', `only users of ${host.domain} may upload here`);
    const size = Number(req.attrs.size);
    if (!/^\d+$/.test(req.attrs.size ?? '') || !Number.isSafeInteger(size)) return fail(e, 'bad-request', 'the size attribute must be the file size in bytes');
    const rawName = req.attrs.filename ?? '';
    if (rawName.trim() === '') return fail(e, 'bad-request', 'the filename attribute is required');
    let contentType: string | undefined;
    if (req.attrs['content-type'] !== undefined && req.attrs['content-type'] !== '') {
      contentType = parseContentType(req.attrs['content-type']);
      if (!contentType) return fail(e, 'bad-request', 'the content-type attribute is not a media type such as image/jpeg');
    }
    if (size > cfg.maxFileSize) {
      const reply = errorReply(e.stanza, 'not-acceptable', `file too large: the largest file accepted is ${cfg.maxFileSize} bytes`);
      reply.getChild('error')!.append(xml('file-too-large', { xmlns: NS_UPLOAD }, xml('max-file-size', {}, String(cfg.maxFileSize))));
      return host.reply(e, reply);
    }
    const username = e.from.local;
    const now = Date.now();
    const used = await store.used(username, now - expiryMs, now - slotMs, expiryMs > 0);
    if (used + size > cfg.quotaPerUser) {
      const expiry = expiryMs > 0 ? `; files are deleted ${Math.round(expiryMs / 86400_000 * 10) / 10} days after upload` : '';
      const reply = errorReply(e.stanza, 'resource-constraint', `upload quota exceeded: you store ${used} of ${cfg.quotaPerUser} bytes, this file needs ${size} more${expiry}`);
      return host.reply(e, reply);
    }
    // Checked right before the write is queued: nothing is stored after a removed account's delete.
    if (!host.accountExists(username)) return fail(e, 'forbidden', 'this account has been removed');
    const filename = safeFilename(rawName);
    const id = randomBytes(18).toString('base64url'); // 144 bits
    // The slot row is durable before the answer, so another node can take the PUT.
    try {
      await store.add({ id, username, filename, size, contentType, createdAt: now });
    } catch (err) {
      log.error({ err: (err as Error).message, user: username }, 'slot not stored');
      return fail(e, 'internal-server-error', 'the upload slot could not be stored; try again');
    }
    const url = `${base}/${id}/${encodeURIComponent(filename)}`;
    log.debug({ user: username, slot: id, size }, 'upload slot');
    host.reply(e, iqResult(e.stanza, xml('slot', { xmlns: NS_UPLOAD }, xml('put', { url }), xml('get', { url }))));
  }

  host.addComponent(domain, {
    name: 'HTTP File Upload',
    handle(e) {
      const { stanza } = e;
      const type = stanza.attrs.type;
      if (stanza.name !== 'iq') {
        if (stanza.name === 'message' && type !== 'error') host.bounce(e, 'service-unavailable', 'this is a file upload service');
        return;
      }
      if (type !== 'get' && type !== 'set') return;
      const payload = stanza.firstElement();
      if (type === 'get' && payload?.is('request', NS_UPLOAD)) return requestSlot(e);
      if (type === 'get' && payload?.is('query', NS.discoInfo) && !payload.attrs.node) return host.reply(e, iqResult(stanza, info()));
      if (type === 'get' && payload?.is('query', NS.discoItems) && !payload.attrs.node) return host.reply(e, iqResult(stanza, xml('query', { xmlns: NS.discoItems })));
      if (type === 'get' && payload?.is('ping', NS.ping)) return host.reply(e, iqResult(stanza));
      host.bounce(e, 'service-unavailable');
    },
  });

  async function remove(ids: string[]): Promise<void> {
    for (const id of ids) {
      await unlink(filePath(dir, id)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
      await store.delete(id);
    }
  }

  async function cleanup(): Promise<void> {
    const now = Date.now();
    const ids = await store.stale(now - expiryMs, now - slotMs - SLOT_GRACE_MS, expiryMs > 0);
    await remove(ids);
    if (ids.length) log.info({ files: ids.length }, 'expired uploads deleted');
    await sweepRemovedAccounts();
    // Temp files of PUTs cut short by a crash (older than any upload could still be running).
    for (const f of readdirSync(dir)) {
      if (!f.includes('.part-')) continue;
      try { if (statSync(join(dir, f)).mtimeMs < now - SLOT_GRACE_MS) await unlink(join(dir, f)); } catch { /* gone already */ }
    }
  }
  /** Slots and files of accounts removed while the server was down or by `admin deluser` (which fire no hook). */
  async function sweepRemovedAccounts(): Promise<void> {
    const gone = (await store.users()).filter((u) => !host.accountExists(u));
    const ids = await Promise.all(gone.map((u) => store.deleteUser(u)));
    await unlinkAll(ids.flat());
    if (gone.length) log.info({ accounts: gone.length, files: ids.flat().length }, 'uploads of removed accounts deleted');
  }
  // Before the server accepts clients: a name registered again starts with none of them.
  await sweepRemovedAccounts().catch((err: Error) => log.error({ err: err.message }, 'deleting the uploads of removed accounts failed'));
  const runCleanup = (): void => { cleanup().catch((err: Error) => log.error({ err: err.message }, 'upload cleanup failed')); };
  runCleanup();
  const every = Math.min(3600_000, Math.max(1000, (expiryMs || 3600_000) / 4));
  setInterval(runCleanup, every).unref();

  /** Deletes the files of slots whose rows are gone already (a file that cannot be deleted is
   * reported: no URL leads to it any more). */
  async function unlinkAll(ids: string[]): Promise<void> {
    for (const id of ids) {
      await unlink(filePath(dir, id)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') log.error({ err: err.message, slot: id }, 'the file of a deleted upload slot could not be deleted');
      });
    }
  }

  // The rows go at once (queued before the core deletes the account: a name registered again
  // starts with an empty quota and the URLs answer 404), the files after. The promise settles
  // when both are done (a failure to delete the rows is the removal's).
  host.hooks.on<{ username: string }>('account-removing', async ({ username }) => {
    await unlinkAll(await store.deleteUser(username));
  });
}
