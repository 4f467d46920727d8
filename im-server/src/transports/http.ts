// HTTP: /health, /metrics (Prometheus) and XMPP over WebSocket (RFC 7395) at /xmpp-websocket.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { WebSocketServer } from 'ws';
import type { Host } from '../core/host.js';
import type { Streams } from '../core/streams.js';
import { normalizeAddress } from './proxy-protocol.js';
import { WsTransport, clientAddress } from './websocket.js';

export interface HttpState {
  accepting(): boolean;
  /** Why storage cannot commit right now (e.g. the disk is full), or undefined. */
  storageProblem(): string | undefined;
}

export function startHttp(host: Host, streams: Streams, state: HttpState): Server {
  const trusted = new Set(host.config.proxy.trusted.map(normalizeAddress));
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: host.config.limits.maxStanzaSize * 2,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has('xmpp') ? 'xmpp' : false),
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      // Logins still work while storage fails, but nothing new can be stored: monitoring must see it.
      const storage = state.storageProblem();
      const ok = state.accepting() && !storage;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        status: ok ? 'ok' : storage ? 'storage-failing' : 'unavailable', ...(storage ? { storage } : {}),
        domain: host.domain, connections: streams.size, sessions: host.router.count(),
      }));
      return;
    }
    if (path === '/metrics') {
      host.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': host.metrics.registry.contentType });
        res.end(text);
      }, (e: Error) => { res.writeHead(500); res.end(e.message); });
      return;
    }
    const prefix = [...host.httpRoutes.keys()].filter((p) => path!.startsWith(p)).sort((a, b) => b.length - a.length)[0];
    if (prefix !== undefined) {
      const fail = (e: unknown): void => {
        host.log.error({ err: (e as Error).stack, path }, 'http handler failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal server error\n');
      };
      try { Promise.resolve(host.httpRoutes.get(prefix)!(req, res, path!)).catch(fail); } catch (e) { fail(e); }
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });

  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    const path = (req.url ?? '/').split('?')[0];
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (path !== '/xmpp-websocket' || !protocols.includes('xmpp')) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nXMPP over WebSocket is at /xmpp-websocket with the "xmpp" subprotocol\n');
      return;
    }
    const { address, viaProxy } = clientAddress(req, trusted);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const transport = new WsTransport(ws, address, viaProxy, host);
      const stream = streams.accept(transport);
      if (!stream) { ws.close(1008, 'too many connections from your address'); return; }
      transport.attach(stream);
      ws.on('close', () => stream.disconnected());
      ws.on('error', (e) => { host.log.debug({ err: e.message }, 'websocket error'); ws.terminate(); });
    });
  });
  server.on('error', (e) => host.log.error({ err: e.message }, 'http listener error'));
  return server;
}
