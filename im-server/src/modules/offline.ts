// Offline messages (XEP-0160): chat/normal messages for an account with no available resource
// are stored (durably, by group commit) with a delay stamp, and delivered in order at the next
// initial presence with non-negative priority.
//
// Bounded: an account holds at most limits.maxOfflinePerUser messages and
// limits.maxOfflineBytesPerUser bytes; past either the sender gets resource-constraint (as
// ejabberd's max_user_offline_messages does) and nothing is stored.
//
// Delivered at the pace the client reads: a batch (at most BATCH_BYTES or BATCH_STANZAS), the
// next one once the batch was handed to the socket, so a client on a slow link is never sent
// more than its output buffer holds (writing thousands at once ended the stream with
// resource-constraint before anything was deleted, and so at every later login).
// At-least-once, per batch: with stream management (XEP-0198) a batch is deleted once the
// client's <a h/> covers it; a session
// that ends before that leaves them stored, to be delivered again at the next login (clients
// dedupe by id/delay). Without SM the client cannot tell us, so (as Prosody does) a batch is
// deleted once its last stanza was handed to the socket. A connection lost mid-way costs at most
// the batch in flight (without SM) or a resend of the unacked batches (with SM).
// Messages that arrive for the user while the backlog drains are delivered at once, so they can
// overtake older stored ones; those carry their <delay/> stamp.
import type { Host, SessionEvent, StanzaEvent } from '../core/host.js';
import type { Session } from '../core/session.js';
import { NS } from '../core/stanza.js';
import { xml } from '../core/xml.js';
import { isDiskFull } from '../storage/types.js';
import { openOfflineStore, type OfflineUsage } from './offline-store.js';

const BATCH_BYTES = 64 * 1024;
const BATCH_STANZAS = 100;
/** Rows read from storage at a time (kept in memory until sent: bounded by maxOfflineBytesPerUser). */
const READ_ROWS = 200;
/** How long this node trusts its count of a user's stored messages before it asks the database
 * again (another node on the same database may have stored or delivered some meanwhile). */
const USAGE_TTL_MS = 2000;

const mib = (n: number): string => (n >= 1024 * 1024 ? `${+(n / (1024 * 1024)).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`);

export default async function offline(host: Host): Promise<void> {
  const store = await openOfflineStore(host.db);
  const filled = await store.fillSizes();
  if (filled > 0) host.log.info({ messages: filled }, 'offline: sizes of stored messages filled in');
  host.features.add('msgoffline');
  const maxCount = host.config.limits.maxOfflinePerUser;
  const maxBytes = host.config.limits.maxOfflineBytesPerUser;
  const fullText = `the recipient is offline and their offline message store is full (at most ${maxCount} messages and ${mib(maxBytes)}): ` +
    'your message was not stored; send it again once they have been online';

  // Per user: what is stored (count, bytes), as read from the database and counted up by this
  // node's stores since; dropped when messages are deleted or a store fails, and after
  // USAGE_TTL_MS, then read again. Kept so that storing a message needs no read (a read commits
  // the queued writes first: one commit per offline message otherwise).
  const usages = new Map<string, OfflineUsage & { at: number }>();
  // One read per user at a time, shared by every message that waits for it: they go on in the
  // order they came (separate reads could answer out of order on PostgreSQL's pool, and each
  // read commits the queued writes first).
  const reading = new Map<string, Promise<OfflineUsage & { at: number }>>();
  const usage = (username: string): (OfflineUsage & { at: number }) | Promise<OfflineUsage & { at: number }> => {
    const u = usages.get(username);
    if (u && performance.now() - u.at < USAGE_TTL_MS) return u;
    let r = reading.get(username);
    if (!r) {
      r = store.usage(username).then((read) => {
        const fresh = { ...read, at: performance.now() };
        usages.set(username, fresh);
        return fresh;
      }).finally(() => reading.delete(username));
      reading.set(username, r);
    }
    return r;
  };

  host.hooks.on<StanzaEvent>('message/offline', (e) => {
    const type = e.stanza.attrs.type ?? 'normal';
    if (type !== 'chat' && type !== 'normal') return false;
    const username = e.to.local;
    const copy = e.stanza.clone();
    copy.append(xml('delay', { xmlns: NS.delay, from: host.domain, stamp: new Date().toISOString() }, 'Offline storage'));
    const stanza = copy.toString();
    const u = usage(username);
    return u instanceof Promise ? u.then((v) => storeIfRoom(e, username, stanza, v)) : storeIfRoom(e, username, stanza, u);
  });

  function storeIfRoom(e: StanzaEvent, username: string, stanza: string, usage: OfflineUsage): boolean {
    const size = Buffer.byteLength(stanza);
    if (usage.count >= maxCount || usage.bytes + size > maxBytes) {
      host.log.debug({ user: username, count: usage.count, bytes: usage.bytes }, 'offline store full');
      host.bounce(e, 'resource-constraint', fullText);
      return true;
    }
    usage.count++;
    usage.bytes += size;
    // Not stored means not delivered: the sender is told, so nothing is lost without a word.
    store.store(username, stanza).catch((err: Error) => {
      usages.delete(username);
      host.log.debug({ err: err.message, user: username }, 'offline store failed');
      host.bounce(e, 'resource-constraint', isDiskFull(err)
        ? 'the server\'s disk is full: your message to an offline contact could not be stored; send it again later'
        : 'the server could not store your message for an offline contact; send it again later', { wait: false });
    });
    return true;
  }

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => {
    usages.delete(username);
    return store.removeUser(username).then(() => { usages.delete(username); });
  });

  /** Sessions delivering their backlog now (a second initial presence does not start another). */
  const draining = new WeakSet<Session>();

  // Waited for by the initial presence: the first batch goes out before the client's next stanza
  // is handled (so the backlog comes before, e.g., the answer to an iq sent right after presence).
  host.hooks.on<SessionEvent>('initial-presence', ({ session }) => {
    if (session.priority < 0 || draining.has(session)) return;
    return drain(session);
  });

  /** Delivers the user's backlog in batches; resolves once the first batch was handed out. */
  function drain(session: Session): Promise<void> {
    let firstOut!: () => void;
    const first = new Promise<void>((r) => { firstOut = r; });
    const username = session.username;
    const sm = session.smEnabled;
    let buffered: { id: number; stanza: string }[] = [];
    let lastRead = 0;
    /** Batches sent; the highest batch index handed to the socket, and (SM) acknowledged. The
     * next batch does not wait for acks (a client whose acks lag would stall it): the SM queue
     * bound (streamManagement.maxUnacked) is above what an account can hold offline. */
    let sent = 0;
    let written = -1;
    let acked = -1;
    let done = false;
    /** A read of the next rows is under way; `again`: next() was called meanwhile. */
    let reading = false;
    let again = false;

    const remove = (upTo: number): void => {
      usages.delete(username); // read again (after this delete) when next needed
      store.deleteUpTo(username, upTo).catch((err: Error) => host.log.error({ err: err.message, user: username }, 'offline delete failed'));
    };

    const nextBatch = async (): Promise<{ id: number; stanza: string }[]> => {
      if (buffered.length === 0) {
        buffered = await store.list(username, lastRead, READ_ROWS);
        if (buffered.length > 0) lastRead = buffered[buffered.length - 1]!.id;
      }
      let bytes = 0;
      let n = 0;
      while (n < buffered.length && n < BATCH_STANZAS) {
        const size = Buffer.byteLength(buffered[n]!.stanza);
        if (n > 0 && bytes + size > BATCH_BYTES) break;
        bytes += size;
        n++;
      }
      return buffered.splice(0, n);
    };

    /** Sends the next batch once the last one is with the socket (or acked: a session resumed
     * after its connection dropped resends without callbacks). */
    const next = (): void => {
      if (done) return;
      if (reading) { again = true; return; }
      const last = sent - 1;
      if (last >= 0 && Math.max(written, acked) < last) return;
      reading = true;
      nextBatch().then((batch) => {
        reading = false;
        send(batch);
        firstOut();
        if (again) { again = false; next(); }
      }, (err: Error) => {
        reading = false;
        done = true;
        draining.delete(session);
        firstOut();
        host.log.error({ err: err.message, user: username }, 'offline read failed');
      });
    };

    const send = (batch: { id: number; stanza: string }[]): void => {
      if (batch.length === 0) { done = true; draining.delete(session); return; }
      const index = sent++;
      const upTo = batch[batch.length - 1]!.id;
      batch.forEach((r, i) => session.sendXml(r.stanza, i < batch.length - 1 ? undefined : () => {
        written = Math.max(written, index);
        if (!sm) remove(upTo);
        next();
      }));
      if (sm) {
        session.whenAcked(() => {
          acked = Math.max(acked, index);
          remove(upTo);
          next();
        });
      }
    };
    draining.add(session);
    next();
    return first;
  }
}
