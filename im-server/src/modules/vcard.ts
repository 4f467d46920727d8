// XEP-0054 vcard-temp: anyone may read an account's vCard, only its owner may set it.
// The table `vcard` was the core's (src/storage/sqlite.ts created it); this module owns it now:
// its first migration creates it where it is missing (a fresh database, SQLite or PostgreSQL)
// and leaves the rows of an existing SQLite data dir as they are.
import type { Host, StanzaEvent } from '../core/host.js';
import { parseElement } from '../core/parser.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { xml } from '../core/xml.js';
import type { Backend, ModuleDb } from '../storage/store.js';

export interface VcardTables {
  vcard: { username: string; xml: string };
}
export const VCARD_MIGRATIONS = [
  'CREATE TABLE IF NOT EXISTS vcard (username TEXT PRIMARY KEY, xml TEXT NOT NULL);',
];

export class VcardStore {
  private constructor(private readonly db: ModuleDb<VcardTables>) {}

  static async open(backend: Backend): Promise<VcardStore> {
    return new VcardStore(await backend.open<VcardTables>('vcard', VCARD_MIGRATIONS));
  }

  /** The serialised <vCard/>, if the user set one. */
  async get(username: string): Promise<string | undefined> {
    return (await this.db.readOne(this.db.q.selectFrom('vcard').select('xml').where('username', '=', username)))?.xml;
  }

  set(username: string, card: string): Promise<void> {
    return this.db.write(this.db.q.insertInto('vcard').values({ username, xml: card })
      .onConflict((oc) => oc.column('username').doUpdateSet({ xml: (eb) => eb.ref('excluded.xml') }))).then(() => {});
  }

  /** Queued at once. */
  remove(username: string): Promise<void> {
    return this.db.write(this.db.q.deleteFrom('vcard').where('username', '=', username)).then(() => {});
  }

  /** The users who have a vCard. */
  async users(): Promise<string[]> {
    return (await this.db.read(this.db.q.selectFrom('vcard').select('username'))).map((r) => r.username);
  }
}

export default async function vcard(host: Host): Promise<void> {
  host.features.add(NS.vcard);
  const store = await VcardStore.open(host.db);
  const log = host.log.child({ module: 'vcard' });

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.vcard}:vCard`, async (e) => {
    if (!host.accountExists(e.to.local)) return false;
    const stored = await store.get(e.to.local);
    // The empty vCard stands for "none yet".
    const card = (stored && parseElement(stored)) || xml('vCard', { xmlns: NS.vcard });
    host.reply(e, iqResult(e.stanza, card));
    return true;
  });

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS.vcard}:vCard`, async (e) => {
    if (e.from.bare !== e.to.bare) { host.reply(e, errorReply(e.stanza, 'forbidden', 'you can only set your own vCard')); return true; }
    const card = e.stanza.firstElement()!;
    card.attrs.xmlns = NS.vcard;
    // Nothing is written after the delete of a removed account (see 'account-removing').
    if (!host.accountExists(e.to.local)) { host.reply(e, errorReply(e.stanza, 'forbidden', 'this account has been removed')); return true; }
    try {
      await store.set(e.to.local, card.toString());
    } catch (err) {
      log.error({ err: (err as Error).message, user: e.to.local }, 'vCard not stored');
      host.reply(e, errorReply(e.stanza, 'internal-server-error', 'the vCard could not be stored; try again'));
      return true;
    }
    host.reply(e, iqResult(e.stanza));
    return true;
  });

  // Queued at once, before the core deletes the account: a name registered again has no vCard.
  // The promise settles when the delete is durable (a failure is the removal's).
  host.hooks.on<{ username: string }>('account-removing', async ({ username }) => {
    await store.remove(username);
  });
  // vCards of accounts removed while the server was down (`admin deluser` fires no hook), before
  // the server accepts clients, so a name registered again gets none of them.
  try {
    const gone = (await store.users()).filter((u) => !host.accountExists(u));
    await Promise.all(gone.map((u) => store.remove(u)));
    if (gone.length) log.info({ accounts: gone.length }, 'vCards of removed accounts deleted');
  } catch (err) {
    log.error({ err: (err as Error).message }, 'vCard sweep failed');
  }
}
