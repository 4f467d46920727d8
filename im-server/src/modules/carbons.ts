// XEP-0280 message carbons: a session that enabled them gets a <sent/> copy of each eligible
// message its user sends from another resource, and a <received/> copy of each eligible message
// to its user that RFC 6121 routing delivers to other resources. Eligible (§6): chat, or normal
// with a body; never errors, groupchat, MUC private messages received, or messages marked
// <private/> (stripped before delivery) or with a no-copy hint.
import type { Host, SessionEvent, StanzaEvent } from '../core/host.js';
import type { Session } from '../core/session.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { type Element, xml } from '../core/xml.js';

const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_HINTS = 'urn:xmpp:hints';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';

function eligible(stanza: Element): boolean {
  const type = stanza.attrs.type ?? 'normal';
  return type === 'chat' || (type === 'normal' && stanza.getChild('body') !== undefined);
}

export default function carbons(host: Host): void {
  host.features.add(NS_CARBONS);
  const enabled = new WeakSet<Session>();

  for (const target of ['bare', 'host'] as const) {
    for (const op of ['enable', 'disable'] as const) {
      host.hooks.on<StanzaEvent>(`iq-set/${target}/${NS_CARBONS}:${op}`, (e) => {
        if (target === 'bare' && e.to.bare !== e.from.bare) return false;
        if (!e.origin) { host.reply(e, errorReply(e.stanza, 'not-allowed', 'only a client of this server can change its carbons')); return true; }
        if (op === 'enable') enabled.add(e.origin); else enabled.delete(e.origin);
        host.reply(e, iqResult(e.stanza));
        return true;
      });
    }
  }
  host.hooks.on<SessionEvent>('session-closed', ({ session }) => { enabled.delete(session); });

  /** The sessions message.ts will deliver a message to (RFC 6121 §8.5.2-8.5.3). */
  const recipients = (e: StanzaEvent): readonly Session[] => {
    if (e.to.resource) {
      const s = host.router.get(e.to.full);
      if (s) return [s];
    }
    let best: Session[] = [];
    let max = -1;
    for (const s of host.router.sessionsOf(e.to.bare)) {
      if (!s.available || s.priority < 0) continue;
      if (s.priority > max) { max = s.priority; best = [s]; } else if (s.priority === max) best.push(s);
    }
    return best;
  };

  const skipCopies = (stanza: Element): boolean => {
    const priv = stanza.getChild('private', NS_CARBONS);
    return priv !== undefined || stanza.getChild('no-copy', NS_HINTS) !== undefined;
  };

  host.hooks.on<StanzaEvent>('out/message', (e) => {
    const { stanza, origin } = e;
    if (!origin || !eligible(stanza) || skipCopies(stanza) || e.to.bare === e.from.bare) return false;
    send('sent', stanza, e.from.bare, [origin]);
    return false;
  }, 'copy'); // after archive (copies carry the stanza-id), before delivery

  const incoming = (e: StanzaEvent): boolean => {
    const { stanza } = e;
    if (!eligible(stanza) || !host.accountExists(e.to.local)) return false;
    if (stanza.getChild('private', NS_CARBONS)) {
      stanza.children = stanza.children.filter((c) => typeof c === 'string' || !(c.name === 'private' && c.ns === NS_CARBONS));
      return false;
    }
    if (skipCopies(stanza) || stanza.getChild('x', NS_MUC_USER)) return false;
    const targets = recipients(e);
    if (targets.length > 0) send('received', stanza, e.to.bare, targets);
    return false;
  };
  host.hooks.on<StanzaEvent>('message/bare', incoming, 'copy');
  host.hooks.on<StanzaEvent>('message/full', incoming, 'copy');

  function send(direction: 'sent' | 'received', stanza: Element, bare: string, skip: readonly Session[]): void {
    let inner: Element | undefined;
    for (const s of host.router.sessionsOf(bare)) {
      if (!enabled.has(s) || !s.available || skip.includes(s)) continue;
      // One copy for all: send() serialises at once.
      if (!inner) { inner = stanza.clone(); inner.attrs.xmlns = NS.client; }
      s.send(xml('message', { xmlns: NS.client, from: bare, to: s.jid.full, type: stanza.attrs.type ?? 'normal' },
        xml(direction, { xmlns: NS_CARBONS }, xml('forwarded', { xmlns: NS_FORWARD }, inner))));
    }
  }
}
