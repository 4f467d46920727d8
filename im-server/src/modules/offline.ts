// Offline messages (XEP-0160): chat/normal messages for an account with no available resource
// are stored (durably, by group commit) with a delay stamp, and delivered in order at the next
// initial presence with non-negative priority. At-least-once: delivered rows are deleted only
// once the client has them. With stream management (XEP-0198) that is when its <a h/> covers
// them; a session that ends before that leaves them stored, to be delivered again at the next
// login (clients dedupe by id/delay). Without SM the client cannot tell us, so (as Prosody
// does) they are deleted once the last one was handed to the socket.
import type { Host, SessionEvent, StanzaEvent } from '../core/host.js';
import { NS } from '../core/stanza.js';
import { xml } from '../core/xml.js';
import { isDiskFull } from '../storage/types.js';

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
    // Not stored means not delivered: the sender is told, so nothing is lost without a word.
    host.storage.storeOffline(username, copy.toString()).catch((err: Error) => {
      host.log.debug({ err: err.message, user: username }, 'offline store failed');
      host.bounce(e, 'resource-constraint', isDiskFull(err)
        ? 'the server\'s disk is full: your message to an offline contact could not be stored; send it again later'
        : 'the server could not store your message for an offline contact; send it again later', { wait: false });
    });
    return true;
  });

  host.hooks.on<SessionEvent>('initial-presence', ({ session }) => {
    if (session.priority < 0) return;
    const rows = host.storage.getOffline(session.username);
    if (rows.length === 0) return;
    const username = session.username;
    const lastId = rows[rows.length - 1]!.id;
    const remove = (): void => {
      host.storage.deleteOffline(username, lastId).catch((err: Error) => host.log.error({ err: err.message, user: username }, 'offline delete failed'));
    };
    const sm = session.smEnabled;
    rows.forEach((r, i) => session.sendXml(r.stanza, !sm && i === rows.length - 1 ? remove : undefined));
    if (sm) session.whenAcked(remove);
  });
}
