// Offline messages (XEP-0160): chat/normal messages for an account with no available resource
// are stored (durably, by group commit) with a delay stamp, and delivered in order at the next
// initial presence with non-negative priority.
import type { Host, SessionEvent, StanzaEvent } from '../core/host.js';
import { NS } from '../core/stanza.js';
import { xml } from '../core/xml.js';

export default function offline(host: Host): void {
  host.features.add('msgoffline');
  const max = host.config.limits.maxOfflinePerUser;

  host.hooks.on<StanzaEvent>('message/offline', (e) => {
    const type = e.stanza.attrs.type ?? 'normal';
    if (type !== 'chat' && type !== 'normal') return false;
    const username = e.to.local;
    if (host.storage.countOffline(username) >= max) {
      host.bounce(e, 'service-unavailable', 'the recipient is offline and their message store is full');
      return true;
    }
    const copy = e.stanza.clone();
    copy.append(xml('delay', { xmlns: NS.delay, from: host.domain, stamp: new Date().toISOString() }, 'Offline storage'));
    host.storage.storeOffline(username, copy.toString()).catch((err: Error) => {
      host.log.error({ err: err.message, user: username }, 'offline store failed');
    });
    return true;
  });

  host.hooks.on<SessionEvent>('initial-presence', ({ session }) => {
    if (session.priority < 0) return;
    for (const stanza of host.storage.takeOffline(session.username)) session.sendXml(stanza);
  });
}
