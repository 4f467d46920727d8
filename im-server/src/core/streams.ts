// Keeps every open client stream: per-address connection limits, the one timer that drives
// idle and login timeouts for all of them, and shutdown.
import { C2SStream, type Transport } from './c2s.js';
import type { Host } from './host.js';
import { AuthThrottle, ConnectionCounter } from './limits.js';

export class Streams {
  private readonly open = new Set<C2SStream>();
  readonly throttle: AuthThrottle;
  private readonly counter: ConnectionCounter;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly host: Host) {
    const l = host.config.limits;
    this.throttle = new AuthThrottle(l.authFailuresPerAccount, l.authFailuresPerAddress, l.authLockoutSeconds * 1000);
    this.counter = new ConnectionCounter(l.maxConnectionsPerAddress, new Set(l.connectionLimitExempt));
    const smallest = Math.min(l.idleSeconds, l.pingTimeoutSeconds, l.authTimeoutSeconds);
    this.timer = setInterval(() => this.sweep(), Math.max(100, Math.min(1000, smallest * 250)));
    this.timer.unref();
  }

  /** A new connection; undefined when its address holds too many already (caller closes it). */
  accept(transport: Transport): C2SStream | undefined {
    if (!this.counter.acquire(transport.address)) return undefined;
    const stream = new C2SStream(this.host, transport, this.throttle, (s) => { this.open.delete(s); this.counter.release(transport.address); });
    this.open.add(stream);
    return stream;
  }

  get size(): number {
    return this.open.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of this.open) s.tick(now);
    this.throttle.sweep(now);
  }

  /** Closes every stream with <system-shutdown/>. */
  shutdown(): void {
    clearInterval(this.timer);
    for (const s of [...this.open]) s.close('system-shutdown', 'the server is shutting down');
  }
}
