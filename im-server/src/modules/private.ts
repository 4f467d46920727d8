// XEP-0049 private XML storage (jabber:iq:private): a user keeps XML on the server, readable and
// writable only by the user's own resources. Older clients keep their XEP-0048 bookmarks here.
// One item per namespace: a set replaces, for each namespace it names, everything stored under
// it with the elements it carries (the XEP lets a set hold several of one namespace); a get
// answers with them, or with the empty element it asked for when nothing is stored.
import type { Host, StanzaEvent } from '../core/host.js';
import { parseElement } from '../core/parser.js';
import { errorReply, iqResult } from '../core/stanza.js';
import { xml, type Element } from '../core/xml.js';
import type { Backend, ModuleDb } from '../storage/store.js';

export const NS_PRIVATE = 'jabber:iq:private';

export interface PrivateTables {
  private_xml: { username: string; ns: string; xml: string };
}
// A user's rows go when the account is removed in-band ('account-removing'), so a name
// registered again starts empty; rows of accounts removed while the server was down are swept
// at start. Until version 2, account_created (the account's created_at) hid rows of a name
// deleted and registered again; reading the core's accounts table is not the module's to do.
export const PRIVATE_MIGRATIONS = [
  `CREATE TABLE private_xml (username TEXT NOT NULL, ns TEXT NOT NULL, xml TEXT NOT NULL, account_created INTEGER NOT NULL,
     PRIMARY KEY (username, ns)) WITHOUT ROWID;`,
  'ALTER TABLE private_xml DROP COLUMN account_created;',
];

/** XEP-0049 §2.3: namespaces of the protocol itself (and vcard-temp) are not storage keys. */
const reserved = (ns: string): boolean => ns.startsWith('jabber:') || ns.startsWith('http://jabber.org/') || ns === 'vcard-temp';

/** An element with nothing in it: storing only such clears the namespace. */
const empty = (el: Element): boolean => el.children.length === 0 && Object.keys(el.attrs).every((k) => k === 'xmlns');

/** One namespace's new content; undefined clears it. */
export interface PrivateWrite { ns: string; text: string | undefined }

export class PrivateStore {
  private constructor(private readonly db: ModuleDb<PrivateTables>) {}

  static async open(backend: Backend): Promise<PrivateStore> {
    return new PrivateStore(await backend.open<PrivateTables>('private', PRIVATE_MIGRATIONS));
  }

  /** The serialised elements stored under `ns`. */
  async get(user: string, ns: string): Promise<string | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('private_xml').select('xml').where('username', '=', user).where('ns', '=', ns));
    return r?.xml;
  }

  async namespaces(user: string): Promise<Set<string>> {
    const rows = await this.db.read(this.db.q.selectFrom('private_xml').select('ns').where('username', '=', user));
    return new Set(rows.map((r) => r.ns));
  }

  /** Stores and clears namespaces, all or none. */
  async put(user: string, writes: PrivateWrite[]): Promise<void> {
    const { q } = this.db;
    await this.db.write(...writes.map((w) => (w.text === undefined
      ? q.deleteFrom('private_xml').where('username', '=', user).where('ns', '=', w.ns)
      : q.insertInto('private_xml').values({ username: user, ns: w.ns, xml: w.text })
        .onConflict((oc) => oc.columns(['username', 'ns']).doUpdateSet({ xml: (eb) => eb.ref('excluded.xml') })))));
  }

  /** Deletes everything the user stored (queued at once). */
  removeUser(user: string): Promise<void> {
    return this.db.write(this.db.q.deleteFrom('private_xml').where('username', '=', user)).then(() => {});
  }

  /** The users who have something stored. */
  async users(): Promise<string[]> {
    const rows = await this.db.read(this.db.q.selectFrom('private_xml').select('username').distinct());
    return rows.map((r) => r.username);
  }
}

export default async function privateStorage(host: Host): Promise<void> {
  const cfg = host.config.privateStorage;
  const data = await PrivateStore.open(host.db);
  const log = host.log.child({ module: 'private' });
  host.features.add(NS_PRIVATE);

  const fail = (e: StanzaEvent, condition: string, text: string): true => { host.reply(e, errorReply(e.stanza, condition, text)); return true; };

  /** The payload's elements by namespace, or the error to answer with. */
  function byNamespace(e: StanzaEvent): Map<string, Element[]> | string {
    const groups = new Map<string, Element[]>();
    for (const el of e.stanza.firstElement()!.elements()) {
      // An element without its own namespace is in jabber:iq:private, so reserved too.
      if (reserved(el.ns)) return `the namespace ${el.ns || '(none)'} is reserved: store your data under a namespace of your own`;
      groups.set(el.ns, [...(groups.get(el.ns) ?? []), el]);
    }
    return groups;
  }

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_PRIVATE}:query`, async (e) => {
    if (e.from.bare !== e.to.bare) return fail(e, 'forbidden', 'private XML storage belongs to its account alone');
    const groups = byNamespace(e);
    if (typeof groups === 'string') return fail(e, 'not-acceptable', groups);
    if (groups.size === 0) return fail(e, 'bad-request', 'name what to get, e.g. <storage xmlns="storage:bookmarks"/>');
    const query = xml('query', { xmlns: NS_PRIVATE });
    for (const [ns, asked] of groups) {
      const text = await data.get(e.to.local, ns);
      const stored = text === undefined ? undefined : parseElement(`<query xmlns="${NS_PRIVATE}">${text}</query>`);
      if (stored) for (const el of stored.elements()) query.append(el);
      else query.append(xml(asked[0]!.name, { xmlns: ns }));
    }
    host.reply(e, iqResult(e.stanza, query));
    return true;
  });

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_PRIVATE}:query`, async (e) => {
    if (e.from.bare !== e.to.bare) return fail(e, 'forbidden', 'private XML storage belongs to its account alone');
    const groups = byNamespace(e);
    if (typeof groups === 'string') return fail(e, 'not-acceptable', groups);
    if (groups.size === 0) return fail(e, 'not-acceptable', 'include the element to store, e.g. <storage xmlns="storage:bookmarks">...</storage>');
    const user = e.to.local;
    const writes: PrivateWrite[] = [];
    for (const [ns, els] of groups) {
      const text = els.every(empty) ? undefined : els.map((el) => { el.attrs.xmlns = ns; return el.toString(); }).join('');
      if (text !== undefined && Buffer.byteLength(text) > cfg.maxItemSize) {
        return fail(e, 'policy-violation', `the data for ${ns} is ${Buffer.byteLength(text)} bytes; at most ${cfg.maxItemSize} can be stored per namespace`);
      }
      writes.push({ ns, text });
    }
    const have = await data.namespaces(user);
    const added = writes.filter((w) => w.text !== undefined && !have.has(w.ns)).length;
    if (added > 0 && have.size + added > cfg.maxItemsPerUser) {
      return fail(e, 'policy-violation', `at most ${cfg.maxItemsPerUser} namespaces can be stored per account; clear one by storing its empty element`);
    }
    // Checked right before the write is queued (nothing waits in between): once the account is
    // being removed its rows are deleted, and nothing may be written after that delete.
    if (!host.accountExists(user)) return fail(e, 'forbidden', 'this account has been removed');
    try {
      await data.put(user, writes);
    } catch (err) {
      log.error({ err: (err as Error).message, user }, 'private XML not stored');
      return fail(e, 'internal-server-error', 'the data could not be stored; try again');
    }
    host.reply(e, iqResult(e.stanza));
    return true;
  });

  // Queued at once, before the core deletes the account: the name registered again starts empty.
  // The promise settles when the delete is durable (a failure is the removal's).
  host.hooks.on<{ username: string }>('account-removing', async ({ username }) => {
    await data.removeUser(username);
  });
  // Rows of accounts removed while the server was down (`admin deluser` fires no hook). Before
  // the server accepts clients, so the sweep's deletes are queued before a name is registered again.
  try {
    const gone = (await data.users()).filter((u) => !host.accountExists(u));
    await Promise.all(gone.map((u) => data.removeUser(u)));
    if (gone.length) log.info({ accounts: gone.length }, 'private XML of removed accounts deleted');
  } catch (err) {
    log.error({ err: (err as Error).message }, 'private XML sweep failed');
  }
}
