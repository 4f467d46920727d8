// The HTTP side of XEP-0363 at /upload/<secret>/<name>: one PUT per slot (streamed to a temp
// file, fsynced, renamed, then marked done durably), GET/HEAD with headers that keep uploaded
// content from running as a page of this origin, CORS for web clients.
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { disposition, essence, isInlineSafe } from './names.js';
import { SlotState, type Slot, type UploadStore } from './store.js';

export interface UploadHttpOptions {
  store: UploadStore;
  dir: string;
  log: Logger;
  slotMs: number;
  /** 0: files never expire. */
  expiryMs: number;
}

const CORS: OutgoingHttpHeaders = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, PUT, HEAD, OPTIONS',
  'access-control-allow-headers': 'Content-Type',
  'access-control-max-age': '86400',
};

export const filePath = (dir: string, id: string): string => join(dir, id);
const ID = /^[A-Za-z0-9_-]{22,64}$/;

function send(res: ServerResponse, status: number, text: string, extra: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { ...CORS, 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', ...extra });
  res.end(text + '\n');
}

/** The slot a path names: /upload/<id>/<percent-encoded name>, the name must match too. */
async function lookup(o: UploadHttpOptions, path: string): Promise<Slot | undefined> {
  const m = /^\/upload\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m || !ID.test(m[1]!)) return undefined;
  let name: string;
  try { name = decodeURIComponent(m[2]!); } catch { return undefined; }
  const slot = await o.store.get(m[1]!);
  return slot && slot.filename === name ? slot : undefined;
}

export function uploadHandler(o: UploadHttpOptions) {
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    switch (req.method) {
      case 'OPTIONS': res.writeHead(204, CORS); res.end(); return;
      case 'PUT': return put(o, req, res, path);
      case 'GET': case 'HEAD': return get(o, req, res, path);
      default: return send(res, 405, 'use PUT to upload, GET or HEAD to download', { allow: 'GET, PUT, HEAD, OPTIONS' });
    }
  };
}

async function put(o: UploadHttpOptions, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  // Errors before the body is read close the connection rather than drain a large body.
  const refuse = (status: number, text: string): void => send(res, status, text, { connection: 'close' });
  const slot = await lookup(o, path);
  if (!slot) return refuse(404, 'no such upload slot: request one over XMPP (XEP-0363)');
  if (slot.state !== SlotState.Open) return refuse(409, 'this slot has been used already; request a new one');
  if (slot.createdAt + o.slotMs < Date.now()) return refuse(403, 'this upload slot has expired; request a new one');
  const lengthHeader = req.headers['content-length'];
  if (lengthHeader === undefined) return refuse(411, `send the file with a Content-Length of ${slot.size}`);
  const length = Number(lengthHeader);
  if (length > slot.size) return refuse(413, `the slot is for ${slot.size} bytes, Content-Length is ${length}`);
  if (length !== slot.size) return refuse(400, `the slot is for ${slot.size} bytes, Content-Length is ${lengthHeader}`);
  const type = req.headers['content-type'];
  if (slot.contentType && type !== undefined && essence(type) !== essence(slot.contentType)) {
    return refuse(400, `the slot is for Content-Type ${slot.contentType}, the request has ${type}`);
  }
  if (!(await o.store.claim(slot.id))) return refuse(409, 'this slot is being used or has been used; request a new one');

  const final = filePath(o.dir, slot.id);
  const tmp = `${final}.part-${process.pid}`;
  let done = false;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      let got = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        got += chunk.length;
        if (got > slot.size) throw Object.assign(new Error('body longer than declared'), { status: 413 });
        await fh.write(chunk);
      }
      if (got !== slot.size) throw Object.assign(new Error(`body of ${got} bytes, ${slot.size} declared`), { status: 400 });
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    // The slot is gone when its account was removed during the PUT: so goes the file.
    if (!(await o.store.markDone(slot.id))) throw Object.assign(new Error('the slot was deleted with its account during the upload'), { status: 404 });
    done = true;
    o.log.info({ user: slot.username, slot: slot.id, size: slot.size }, 'file uploaded');
    send(res, 201, 'stored');
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { status?: number };
    await unlink(tmp).catch(() => {});
    if (!done) await unlink(final).catch(() => {});
    await o.store.release(slot.id).catch(() => {});
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT') {
      o.log.error({ slot: slot.id, size: slot.size }, 'upload refused: the disk is full');
      return refuse(507, 'the server has no room for this file now; try again later');
    }
    if (err.status) return refuse(err.status, err.message);
    if (req.destroyed || err.code === 'ECONNRESET' || err.message === 'aborted') { o.log.debug({ slot: slot.id }, 'upload aborted by the client'); res.destroy(); return; }
    throw e;
  }
}

async function get(o: UploadHttpOptions, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const slot = await lookup(o, path);
  const expired = slot && o.expiryMs > 0 && (slot.uploadedAt ?? 0) + o.expiryMs <= Date.now();
  if (!slot || slot.state !== SlotState.Done || expired) return send(res, 404, 'no such file (it may have expired)');
  const file = filePath(o.dir, slot.id);
  let size: number;
  try { size = (await stat(file)).size; } catch { return send(res, 404, 'no such file (it may have expired)'); }
  const type = slot.contentType ?? 'application/octet-stream';
  const etag = `"${slot.id}"`;
  const headers: OutgoingHttpHeaders = {
    ...CORS,
    'content-type': type,
    'content-disposition': disposition(isInlineSafe(type) ? 'inline' : 'attachment', slot.filename),
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; sandbox",
    'etag': etag,
    // The content of a URL never changes (one PUT per slot).
    'cache-control': 'public, max-age=86400, immutable',
    'accept-ranges': 'bytes',
    'last-modified': new Date(slot.uploadedAt ?? slot.createdAt).toUTCString(),
  };
  if (req.headers['if-none-match'] === etag) { res.writeHead(304, headers); res.end(); return; }
  let start = 0, end = size - 1, status = 200;
  const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (range && (range[1] || range[2]) && size > 0) {
    if (range[1]) { start = Number(range[1]); if (range[2]) end = Math.min(Number(range[2]), size - 1); }
    else start = Math.max(0, size - Number(range[2]));
    if (start > end || start >= size) return send(res, 416, 'range not satisfiable', { 'content-range': `bytes */${size}` });
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['content-length'] = String(size === 0 ? 0 : end - start + 1);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || size === 0) { res.end(); return; }
  await pipeline(createReadStream(file, { start, end }), res).catch((e: Error) => o.log.debug({ err: e.message }, 'download ended early'));
}
