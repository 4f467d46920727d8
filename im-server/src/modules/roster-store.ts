// The roster module's tables (RFC 6121): roster items, the roster version per user (XEP-0237,
// kept in the database so every node on one database hands out the same versions), subscription
// requests waiting for the user's answer (pending-in) and subscription pre-approvals (§3.4).
// The core created roster, roster_version and pending_in before: adopted here with CREATE TABLE
// IF NOT EXISTS, so old SQLite data dirs keep their rows.
//
// Other modules read rosters through rosterStore(host) (the roster module opens it at start).
import { sql } from 'kysely';
import type { Host } from '../core/host.js';
import type { Backend, ModuleDb } from '../storage/store.js';
import type { RosterItem, Subscription } from '../storage/types.js';

export const ROSTER_MIGRATIONS = [
  // v1: pre-approvals (the module's first own table).
  'CREATE TABLE roster_approved (username TEXT NOT NULL, contact TEXT NOT NULL, PRIMARY KEY (username, contact));',
  // v2: adopted from the core, same schema.
  `CREATE TABLE IF NOT EXISTS roster (
     username TEXT NOT NULL, contact TEXT NOT NULL, name TEXT, subscription TEXT NOT NULL,
     ask INTEGER NOT NULL DEFAULT 0, groups TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (username, contact));
   CREATE TABLE IF NOT EXISTS roster_version (username TEXT PRIMARY KEY, version INTEGER NOT NULL);
   CREATE TABLE IF NOT EXISTS pending_in (username TEXT NOT NULL, contact TEXT NOT NULL, stanza TEXT NOT NULL, PRIMARY KEY (username, contact));`,
] as const;

interface Tables {
  roster: { username: string; contact: string; name: string | null; subscription: string; ask: number; groups: string };
  roster_version: { username: string; version: number };
  pending_in: { username: string; contact: string; stanza: string };
  roster_approved: { username: string; contact: string };
}

export interface PendingIn { contact: string; stanza: string }

/** What other modules use to read (and the roster and presence modules to change) rosters. */
export interface RosterStore {
  /** The user's roster version (0: never changed) and items, by contact. */
  getRoster(username: string): Promise<{ version: number; items: RosterItem[] }>;
  getItem(username: string, contact: string): Promise<RosterItem | undefined>;
  count(username: string): Promise<number>;
  version(username: string): Promise<number>;
  /** Stores the item and increments the roster version, atomically; resolves with the new
   * version once durable. */
  setItem(username: string, item: RosterItem): Promise<number>;
  /** Removes the item (and its pre-approval) and increments the version; resolves once durable. */
  removeItem(username: string, contact: string): Promise<number>;

  /** Subscription requests waiting for the user's answer, by contact. (Arrival order was SQLite's
   * rowid, which PostgreSQL has not; a stamp column needs the core to stop writing pending_in
   * with positional values first.) */
  pendingIn(username: string): Promise<PendingIn[]>;
  hasPendingIn(username: string, contact: string): Promise<boolean>;
  countPendingIn(username: string): Promise<number>;
  /** Stores (or replaces) the contact's request; durable when it resolves. */
  addPendingIn(username: string, contact: string, stanza: string): Promise<void>;
  removePendingIn(username: string, contact: string): Promise<void>;

  isPreApproved(username: string, contact: string): Promise<boolean>;
  /** Contacts the user pre-approved. */
  preApproved(username: string): Promise<Set<string>>;
  setPreApproved(username: string, contact: string, on: boolean): Promise<void>;

  /** Everything stored for the user (account removal). */
  removeUser(username: string): Promise<void>;
}

function toItem(r: Tables['roster']): RosterItem {
  return {
    contact: r.contact, name: r.name ?? undefined, subscription: r.subscription as Subscription,
    ask: Number(r.ask) === 1, groups: JSON.parse(r.groups) as string[],
  };
}

export async function openRosterStore(backend: Backend): Promise<RosterStore> {
  const db: ModuleDb<Tables> = await backend.open<Tables>('roster', ROSTER_MIGRATIONS);
  const { q } = db;
  const bump = (username: string) => q.insertInto('roster_version').values({ username, version: 1 })
    .onConflict((oc) => oc.column('username').doUpdateSet({ version: (eb) => eb('roster_version.version', '+', 1) }))
    .returning('version');
  const newVersion = (results: { rows: unknown[] }[]): number => Number((results[results.length - 1]!.rows[0] as { version: number }).version);
  const count = async (rows: Promise<{ n: number | string } | undefined>): Promise<number> => Number((await rows)?.n ?? 0);
  const version = async (username: string): Promise<number> => {
    const r = await db.readOne(q.selectFrom('roster_version').select('version').where('username', '=', username));
    return r ? Number(r.version) : 0;
  };

  return {
    async getRoster(username) {
      // Version first: the items read after are at least as new as it (a client never keeps an
      // older roster under a newer version).
      const v = await version(username);
      const rows = await db.read(q.selectFrom('roster').selectAll().where('username', '=', username).orderBy('contact'));
      return { version: v, items: rows.map(toItem) };
    },
    async getItem(username, contact) {
      const r = await db.readOne(q.selectFrom('roster').selectAll().where('username', '=', username).where('contact', '=', contact));
      return r ? toItem(r) : undefined;
    },
    count: (username) => count(db.readOne(q.selectFrom('roster').select((eb) => eb.fn.countAll<number>().as('n')).where('username', '=', username))),
    version,
    async setItem(username, item) {
      const row = { username, contact: item.contact, name: item.name ?? null, subscription: item.subscription, ask: item.ask ? 1 : 0, groups: JSON.stringify(item.groups) };
      const results = await db.write(
        q.insertInto('roster').values(row).onConflict((oc) => oc.columns(['username', 'contact']).doUpdateSet({
          name: (eb) => eb.ref('excluded.name'), subscription: (eb) => eb.ref('excluded.subscription'),
          ask: (eb) => eb.ref('excluded.ask'), groups: (eb) => eb.ref('excluded.groups'),
        })),
        bump(username));
      return newVersion(results);
    },
    async removeItem(username, contact) {
      const results = await db.write(
        q.deleteFrom('roster').where('username', '=', username).where('contact', '=', contact),
        q.deleteFrom('roster_approved').where('username', '=', username).where('contact', '=', contact),
        bump(username));
      return newVersion(results);
    },

    async pendingIn(username) {
      return db.read(q.selectFrom('pending_in').select(['contact', 'stanza']).where('username', '=', username).orderBy('contact'));
    },
    async hasPendingIn(username, contact) {
      return (await db.readOne(q.selectFrom('pending_in').select(sql<number>`1`.as('one')).where('username', '=', username).where('contact', '=', contact))) !== undefined;
    },
    countPendingIn: (username) => count(db.readOne(q.selectFrom('pending_in').select((eb) => eb.fn.countAll<number>().as('n')).where('username', '=', username))),
    async addPendingIn(username, contact, stanza) {
      await db.write(q.insertInto('pending_in').values({ username, contact, stanza })
        .onConflict((oc) => oc.columns(['username', 'contact']).doUpdateSet({ stanza: (eb) => eb.ref('excluded.stanza') })));
    },
    async removePendingIn(username, contact) {
      await db.write(q.deleteFrom('pending_in').where('username', '=', username).where('contact', '=', contact));
    },

    async isPreApproved(username, contact) {
      return (await db.readOne(q.selectFrom('roster_approved').select('contact').where('username', '=', username).where('contact', '=', contact))) !== undefined;
    },
    async preApproved(username) {
      const rows = await db.read(q.selectFrom('roster_approved').select('contact').where('username', '=', username));
      return new Set(rows.map((r) => r.contact));
    },
    async setPreApproved(username, contact, on) {
      await db.write(on
        ? q.insertInto('roster_approved').values({ username, contact }).onConflict((oc) => oc.doNothing())
        : q.deleteFrom('roster_approved').where('username', '=', username).where('contact', '=', contact));
    },

    async removeUser(username) {
      await db.write(
        q.deleteFrom('roster').where('username', '=', username),
        q.deleteFrom('roster_version').where('username', '=', username),
        q.deleteFrom('pending_in').where('username', '=', username),
        q.deleteFrom('roster_approved').where('username', '=', username));
    },
  };
}

const stores = new WeakMap<Host, RosterStore>();

/** Opens the roster store of `host` (the roster module does at start). */
export async function initRosterStore(host: Host): Promise<RosterStore> {
  let s = stores.get(host);
  if (!s) { s = await openRosterStore(host.db); stores.set(host, s); }
  return s;
}

/** The roster store of `host`: rosters, versions, pending-in requests and pre-approvals. The
 * roster module (always loaded, and first) opened it. */
export function rosterStore(host: Host): RosterStore {
  const s = stores.get(host);
  if (!s) throw new Error('the roster store is not open: the roster module starts first');
  return s;
}
