import type { XmppClient } from './xmpp/client.js';
import { connectAndLogin, type ErrorLog, type Target, type Transport } from './context.js';
import type { Metrics } from './metrics.js';

export interface Range {
  min: number;
  max: number;
  sample(): number;
}

export interface FeatureOptions {
  /** Upload scenario: file size in bytes. */
  fileSize: Range;
  /** XEP-0363 service JID (default upload.<domain>). */
  uploadService: string;
  /** Replaces the origin (scheme://host:port) of upload URLs, for a site reached by another address. */
  httpBase: string | undefined;
  /** XEP-0045 service JID (default conference.<domain>). */
  mucService: string;
  /** Groupchat scenario: occupants per room. */
  roomSize: number;
}

/** State shared by all VUs of one run. */
export interface RunContext {
  target: Target;
  metrics: Metrics;
  errors: ErrorLog;
  /** VUs with a session that can receive chat messages now. */
  online: OnlineSet;
  /** Body size in bytes for chat messages. */
  messageSize: Range;
  /** Settings of the feature scenarios (upload, groupchat). */
  features: FeatureOptions;
  /** All VUs by id (created lazily), e.g. to find a roster partner. */
  vus: Array<Vu | undefined>;
}

/** A set with O(1) add, delete and uniform random pick, for choosing chat partners. */
export class OnlineSet {
  private items: Vu[] = [];
  private index = new Map<Vu, number>();
  get size(): number {
    return this.items.length;
  }
  add(v: Vu): void {
    if (this.index.has(v)) return;
    this.index.set(v, this.items.length);
    this.items.push(v);
  }
  delete(v: Vu): void {
    const i = this.index.get(v);
    if (i === undefined) return;
    const last = this.items.pop()!;
    if (last !== v) {
      this.items[i] = last;
      this.index.set(last, i);
    }
    this.index.delete(v);
  }
  /** A random member other than `not`, or undefined if there is none. */
  pick(not?: Vu): Vu | undefined {
    const n = this.items.length;
    if (n === 0 || (n === 1 && this.items[0] === not)) return undefined;
    for (;;) {
      const v = this.items[Math.floor(Math.random() * n)]!;
      if (v !== not) return v;
    }
  }
}

/**
 * A k6 scenario, XMPP-shaped: `start` sets up the VU's session (log in, presence), `iteration`
 * is what k6 calls the default function (run in a loop with think time, or at a fixed arrival
 * rate), `stop` ends the session gracefully. A thrown error counts in `errors` and restarts the
 * session.
 */
export interface Scenario {
  name: string;
  description: string;
  /** Metrics this scenario reports (for threshold validation and the summary). */
  metrics: string[];
  /** Think time between iterations when the user gives none. */
  defaultThink: string;
  start(vu: Vu, ctx: RunContext): Promise<void>;
  iteration(vu: Vu, ctx: RunContext): Promise<void>;
  stop(vu: Vu, ctx: RunContext): Promise<void>;
}

/** One virtual user: one account, at most one session at a time. Deliberately small. */
export class Vu {
  started = false;
  stopping = false;
  client: XmppClient | undefined;
  /** Chat messages sent to this VU and not yet received (ramp-down waits for them). */
  inflight = 0;
  private wake: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly username: string,
    readonly password: string,
    readonly transport: Transport,
    readonly scenario: Scenario,
    readonly domain: string,
  ) {}

  get bare(): string {
    return `${this.username}@${this.domain}`;
  }

  /** Logs in and keeps the session; an unexpected disconnect counts as an error. */
  async login(ctx: RunContext): Promise<XmppClient> {
    const c = await connectAndLogin(ctx.target, ctx.metrics, this.transport, this.id, this.username, this.password, `lt${this.id}`);
    this.client = c;
    c.onClose = (err) => {
      if (this.client !== c) return;
      this.client = undefined;
      this.started = false;
      ctx.online.delete(this);
      if (!this.stopping) ctx.errors.add('disconnect', err ?? new Error('server closed the connection'));
    };
    return c;
  }

  /** Closes the session (if any) without counting it as an error. */
  async logout(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.started = false;
    await c?.close();
  }

  /** Think time; returns early when the VU is told to stop. */
  sleep(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  requestStop(): void {
    this.stopping = true;
    this.wake?.();
  }
}
