// File sharing (XEP-0363): ask the upload service for a slot, PUT the file to the slot's URL, then
// GET it back as a recipient would and check the bytes. Latencies per step; sizes from --file-size.
import { randomBytes } from 'node:crypto';
import { nowMs } from '../context.js';
import { httpRequest } from '../http.js';
import { attrs } from '../xmpp/xml.js';
import type { Scenario } from '../scenario.js';

const NS = 'urn:xmpp:http:upload:0';
let counter = 0;

export const upload: Scenario = {
  name: 'upload',
  description: 'file sharing: request an XEP-0363 slot, PUT the file over HTTPS, GET it back and compare',
  metrics: ['upload_slot', 'upload_put', 'upload_get', 'files_uploaded', 'upload_bytes'],
  defaultThink: '10s',
  async start(vu, ctx) {
    const c = await vu.login(ctx);
    c.sendPresence();
  },
  async iteration(vu, ctx) {
    const c = vu.client;
    if (!c) return;
    const f = ctx.features;
    const size = Math.round(f.fileSize.sample());
    let t = nowMs();
    const slot = await c.iq('get', f.uploadService,
      `<request${attrs({ xmlns: NS, filename: `lt-${vu.id}-${++counter}.bin`, size, 'content-type': 'application/octet-stream' })}/>`);
    ctx.metrics.trend('upload_slot', 'XEP-0363 slot request → slot, ms').add(nowMs() - t);
    const s = slot.child('slot', NS);
    const putUrl = s?.child('put')?.attrs.url;
    const getUrl = s?.child('get')?.attrs.url;
    if (!putUrl || !getUrl) throw new Error('upload: the slot has no put/get URL');
    const data = randomBytes(size);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    for (const h of s!.child('put')!.elements()) if (h.name === 'header' && h.attrs.name) headers[h.attrs.name] = h.text();
    t = nowMs();
    const put = await httpRequest(ctx.target, 'PUT', putUrl, { body: data, headers, base: f.httpBase });
    if (put.status !== 200 && put.status !== 201) throw new Error(`upload: PUT answered HTTP ${put.status}`);
    ctx.metrics.trend('upload_put', 'PUT of the file, ms').add(nowMs() - t);
    t = nowMs();
    const got = await httpRequest(ctx.target, 'GET', getUrl, { base: f.httpBase });
    if (got.status !== 200) throw new Error(`upload: GET answered HTTP ${got.status}`);
    if (!got.body.equals(data)) throw new Error(`upload: the downloaded file differs from the uploaded one (${got.body.length} of ${size} bytes)`);
    ctx.metrics.trend('upload_get', 'GET of the file, ms').add(nowMs() - t);
    ctx.metrics.counter('files_uploaded', 'files uploaded and downloaded intact').add();
    ctx.metrics.counter('upload_bytes', 'bytes uploaded').add(size);
  },
  async stop() {},
};
