// The core's own data: accounts and their SCRAM credentials (never a password). Everything else a
// user has belongs to the modules, which delete it on 'account-removing'. The names of existing
// accounts are kept in memory (a Pi site has hundreds, not millions): routing asks "does this
// user exist?" for every message to a bare JID, and must not wait for the database to know. The
// list is read again every few seconds, so accounts made or removed elsewhere (pi-im-admin while
// the node runs, another node on the same database) are known soon; a login or a registration
// that finds the list wrong corrects it at once.
import type { Backend, ModuleDb } from './store.js';
import type { Account, ScramCredentials } from './types.js';

interface AccountRow {
  username: string;
  sha1_salt: Buffer; sha1_iter: number; sha1_stored: Buffer; sha1_server: Buffer;
  sha256_salt: Buffer; sha256_iter: number; sha256_stored: Buffer; sha256_server: Buffer;
  created_at: number;
}
interface Tables { accounts: AccountRow }

/** The table as the first releases made it (SQLite data dirs have it already). */
const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS accounts (
     username TEXT PRIMARY KEY,
     sha1_salt BLOB NOT NULL, sha1_iter INTEGER NOT NULL, sha1_stored BLOB NOT NULL, sha1_server BLOB NOT NULL,
     sha256_salt BLOB NOT NULL, sha256_iter INTEGER NOT NULL, sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL,
     created_at INTEGER NOT NULL)`,
];

function row(a: Account): AccountRow {
  return {
    username: a.username, created_at: Date.now(),
    sha1_salt: a.sha1.salt, sha1_iter: a.sha1.iterations, sha1_stored: a.sha1.storedKey, sha1_server: a.sha1.serverKey,
    sha256_salt: a.sha256.salt, sha256_iter: a.sha256.iterations, sha256_stored: a.sha256.storedKey, sha256_server: a.sha256.serverKey,
  };
}

function account(r: AccountRow): Account {
  const creds = (p: 'sha1' | 'sha256'): ScramCredentials => ({
    salt: Buffer.from(r[`${p}_salt`]), iterations: Number(r[`${p}_iter`]), storedKey: Buffer.from(r[`${p}_stored`]), serverKey: Buffer.from(r[`${p}_server`]),
  });
  return { username: r.username, sha1: creds('sha1'), sha256: creds('sha256') };
}

export class Accounts {
  private constructor(private readonly db: ModuleDb<Tables>, private readonly names: Set<string>) {}

  static async open(backend: Backend): Promise<Accounts> {
    const db = await backend.open<Tables>('accounts', MIGRATIONS);
    const names = await db.read(db.q.selectFrom('accounts').select('username'));
    return new Accounts(db, new Set(names.map((n) => n.username)));
  }

  exists(username: string): boolean {
    return this.names.has(username);
  }

  async get(username: string): Promise<Account | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('accounts').selectAll().where('username', '=', username));
    if (r) this.names.add(username);
    return r ? account(r) : undefined;
  }

  /** false when the name is taken. Durable when it resolves. */
  async create(a: Account): Promise<boolean> {
    const [r] = await this.db.write(this.db.q.insertInto('accounts').values(row(a)).onConflict((oc) => oc.column('username').doNothing()));
    const created = r!.affected === 1;
    if (created) this.names.add(a.username);
    return created;
  }

  async setCredentials(a: Account): Promise<void> {
    const { created_at: _, username, ...creds } = row(a);
    await this.db.write(this.db.q.updateTable('accounts').set(creds).where('username', '=', username));
  }

  /** Removes the account itself (modules remove their data on 'account-removing'). */
  async delete(username: string): Promise<void> {
    this.names.delete(username);
    await this.db.write(this.db.q.deleteFrom('accounts').where('username', '=', username));
  }

  list(): string[] {
    return [...this.names].sort();
  }

  /** The database says whether the account exists (and the list is corrected). */
  async existsNow(username: string): Promise<boolean> {
    const r = await this.db.readOne(this.db.q.selectFrom('accounts').select('username').where('username', '=', username));
    if (r) this.names.add(username); else this.names.delete(username);
    return r !== undefined;
  }

  /** Reads the list of names again every `ms` (until stop()). */
  watch(ms: number): { stop(): void } {
    const timer = setInterval(() => {
      this.db.read(this.db.q.selectFrom('accounts').select('username'))
        .then((rows) => { this.names.clear(); for (const r of rows) this.names.add(r.username); })
        .catch(() => { /* the database is away: /health says so; the list stays as it was */ });
    }, ms);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }
}
