// The host: one served domain, its storage, sessions and hooks, and stanza routing.
// Events modules can hook (handler returns true when it handled the stanza):
//   out/<message|presence|iq>          a stanza from a local client, before routing
//   <kind>/host, <kind>/bare, <kind>/full   a stanza routed to the domain, a bare or a full JID
//   iq-<get|set>/<host|bare>/<ns>:<name>   an IQ request to the server or an account, by payload
//   session-bound, session-closed, account-removing {username} (awaited), account-created {username}
// Components (addComponent) serve other local domains, e.g. conference.<domain>: every stanza to
// such a domain goes to its handler. HTTP routes (addHttpRoute) serve paths on the HTTP port.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Accounts } from '../storage/accounts.js';
import type { Backend } from '../storage/store.js';
import { Hooks, after, type Awaitable } from './hooks.js';
import { Jid, parseJid, prepLocal } from './jid.js';
import type { Metrics } from './metrics.js';
import { LocalRouter, type SessionRouter } from './router.js';
import type { Session } from './session.js';
import { NS, errorReply } from './stanza.js';
import type { Element } from './xml.js';

export interface StanzaEvent {
  stanza: Element;
  /** The local session it came from, if any. */
  origin: Session | undefined;
  from: Jid;
  to: Jid;
  /** hrtime (ms) when it was read, for delivery latency. */
  rx: number;
}

export interface SessionEvent { session: Session }

export interface Component {
  /** Shown in the server's disco#items. */
  name: string;
  handle(event: StanzaEvent): Awaitable<void>;
}

/** Answers an HTTP request under its prefix; may be async (errors become a 500). */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, path: string) => void | Promise<void>;

export class Host {
  readonly hooks = new Hooks();
  readonly router: SessionRouter = new LocalRouter();
  readonly domain: string;
  readonly jid: Jid;
  /** disco#info features: each module adds what it implements. */
  readonly features = new Set<string>();
  /** What an account's bare JID advertises in disco#info (PEP, MAM...): to the owner and those
   * who may see its presence, or only to the owner. */
  readonly accountFeatures = new Set<string>();
  readonly ownerFeatures = new Set<string>();
  readonly accountIdentities: { category: string; type: string }[] = [{ category: 'account', type: 'registered' }];
  /** Extra children of the server's disco#info answer, e.g. XEP-0128 data forms (XEP-0157 contact
   * addresses); disco.ts appends a copy of each after the features. */
  readonly discoExtensions: Element[] = [];
  readonly components = new Map<string, Component>();
  /** Path prefix -> handler, longest prefix first when matched. */
  readonly httpRoutes = new Map<string, HttpHandler>();

  /** @param db where modules keep their data (ModuleDb per module): SQLite or PostgreSQL. */
  constructor(readonly config: Config, readonly db: Backend, readonly accounts: Accounts, readonly log: Logger, readonly metrics: Metrics) {
    this.domain = config.domain;
    this.jid = new Jid('', config.domain, '');
    this.hooks.onError = (name, err) => log.error({ hook: name, err: (err as Error)?.stack ?? String(err) }, 'a module failed while handling an event');
  }

  accountExists(username: string): boolean {
    return this.accounts.exists(username);
  }

  /** Removes an account: every module removes what it keeps for the user (and is waited for),
   * then the account goes. Durable when it resolves. */
  async removeAccount(username: string): Promise<void> {
    await this.hooks.fire('account-removing', { username });
    await this.accounts.delete(username);
    await this.db.barrier();
  }

  addComponent(domain: string, component: Component): void {
    if (this.components.has(domain) || domain === this.domain) throw new Error(`component ${domain}: that domain is already served`);
    this.components.set(domain, component);
  }

  addHttpRoute(prefix: string, handler: HttpHandler): void {
    if (this.httpRoutes.has(prefix)) throw new Error(`http route ${prefix}: already taken`);
    this.httpRoutes.set(prefix, handler);
  }

  isLocal(jid: Jid): boolean {
    return jid.domain === this.domain;
  }

  prepUsername(s: string): string | undefined {
    return prepLocal(s);
  }

  /** A stanza from a bound client session; `from` is already stamped. A promise when a module
   * waits for the database: the session handles its next stanza once it settles. */
  fromClient(session: Session, stanza: Element, rx: number): Awaitable<void> {
    const toAttr = stanza.attrs.to;
    let to: Jid | undefined;
    if (toAttr !== undefined) {
      to = parseJid(toAttr);
      if (!to) {
        if (stanza.attrs.type !== 'error' && stanza.attrs.type !== 'result') session.send(errorReply(stanza, 'jid-malformed', 'the "to" address is not a valid JID'));
        return;
      }
      stanza.attrs.to = to.full;
    }
    const event: StanzaEvent = { stanza, origin: session, from: session.jid, to: to ?? session.jid.toBare(), rx };
    return after(this.hooks.fire(`out/${stanza.name}`, event), (handled) => (handled ? undefined : this.inOrder(event)));
  }

  /** Routes a stanza generated by the server or a module (from/to already set and valid). Stanzas
   * routed here for one recipient keep their order even when a module waits for the database for
   * one of them (e.g. a session's unacknowledged messages going to offline storage). */
  route(stanza: Element, origin?: Session): void {
    const to = parseJid(stanza.attrs.to ?? '');
    const from = parseJid(stanza.attrs.from ?? '') ?? this.jid;
    if (!to) return;
    const r = this.inOrder({ stanza, origin, from, to, rx: performance.now() });
    if (r instanceof Promise) r.catch((err: unknown) => this.log.error({ err: (err as Error)?.stack ?? String(err), to: to.full }, 'routing a stanza failed'));
  }

  /** Dispatches after whatever is still being handled for the same recipient (bare JID), so that
   * stanzas to one user keep their order whatever their source, even when a module waits for the
   * database for one of them; at once (synchronously) when nothing waits. */
  private inOrder(event: StanzaEvent): Awaitable<void> {
    const key = event.to.bare;
    const before = this.routing.get(key);
    const r = before ? before.then(() => this.dispatch(event)) : this.dispatch(event);
    if (!(r instanceof Promise)) return r;
    const settled = r.then(() => {}, () => {});
    this.routing.set(key, settled);
    void settled.then(() => { if (this.routing.get(key) === settled) this.routing.delete(key); });
    return r;
  }

  /** Per recipient (bare JID): the last stanza still being handled. */
  private readonly routing = new Map<string, Promise<void>>();

  private dispatch(event: StanzaEvent): Awaitable<void> {
    const { stanza, to } = event;
    const kind = stanza.name;
    const type = stanza.attrs.type;
    const component = this.components.get(to.domain);
    if (component) return component.handle(event);
    if (!this.isLocal(to)) {
      // No server-to-server links (yet): say so instead of dropping silently.
      if (type !== 'error' && !(kind === 'iq' && type === 'result')) this.bounce(event, 'remote-server-not-found', `this server does not federate with ${to.domain}`);
      return;
    }
    const target = to.local === '' ? 'host' : to.resource === '' ? 'bare' : 'full';
    const byKind = (): Awaitable<void> => after(this.hooks.fire(`${kind}/${target}`, event), (handled) => (handled ? undefined : this.unhandled(event, target)));
    if (kind === 'iq' && (type === 'get' || type === 'set') && target !== 'full') {
      const payload = stanza.firstElement();
      if (payload) return after(this.hooks.fire(`iq-${type}/${target}/${payload.ns}:${payload.name}`, event), (handled) => (handled ? undefined : byKind()));
    }
    return byKind();
  }

  private unhandled(event: StanzaEvent, target: string): void {
    const { stanza } = event;
    const type = stanza.attrs.type;
    if (stanza.name === 'iq') {
      if (type === 'get' || type === 'set') {
        if (target === 'bare' && !this.accountExists(event.to.local)) return this.bounce(event, 'service-unavailable');
        return this.bounce(event, stanza.firstElement() ? 'service-unavailable' : 'bad-request');
      }
      return;
    }
    if (stanza.name === 'message' && type !== 'error' && target === 'host') this.bounce(event, 'service-unavailable');
  }

  /** Sends an error reply to the sender of the event's stanza. */
  /** wait: false sends at once, for a bounce that itself says a write failed (there is nothing to wait for). */
  bounce(event: StanzaEvent, condition: string, text?: string, opts: { wait?: boolean } = {}): void {
    const reply = errorReply(event.stanza, condition, text);
    reply.attrs.from = event.to.full;
    reply.attrs.to = event.from.full;
    if (event.origin) { if (opts.wait === false) event.origin.send(reply); else event.origin.sendDurable(reply); }
    else if (this.isLocal(event.from) && event.from.local) this.route(reply);
  }

  /** Answers an IQ request (after queued writes are durable, so a result acknowledges them). */
  reply(event: StanzaEvent, reply: Element): void {
    reply.attrs.xmlns ??= NS.client;
    if (event.origin) event.origin.sendDurable(reply);
    else this.route(reply);
  }

  /** Writes a stanza to a session and counts the delivery latency. */
  deliver(session: Session, stanza: Element, rx: number): void {
    session.send(stanza);
    if (stanza.name === 'message') this.metrics.deliveryLatency.observe((performance.now() - rx) / 1000);
  }
}
