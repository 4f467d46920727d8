import net from 'node:net';
import tls from 'node:tls';
import { StringDecoder } from 'node:string_decoder';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { StreamParser } from './parser.js';
import { XmlElement, attrs, escape } from './xml.js';
import { chooseMechanism, createSasl, type Mechanism } from './sasl.js';

export const NS = {
  client: 'jabber:client',
  stream: 'http://etherx.jabber.org/streams',
  framing: 'urn:ietf:params:xml:ns:xmpp-framing',
  tls: 'urn:ietf:params:xml:ns:xmpp-tls',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  session: 'urn:ietf:params:xml:ns:xmpp-session',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  register: 'jabber:iq:register',
  roster: 'jabber:iq:roster',
  ping: 'urn:xmpp:ping',
} as const;

export interface ClientOptions {
  domain: string;
  /** TCP with STARTTLS unless `wsUrl` is set. */
  host?: string;
  port?: number;
  wsUrl?: string;
  /** PEM CA(s) that sign the server certificate; the system store is used when absent. */
  ca?: string | Buffer;
  /** Accept any certificate (self-signed test servers). */
  insecure?: boolean;
  /** Source address, to spread many connections over 127.0.0.x and their port ranges. */
  localAddress?: string;
  mechanism?: Mechanism | 'auto';
  /** Per step (connect, TLS, each SASL step, bind, each IQ). */
  timeoutMs?: number;
}

export class XmppError extends Error {
  constructor(
    message: string,
    /** Stream or stanza error condition, e.g. `conflict`, `not-authorized`, `policy-violation`. */
    public condition?: string,
  ) {
    super(message);
  }
}

type Waiter = { resolve(el: XmlElement): void; reject(e: Error): void; timer: NodeJS.Timeout };

let idCounter = 0;
const nextId = () => (++idCounter).toString(36);

/**
 * One XMPP client connection (RFC 6120 over TCP+STARTTLS, or RFC 7395 over WebSocket).
 * Negotiation is sequential (await the next element); once bound, stanzas go to the `on*` hooks.
 * State kept per connection is a socket, a parser and a few fields, so 10,000 of them fit easily.
 */
export class XmppClient {
  /** Full JID once bound. */
  jid = '';
  onMessage: ((el: XmlElement) => void) | undefined;
  onPresence: ((el: XmlElement) => void) | undefined;
  /** Called once when the connection ends for any reason (error is undefined on a clean close). */
  onClose: ((err?: Error) => void) | undefined;
  /** Incoming IQ get/set; return true when handled. Roster pushes and pings are answered by default. */
  onIq: ((el: XmlElement) => boolean) | undefined;

  private sock: net.Socket | undefined;
  private ws: WebSocket | undefined;
  private decoder = new StringDecoder('utf8');
  private parser: StreamParser;
  private waiter: Waiter | undefined;
  private inbox: XmlElement[] = [];
  private iqs: Map<string, Waiter> | undefined;
  private online = false;
  private ended = false;
  private closing = false;
  private features: XmlElement | undefined;
  private readonly timeoutMs: number;
  /** RFC 7395 3.3.3: over WebSocket every stanza declares jabber:client itself. */
  private readonly ns: string;

  constructor(private opts: ClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.ns = opts.wsUrl !== undefined ? ` xmlns="${NS.client}"` : '';
    this.parser = new StreamParser({
      streamOpen: () => {},
      element: (el) => this.receive(el),
      streamClose: () => this.end(new XmppError('server closed the stream')),
      error: (e) => this.fail(new XmppError(`invalid XML from server: ${e.message}`, 'not-well-formed')),
    });
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  private get isWs(): boolean {
    return this.opts.wsUrl !== undefined;
  }

  /** Opens the transport, STARTTLS on TCP, and waits for the pre-authentication features. */
  async connect(): Promise<{ tcpMs: number; tlsMs: number }> {
    const t0 = performance.now();
    if (this.isWs) await this.openWs();
    else await this.openTcp();
    const t1 = performance.now();
    let features = await this.openStream();
    if (!this.isWs) {
      if (!features.child('starttls', NS.tls)) throw new XmppError('server does not offer STARTTLS; refusing to authenticate in clear text');
      this.write(`<starttls xmlns="${NS.tls}"/>`);
      const r = await this.next();
      if (r.name !== 'proceed') throw new XmppError(`STARTTLS refused: <${r.name}/>`);
      await this.upgradeTls();
      features = await this.openStream();
    }
    this.features = features;
    return { tcpMs: t1 - t0, tlsMs: performance.now() - t1 };
  }

  /** XEP-0077 in-band registration on the unauthenticated stream. */
  async register(username: string, password: string): Promise<void> {
    const form = await this.iq('get', undefined, `<query xmlns="${NS.register}"/>`);
    const q = form.child('query', NS.register);
    if (!q) throw new XmppError('registration form without <query/>');
    await this.iq('set', undefined, `<query xmlns="${NS.register}"><username>${escape(username)}</username><password>${escape(password)}</password></query>`);
  }

  /** SASL, stream restart, resource binding (and the legacy session IQ if the server requires it). */
  async login(username: string, password: string, resource?: string): Promise<{ authMs: number; bindMs: number }> {
    const t0 = performance.now();
    const offered = (this.features?.child('mechanisms', NS.sasl)?.elements() ?? []).map((m) => m.text().trim());
    const sasl = createSasl(chooseMechanism(offered, this.opts.mechanism ?? 'auto'), username, password);
    this.write(`<auth xmlns="${NS.sasl}" mechanism="${sasl.mechanism}">${await sasl.start()}</auth>`);
    for (;;) {
      const el = await this.next();
      if (el.name === 'challenge') this.write(`<response xmlns="${NS.sasl}">${await sasl.step(el.text().trim())}</response>`);
      else if (el.name === 'success') {
        sasl.finish(el.text().trim());
        break;
      } else if (el.name === 'failure') {
        const cond = el.elements()[0]?.name ?? 'unknown';
        throw new XmppError(`authentication failed: ${cond}`, cond);
      } else throw new XmppError(`unexpected <${el.name}/> during SASL`);
    }
    if (!this.isWs) this.parser.reset();
    const features = await this.openStream();
    const t1 = performance.now();
    if (!features.child('bind', NS.bind)) throw new XmppError('server offers no resource binding');
    const res = resource ? `<resource>${escape(resource)}</resource>` : '';
    const bound = await this.iq('set', undefined, `<bind xmlns="${NS.bind}">${res}</bind>`);
    this.jid = bound.child('bind', NS.bind)?.child('jid')?.text() ?? '';
    if (!this.jid) throw new XmppError('bind result without a JID');
    const session = features.child('session', NS.session);
    if (session && !session.child('optional')) await this.iq('set', undefined, `<session xmlns="${NS.session}"/>`);
    this.online = true;
    this.inbox.length = 0;
    return { authMs: t1 - t0, bindMs: performance.now() - t1 };
  }

  /** Removes the logged-in account (XEP-0077 `<remove/>`). The server may close the stream right after. */
  async unregister(): Promise<void> {
    await this.iq('set', undefined, `<query xmlns="${NS.register}"><remove/></query>`);
  }

  /** Sends an IQ and resolves with the result, or rejects with the error condition. */
  iq(type: 'get' | 'set', to: string | undefined, payload: string): Promise<XmlElement> {
    const id = nextId();
    const p = new Promise<XmlElement>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.iqs?.delete(id);
        reject(new XmppError(`IQ ${type} timed out after ${this.timeoutMs} ms`, 'timeout'));
      }, this.timeoutMs);
      (this.iqs ??= new Map()).set(id, { resolve, reject, timer });
    });
    this.write(`<iq${this.ns}${attrs({ type, to, id })}>${payload}</iq>`);
    return p;
  }

  sendMessage(to: string, body: string, type = 'chat'): void {
    this.write(`<message${this.ns}${attrs({ to, type, id: nextId() })}><body>${escape(body)}</body></message>`);
  }

  /** Sends a presence; `inner` is trusted XML (e.g. `<status>..</status>`). */
  sendPresence(a: { to?: string; type?: string } = {}, inner = ''): void {
    const open = `<presence${this.ns}${attrs(a)}`;
    this.write(inner ? `${open}>${inner}</presence>` : `${open}/>`);
  }

  /** Raw XML; over WebSocket the caller must add xmlns="jabber:client" to stanzas itself. */
  send(xml: string): void {
    this.write(xml);
  }

  /** Ends the stream politely and closes the transport; resolves once closed (or after 2 s). */
  async close(): Promise<void> {
    if (this.ended) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      const prev = this.onClose;
      this.onClose = (e) => {
        prev?.(e);
        resolve();
      };
    });
    try {
      if (this.isWs) {
        this.write(`<close xmlns="${NS.framing}"/>`);
        this.ws?.close(1000);
      } else {
        this.write('</stream:stream>');
        this.sock?.end();
      }
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => this.end(), 2000);
    await closed;
    clearTimeout(t);
  }

  /** Drops the connection without a closing handshake. */
  destroy(): void {
    this.end();
  }

  // --- transport ---

  private openTcp(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: this.opts.host ?? '127.0.0.1', port: this.opts.port ?? 5222, localAddress: this.opts.localAddress });
      this.sock = sock;
      const timer = setTimeout(() => sock.destroy(new XmppError(`TCP connect timed out after ${this.timeoutMs} ms`, 'timeout')), this.timeoutMs);
      sock.setNoDelay(true);
      sock.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      sock.on('data', (b: Buffer) => this.parser.write(this.decoder.write(b)));
      sock.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
        this.fail(e);
      });
      sock.on('close', () => this.end());
    });
  }

  private upgradeTls(): Promise<void> {
    const raw = this.sock!;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    raw.on('error', () => {}); // surfaced by the TLS socket wrapping it
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        socket: raw,
        servername: this.opts.domain,
        ca: this.opts.ca,
        rejectUnauthorized: !this.opts.insecure,
      });
      this.sock = s;
      const timer = setTimeout(() => s.destroy(new XmppError('TLS handshake timed out', 'timeout')), this.timeoutMs);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        this.parser.reset();
        this.decoder = new StringDecoder('utf8');
        resolve();
      });
      s.on('data', (b: Buffer) => this.parser.write(this.decoder.write(b)));
      s.on('error', (e) => {
        clearTimeout(timer);
        reject(new XmppError(`TLS: ${e.message}`, 'tls'));
        this.fail(e);
      });
      s.on('close', () => this.end());
    });
  }

  private openWs(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.opts.wsUrl!, 'xmpp', {
        ca: this.opts.ca,
        rejectUnauthorized: !this.opts.insecure,
        localAddress: this.opts.localAddress,
        perMessageDeflate: false,
        handshakeTimeout: this.timeoutMs,
      });
      this.ws = ws;
      this.parser.write('<ws>'); // RFC 7395 frames are whole elements; a synthetic root makes them one document
      ws.once('open', () => {
        if (ws.protocol !== 'xmpp') {
          reject(new XmppError(`server did not accept the "xmpp" WebSocket subprotocol (got "${ws.protocol}")`));
          ws.terminate();
          return;
        }
        resolve();
      });
      ws.on('message', (data) => this.parser.write(data.toString()));
      ws.on('error', (e) => {
        reject(e);
        this.fail(e);
      });
      ws.on('close', () => this.end());
    });
  }

  private write(s: string): void {
    if (this.ended) throw new XmppError('connection is closed', 'closed');
    if (this.ws) this.ws.send(s);
    else this.sock!.write(s);
  }

  private async openStream(): Promise<XmlElement> {
    const d = this.opts.domain;
    if (this.isWs) this.write(`<open xmlns="${NS.framing}" to="${escape(d)}" version="1.0"/>`);
    else this.write(`<?xml version='1.0'?><stream:stream xmlns="${NS.client}" xmlns:stream="${NS.stream}" to="${escape(d)}" version="1.0">`);
    let el = await this.next();
    if (this.isWs) {
      if (el.local !== 'open') throw new XmppError(`expected <open/>, got <${el.name}/>`);
      el = await this.next();
    }
    if (el.local !== 'features') throw new XmppError(`expected stream features, got <${el.name}/>`);
    return el;
  }

  // --- receiving ---

  private next(): Promise<XmlElement> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(new XmppError('connection is closed', 'closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new XmppError(`no answer from server within ${this.timeoutMs} ms`, 'timeout'));
      }, this.timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  private receive(el: XmlElement): void {
    const local = el.local;
    if (local === 'error' && el.name !== 'iq') {
      const cond = el.elements().find((c) => c.name !== 'text')?.name ?? 'undefined-condition';
      const text = el.child('text')?.text();
      return this.fail(new XmppError(`stream error: ${cond}${text ? ` (${text})` : ''}`, cond));
    }
    if (this.isWs && local === 'close') return this.end(new XmppError('server closed the stream'));
    if (el.name === 'iq') {
      const id = el.attrs.id ?? '';
      const type = el.attrs.type;
      if (type === 'result' || type === 'error') {
        const w = this.iqs?.get(id);
        if (w) {
          this.iqs!.delete(id);
          clearTimeout(w.timer);
          if (type === 'result') w.resolve(el);
          else {
            const err = el.child('error');
            const cond = err?.elements().find((c) => c.name !== 'text')?.name ?? 'undefined-condition';
            w.reject(new XmppError(`IQ error: ${cond}${err?.child('text') ? ` (${err.child('text')!.text()})` : ''}`, cond));
          }
        }
        return;
      }
      if (this.online) return this.answerIq(el);
    }
    if (this.online) {
      if (el.name === 'message') this.onMessage?.(el);
      else if (el.name === 'presence') this.onPresence?.(el);
      return;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(el);
    } else this.inbox.push(el);
  }

  private answerIq(el: XmlElement): void {
    if (this.onIq?.(el)) return;
    const id = el.attrs.id;
    const from = el.attrs.from;
    const payload = el.elements()[0];
    const ns = payload?.attrs.xmlns;
    if ((el.attrs.type === 'set' && ns === NS.roster) || (el.attrs.type === 'get' && ns === NS.ping)) {
      this.write(`<iq${this.ns}${attrs({ type: 'result', id, to: from })}/>`);
    } else {
      this.write(`<iq${this.ns}${attrs({ type: 'error', id, to: from })}><error type="cancel"><service-unavailable xmlns="${NS.stanzas}"/></error></iq>`);
    }
  }

  private fail(e: Error): void {
    this.end(e instanceof XmppError ? e : new XmppError(e.message, (e as NodeJS.ErrnoException).code));
  }

  private end(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.online = false;
    if (this.closing) err = undefined; // the server's answer to our own </stream> is not an error
    const closed = err ?? new XmppError('connection closed', 'closed');
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      this.waiter.reject(closed);
      this.waiter = undefined;
    }
    if (this.iqs) {
      for (const w of this.iqs.values()) {
        clearTimeout(w.timer);
        w.reject(closed);
      }
      this.iqs = undefined;
    }
    this.sock?.destroy();
    this.ws?.terminate();
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.(err);
  }
}
