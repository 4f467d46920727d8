// Presence (RFC 6121 §3-4): the subscription state machine (subscribe, subscribed, unsubscribe,
// unsubscribed; pending-in kept until answered and shown again at next login; pre-approval §3.4), initial presence
// with probes, broadcast, directed presence, and unavailable when a session ends.
import type { Host, SessionEvent, StanzaEvent } from '../core/host.js';
import type { Jid } from '../core/jid.js';
import type { Session } from '../core/session.js';
import { NS, errorReply } from '../core/stanza.js';
import { Element, xml } from '../core/xml.js';
import type { RosterItem } from '../storage/types.js';
import { isPreApproved, rosterFull, saveRosterItem, setPreApproved } from './roster.js';

const MAX_DIRECTED = 100;

export default function presence(host: Host): void {
  // RFC 6121 §3.4: clients may send 'subscribed' before a request only if the server says so.
  host.hooks.on<{ features: string[] }>('stream-features', ({ features }) => { features.push('<sub xmlns="urn:xmpp:features:pre-approval"/>'); });
  const domainOf = host.domain;
  const maxPending = host.config.limits.maxRosterItems;
  const bareOf = (username: string): string => `${username}@${domainOf}`;
  const item = (username: string, contact: string): RosterItem | undefined => host.storage.getRosterItem(username, contact);
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
  function broadcast(session: Session, stanza: Element): void {
    for (const it of host.storage.getRoster(session.username).items) {
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

  function goUnavailable(session: Session, stanza?: Element): void {
    if (!session.available) return;
    const p = stanza ?? xml('presence', { xmlns: NS.client, type: 'unavailable' });
    p.attrs.type = 'unavailable';
    delete p.attrs.to;
    session.available = false;
    session.presence = undefined;
    broadcast(session, p);
    for (const to of session.directed ?? []) {
      const copy = p.clone();
      copy.attrs.to = to;
      copy.attrs.from = session.jid.full;
      host.route(copy);
    }
    session.directed = undefined;
  }

  // ---- presence from a local client ----
  host.hooks.on<StanzaEvent>('out/presence', (e) => {
    const session = e.origin!;
    const { stanza } = e;
    const type = stanza.attrs.type;
    if (type === undefined || type === 'unavailable') {
      if (stanza.attrs.to === undefined) {
        if (type === 'unavailable') { goUnavailable(session, stanza); return true; }
        const prio = Number.parseInt(stanza.getChildText('priority') ?? '0', 10);
        session.priority = Number.isFinite(prio) ? Math.max(-128, Math.min(127, prio)) : 0;
        const initial = !session.available;
        session.available = true;
        session.presence = stanza;
        broadcast(session, stanza);
        if (initial) initialPresence(session);
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
      const refused = outboundSubscription(session, type, e.to.toBare(), stanza);
      if (refused) session.send(errorReply(stanza, refused.condition, refused.text));
      return true;
    }
    if (type === 'probe') return true; // servers probe, clients do not
    return false; // errors are routed as they are
  });

  function initialPresence(session: Session): void {
    const from = session.jid.full;
    for (const it of host.storage.getRoster(session.username).items) {
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
    for (const { stanza } of host.storage.getPendingIn(session.username)) session.sendXml(stanza);
    host.hooks.fire('initial-presence', { session });
  }

  /** Handles a subscription stanza from the user; returns the error to answer when it is refused. */
  function outboundSubscription(session: Session, type: string, contact: Jid, stanza: Element): { condition: string; text: string } | undefined {
    const username = session.username;
    const me = bareOf(username);
    const extra = stanza.elements();
    const it = item(username, contact.bare);
    host.log.debug({ user: username, type, contact: contact.bare, state: it && `${it.subscription}${it.ask ? '+ask' : ''}` }, 'subscription out');
    const full = it ? undefined : rosterFull(host, username, contact.bare);
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
        saveRosterItem(host, username, it ? { ...it, ask: true } : { contact: contact.bare, subscription: 'none', ask: true, groups: [] });
      }
      send('subscribe', me, contact.bare, extra);
    } else if (type === 'subscribed') {
      if (!host.storage.hasPendingIn(username, contact.bare)) {
        // No request to approve: a pre-approval (RFC 6121 §3.4), unless the contact is already subscribed.
        if (it && (it.subscription === 'from' || it.subscription === 'both')) return;
        if (isPreApproved(host, username, contact.bare)) return;
        if (full) return { condition: 'not-allowed', text: full };
        setPreApproved(host, username, contact.bare, true);
        saveRosterItem(host, username, it ?? { contact: contact.bare, subscription: 'none', ask: false, groups: [] });
        return;
      }
      if (full) return { condition: 'not-allowed', text: full };
      void host.storage.removePendingIn(username, contact.bare);
      const next = it ? { ...it, subscription: it.subscription === 'to' ? 'both' as const : it.subscription === 'none' ? 'from' as const : it.subscription }
        : { contact: contact.bare, subscription: 'from' as const, ask: false, groups: [] };
      saveRosterItem(host, username, next);
      send('subscribed', me, contact.bare);
      for (const s of availableSessions(me)) {
        const copy = s.presence!.clone();
        copy.attrs.from = s.jid.full;
        copy.attrs.to = contact.bare;
        host.route(copy);
      }
    } else if (type === 'unsubscribe') {
      if (it && (it.ask || it.subscription === 'to' || it.subscription === 'both')) {
        saveRosterItem(host, username, { ...it, ask: false, subscription: it.subscription === 'both' ? 'from' : it.subscription === 'to' ? 'none' : it.subscription });
      }
      send('unsubscribe', me, contact.bare);
    } else if (type === 'unsubscribed') {
      if (it && isPreApproved(host, username, contact.bare)) { setPreApproved(host, username, contact.bare, false); saveRosterItem(host, username, it); }
      const pending = host.storage.hasPendingIn(username, contact.bare);
      if (pending) void host.storage.removePendingIn(username, contact.bare);
      if (it && (it.subscription === 'from' || it.subscription === 'both')) {
        saveRosterItem(host, username, { ...it, subscription: it.subscription === 'both' ? 'to' : 'none' });
        for (const s of availableSessions(me)) send('unavailable', s.jid.full, contact.bare);
      } else if (!pending) return;
      send('unsubscribed', me, contact.bare);
    }
    return undefined;
  }

  // ---- presence to a local account ----
  function inbound(e: StanzaEvent): boolean {
    const { stanza, to, from } = e;
    const type = stanza.attrs.type;
    const username = to.local;
    if (!host.accountExists(username)) {
      if (type === 'subscribe' || type === 'probe') send('unsubscribed', to.bare, from.bare);
      return true;
    }
    const it = item(username, from.bare);
    if (type && type !== 'unavailable' && type !== 'error') {
      host.log.debug({ user: username, type, contact: from.bare, state: it && `${it.subscription}${it.ask ? '+ask' : ''}` }, 'subscription in');
    }
    switch (type) {
      case 'subscribe':
        if (it && (it.subscription === 'from' || it.subscription === 'both')) { send('subscribed', to.bare, from.bare); return true; }
        if (it && isPreApproved(host, username, from.bare)) {
          // Pre-approved (RFC 6121 §3.4): approve for the user, as if it had answered.
          setPreApproved(host, username, from.bare, false);
          saveRosterItem(host, username, { ...it, subscription: it.subscription === 'to' ? 'both' : 'from' });
          send('subscribed', to.bare, from.bare);
          sendCurrentPresence(to.bare, from.bare);
          return true;
        }
        if (!host.storage.hasPendingIn(username, from.bare) && host.storage.countPendingIn(username) >= maxPending) {
          // The requester is told; nothing is stored (a flood of requests cannot grow the table).
          host.route(errorReply(stanza, 'resource-constraint', `${to.bare} has too many unanswered subscription requests (at most ${maxPending}); try again later`));
          return true;
        }
        stanza.attrs.to = to.bare;
        stanza.attrs.from = from.bare;
        void host.storage.addPendingIn(username, from.bare, stanza.toString());
        for (const s of availableSessions(to.bare)) if (s.priority >= 0) s.send(stanza);
        return true;
      case 'subscribed':
        if (!it || !it.ask) return true;
        // RFC 6121 §3.1.6, in this order: roster push, the approval to every interested resource
        // (also one that has not sent presence yet), then (from the contact's side) its presence.
        saveRosterItem(host, username, { ...it, ask: false, subscription: it.subscription === 'from' ? 'both' : 'to' });
        stanza.attrs.to = to.bare;
        stanza.attrs.from = from.bare;
        for (const s of host.router.sessionsOf(to.bare)) if (s.available || s.interested) host.deliver(s, stanza, e.rx);
        return true;
      case 'unsubscribe':
        if (host.storage.hasPendingIn(username, from.bare)) void host.storage.removePendingIn(username, from.bare);
        if (it && (it.subscription === 'from' || it.subscription === 'both')) {
          saveRosterItem(host, username, { ...it, subscription: it.subscription === 'both' ? 'to' : 'none' });
          deliverAll(to.bare, stanza, e.rx);
        }
        return true;
      case 'unsubscribed':
        if (it && (it.ask || it.subscription === 'to' || it.subscription === 'both')) {
          saveRosterItem(host, username, { ...it, ask: false, subscription: it.subscription === 'both' ? 'from' : it.subscription === 'to' ? 'none' : it.subscription });
          deliverAll(to.bare, stanza, e.rx);
        }
        return true;
      case 'probe':
        if (it && (it.subscription === 'from' || it.subscription === 'both')) sendCurrentPresence(to.bare, from.full);
        return true;
      default:
        if (to.resource) {
          const s = host.router.get(to.full);
          if (s) host.deliver(s, stanza, e.rx);
        } else deliverAll(to.bare, stanza, e.rx);
        return true;
    }
  }

  function deliverAll(bare: string, stanza: Element, rx: number): void {
    for (const s of availableSessions(bare)) host.deliver(s, stanza, rx);
  }

  host.hooks.on<StanzaEvent>('presence/bare', inbound);
  host.hooks.on<StanzaEvent>('presence/full', inbound);
  host.hooks.on<StanzaEvent>('presence/host', () => true);

  host.hooks.on<{ username: string; item: RosterItem; from: Jid }>('roster-remove', ({ username, item: it }) => {
    const me = bareOf(username);
    if (it.ask || it.subscription === 'to' || it.subscription === 'both') send('unsubscribe', me, it.contact);
    if (it.subscription === 'from' || it.subscription === 'both' || host.storage.hasPendingIn(username, it.contact)) {
      void host.storage.removePendingIn(username, it.contact);
      for (const s of availableSessions(me)) send('unavailable', s.jid.full, it.contact);
      send('unsubscribed', me, it.contact);
    }
  });

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => {
    for (const it of host.storage.getRoster(username).items) host.hooks.fire('roster-remove', { username, item: it });
  });

  host.hooks.on<SessionEvent>('session-closed', ({ session }) => goUnavailable(session));
}
