// XMPP over WebSocket (RFC 7395): one text message holds whole elements; <open/> and <close/>
// in the framing namespace stand for the stream's start and end. Behind a trusted proxy (nginx,
// which terminates TLS) the client's address comes from X-Real-IP or X-Forwarded-For.
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { Host } from '../core/host.js';
import { StreamParser } from '../core/parser.js';
import { NS } from '../core/stanza.js';
import type { StreamInput, Transport } from '../core/transport.js';
import { escapeAttr } from '../core/xml.js';
import { Intake, TURN_ELEMENTS } from './intake.js';
import { normalizeAddress } from './proxy-protocol.js';

export class WsTransport implements Transport {
  readonly kind = 'ws' as const;
  readonly footer = `<close xmlns="${NS.framing}"/>`;
  readonly streamNs = ` xmlns:stream="${NS.stream}"`;
  private input!: StreamInput;
  private parser!: StreamParser;
  private emitted = 0;
  private readonly intake = new Intake({
    parse: (d) => this.parse(d),
    backlogged: () => this.parser.backlogged,
    resume: () => this.guard(() => { this.parser.resume(); if (!this.parser.backlogged) this.parser.endOfMessage(); }),
    emitted: () => this.emitted,
    pauseReading: () => this.ws.pause(),
    resumeReading: () => this.ws.resume(),
  });

  constructor(private readonly ws: WebSocket, readonly address: string, readonly secure: boolean, private readonly host: Host) {}

  attach(input: StreamInput): void {
    this.input = input;
    this.parser = new StreamParser({
      streamStart: () => {},
      element: (el) => {
        this.emitted++;
        if (el.attrs.xmlns !== NS.framing) return input.element(el);
        if (el.name === 'open') return input.streamOpened(el.attrs);
        if (el.name === 'close') return input.streamClosed();
        input.streamError('unsupported-stanza-type', `<${el.name}/> is not a framing element`);
      },
      streamEnd: () => input.streamClosed(),
      error: (condition, text) => input.streamError(condition, text),
      keepalive: () => input.keepalive(),
      held: () => this.intake.held,
    }, this.host.config.limits, true);
    this.parser.yieldAfter = TURN_ELEMENTS;
    this.ws.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (this.parser.stopped) return;
    this.input.received();
    if (isBinary) { this.parser.stop(); return this.input.streamError('unsupported-encoding', 'XMPP over WebSocket uses text messages'); }
    this.intake.push(data);
  }

  private parse(data: Buffer): void {
    // ws has checked that text messages are valid UTF-8.
    this.guard(() => { this.parser.write(data.toString('utf8')); if (!this.parser.backlogged) this.parser.endOfMessage(); });
  }

  /** A bug while handling input costs this connection only. */
  private guard(fn: () => void): void {
    if (this.parser.stopped) return;
    try {
      fn();
    } catch (err) {
      this.parser.stop();
      this.input.crashed(err);
    }
  }

  hold(): void {
    this.intake.hold();
  }

  release(): void {
    this.intake.release();
  }

  header(id: string, from: string): string {
    return `<open xmlns="${NS.framing}" id="${id}" from="${escapeAttr(from)}" version="1.0" xml:lang="en"/>`;
  }

  write(data: string, written?: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (written) this.ws.send(data, (err) => { if (!err) written(); });
    else this.ws.send(data);
  }

  buffered(): number {
    return this.ws.bufferedAmount;
  }

  /** A new <open/> arrives in the same framing: nothing to reset. */
  restart(): void {}

  end(): void {
    this.parser?.stop();
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }
}

/** The client's address: the peer's, or, from a trusted proxy, the one the proxy names. */
export function clientAddress(req: IncomingMessage, trusted: Set<string>): { address: string; viaProxy: boolean } {
  const peer = normalizeAddress(req.socket.remoteAddress ?? 'unknown');
  if (!trusted.has(peer)) return { address: peer, viaProxy: false };
  const real = req.headers['x-real-ip'];
  const forwarded = req.headers['x-forwarded-for'];
  // nginx sets X-Real-IP to the address it saw; in X-Forwarded-For only the last entry is the proxy's own word.
  const named = (typeof real === 'string' && real.trim()) || (typeof forwarded === 'string' && forwarded.split(',').pop()!.trim()) || '';
  return { address: named && /^[0-9a-fA-F:.]+$/.test(named) ? normalizeAddress(named) : peer, viaProxy: true };
}
