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

export default function upload(host: Host): void {
  const cfg = host.config.upload;
  const domain = `upload.${host.domain}`;
  const dir = resolve(cfg.dir ?? join(host.config.dataDir, 'uploads'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const base = (cfg.publicUrl ?? `http://${host.domain}:${host.config.httpPort}/upload`).replace(/\/+$/, '');
  const store = new UploadStore(host.storage);
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

  function requestSlot(e: StanzaEvent): void {
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
    const used = store.used(username, now - expiryMs, now - slotMs, expiryMs > 0);
    if (used + size > cfg.quotaPerUser) {
      const expiry = expiryMs > 0 ? `; files are deleted ${Math.round(expiryMs / 86400_000 * 10) / 10} days after upload` : '';
      const reply = errorReply(e.stanza, 'resource-constraint', `upload quota exceeded: you store ${used} of ${cfg.quotaPerUser} bytes, this file needs ${size} more${expiry}`);
      return host.reply(e, reply);
    }
    const filename = safeFilename(rawName);
    const id = randomBytes(18).toString('base64url'); // 144 bits
    void store.add({ id, username, filename, size, contentType, createdAt: now }).catch((err: Error) => log.error({ err: err.message }, 'slot not stored'));
    const url = `${base}/${id}/${encodeURIComponent(filename)}`;
    log.debug({ user: username, slot: id, size }, 'upload slot');
    // host.reply sends once the slot row is durable, so another node can take the PUT.
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
    const ids = store.stale(now - expiryMs, now - slotMs - SLOT_GRACE_MS, expiryMs > 0);
    await remove(ids);
    if (ids.length) log.info({ files: ids.length }, 'expired uploads deleted');
    // Temp files of PUTs cut short by a crash (older than any upload could still be running).
    for (const f of readdirSync(dir)) {
      if (!f.includes('.part-')) continue;
      try { if (statSync(join(dir, f)).mtimeMs < now - SLOT_GRACE_MS) await unlink(join(dir, f)); } catch { /* gone already */ }
    }
  }
  const runCleanup = (): void => { cleanup().catch((err: Error) => log.error({ err: err.message }, 'upload cleanup failed')); };
  runCleanup();
  const every = Math.min(3600_000, Math.max(1000, (expiryMs || 3600_000) / 4));
  setInterval(runCleanup, every).unref();

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => {
    remove(store.idsOf(username)).catch((err: Error) => log.error({ err: err.message, user: username }, 'deleting the files of a removed account failed'));
  });
}
