import { formatDuration } from './duration.js';
import { Counter, Gauge, Trend, type Metrics } from './metrics.js';

/**
 * The live line on stderr: elapsed, VUs, delivered msgs/s, errors and the p95 of the last
 * interval. On a terminal it rewrites one line each second; in a CI log it prints a line every 10 s.
 */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private totalMs = 0;
  private lastReceived = 0;
  private lastAt = 0;
  private lastPrinted = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private metrics: Metrics,
    private enabled: boolean,
  ) {}

  start(totalMs: number): void {
    if (!this.enabled) return;
    this.t0 = this.lastAt = Date.now();
    this.totalMs = totalMs;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  line(): string {
    const m = this.metrics.map;
    const now = Date.now();
    const received = (m.get('messages_received') as Counter | undefined)?.count ?? 0;
    const rate = ((received - this.lastReceived) * 1000) / Math.max(1, now - this.lastAt);
    this.lastReceived = received;
    this.lastAt = now;
    const vus = (m.get('vus') as Gauge | undefined)?.value ?? 0;
    const errors = (m.get('errors') as Counter | undefined)?.count ?? 0;
    const parts = [`[${formatDuration(now - this.t0).padStart(6)} / ${formatDuration(this.totalMs)}]`, `users ${vus}`, `msgs/s ${rate.toFixed(0)}`, `errors ${errors}`];
    for (const name of ['delivery', 'presence_latency', 'connect', 'ping']) {
      const t = m.get(name);
      if (t instanceof Trend && t.window.count > 0) {
        parts.push(`${name} p95 ${t.window.percentile(95).toFixed(1)}ms`);
        t.window.reset();
      }
    }
    return parts.join(' | ');
  }

  private tick(): void {
    const l = this.line();
    if (this.tty) process.stderr.write(`\r\x1b[2K${l}`);
    else if (Date.now() - this.lastPrinted >= 10_000) {
      this.lastPrinted = Date.now();
      process.stderr.write(`${l}\n`);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.enabled && this.tty) process.stderr.write('\n');
  }
}
