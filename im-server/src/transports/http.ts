// HTTP: /health, /metrics (Prometheus) and XMPP over WebSocket (RFC 7395) at /xmpp-websocket.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Transport } from '../core/c2s.js';
import type { Host } from '../core/host.js';
import type { Streams } from '../core/streams.js';

class WsTransport implements Transport {
  readonly kind = 'ws' as const;
  constructor(private readonly ws: WebSocket, readonly address: string, readonly secure: boolean) {}
  write(data: string, written?: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (written) this.ws.send(data, (err) => { if (!err) written(); });
    else this.ws.send(data);
  }
  buffered(): number {
    return this.ws.bufferedAmount;
  }
  end(): void {
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }
}

export interface HttpState {
  accepting(): boolean;
  /** Why storage cannot commit right now (e.g. the disk is full), or undefined. */
  storageProblem(): string | undefined;
}

export function startHttp(host: Host, streams: Streams, state: HttpState): Server {
  const trusted = new Set(host.config.websocket.trustedProxies);
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
    const address = req.socket.remoteAddress ?? 'unknown';
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = streams.accept(new WsTransport(ws, address, trusted.has(address)));
      if (!stream) { ws.close(1008, 'too many connections from your address'); return; }
      ws.on('message', (data, isBinary) => {
        if (isBinary) return stream.streamError('unsupported-encoding', 'XMPP over WebSocket uses text messages');
        stream.feed(data.toString());
      });
      ws.on('close', () => stream.disconnected());
      ws.on('error', (e) => { host.log.debug({ err: e.message }, 'websocket error'); ws.terminate(); });
    });
  });
  server.on('error', (e) => host.log.error({ err: e.message }, 'http listener error'));
  return server;
}
