// Keeps every open client stream: per-address connection limits, the one timer that drives
// idle and login timeouts for all of them, the sessions waiting to be resumed (XEP-0198), and
// shutdown. A transport talks to a Connection, whose stream changes when a resumed session
// takes the connection over.
import { C2SStream, type StreamContext, type Transport } from './c2s.js';
import type { Host } from './host.js';
import { AuthThrottle, ConnectionCounter } from './limits.js';
import { Resumptions } from './sm.js';

/** What a transport calls: input, loss, and (WebSocket) a framing error. */
export interface Connection {
  feed(data: string): void;
  disconnected(): void;
  streamError(condition: string, text?: string): void;
}

class Conn implements Connection {
  constructor(public stream: C2SStream | undefined, readonly address: string) {}
  feed(data: string): void { this.stream?.feed(data); }
  disconnected(): void { this.stream?.disconnected(); }
  streamError(condition: string, text?: string): void { this.stream?.streamError(condition, text); }
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
    const smallest = Math.min(l.idleSeconds, l.pingTimeoutSeconds, l.authTimeoutSeconds);
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
  accept(transport: Transport): Connection | undefined {
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
