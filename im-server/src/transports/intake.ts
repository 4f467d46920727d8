// The input of one connection, parsed in turns. At most TURN_ELEMENTS stanzas per turn of the
// event loop, so that one client's burst (a thousand stanzas in one read) cannot hold everyone
// else's; nothing parsed while held (an asynchronous SASL step decides which parser, the old
// stream's or the restarted one's, reads what the client sent meanwhile); the socket is paused
// while input waits, so what waits is at most a read or two.

/** Stanzas one connection may have handled per turn of the event loop. */
export const TURN_ELEMENTS = 32;

export interface IntakeTarget {
  /** Parses one unit of input (a TCP read, a WebSocket message). */
  parse(data: Buffer): void;
  /** The parser stopped mid-input after TURN_ELEMENTS stanzas: resume() continues it. */
  backlogged(): boolean;
  resume(): void;
  /** Stanzas the parser has handed out so far (any parser of this connection). */
  emitted(): number;
  pauseReading(): void;
  resumeReading(): void;
}

export class Intake {
  private readonly queue: Buffer[] = [];
  /** hold() calls not yet released (a SASL step, stanzas waiting for the database). */
  private holding = 0;
  private running = false;
  private scheduled = false;
  private paused = false;

  constructor(private readonly target: IntakeTarget) {}

  push(data: Buffer): void {
    this.queue.push(data);
    this.run();
  }

  /** Drops what waits (STARTTLS: plain text sent after <starttls/> must never count). */
  clear(): void {
    this.queue.length = 0;
  }

  /** Nothing is parsed until release() (the parser asks, after each element). */
  get held(): boolean {
    return this.holding > 0;
  }

  /** Parse nothing more until release(). */
  hold(): void {
    this.holding++;
  }

  release(): void {
    if (this.holding > 0) this.holding--;
    this.run();
  }

  private run(): void {
    if (this.running) return; // a handler that holds or releases re-enters here: the loop below sees it
    this.running = true;
    const t = this.target;
    const start = t.emitted();
    try {
      for (;;) {
        if (this.holding > 0) break;
        if (t.emitted() - start >= TURN_ELEMENTS) { this.later(); break; }
        if (t.backlogged()) { t.resume(); continue; }
        const next = this.queue.shift();
        if (!next) break;
        t.parse(next);
      }
    } finally {
      this.running = false;
    }
    const waiting = this.holding > 0 || this.queue.length > 0 || t.backlogged();
    if (waiting && !this.paused) { this.paused = true; t.pauseReading(); }
    if (!waiting && this.paused) { this.paused = false; t.resumeReading(); }
  }

  private later(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => { this.scheduled = false; this.run(); });
  }
}
