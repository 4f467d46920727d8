// XEP-0198 stream management state of one session: counters, the queue of stanzas the client
// has not acknowledged yet, and the callbacks waiting for acks. Plus the registry of resumable
// sessions (live or hibernating after their connection dropped) and what happens to unacked
// stanzas when a session ends for good (Prosody's "handle_unacked_stanzas").
import { randomBytes } from 'node:crypto';
import type { Host } from './host.js';
import type { Jid } from './jid.js';
import { parseElement } from './parser.js';
import { NS, errorReply } from './stanza.js';
import { escapeText, type Element } from './xml.js';

interface Unacked {
  xml: string;
  /** Sent from storage (offline messages, subscription requests): still stored there, never re-routed. */
  stored: boolean;
}

/** What stream management needs of a session: it wraps the session's output and connection, and
 * asks no more of it than this (no import of the stream class: no cycle). */
export interface SmSession {
  readonly id: string;
  readonly username: string;
  readonly bound: boolean;
  readonly live: boolean;
  sm: SmState | undefined;
  raw(s: string): void;
  streamError(condition: string, text?: string): void;
  /** The resume timeout expired: the session ends for real. */
  expire(): void;
  /** Takes over `from`'s connection (resumption). */
  adopt(from: SmSession): void;
  /** Writes every stanza not yet acknowledged, in order. */
  resend(): void;
}

/** h values and counters are mod 2^32 (XEP-0198 §4). */
const mod32 = (n: number): number => n >>> 0;

export class SmState {
  /** Stanzas received from the client (the h we report). */
  handled = 0;
  /** Stanzas sent to the client. */
  sent = 0;
  /** The client's last <a h/>. */
  private acked = 0;
  /** Stanzas acked+1 .. sent, in order. */
  readonly queue: Unacked[] = [];
  private waiters: { upTo: number; fn: () => void }[] = [];
  /** An <r/> is scheduled or unanswered. */
  ackPending = false;

  constructor(readonly id: string, readonly resumable: boolean, readonly max: number) {}

  /** Counts a sent stanza; false when the client is more than `limit` stanzas behind. */
  push(xml: string, stored: boolean, limit: number): boolean {
    this.sent = mod32(this.sent + 1);
    this.queue.push({ xml, stored });
    return this.queue.length <= limit;
  }

  /** The client has received h stanzas. False when h acknowledges more than was sent. */
  ack(h: number): boolean {
    const n = mod32(h - this.acked);
    if (n > this.queue.length) return false;
    this.queue.splice(0, n);
    this.acked = h;
    const ready = this.waiters.filter((w) => mod32(h - w.upTo) < 0x80000000);
    if (ready.length > 0) {
      this.waiters = this.waiters.filter((w) => !ready.includes(w));
      for (const w of ready) w.fn();
    }
    return true;
  }

  /** Runs `fn` once an ack covers every stanza sent so far. */
  waitForAck(fn: () => void): void {
    if (this.queue.length === 0) { fn(); return; }
    this.waiters.push({ upTo: this.sent, fn });
  }

  /** The session ended: what waited for acks stays undone (e.g. offline rows kept). */
  drop(): Unacked[] {
    this.waiters = [];
    return this.queue.splice(0);
  }
}

/** Resumable sessions by SM id, and the timers of those whose connection dropped. */
export class Resumptions {
  private readonly sessions = new Map<string, SmSession>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Recently ended ids, to report the final h in <failed/> (bounded). */
  private readonly ended = new Map<string, { username: string; h: number }>();

  static newId(): string {
    return randomBytes(18).toString('base64url');
  }

  add(s: SmSession): void {
    this.sessions.set(s.sm!.id, s);
  }

  get(id: string): SmSession | undefined {
    return this.sessions.get(id);
  }

  /** h of a session that ended recently (for <failed h/>), if it was this user's. */
  endedH(id: string, username: string): number | undefined {
    const e = this.ended.get(id);
    return e && e.username === username ? e.h : undefined;
  }

  hibernate(s: SmSession): void {
    const id = s.sm!.id;
    this.timers.set(id, setTimeout(() => { this.timers.delete(id); s.expire(); }, s.sm!.max * 1000).unref());
  }

  /** The session has a connection again. */
  wake(s: SmSession): void {
    const id = s.sm!.id;
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  /** Server shutdown: hibernating sessions end now, so their unacked messages are handled. */
  expireAll(): void {
    for (const id of [...this.timers.keys()]) this.sessions.get(id)?.expire();
  }

  remove(s: SmSession): void {
    const id = s.sm!.id;
    if (this.sessions.get(id) !== s) return;
    this.wake(s);
    this.sessions.delete(id);
    this.ended.set(id, { username: s.username, h: s.sm!.handled });
    if (this.ended.size > 1000) this.ended.delete(this.ended.keys().next().value!);
  }
}

/** A session ended with stanzas the client never acknowledged: messages for the user go back
 * into routing (other resources, or offline storage), IQ requests get an error, the rest is
 * dropped. Called after the session is unbound, so routing skips it. */
export function handleUnacked(host: Host, jid: Jid, items: Unacked[]): void {
  for (const it of items) {
    if (it.stored) continue;
    const el = parseElement(it.xml);
    if (!el) continue;
    const to = el.attrs.to;
    if (el.name === 'message') {
      const type = el.attrs.type ?? 'normal';
      if (type !== 'chat' && type !== 'normal') continue;
      if (to === undefined || (to !== jid.bare && !to.startsWith(jid.bare + '/'))) continue;
      // Carbon copies are copies: the original reached (or was stored for) its addressee.
      if (el.elements().some((c) => c.ns === 'urn:xmpp:carbons:2')) continue;
      host.route(el);
    } else if (el.name === 'iq' && (el.attrs.type === 'get' || el.attrs.type === 'set') && el.attrs.from !== undefined) {
      host.route(errorReply(el, 'service-unavailable', 'the recipient went offline before receiving this'));
    }
  }
}

const validH = (v: string | undefined): number | undefined => {
  const h = Number(v);
  return v !== undefined && Number.isInteger(h) && h >= 0 && h <= 0xffffffff ? h : undefined;
};

function failed(s: SmSession, condition: string, text: string, h?: number): void {
  s.raw(`<failed xmlns="${NS.sm}"${h === undefined ? '' : ` h="${h}"`}><${condition} xmlns="${NS.stanzas}"/>` +
    `<text xmlns="${NS.stanzas}" xml:lang="en">${escapeText(text)}</text></failed>`);
}

/** Streams that sent <resume/> and wait for it to complete. */
const resuming = new WeakSet<SmSession>();

/** A top-level element in urn:xmpp:sm:3 on an authenticated stream. */
export function smElement(s: SmSession, el: Element, host: Host, resumptions: Resumptions): void {
  const timeout = host.config.streamManagement.resumeTimeoutSeconds;
  switch (el.name) {
    case 'enable': {
      if (!s.bound) return failed(s, 'unexpected-request', 'bind a resource before enabling stream management');
      if (s.sm) return failed(s, 'unexpected-request', 'stream management is already enabled');
      const resume = (el.attrs.resume === 'true' || el.attrs.resume === '1') && timeout > 0;
      const wanted = validH(el.attrs.max);
      const max = wanted && wanted > 0 ? Math.min(wanted, timeout) : timeout;
      s.sm = new SmState(Resumptions.newId(), resume, max);
      if (resume) resumptions.add(s);
      return s.raw(`<enabled xmlns="${NS.sm}" id="${s.sm.id}"${resume ? ` resume="true" max="${max}"` : ''}/>`);
    }
    case 'r': {
      if (!s.sm) return;
      // <a h/> is our acknowledgement: it counts a stanza only once what it wrote is durable.
      // h is what was handled when <r/> came: stanzas handled while this batch commits are
      // in the next batch, not yet durable, so they must not be counted.
      const h = s.sm.handled;
      host.db.barrier().then(() => s.raw(`<a xmlns="${NS.sm}" h="${h}"/>`),
        () => failedLater(s));
      return;
    }
    case 'a': {
      if (!s.sm) return;
      const h = validH(el.attrs.h);
      if (h === undefined) return s.streamError('bad-format', '<a/> needs an h between 0 and 2^32-1');
      if (!s.sm.ack(h)) return s.streamError('undefined-condition', `h="${h}" acknowledges more stanzas than were sent`);
      // The next stanza sent asks again; asking at once would ping-pong with a client whose
      // count lags (some count from when they processed <enabled/>, not from when it arrived).
      s.sm.ackPending = false;
      return;
    }
    case 'resume': return resume(s, el, host, resumptions);
    default: return s.streamError('unsupported-stanza-type', `<${el.name}/> in ${NS.sm}`);
  }
}

function resume(s: SmSession, el: Element, host: Host, resumptions: Resumptions): void {
  if (s.bound || s.sm || resuming.has(s)) return failed(s, 'unexpected-request', 'resume instead of binding a resource, once');
  const previd = el.attrs.previd ?? '';
  const h = validH(el.attrs.h);
  if (h === undefined) return failed(s, 'bad-request', '<resume/> needs previd and an h between 0 and 2^32-1');
  const old = resumptions.get(previd);
  if (!old || old.username !== s.username) {
    return failed(s, 'item-not-found', 'no session to resume with that id (it expired or never existed); bind a new one', resumptions.endedH(previd, s.username));
  }
  if (!old.sm!.ack(h)) return failed(s, 'undefined-condition', `h="${h}" acknowledges more stanzas than were sent`);
  resuming.add(s);
  // <resumed h/> acknowledges what the session received: sent once that is durable, like <a/>.
  host.db.barrier().then(() => {
    resuming.delete(s);
    if (!s.live) return;
    if (resumptions.get(previd) !== old) return failed(s, 'item-not-found', 'the session ended while being resumed; bind a new one');
    old.adopt(s);
    old.raw(`<resumed xmlns="${NS.sm}" previd="${previd}" h="${old.sm!.handled}"/>`);
    old.resend();
    host.log.info({ stream: old.id, user: old.username, resent: old.sm!.queue.length }, 'session resumed');
  }, () => s.streamError('internal-server-error', 'storage failure; nothing was acknowledged'));
}

/** A commit failed: the stream ends, but only after every writer of that batch was told (their
 * rejection handlers run in this turn: a bounce to the sender must go out before the stream ends). */
export function failedLater(s: { streamError(condition: string, text?: string): void }): void {
  setImmediate(() => s.streamError('internal-server-error', 'storage failure; nothing was acknowledged'));
}
