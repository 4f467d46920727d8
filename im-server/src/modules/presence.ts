// Presence (RFC 6121 §3-4): the subscription state machine (subscribe, subscribed, unsubscribe,
// unsubscribed; pending-in kept until answered and shown again at next login; pre-approval §3.4), initial presence
// with probes, broadcast, directed presence, and unavailable when a session ends.
import type { Host, SessionEvent, StanzaEvent } from '../core/host.js';
import type { Jid } from '../core/jid.js';
import type { Session } from '../core/session.js';
import { NS, errorReply } from '../core/stanza.js';
import { Element, xml } from '../core/xml.js';
import type { RosterItem } from '../storage/types.js';
import { isPreApproved, rosterFull, rosterStore, saveRosterItem, setPreApproved } from './roster.js';

const MAX_DIRECTED = 100;

export default function presence(host: Host): void {
  const store = rosterStore(host);
  // RFC 6121 §3.4: clients may send 'subscribed' before a request only if the server says so.
  host.hooks.on<{ features: string[] }>('stream-features', ({ features }) => { features.push('<sub xmlns="urn:xmpp:features:pre-approval"/>'); });
  const domainOf = host.domain;
  const maxPending = host.config.limits.maxRosterItems;
  const bareOf = (username: string): string => `${username}@${domainOf}`;
  const item = (username: string, contact: string): Promise<RosterItem | undefined> => store.getItem(username, contact);
  /** Subscription changes of one user, one at a time and in order (each reads the roster item,
   * then writes it): those the user sends and those that come to the user. */
  const queues = new Map<string, Promise<unknown>>();
  /** A write nobody waits for (the next read sees it anyway): a failure is logged. */
  const quietly = (p: Promise<unknown>, user: string): void => {
    p.catch((err: unknown) => host.log.error({ user, err: (err as Error)?.message ?? String(err) }, 'presence: a write failed'));
  };
  function serial<T>(username: string, fn: () => Promise<T>): Promise<T> {
    const prev = queues.get(username) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    queues.set(username, tail);
    void tail.then(() => { if (queues.get(username) === tail) queues.delete(username); });
    return run;
  }
  const send = (type: string | undefined, from: string, to: string, children?: Element[]): void => {
    const p = xml('presence', { xmlns: NS.client, type, from, to });
    for (const c of children ?? []) p.append(c.clone());
    host.route(p);
  };
  const availableSessions = (bare: string): Session[] => host.router.sessionsOf(bare).filter((s) => s.available);
  /** The current presence of each available resource of `user`, sent to `to`. */
  const sendCurrentPresence = (user: string, to: string): void => {
    for (const s of availableSessions(user)) {
      const copy = s.presence!.clone();
      copy.attrs.from = s.jid.full;
      copy.attrs.to = to;
      host.route(copy);
    }
  };

  /** Sends a copy of a presence to each of the user's contacts that may see it, and to the user's resources. */
  async function broadcast(session: Session, stanza: Element): Promise<void> {
    for (const it of (await store.getRoster(session.username)).items) {
      if (it.subscription !== 'from' && it.subscription !== 'both') continue;
      const copy = stanza.clone();
      copy.attrs.to = it.contact;
      copy.attrs.from = session.jid.full;
      host.route(copy);
    }
    for (const s of availableSessions(session.jid.bare)) {
      const copy = stanza.clone();
      copy.attrs.from = session.jid.full;
      copy.attrs.to = s.jid.full;
      s.send(copy);
    }
  }

  async function goUnavailable(session: Session, stanza?: Element): Promise<void> {
    if (!session.available) return;
    const p = stanza ?? xml('presence', { xmlns: NS.client, type: 'unavailable' });
    p.attrs.type = 'unavailable';
    delete p.attrs.to;
    session.available = false;
    session.presence = undefined;
    const directed = session.directed ?? [];
    session.directed = undefined;
    await broadcast(session, p);
    for (const to of directed) {
      const copy = p.clone();
      copy.attrs.to = to;
      copy.attrs.from = session.jid.full;
      host.route(copy);
    }
  }

  // ---- presence from a local client ----
  host.hooks.on<StanzaEvent>('out/presence', async (e) => {
    const session = e.origin!;
    const { stanza } = e;
    const type = stanza.attrs.type;
    if (type === undefined || type === 'unavailable') {
      if (stanza.attrs.to === undefined) {
        if (type === 'unavailable') { await goUnavailable(session, stanza); return true; }
        const prio = Number.parseInt(stanza.getChildText('priority') ?? '0', 10);
        session.priority = Number.isFinite(prio) ? Math.max(-128, Math.min(127, prio)) : 0;
        const initial = !session.available;
        session.available = true;
        session.presence = stanza;
        await broadcast(session, stanza);
        if (initial) await initialPresence(session);
        return true;
      }
      // Directed presence: remembered so the target hears when we go offline.
      if (type === undefined) {
        if ((session.directed ??= new Set()).size < MAX_DIRECTED) session.directed.add(e.to.full);
      } else session.directed?.delete(e.to.full);
      return false;
    }
    if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed') {
      if (stanza.attrs.to === undefined) return true;
      const contact = e.to.toBare();
      const refused = await serial(session.username, () => outboundSubscription(session, type, contact, stanza));
      // A local contact's side is handled before the user's next stanza (as when all of it was
      // synchronous): a ping after a request is answered after the request was dealt with.
      if (host.isLocal(contact)) await queues.get(contact.local);
      if (refused) session.send(errorReply(stanza, refused.condition, refused.text));
      return true;
    }
    if (type === 'probe') return true; // servers probe, clients do not
    return false; // errors are routed as they are
  });

  async function initialPresence(session: Session): Promise<void> {
    const from = session.jid.full;
    for (const it of (await store.getRoster(session.username)).items) {
      if (it.subscription === 'to' || it.subscription === 'both') send('probe', from, it.contact);
    }
    for (const s of availableSessions(session.jid.bare)) {
      if (s !== session && s.presence) {
        const copy = s.presence.clone();
        copy.attrs.from = s.jid.full;
        copy.attrs.to = from;
        session.send(copy);
      }
    }
    // Subscription requests that arrived while the user was away (or still unanswered).
    for (const { stanza } of await store.pendingIn(session.username)) session.sendXml(stanza);
    // Modules may make the client's next stanza wait (offline delivery's first batch).
    await host.hooks.fire('initial-presence', { session });
  }

  /** Handles a subscription stanza from the user; returns the error to answer when it is refused. */
  async function outboundSubscription(session: Session, type: string, contact: Jid, stanza: Element): Promise<{ condition: string; text: string } | undefined> {
    const username = session.username;
    const me = bareOf(username);
    const extra = stanza.elements();
    const it = await item(username, contact.bare);
    host.log.debug({ user: username, type, contact: contact.bare, state: it && `${it.subscription}${it.ask ? '+ask' : ''}` }, 'subscription out');
    const full = it ? undefined : await rosterFull(host, username, contact.bare);
    if (type === 'subscribe') {
      if (!it && host.isLocal(contact) && contact.local !== '' && !host.accountExists(contact.local)) {
        // No such account here (RFC 6121 §3.1.3): answered on its behalf, and nothing is stored
        // (no roster item with a pending request that would never be answered).
        const answer = xml('presence', { xmlns: NS.client, type: 'unsubscribed', from: contact.bare, to: me });
        for (const s of host.router.sessionsOf(me)) if (s.available || s.interested) s.send(answer.clone());
        return undefined;
      }
      if (full) return { condition: 'not-allowed', text: full };
      if (!it || (!it.ask && (it.subscription === 'none' || it.subscription === 'from'))) {
        await saveRosterItem(host, username, it ? { ...it, ask: true } : { contact: contact.bare, subscription: 'none', ask: true, groups: [] });
      }
      send('subscribe', me, contact.bare, extra);
    } else if (type === 'subscribed') {
      if (!await store.hasPendingIn(username, contact.bare)) {
        // No request to approve: a pre-approval (RFC 6121 §3.4), unless the contact is already subscribed.
        if (it && (it.subscription === 'from' || it.subscription === 'both')) return;
        if (await isPreApproved(host, username, contact.bare)) return;
        if (full) return { condition: 'not-allowed', text: full };
        quietly(setPreApproved(host, username, contact.bare, true), username);
        await saveRosterItem(host, username, it ?? { contact: contact.bare, subscription: 'none', ask: false, groups: [] });
        return;
      }
      if (full) return { condition: 'not-allowed', text: full };
      quietly(store.removePendingIn(username, contact.bare), username);
      const next = it ? { ...it, subscription: it.subscription === 'to' ? 'both' as const : it.subscription === 'none' ? 'from' as const : it.subscription }
        : { contact: contact.bare, subscription: 'from' as const, ask: false, groups: [] };
      await saveRosterItem(host, username, next);
      send('subscribed', me, contact.bare);
      for (const s of availableSessions(me)) {
        const copy = s.presence!.clone();
        copy.attrs.from = s.jid.full;
        copy.attrs.to = contact.bare;
        host.route(copy);
      }
    } else if (type === 'unsubscribe') {
      if (it && (it.ask || it.subscription === 'to' || it.subscription === 'both')) {
        await saveRosterItem(host, username, { ...it, ask: false, subscription: it.subscription === 'both' ? 'from' : it.subscription === 'to' ? 'none' : it.subscription });
      }
      send('unsubscribe', me, contact.bare);
    } else if (type === 'unsubscribed') {
      if (it && await isPreApproved(host, username, contact.bare)) { quietly(setPreApproved(host, username, contact.bare, false), username); await saveRosterItem(host, username, it); }
      const pending = await store.hasPendingIn(username, contact.bare);
      if (pending) quietly(store.removePendingIn(username, contact.bare), username);
      if (it && (it.subscription === 'from' || it.subscription === 'both')) {
        await saveRosterItem(host, username, { ...it, subscription: it.subscription === 'both' ? 'to' : 'none' });
        for (const s of availableSessions(me)) send('unavailable', s.jid.full, contact.bare);
      } else if (!pending) return;
      send('unsubscribed', me, contact.bare);
    }
    return undefined;
  }

  // ---- presence to a local account ----
  function inbound(e: StanzaEvent): boolean | Promise<boolean> {
    const { stanza, to, from } = e;
    const type = stanza.attrs.type;
    const username = to.local;
    if (!host.accountExists(username)) {
      if (type === 'subscribe' || type === 'probe') send('unsubscribed', to.bare, from.bare);
      return true;
    }
    if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed') {
      return serial(username, () => inboundSubscription(e, type)).then(() => true);
    }
    if (type === 'probe') {
      return item(username, from.bare).then((it) => {
        if (it && (it.subscription === 'from' || it.subscription === 'both')) sendCurrentPresence(to.bare, from.full);
        return true;
      });
    }
    const deliver = (): boolean => {
      if (to.resource) {
        const s = host.router.get(to.full);
        if (s) host.deliver(s, stanza, e.rx);
      } else deliverAll(to.bare, stanza, e.rx);
      return true;
    };
    // Behind a subscription change to the user still under way (e.g. the contact's presence
    // right after its approval: RFC 6121 §3.1.6 wants the approval first); at once otherwise.
    return queues.has(username) ? serial(username, async () => deliver()) : deliver();
  }

  async function inboundSubscription(e: StanzaEvent, type: string): Promise<void> {
    const { stanza, to, from } = e;
    const username = to.local;
    const it = await item(username, from.bare);
    host.log.debug({ user: username, type, contact: from.bare, state: it && `${it.subscription}${it.ask ? '+ask' : ''}` }, 'subscription in');
    switch (type) {
      case 'subscribe':
        if (it && (it.subscription === 'from' || it.subscription === 'both')) { send('subscribed', to.bare, from.bare); return; }
        if (it && await isPreApproved(host, username, from.bare)) {
          // Pre-approved (RFC 6121 §3.4): approve for the user, as if it had answered.
          quietly(setPreApproved(host, username, from.bare, false), username);
          await saveRosterItem(host, username, { ...it, subscription: it.subscription === 'to' ? 'both' : 'from' });
          send('subscribed', to.bare, from.bare);
          sendCurrentPresence(to.bare, from.bare);
          return;
        }
        if (!await store.hasPendingIn(username, from.bare) && await store.countPendingIn(username) >= maxPending) {
          // The requester is told; nothing is stored (a flood of requests cannot grow the table).
          host.route(errorReply(stanza, 'resource-constraint', `${to.bare} has too many unanswered subscription requests (at most ${maxPending}); try again later`));
          return;
        }
        stanza.attrs.to = to.bare;
        stanza.attrs.from = from.bare;
        quietly(store.addPendingIn(username, from.bare, stanza.toString()), username);
        for (const s of availableSessions(to.bare)) if (s.priority >= 0) s.send(stanza);
        return;
      case 'subscribed':
        if (!it || !it.ask) return;
        // RFC 6121 §3.1.6, in this order: roster push, the approval to every interested resource
        // (also one that has not sent presence yet), then (from the contact's side) its presence.
        await saveRosterItem(host, username, { ...it, ask: false, subscription: it.subscription === 'from' ? 'both' : 'to' });
        stanza.attrs.to = to.bare;
        stanza.attrs.from = from.bare;
        for (const s of host.router.sessionsOf(to.bare)) if (s.available || s.interested) host.deliver(s, stanza, e.rx);
        return;
      case 'unsubscribe':
        if (await store.hasPendingIn(username, from.bare)) quietly(store.removePendingIn(username, from.bare), username);
        if (it && (it.subscription === 'from' || it.subscription === 'both')) {
          await saveRosterItem(host, username, { ...it, subscription: it.subscription === 'both' ? 'to' : 'none' });
          deliverAll(to.bare, stanza, e.rx);
        }
        return;
      case 'unsubscribed':
        if (it && (it.ask || it.subscription === 'to' || it.subscription === 'both')) {
          await saveRosterItem(host, username, { ...it, ask: false, subscription: it.subscription === 'both' ? 'from' : it.subscription === 'to' ? 'none' : it.subscription });
          deliverAll(to.bare, stanza, e.rx);
        }
        return;
    }
  }

  function deliverAll(bare: string, stanza: Element, rx: number): void {
    for (const s of availableSessions(bare)) host.deliver(s, stanza, rx);
  }

  host.hooks.on<StanzaEvent>('presence/bare', inbound);
  host.hooks.on<StanzaEvent>('presence/full', inbound);
  host.hooks.on<StanzaEvent>('presence/host', () => true);

  // An item leaves the roster (the user removed it, or the account goes: the roster module
  // waits for this before it deletes): subscriptions are cancelled both ways.
  host.hooks.on<{ username: string; item: RosterItem; from: Jid }>('roster-remove', ({ username, item: it }) => serial(username, async () => {
    const me = bareOf(username);
    if (it.ask || it.subscription === 'to' || it.subscription === 'both') send('unsubscribe', me, it.contact);
    if (it.subscription === 'from' || it.subscription === 'both' || await store.hasPendingIn(username, it.contact)) {
      quietly(store.removePendingIn(username, it.contact), username);
      for (const s of availableSessions(me)) send('unavailable', s.jid.full, it.contact);
      send('unsubscribed', me, it.contact);
    }
  }));

  host.hooks.on<SessionEvent>('session-closed', ({ session }) => goUnavailable(session));
}
