// XMPP over TCP (RFC 6120) with STARTTLS, and XEP-0368 direct TLS (TLS from the first byte, ALPN
// "xmpp-client"), which gets through networks that only let TLS out, e.g. on port 443.
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createServer as createTlsServer, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Transport } from '../core/c2s.js';
import type { Host } from '../core/host.js';
import type { Streams } from '../core/streams.js';
import { NS } from '../core/stanza.js';

class TcpTransport implements Transport {
  readonly kind = 'tcp' as const;
  secure = false;
  socket: Socket;
  readonly address: string;

  constructor(socket: Socket, private readonly context: SecureContext, private readonly onData: (s: string) => void, private readonly onError: (e: Error) => void, secure: boolean) {
    this.socket = socket;
    this.secure = secure;
    this.address = socket.remoteAddress ?? 'unknown';
  }

  write(data: string, written?: () => void): void {
    if (this.socket.destroyed) return;
    if (written) this.socket.write(data, (err) => { if (!err) written(); });
    else this.socket.write(data);
  }

  buffered(): number {
    return this.socket.writableLength;
  }

  startTls(done: () => void): void {
    const raw = this.socket;
    raw.removeAllListeners('data');
    const tls = new TLSSocket(raw, { isServer: true, secureContext: this.context });
    tls.setEncoding('utf8');
    tls.on('data', this.onData);
    tls.on('error', this.onError);
    tls.once('secure', done);
    this.socket = tls;
    this.secure = true;
  }

  end(): void {
    const s = this.socket;
    s.end();
    // Peers that never close their side are cut off.
    setTimeout(() => s.destroy(), 5000).unref();
  }
}

export type TcpServer = Server & {
  /** Resolves once every client socket has closed (they are ended on shutdown), or after `ms`. */
  drained(ms: number): Promise<void>;
};

/** directTls: the certificate for a listener that speaks TLS from the first byte (XEP-0368). */
export function startTcp(host: Host, streams: Streams, context: SecureContext, opts: { directTls?: SecureContextOptions } = {}): TcpServer {
  const sockets = new Set<Socket>();
  const accept = (socket: Socket, secure: boolean): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setEncoding('utf8');
    let stream: ReturnType<Streams['accept']>;
    const onError = (e: Error): void => { host.log.debug({ err: e.message }, 'tcp socket error'); transport.socket.destroy(); socket.destroy(); };
    const transport = new TcpTransport(socket, context, (d) => stream?.feed(d), onError, secure);
    stream = streams.accept(transport);
    if (!stream) {
      socket.end(`<?xml version='1.0'?><stream:stream xmlns="jabber:client" xmlns:stream="${NS.stream}" version="1.0" from="${host.domain}">` +
        `<stream:error><policy-violation xmlns="${NS.streams}"/><text xmlns="${NS.streams}">too many connections from your address</text></stream:error></stream:stream>`);
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    socket.on('data', (d: string) => stream!.feed(d));
    socket.on('error', onError);
    socket.on('close', () => stream!.disconnected());
  };
  const server: Server = opts.directTls
    ? createTlsServer({ ...opts.directTls, ALPNProtocols: ['xmpp-client'], handshakeTimeout: host.config.limits.authTimeoutSeconds * 1000, noDelay: true },
      (socket) => accept(socket, true))
      .on('tlsClientError', (e, socket) => host.log.debug({ err: e.message, address: socket.remoteAddress }, 'direct TLS handshake failed'))
    : createServer({ noDelay: true }, (socket) => accept(socket, false));
  server.on('error', (e) => host.log.error({ err: e.message }, 'tcp listener error'));
  // Exiting while a closing stream's last bytes (<system-shutdown/>) sit in TLS buffers would
  // cut them off; shutdown waits for the sockets to close instead.
  const drained = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    const check = (): void => { if (sockets.size === 0) { clearTimeout(timer); resolve(); } };
    for (const s of sockets) s.once('close', check);
    check();
  });
  return Object.assign(server, { drained });
}
