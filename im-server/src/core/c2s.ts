// One client-to-server XML stream (RFC 6120) on a transport, which owns the framing and the
// input limits (transport.ts): negotiation (STARTTLS, SASL, bind), the stanza rate, timers,
// stream management (sm.ts: acks, and resumption, where a session outlives its connection and
// takes over a new one), then hands stanzas to the host for routing. Modules get:
// 'stream-features' {features} to offer one after auth, 'nonza/<ns>' {session, element} for
// other top-level elements, and Session.outFilter.
import { randomBytes } from 'node:crypto';
import { SaslNegotiation, mechanisms } from './auth.js';
import { bindResource } from './bind.js';
import { after, type Awaitable } from './hooks.js';
import type { Host } from './host.js';
import type { Jid } from './jid.js';
import type { AuthThrottle } from './limits.js';
import type { OutFilter, Session } from './session.js';
import { failedLater, handleUnacked, smElement, type Resumptions, type SmState } from './sm.js';
import { NS, errorReply, iqResult } from './stanza.js';
import type { Transport } from './transport.js';
import { Element, escapeText, xml } from './xml.js';

/** Elements that may wait behind one that waits for the database before the input is paused. */
const WAITING_MAX = 64;

/** Given to the register module for pre-authentication IQs (XEP-0077, XEP-0401). */
export interface PreAuthEvent {
  stanza: Element;
  stream: { address: string; invite: string | undefined };
  reply(el: Element): void;
}

/** What a stream needs from the set of streams it belongs to (streams.ts). */
export interface StreamContext {
  throttle: AuthThrottle;
  resumptions: Resumptions;
  /** The stream's connection is gone (its session may live on, hibernating). */
  closed(s: C2SStream): void;
  /** Resumption: `to` (the resumed session) now owns `from`'s connection. */
  moved(from: C2SStream, to: C2SStream): void;
}

const newId = (): string => randomBytes(9).toString('base64url');

export class C2SStream implements Session {
  readonly id = newId();
  jid!: Jid;
  username = '';
  available = false;
  priority = 0;
  presence: Element | undefined = undefined;
  interested = false;
  directed: Set<string> | undefined = undefined;
  /** Invite token accepted on this stream (XEP-0401), used by registration. */
  invite: string | undefined = undefined;

  private opened = false;
  private closed = false;
  bound = false;
  private readonly auth: SaslNegotiation;
  /** XEP-0198 state, once enabled (sm.ts). */
  sm: SmState | undefined = undefined;
  /** The connection dropped but the session waits to be resumed: output is queued. */
  private hibernating = false;
  outFilter: OutFilter | undefined = undefined;
  private tokens: number;
  private lastRefill: number;
  /** See element(): one element handled at a time. */
  private busy = false;
  private readonly waiting: Element[] = [];
  private holdingInput = false;
  lastRx: number;
  private readonly connectedAt: number;
  private pingSentAt = 0;

  constructor(private readonly host: Host, private transport: Transport, private readonly ctx: StreamContext) {
    const stream = this; // the getters read the live transport (resumption swaps it)
    this.auth = new SaslNegotiation(host, ctx.throttle, {
      get closed() { return stream.closed; },
      get secure() { return stream.transport.secure; },
      get address() { return stream.transport.address; },
      raw: (s) => this.raw(s),
      hold: () => this.transport.hold(),
      release: () => this.transport.release(),
      authenticated: (username, success) => {
        this.username = username;
        host.log.info({ stream: this.id, user: username, transport: this.transport.kind }, 'authenticated');
        this.raw(success);
        this.restart();
      },
    });
    this.tokens = host.config.limits.stanzaBurst;
    this.lastRefill = this.lastRx = this.connectedAt = Date.now();
    host.metrics.connections.inc({ transport: transport.kind });
  }

  /** Input arrived (transport.ts StreamInput): the connection is alive. */
  received(): void {
    this.lastRx = Date.now();
    this.pingSentAt = 0;
  }

  /** Whitespace keep-alives count against the stanza rate: a flood of them is a flood. */
  keepalive(): void {
    this.rate();
  }

  /** Handling input threw: a bug must cost this connection only, never the process. */
  crashed(err: unknown): void {
    this.host.log.error({ err: (err as Error)?.stack ?? String(err), stream: this.id }, 'error while handling input');
    this.streamError('internal-server-error');
  }

  // ---- output ----

  /** Writes a nonza or stream-level data (nothing counted). */
  raw(s: string): void {
    if (this.closed) return;
    this.transport.write(s);
  }

  get smEnabled(): boolean {
    return this.sm !== undefined;
  }

  send(el: Element): void {
    if (this.closed && !this.hibernating) return;
    if (el.attrs.xmlns === undefined && (el.name === 'message' || el.name === 'presence' || el.name === 'iq')) el.attrs.xmlns = NS.client;
    if (this.outFilter?.(el)) return; // held back (XEP-0352): not sent, so not counted either
    this.emit(el.toString(), false);
  }

  sendXml(xml: string, written?: () => void): void {
    if (this.closed && !this.hibernating) return;
    this.emit(xml, true, written);
  }

  /** Writes a stanza; with SM it stays queued until acknowledged (and is written on resumption). */
  private emit(s: string, stored: boolean, written?: () => void): void {
    this.host.metrics.stanzasOut.inc();
    if (this.sm && !this.sm.push(s, stored, this.host.config.streamManagement.maxUnacked)) {
      const text = `more than ${this.host.config.streamManagement.maxUnacked} stanzas not acknowledged`;
      return this.hibernating ? this.expire() : this.streamError('resource-constraint', text);
    }
    if (this.closed) return;
    this.transport.write(s, written);
    if (this.sm) this.requestAck();
    if (this.transport.buffered() > this.host.config.limits.maxOutputBuffer) this.streamError('resource-constraint', 'client is not reading its stream');
  }

  /** One <r/> after a burst of stanzas (not one per stanza); another once it is answered. */
  requestAck(): void {
    const sm = this.sm!;
    if (sm.ackPending) return;
    sm.ackPending = true;
    setImmediate(() => { if (this.sm === sm && !this.closed && sm.queue.length > 0) this.raw(`<r xmlns="${NS.sm}"/>`); else sm.ackPending = false; });
  }

  whenAcked(fn: () => void): void {
    if ((this.closed && !this.hibernating) || !this.sm) return;
    this.sm.waitForAck(fn);
    if (!this.closed && this.sm.queue.length > 0) this.raw(`<r xmlns="${NS.sm}"/>`);
  }

  sendDurable(el: Element): void {
    this.host.db.barrier().then(() => this.send(el), () => failedLater(this));
  }

  private header(): void {
    if (this.opened) return;
    this.opened = true;
    this.raw(this.transport.header(this.id, this.host.domain));
  }

  /** keepSession: only this connection ends (a resumption moved the session elsewhere). */
  streamError(condition: string, text?: string, keepSession = false): void {
    if (this.closed) return;
    this.header();
    const ns = this.transport.streamNs;
    const t = text ? `<text xmlns="${NS.streams}" xml:lang="en">${escapeText(text)}</text>` : '';
    this.raw(`<stream:error${ns}><${condition} xmlns="${NS.streams}"/>${t}</stream:error>`);
    this.host.metrics.streamErrors.inc({ condition });
    this.host.log.info({ stream: this.id, address: this.transport.address, user: this.username || undefined, condition, text }, 'stream error');
    this.endConnection(keepSession);
  }

  /** Closes the stream (with a stream error when a condition is given). A hibernating session ends. */
  close(condition?: string, text?: string): void {
    if (this.hibernating) return this.expire();
    if (this.closed) return;
    if (condition) return this.streamError(condition, text);
    this.endConnection(false);
  }

  private endConnection(keepSession: boolean): void {
    if (this.opened) this.raw(this.transport.footer);
    this.closed = true;
    this.transport.end();
    if (keepSession) this.detach(); else this.cleanup();
  }

  /** This connection no longer counts (its session, if kept, lives on without it). */
  private detach(): void {
    this.host.metrics.connections.dec({ transport: this.transport.kind });
    this.ctx.closed(this);
  }

  /** The transport went away. A resumable session hibernates instead of ending. */
  disconnected(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.bound || !this.sm?.resumable) return this.cleanup();
    this.detach();
    this.hibernate();
  }

  private hibernate(): void {
    this.hibernating = true;
    this.host.log.info({ stream: this.id, user: this.username }, 'connection lost; session waits to be resumed');
    this.ctx.resumptions.hibernate(this);
  }

  /** The resume timeout expired (or the hibernating session was closed): it ends for real. */
  expire(): void {
    if (!this.hibernating) return;
    this.hibernating = false;
    this.host.log.info({ stream: this.id, user: this.username, unacked: this.sm?.queue.length }, 'hibernating session ended');
    this.endSession();
  }

  private cleanup(): void {
    this.endSession();
    this.detach();
  }

  private endSession(): void {
    const unacked = this.sm?.drop() ?? [];
    if (this.sm?.resumable) this.ctx.resumptions.remove(this);
    if (!this.bound) return;
    this.bound = false;
    this.host.router.unbind(this);
    this.host.metrics.sessions.dec();
    this.host.hooks.notify('session-closed', { session: this });
    this.host.log.debug({ stream: this.id, user: this.username, unacked: unacked.length }, 'session ended');
    handleUnacked(this.host, this.jid, unacked);
  }

  /** Resumption (sm.ts): this hibernating or live session takes over `from`'s new connection. */
  adopt(from: C2SStream): void {
    this.streamError('conflict', 'the session was resumed on another connection', true); // if still connected
    this.ctx.resumptions.wake(this);
    this.transport = from.transport;
    this.opened = true;
    this.closed = false;
    this.hibernating = false;
    this.lastRx = Date.now();
    this.pingSentAt = 0;
    from.closed = true; // abandoned: its connection is ours now
    this.ctx.moved(from, this);
  }

  /** After <resumed/>: writes every stanza the client has not acknowledged, in order. */
  resend(): void {
    const sm = this.sm!;
    for (const it of sm.queue) this.transport.write(it.xml);
    sm.ackPending = false;
    if (sm.queue.length > 0) this.requestAck();
  }

  get live(): boolean {
    return !this.closed;
  }

  // ---- timers (driven by the transport manager's sweep) ----

  tick(now: number): void {
    const l = this.host.config.limits;
    if (!this.username) {
      // Short before TLS (a client starts it at once), longer after (registration forms take a person's time).
      const [limit, what] = this.authAllowed() ? [l.authTimeoutSeconds, 'login'] : [l.tlsTimeoutSeconds, 'STARTTLS'];
      if (now - this.connectedAt > limit * 1000) this.streamError('connection-timeout', `no ${what} within ${limit} s`);
      return;
    }
    if (this.pingSentAt) {
      if (now - this.pingSentAt > l.pingTimeoutSeconds * 1000) {
        // A dead connection, most likely (a phone that lost its network): a resumable session waits.
        const keep = this.bound && !!this.sm?.resumable;
        this.streamError('connection-timeout', 'no answer to ping', keep);
        if (keep) this.hibernate();
      }
    } else if (now - this.lastRx > l.idleSeconds * 1000) {
      if (!this.bound) return this.streamError('connection-timeout', 'idle');
      this.pingSentAt = now;
      this.send(xml('iq', { type: 'get', id: 'idle-' + now, from: this.host.domain, to: this.jid.full }, xml('ping', { xmlns: NS.ping })));
    }
  }

  // ---- stream negotiation ----

  /** The client opened a stream (transport.ts has checked the root and its namespaces). */
  streamOpened(attrs: Record<string, string>): void {
    if (attrs.version !== '1.0') return this.streamError('unsupported-version', 'only XMPP 1.0 streams are supported');
    if (attrs.to === undefined || attrs.to.toLowerCase() !== this.host.domain) return this.streamError('host-unknown', `this server serves ${this.host.domain}`);
    // The header and the features in one write (one TCP segment, one TLS record): a client that
    // takes the next data it reads as the answer must not act on the header alone.
    const head = this.opened ? '' : this.transport.header(this.id, this.host.domain);
    this.opened = true;
    this.raw(head + this.features());
  }

  /** The client closed its stream. */
  streamClosed(): void {
    this.close();
  }

  private authAllowed(): boolean {
    return this.transport.secure || !this.host.config.tls.required;
  }

  private features(): string {
    const f: string[] = [];
    if (!this.username) {
      if (this.transport.startTls && !this.transport.secure) {
        f.push(`<starttls xmlns="${NS.tls}">${this.host.config.tls.required ? '<required/>' : ''}</starttls>`);
      }
      if (this.authAllowed()) {
        f.push(mechanisms(this.transport.secure));
        if (this.host.hooks.has('iq-preauth/' + NS.register)) f.push(`<register xmlns="${NS.registerFeature}"/>`);
      }
    } else {
      f.push(`<bind xmlns="${NS.bind}"/>`, `<session xmlns="${NS.session}"><optional/></session>`, `<sm xmlns="${NS.sm}"/>`, `<ver xmlns="${NS.rosterver}"/>`);
      this.host.hooks.fireSync('stream-features', { features: f });
    }
    return `<stream:features${this.transport.streamNs}>${f.join('')}</stream:features>`;
  }

  private restart(): void {
    this.transport.restart();
    this.opened = false;
  }

  // ---- elements ----

  /** A top-level element from the client. Elements are handled one at a time, in order: while
   * one waits for the database the next wait here, and past WAITING_MAX the connection is read
   * no further until they are handled. */
  element(el: Element): void {
    if (this.closed || !this.rate()) return;
    if (!this.busy) return this.process(el);
    this.waiting.push(el);
    if (this.waiting.length >= WAITING_MAX && !this.holdingInput) { this.holdingInput = true; this.transport.hold(); }
  }

  private process(el: Element): void {
    const r = this.handle(el);
    if (!(r instanceof Promise)) return;
    this.busy = true;
    r.catch((err: unknown) => this.failedWhileHandling(el, err)).finally(() => this.next());
  }

  private next(): void {
    this.busy = false;
    while (!this.busy && !this.closed && this.waiting.length > 0) this.process(this.waiting.shift()!);
    if (this.holdingInput && (this.waiting.length < WAITING_MAX || this.closed)) { this.holdingInput = false; this.transport.release(); }
  }

  /** A module failed on this stanza after waiting: the sender of a request is answered, the stream goes on. */
  private failedWhileHandling(el: Element, err: unknown): void {
    this.host.log.error({ stream: this.id, err: (err as Error)?.stack ?? String(err) }, 'error while handling a stanza');
    const t = el.attrs.type;
    if (!this.closed && el.name === 'iq' && (t === 'get' || t === 'set')) this.send(errorReply(el, 'internal-server-error'));
  }

  private handle(el: Element): Awaitable<void> {
    const ns = el.attrs.xmlns ?? '';
    if (!this.opened) return this.streamError('not-well-formed', 'stanza before the stream was opened');
    if (ns === NS.client && (el.name === 'message' || el.name === 'presence' || el.name === 'iq')) return this.stanza(el);
    if (ns === NS.sm && this.username) return smElement(this, el, this.host, this.ctx.resumptions);
    if (!this.username) {
      if (ns === NS.tls && el.name === 'starttls') return this.starttls();
      if (ns === NS.sasl) return this.saslElement(el);
    }
    if (ns === NS.stream && el.name === 'error') return this.close();
    // Other top-level elements of a bound session go to modules (e.g. XEP-0352 <active/>).
    const unsupported = (): void => this.streamError('unsupported-stanza-type', `<${el.name} xmlns="${ns}"/> is not supported here`);
    if (!this.bound) return unsupported();
    return after(this.host.hooks.fire('nonza/' + ns, { session: this, element: el }), (handled) => (handled ? undefined : unsupported()));
  }

  private rate(): boolean {
    const l = this.host.config.limits;
    const now = this.lastRx;
    this.tokens = Math.min(l.stanzaBurst, this.tokens + ((now - this.lastRefill) * l.stanzasPerSecond) / 1000);
    this.lastRefill = now;
    if (this.tokens < 1) { this.streamError('policy-violation', `more than ${l.stanzasPerSecond} stanzas per second`); return false; }
    this.tokens--;
    return true;
  }

  private starttls(): void {
    const start = this.transport.startTls;
    if (!start || this.transport.secure) { this.raw(`<failure xmlns="${NS.tls}"/>`); return this.close(); }
    this.raw(`<proceed xmlns="${NS.tls}"/>`);
    start.call(this.transport);
    this.opened = false;
  }

  private saslElement(el: Element): void {
    if (!this.authAllowed()) { this.raw(`<failure xmlns="${NS.sasl}"><encryption-required/></failure>`); return this.streamError('policy-violation', 'STARTTLS is required before authentication'); }
    this.auth.element(el);
  }

  private stanza(el: Element): Awaitable<void> {
    this.host.metrics.stanzasIn.inc();
    if (!this.username) return this.preAuthStanza(el);
    if (el.name === 'iq' && !this.checkIq(el)) return;
    if (!this.bound) {
      if (el.name === 'iq' && el.attrs.type === 'set') {
        const payload = el.firstElement();
        if (payload?.is('bind', NS.bind)) return bindResource(this.host, this, el, payload);
        if (payload?.is('session', NS.session)) return this.send(iqResult(el));
      }
      return this.streamError('not-authorized', 'bind a resource first');
    }
    if (this.sm) this.sm.handled = (this.sm.handled + 1) >>> 0;
    const from = el.attrs.from;
    if (from !== undefined && from !== this.jid.full && from !== this.jid.bare) return this.streamError('invalid-from', 'the "from" address is not yours');
    el.attrs.from = this.jid.full;
    if (el.name === 'iq' && el.attrs.type === 'set' && el.firstElement()?.is('session', NS.session)) return this.send(iqResult(el));
    if (el.name === 'iq' && el.attrs.type === 'set' && el.firstElement()?.is('bind', NS.bind)) return this.send(errorReply(el, 'not-allowed', 'a resource is already bound'));
    return this.host.fromClient(this, el, performance.now());
  }

  private checkIq(el: Element): boolean {
    const t = el.attrs.type;
    if (!el.attrs.id || (t !== 'get' && t !== 'set' && t !== 'result' && t !== 'error')) {
      this.send(errorReply(el, 'bad-request', 'an iq needs an id and a type'));
      return false;
    }
    if ((t === 'get' || t === 'set') && el.elements().length !== 1) {
      this.send(errorReply(el, 'bad-request', 'an iq request holds exactly one payload'));
      return false;
    }
    return true;
  }

  private preAuthStanza(el: Element): Awaitable<void> {
    const payload = el.firstElement();
    if (el.name === 'iq' && this.authAllowed() && payload && this.checkIq(el)) {
      const event: PreAuthEvent = { stanza: el, stream: this, reply: (r) => this.sendDurable(r) };
      return after(this.host.hooks.fire('iq-preauth/' + payload.ns, event), (handled) => {
        if (!handled && (el.attrs.type === 'get' || el.attrs.type === 'set')) this.send(errorReply(el, 'service-unavailable'));
      });
    }
    this.streamError('not-authorized', this.authAllowed() ? 'authenticate first' : 'STARTTLS and authenticate first');
  }

  get address(): string {
    return this.transport.address;
  }
}
