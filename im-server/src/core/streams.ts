// Keeps every open client stream: per-address connection limits, the one timer that drives
// idle and login timeouts for all of them, the sessions waiting to be resumed (XEP-0198), and
// shutdown. A transport talks to a Connection, whose stream changes when a resumed session
// takes the connection over.
import { C2SStream, type StreamContext } from './c2s.js';
import type { Host } from './host.js';
import { AuthThrottle, ConnectionCounter } from './limits.js';
import { Resumptions } from './sm.js';
import type { StreamInput, Transport } from './transport.js';
import type { Element } from './xml.js';

/** A connection's input goes to the stream that owns it now (a resumed session takes it over);
 * once the stream is gone, to nobody. */
class Conn implements StreamInput {
  constructor(public stream: C2SStream | undefined, readonly address: string) {}
  received(): void { this.stream?.received(); }
  streamOpened(attrs: Record<string, string>): void { this.stream?.streamOpened(attrs); }
  element(el: Element): void { this.stream?.element(el); }
  streamClosed(): void { this.stream?.streamClosed(); }
  streamError(condition: string, text?: string): void { this.stream?.streamError(condition, text); }
  keepalive(): void { this.stream?.keepalive(); }
  crashed(err: unknown): void { this.stream?.crashed(err); }
  disconnected(): void { this.stream?.disconnected(); }
}

export class Streams {
  private readonly open = new Map<C2SStream, Conn>();
  readonly throttle: AuthThrottle;
  private readonly counter: ConnectionCounter;
  private readonly timer: NodeJS.Timeout;
  private readonly ctx: StreamContext;

  constructor(private readonly host: Host) {
    const l = host.config.limits;
    this.throttle = new AuthThrottle(l.authFailuresPerAccount, l.authFailuresPerAddress, l.authLockoutSeconds * 1000);
    this.counter = new ConnectionCounter(l.maxConnectionsPerAddress, new Set(l.connectionLimitExempt));
    const smallest = Math.min(l.idleSeconds, l.pingTimeoutSeconds, l.tlsTimeoutSeconds, l.authTimeoutSeconds);
    this.timer = setInterval(() => this.sweep(), Math.max(100, Math.min(1000, smallest * 250)));
    this.timer.unref();
    this.ctx = {
      throttle: this.throttle,
      resumptions: new Resumptions(),
      closed: (s) => {
        const conn = this.open.get(s);
        if (!conn) return;
        this.open.delete(s);
        conn.stream = undefined; // later events of that connection (its close) concern nobody
        this.counter.release(conn.address);
      },
      moved: (from, to) => {
        const conn = this.open.get(from);
        if (!conn) return;
        this.open.delete(from);
        this.open.set(to, conn);
        conn.stream = to;
      },
    };
  }

  /** A new connection; undefined when its address holds too many already (caller closes it). */
  accept(transport: Transport): StreamInput | undefined {
    if (!this.counter.acquire(transport.address)) return undefined;
    const stream = new C2SStream(this.host, transport, this.ctx);
    const conn = new Conn(stream, transport.address);
    this.open.set(stream, conn);
    return conn;
  }

  get size(): number {
    return this.open.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of this.open.keys()) s.tick(now);
    this.throttle.sweep(now);
  }

  /** Closes every stream with <system-shutdown/>. */
  shutdown(): void {
    clearInterval(this.timer);
    for (const s of [...this.open.keys()]) s.close('system-shutdown', 'the server is shutting down');
    this.ctx.resumptions.expireAll();
  }
}
