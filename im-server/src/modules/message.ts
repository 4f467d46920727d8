// Message routing (RFC 6121 §8.5): to a bare JID the highest-priority available resources get
// it (offline storage when none), to a full JID that resource (or as bare for chat/normal),
// errors for unknown users. IQs to full JIDs are forwarded here too (RFC 6120 §10.5.4).
import { after, type Awaitable } from '../core/hooks.js';
import type { Host, StanzaEvent } from '../core/host.js';
import type { Session } from '../core/session.js';

export default function message(host: Host): void {
  function toBare(e: StanzaEvent): Awaitable<boolean> {
    const { stanza, to } = e;
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error') return true;
    if (!host.accountExists(to.local)) { host.bounce(e, 'service-unavailable'); return true; }
    if (type === 'groupchat') { host.bounce(e, 'service-unavailable'); return true; }
    let best: Session[] = [];
    let max = -1;
    for (const s of host.router.sessionsOf(to.bare)) {
      if (!s.available || s.priority < 0) continue;
      if (type === 'headline') { best.push(s); continue; }
      if (s.priority > max) { max = s.priority; best = [s]; } else if (s.priority === max) best.push(s);
    }
    if (best.length > 0) {
      for (const s of best) host.deliver(s, stanza, e.rx);
      return true;
    }
    if (type === 'headline') return true;
    return after(host.hooks.fire('message/offline', e), (stored) => {
      if (!stored) host.bounce(e, 'service-unavailable', 'the recipient is offline');
      return true;
    });
  }

  host.hooks.on<StanzaEvent>('message/bare', toBare);

  host.hooks.on<StanzaEvent>('message/full', (e) => {
    const s = host.router.get(e.to.full);
    if (s) { host.deliver(s, e.stanza, e.rx); return true; }
    const type = e.stanza.attrs.type ?? 'normal';
    if (type === 'chat' || type === 'normal') return toBare(e);
    if (type === 'groupchat') host.bounce(e, 'service-unavailable');
    return true;
  });

  host.hooks.on<StanzaEvent>('iq/full', (e) => {
    const s = host.router.get(e.to.full);
    if (s) { host.deliver(s, e.stanza, e.rx); return true; }
    const type = e.stanza.attrs.type;
    if (type === 'get' || type === 'set') host.bounce(e, 'service-unavailable', 'no such resource');
    return true;
  });
}
