// XMPP over TCP (RFC 6120) with STARTTLS, and XEP-0368 direct TLS (TLS from the first byte, ALPN
// "xmpp-client"), which gets through networks that only let TLS out, e.g. on port 443. Behind a
// proxy (nginx's stream module) each connection may start with a PROXY protocol header naming the
// real client. The transport owns the byte level: UTF-8, the XML stream and its limits.
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Host } from '../core/host.js';
import { StreamParser, type ParserHandler } from '../core/parser.js';
import { NS } from '../core/stanza.js';
import type { Streams } from '../core/streams.js';
import type { StreamInput, Transport } from '../core/transport.js';
import { escapeAttr } from '../core/xml.js';
import { Intake, TURN_ELEMENTS } from './intake.js';
import { normalizeAddress, parseProxyHeader } from './proxy-protocol.js';

const STREAM_HEADER_END = ` xmlns="jabber:client" xmlns:stream="${NS.stream}" version="1.0" xml:lang="en">`;

class TcpTransport implements Transport {
  readonly kind = 'tcp' as const;
  readonly footer = '</stream:stream>';
  readonly streamNs = '';
  private input!: StreamInput;
  private parser!: StreamParser;
  private decoder = new TextDecoder('utf-8', { fatal: true });
  private emitted = 0;
  private readonly intake = new Intake({
    parse: (d) => this.parse(d),
    backlogged: () => this.parser.backlogged,
    resume: () => this.guard(() => this.parser.resume()),
    emitted: () => this.emitted,
    pauseReading: () => this.socket.pause(),
    resumeReading: () => this.socket.resume(),
  });

  constructor(private socket: Socket, readonly address: string, public secure: boolean, private readonly host: Host, private readonly context: SecureContext) {}

  attach(input: StreamInput): void {
    this.input = input;
    this.parser = this.newParser();
    this.listen(this.socket);
  }

  private listen(socket: Socket): void {
    socket.on('data', (d: Buffer) => this.receive(d));
  }

  /** Bytes from the socket (decrypted, when TLS is on). */
  receive(data: Buffer): void {
    if (this.parser.stopped) return;
    this.input.received();
    this.intake.push(data);
  }

  hold(): void {
    this.intake.hold();
  }

  release(): void {
    this.intake.release();
  }

  private parse(data: Buffer): void {
    if (this.parser.stopped) return;
    let text: string;
    try {
      text = this.decoder.decode(data, { stream: true });
    } catch {
      this.parser.stop();
      return this.input.streamError('not-well-formed', 'the stream is not valid UTF-8');
    }
    this.guard(() => this.parser.write(text));
  }

  /** A bug while handling input costs this connection only. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.parser.stop();
      this.input.crashed(err);
    }
  }

  private newParser(): StreamParser {
    const input = this.input;
    const handler: ParserHandler = {
      streamStart: (name, ns, attrs) => {
        if (name !== 'stream' || ns !== NS.stream) return input.streamError('invalid-namespace', 'expected <stream:stream> in ' + NS.stream);
        if (attrs.xmlns !== NS.client) return input.streamError('invalid-namespace', 'the stream\'s default namespace must be jabber:client');
        input.streamOpened(attrs);
      },
      element: (el) => { this.emitted++; input.element(el); },
      streamEnd: () => input.streamClosed(),
      error: (condition, text) => input.streamError(condition, text),
      keepalive: () => input.keepalive(),
      held: () => this.intake.held,
    };
    const parser = new StreamParser(handler, this.host.config.limits);
    parser.yieldAfter = TURN_ELEMENTS;
    return parser;
  }

  header(id: string, from: string): string {
    return `<?xml version='1.0'?><stream:stream id="${id}" from="${escapeAttr(from)}"${STREAM_HEADER_END}`;
  }

  write(data: string, written?: () => void): void {
    if (this.socket.destroyed) return;
    if (written) this.socket.write(data, (err) => { if (!err) written(); });
    else this.socket.write(data);
  }

  buffered(): number {
    return this.socket.writableLength;
  }

  /** After SASL success: the parser starts over after <auth/>'s answer, keeping what the client
   * already sent for the new stream. */
  restart(): void {
    this.parser.restart();
  }

  startTls(): void {
    // Nothing the client sent after <starttls/> in plain text may count (it could be injected):
    // the plain-text parser stops, and only what comes through TLS reaches the next one.
    this.parser.stop();
    this.intake.clear();
    const raw = this.socket;
    raw.removeAllListeners('data');
    const tls = new TLSSocket(raw, { isServer: true, secureContext: this.context });
    tls.on('error', (e) => this.failed(e));
    this.socket = tls;
    this.secure = true;
    this.decoder = new TextDecoder('utf-8', { fatal: true });
    this.parser = this.newParser();
    this.listen(tls);
  }

  failed(e: Error): void {
    this.host.log.debug({ err: e.message, address: this.address }, 'tcp socket error');
    this.parser?.stop();
    this.socket.destroy();
  }

  end(): void {
    this.parser?.stop();
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

export interface TcpOptions {
  /** The certificate for a listener that speaks TLS from the first byte (XEP-0368). */
  directTls?: SecureContextOptions;
}

/** Reads the PROXY protocol header, then hands over the client's address and what followed the header. */
function readProxyHeader(socket: Socket, timeoutMs: number, done: (address: string | undefined, rest: Buffer) => void, fail: (why: string) => void): void {
  let buf = Buffer.alloc(0);
  const timer = setTimeout(() => fail('no PROXY protocol header in time'), timeoutMs);
  const onData = (d: Buffer): void => {
    buf = Buffer.concat([buf, d]);
    const r = parseProxyHeader(buf);
    if (r.kind === 'more') return;
    clearTimeout(timer);
    socket.off('data', onData);
    if (r.kind === 'error') return fail(r.text);
    socket.pause(); // until the transport listens: no byte may slip past it
    done(r.address, r.rest);
  };
  socket.on('data', onData);
  socket.once('close', () => clearTimeout(timer));
}

export function startTcp(host: Host, streams: Streams, context: SecureContext, opts: TcpOptions = {}): TcpServer {
  const l = host.config.limits;
  const proxy = host.config.proxy;
  const trusted = new Set(proxy.trusted.map(normalizeAddress));
  const direct = opts.directTls ? createSecureContext(opts.directTls) : undefined;
  const sockets = new Set<Socket>();

  const refuse = (socket: Socket, text: string): void => {
    socket.end(`<?xml version='1.0'?><stream:stream xmlns="jabber:client" xmlns:stream="${NS.stream}" version="1.0" from="${host.domain}">` +
      `<stream:error><policy-violation xmlns="${NS.streams}"/><text xmlns="${NS.streams}">${text}</text></stream:error></stream:stream>`);
    setTimeout(() => socket.destroy(), 1000).unref();
  };

  /** The connection is known (client address) and, for direct TLS, encrypted. */
  const start = (socket: Socket, address: string, secure: boolean, rest: Buffer | undefined): void => {
    const transport = new TcpTransport(socket, address, secure, host, context);
    const stream = streams.accept(transport);
    if (!stream) return refuse(socket, 'too many connections from your address');
    transport.attach(stream);
    socket.on('error', (e) => transport.failed(e));
    socket.on('close', () => stream.disconnected());
    if (rest && rest.length > 0) transport.receive(rest);
    socket.resume();
  };

  /** Direct TLS: the handshake (ALPN xmpp-client), bounded in time, then the stream. */
  const startTlsFirst = (raw: Socket, address: string, rest: Buffer | undefined): void => {
    if (rest && rest.length > 0) raw.unshift(rest);
    const tls = new TLSSocket(raw, { isServer: true, secureContext: direct!, ALPNProtocols: ['xmpp-client'] });
    const timer = setTimeout(() => tls.destroy(), l.tlsTimeoutSeconds * 1000);
    tls.on('error', (e) => { host.log.debug({ err: e.message, address }, 'direct TLS handshake failed'); tls.destroy(); raw.destroy(); });
    tls.once('secure', () => { clearTimeout(timer); start(tls, address, true, undefined); });
    raw.once('close', () => clearTimeout(timer));
  };

  const accept = (socket: Socket, peer: string | undefined): void => {
    const next = (address: string, rest: Buffer | undefined): void => (direct ? startTlsFirst(socket, address, rest) : start(socket, address, false, rest));
    if (!proxy.protocol) return next(peer ?? 'unknown', undefined);
    if (!peer || !trusted.has(peer)) {
      host.log.warn({ address: peer }, 'connection refused: the PROXY protocol is on and this address is not a trusted proxy (proxy.trusted)');
      return void socket.destroy();
    }
    readProxyHeader(socket, l.tlsTimeoutSeconds * 1000, (address, rest) => next(address ? normalizeAddress(address) : peer, rest), (why) => {
      host.log.warn({ address: peer, why }, 'connection from the proxy refused');
      socket.destroy();
    });
  };

  const server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    accept(socket, socket.remoteAddress ? normalizeAddress(socket.remoteAddress) : undefined);
  });
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
