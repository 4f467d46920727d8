// XEP-0156 connection discovery for web clients: /.well-known/host-meta (XRD, RFC 6415) and
// /.well-known/host-meta.json name the WebSocket endpoint (RFC 7395). Browser clients such as
// converse.js fetch them cross-origin, so CORS allows any origin (XEP-0156 §3.2).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Host } from '../core/host.js';
import { escapeAttr } from '../core/xml.js';

const REL_WEBSOCKET = 'urn:xmpp:alt-connections:websocket';
const PREFIX = '/.well-known/host-meta';
/** A Host header we are willing to echo back: a DNS name or bracketed IPv6, with an optional port. */
const HOST = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

export default function hostmeta(host: Host): void {
  const configured = host.config.web.publicWebsocketUrl;
  const trusted = new Set(host.config.proxy.trusted);

  /** The configured URL, else the one this request came through: nginx in front sets Host and
   * X-Forwarded-Proto (trusted only from a trusted proxy; anyone else is talking plain HTTP). */
  function websocketUrl(req: IncomingMessage): string {
    if (configured) return configured;
    const hostHeader = req.headers.host ?? '';
    const authority = HOST.test(hostHeader) ? hostHeader.toLowerCase() : `${host.domain}:${req.socket.localPort ?? host.config.httpPort}`;
    const proxied = trusted.has(req.socket.remoteAddress ?? '');
    const proto = proxied ? String(req.headers['x-forwarded-proto'] ?? '').split(',')[0]!.trim().toLowerCase() : '';
    return `${proto === 'https' ? 'wss' : 'ws'}://${authority}/xmpp-websocket`;
  }

  host.addHttpRoute(PREFIX, (req: IncomingMessage, res: ServerResponse, path: string) => {
    const json = path === `${PREFIX}.json`;
    if (path !== PREFIX && !json) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found\n'); return; }
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, HEAD, OPTIONS' };
    if (req.method === 'OPTIONS') { res.writeHead(204, cors); res.end(); return; }
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { ...cors, allow: 'GET, HEAD, OPTIONS' }); res.end(); return; }
    const url = websocketUrl(req);
    const body = json
      ? JSON.stringify({ links: [{ rel: REL_WEBSOCKET, href: url }] }) + '\n'
      : `<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n` +
        `  <Link rel='${REL_WEBSOCKET}' href='${escapeAttr(url)}'/>\n</XRD>\n`;
    res.writeHead(200, {
      ...cors,
      'content-type': json ? 'application/json' : 'application/xrd+xml; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      // The default depends on Host and X-Forwarded-Proto: caches must keep them apart.
      ...(configured ? {} : { vary: 'Host, X-Forwarded-Proto' }),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}
