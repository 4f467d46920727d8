// SQLite storage with group commit. Writes are queued and committed together in one
// transaction per window (commitWindowMs) or when maxBatch writes are waiting: one WAL fsync
// per batch (synchronous=FULL), so an SD card sees few fsyncs at any message rate. Under a steady
// stream of writes the window stretches so that at most maxCommitsPerSecond commits happen: a
// write waits longer (at most 1/rate s), the card is written less often. A write's promise
// settles only after its transaction committed; callers acknowledge nothing before.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Account, Invite, InviteStatus, ModuleStore, RosterItem, ScramCredentials, Storage, Subscription } from './types.js';

export interface SqliteOptions {
  path: string;
  commitWindowMs: number;
  maxBatch: number;
  /** 0: no cap (every window commits). */
  maxCommitsPerSecond?: number;
  synchronous: 'full' | 'normal';
  onCommit?: (writes: number, seconds: number) => void;
  onError?: (err: Error) => void;
}

/** Versioned migrations: index + 1 is the schema version (PRAGMA user_version). */
const MIGRATIONS: string[] = [
  `CREATE TABLE accounts (
     username TEXT PRIMARY KEY,
     sha1_salt BLOB NOT NULL, sha1_iter INTEGER NOT NULL, sha1_stored BLOB NOT NULL, sha1_server BLOB NOT NULL,
     sha256_salt BLOB NOT NULL, sha256_iter INTEGER NOT NULL, sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL,
     created_at INTEGER NOT NULL);
   CREATE TABLE roster (
     username TEXT NOT NULL, contact TEXT NOT NULL, name TEXT, subscription TEXT NOT NULL,
     ask INTEGER NOT NULL DEFAULT 0, groups TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (username, contact));
   CREATE TABLE roster_version (username TEXT PRIMARY KEY, version INTEGER NOT NULL);
   CREATE TABLE pending_in (username TEXT NOT NULL, contact TEXT NOT NULL, stanza TEXT NOT NULL, PRIMARY KEY (username, contact));
   CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, stanza TEXT NOT NULL, stamp INTEGER NOT NULL);
   CREATE INDEX offline_user ON offline (username, id);
   CREATE TABLE vcard (username TEXT PRIMARY KEY, xml TEXT NOT NULL);
   CREATE TABLE invites (token TEXT PRIMARY KEY, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_by TEXT, used_at INTEGER);`,
  `CREATE TABLE module_schema (module TEXT PRIMARY KEY, version INTEGER NOT NULL);`,
  // Multi-use invites: max_uses NULL is unlimited (earlier invites were single-use), revocation.
  `ALTER TABLE invites ADD COLUMN max_uses INTEGER DEFAULT 1;
   ALTER TABLE invites ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE invites ADD COLUMN revoked_at INTEGER;
   UPDATE invites SET uses = 1 WHERE used_by IS NOT NULL;
   CREATE TABLE invite_uses (token TEXT NOT NULL, username TEXT NOT NULL, used_at INTEGER NOT NULL, PRIMARY KEY (token, username));
   INSERT INTO invite_uses SELECT token, used_by, coalesce(used_at, created_at) FROM invites WHERE used_by IS NOT NULL;`,
];

type Kind = 'roster' | 'pending' | 'offline' | 'vcard' | 'module';
interface Deferred { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void }
function deferred(): Deferred {
  let resolve!: () => void, reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {}); // a failed batch is reported to whoever awaits it, never crashes the process
  return { promise, resolve, reject };
}
const RESOLVED = Promise.resolve();

export function migrate(db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) throw new Error(`database schema version ${current} is newer than this server (${MIGRATIONS.length}); upgrade the server`);
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => { db.exec(MIGRATIONS[v]!); db.pragma(`user_version = ${v + 1}`); })();
  }
  return MIGRATIONS.length;
}

export class SqliteStorage implements Storage {
  readonly db: Database.Database;
  private queue: (() => void)[] = [];
  private pending: Record<Kind, number> = { roster: 0, pending: 0, offline: 0, vcard: 0, module: 0 };
  private batch: Deferred | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastCommitAt = 0;
  private readonly rosterVersions = new Map<string, number>();
  /** Per user: count and UTF-8 bytes of stored offline messages (cleared on a failed commit, recounted on demand). */
  private readonly offlineUsages = new Map<string, { count: number; bytes: number }>();
  private readonly s;

  constructor(private readonly opts: SqliteOptions) {
    mkdirSync(dirname(opts.path), { recursive: true });
    const db = new Database(opts.path);
    this.db = db;
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous.toUpperCase()}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    migrate(db);
    this.s = {
      getAccount: db.prepare('SELECT * FROM accounts WHERE username = ?'),
      insertAccount: db.prepare(`INSERT OR IGNORE INTO accounts VALUES (@username, @sha1_salt, @sha1_iter, @sha1_stored, @sha1_server,
        @sha256_salt, @sha256_iter, @sha256_stored, @sha256_server, @created_at)`),
      updateAccount: db.prepare(`UPDATE accounts SET sha1_salt=@sha1_salt, sha1_iter=@sha1_iter, sha1_stored=@sha1_stored, sha1_server=@sha1_server,
        sha256_salt=@sha256_salt, sha256_iter=@sha256_iter, sha256_stored=@sha256_stored, sha256_server=@sha256_server WHERE username=@username`),
      listAccounts: db.prepare('SELECT username FROM accounts ORDER BY username').pluck(),
      roster: db.prepare('SELECT contact, name, subscription, ask, groups FROM roster WHERE username = ? ORDER BY contact'),
      rosterItem: db.prepare('SELECT contact, name, subscription, ask, groups FROM roster WHERE username = ? AND contact = ?'),
      countRoster: db.prepare('SELECT count(*) FROM roster WHERE username = ?').pluck(),
      setItem: db.prepare('INSERT OR REPLACE INTO roster VALUES (?, ?, ?, ?, ?, ?)'),
      delItem: db.prepare('DELETE FROM roster WHERE username = ? AND contact = ?'),
      version: db.prepare('SELECT version FROM roster_version WHERE username = ?').pluck(),
      setVersion: db.prepare('INSERT OR REPLACE INTO roster_version VALUES (?, ?)'),
      pendingIn: db.prepare('SELECT contact, stanza FROM pending_in WHERE username = ? ORDER BY rowid'),
      hasPendingIn: db.prepare('SELECT 1 FROM pending_in WHERE username = ? AND contact = ?').pluck(),
      countPendingIn: db.prepare('SELECT count(*) FROM pending_in WHERE username = ?').pluck(),
      addPendingIn: db.prepare('INSERT OR REPLACE INTO pending_in VALUES (?, ?, ?)'),
      delPendingIn: db.prepare('DELETE FROM pending_in WHERE username = ? AND contact = ?'),
      offlineUsage: db.prepare('SELECT count(*) AS count, coalesce(sum(length(CAST(stanza AS BLOB))), 0) AS bytes FROM offline WHERE username = ?'),
      storeOffline: db.prepare('INSERT INTO offline (username, stanza, stamp) VALUES (?, ?, ?)'),
      offline: db.prepare('SELECT id, stanza FROM offline WHERE username = ? AND id > ? ORDER BY id LIMIT ?'),
      delOffline: db.prepare('DELETE FROM offline WHERE username = ? AND id <= ?'),
      vcard: db.prepare('SELECT xml FROM vcard WHERE username = ?').pluck(),
      setVcard: db.prepare('INSERT OR REPLACE INTO vcard VALUES (?, ?)'),
      addInvite: db.prepare('INSERT INTO invites (token, created_at, expires_at, max_uses) VALUES (?, ?, ?, ?)'),
      invite: db.prepare('SELECT * FROM invites WHERE token = ?'),
      // One statement, so concurrent registrations (on any node) never exceed max_uses.
      useInvite: db.prepare(`UPDATE invites SET uses = uses + 1, used_by = coalesce(used_by, ?), used_at = ?
        WHERE token = ? AND revoked_at IS NULL AND expires_at > ? AND (max_uses IS NULL OR uses < max_uses)`),
      addInviteUse: db.prepare('INSERT OR REPLACE INTO invite_uses VALUES (?, ?, ?)'),
      unuseInvite: db.prepare('UPDATE invites SET uses = uses - 1 WHERE token = ? AND uses > 0'),
      delInviteUse: db.prepare('DELETE FROM invite_uses WHERE token = ? AND username = ?'),
      revokeInvite: db.prepare('UPDATE invites SET revoked_at = ? WHERE token = ? AND revoked_at IS NULL'),
      invites: db.prepare('SELECT * FROM invites ORDER BY created_at'),
      inviteUsers: db.prepare('SELECT username FROM invite_uses WHERE token = ? ORDER BY used_at, username').pluck(),
    };
  }

  // ---- group commit ----

  private enqueue(kind: Kind, op: () => void): Promise<void> {
    this.queue.push(op);
    this.pending[kind]++;
    if (!this.batch) {
      this.batch = deferred();
      const rate = this.opts.maxCommitsPerSecond ?? 0;
      const spaced = rate > 0 ? this.lastCommitAt + 1000 / rate - performance.now() : 0;
      this.timer = setTimeout(() => this.flush(), Math.max(this.opts.commitWindowMs, spaced));
    }
    const p = this.batch.promise;
    if (this.queue.length >= this.opts.maxBatch) this.flush();
    return p;
  }

  flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    const batch = this.batch;
    if (!batch) return;
    const ops = this.queue;
    this.queue = [];
    this.batch = undefined;
    this.pending = { roster: 0, pending: 0, offline: 0, vcard: 0, module: 0 };
    const t0 = process.hrtime.bigint();
    this.lastCommitAt = performance.now();
    try {
      this.db.transaction(() => { for (const op of ops) op(); })();
    } catch (e) {
      // Nothing of this batch is durable: its writers are told, nothing is acknowledged.
      this.rosterVersions.clear();
      this.offlineUsages.clear();
      this.opts.onError?.(e as Error);
      batch.reject(e as Error);
      return;
    }
    this.opts.onCommit?.(ops.length, Number(process.hrtime.bigint() - t0) / 1e9);
    batch.resolve();
  }

  /** Reads of a kind first commit queued writes of that kind, so they see them. */
  private sync(kind: Kind): void {
    if (this.pending[kind] > 0) this.flush();
  }

  moduleStore(name: string, migrations: string[]): ModuleStore {
    const db = this.db;
    const current = (db.prepare('SELECT version FROM module_schema WHERE module = ?').pluck().get(name) as number | undefined) ?? 0;
    if (current > migrations.length) throw new Error(`module ${name}: schema version ${current} is newer than this server (${migrations.length}); upgrade the server`);
    for (let v = current; v < migrations.length; v++) {
      db.transaction(() => {
        db.exec(migrations[v]!);
        db.prepare('INSERT OR REPLACE INTO module_schema VALUES (?, ?)').run(name, v + 1);
      })();
    }
    return { db, write: (op) => this.enqueue('module', op), sync: () => this.sync('module') };
  }

  barrier(): Promise<void> {
    return this.batch ? this.batch.promise : RESOLVED;
  }

  close(): void {
    this.flush();
    this.db.close();
  }

  // ---- accounts: rare, committed at once ----

  getAccount(username: string): Account | undefined {
    const r = this.s.getAccount.get(username) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    const creds = (p: string): ScramCredentials => ({
      salt: r[`${p}_salt`] as Buffer, iterations: r[`${p}_iter`] as number,
      storedKey: r[`${p}_stored`] as Buffer, serverKey: r[`${p}_server`] as Buffer,
    });
    return { username, sha1: creds('sha1'), sha256: creds('sha256') };
  }

  private accountRow(a: Account): Record<string, unknown> {
    return {
      username: a.username, created_at: Date.now(),
      sha1_salt: a.sha1.salt, sha1_iter: a.sha1.iterations, sha1_stored: a.sha1.storedKey, sha1_server: a.sha1.serverKey,
      sha256_salt: a.sha256.salt, sha256_iter: a.sha256.iterations, sha256_stored: a.sha256.storedKey, sha256_server: a.sha256.serverKey,
    };
  }

  async createAccount(account: Account): Promise<boolean> {
    this.flush();
    return this.s.insertAccount.run(this.accountRow(account)).changes === 1;
  }

  async setCredentials(account: Account): Promise<void> {
    this.flush();
    this.s.updateAccount.run(this.accountRow(account));
  }

  async deleteAccount(username: string): Promise<void> {
    this.flush();
    this.db.transaction(() => {
      for (const t of ['accounts', 'roster', 'roster_version', 'pending_in', 'offline', 'vcard']) {
        this.db.prepare(`DELETE FROM ${t} WHERE username = ?`).run(username);
      }
    })();
    this.rosterVersions.delete(username);
    this.offlineUsages.delete(username);
  }

  listAccounts(): string[] {
    return this.s.listAccounts.all() as string[];
  }

  // ---- roster ----

  private static item(r: Record<string, unknown>): RosterItem {
    return {
      contact: r.contact as string, name: (r.name as string | null) ?? undefined,
      subscription: r.subscription as Subscription, ask: r.ask === 1, groups: JSON.parse(r.groups as string) as string[],
    };
  }

  private nextVersion(username: string): number {
    let v = this.rosterVersions.get(username);
    if (v === undefined) { this.sync('roster'); v = (this.s.version.get(username) as number | undefined) ?? 0; }
    v++;
    this.rosterVersions.set(username, v);
    return v;
  }

  getRoster(username: string): { version: number; items: RosterItem[] } {
    this.sync('roster');
    const version = this.rosterVersions.get(username) ?? (this.s.version.get(username) as number | undefined) ?? 0;
    return { version, items: (this.s.roster.all(username) as Record<string, unknown>[]).map(SqliteStorage.item) };
  }

  getRosterItem(username: string, contact: string): RosterItem | undefined {
    this.sync('roster');
    const r = this.s.rosterItem.get(username, contact) as Record<string, unknown> | undefined;
    return r ? SqliteStorage.item(r) : undefined;
  }

  setRosterItem(username: string, item: RosterItem): { version: number; durable: Promise<void> } {
    const version = this.nextVersion(username);
    const row = [username, item.contact, item.name ?? null, item.subscription, item.ask ? 1 : 0, JSON.stringify(item.groups)];
    const durable = this.enqueue('roster', () => { this.s.setItem.run(...row); this.s.setVersion.run(username, version); });
    return { version, durable };
  }

  removeRosterItem(username: string, contact: string): { version: number; durable: Promise<void> } {
    const version = this.nextVersion(username);
    const durable = this.enqueue('roster', () => { this.s.delItem.run(username, contact); this.s.setVersion.run(username, version); });
    return { version, durable };
  }

  countRoster(username: string): number {
    this.sync('roster');
    return this.s.countRoster.get(username) as number;
  }

  // ---- pending-in subscription requests ----

  getPendingIn(username: string): { contact: string; stanza: string }[] {
    this.sync('pending');
    return this.s.pendingIn.all(username) as { contact: string; stanza: string }[];
  }

  hasPendingIn(username: string, contact: string): boolean {
    this.sync('pending');
    return this.s.hasPendingIn.get(username, contact) === 1;
  }

  countPendingIn(username: string): number {
    this.sync('pending');
    return this.s.countPendingIn.get(username) as number;
  }

  addPendingIn(username: string, contact: string, stanza: string): Promise<void> {
    return this.enqueue('pending', () => this.s.addPendingIn.run(username, contact, stanza));
  }

  removePendingIn(username: string, contact: string): Promise<void> {
    return this.enqueue('pending', () => this.s.delPendingIn.run(username, contact));
  }

  // ---- offline messages ----

  countOffline(username: string): number {
    return this.offlineUsage(username).count;
  }

  offlineUsage(username: string): { count: number; bytes: number } {
    let u = this.offlineUsages.get(username);
    if (u === undefined) {
      this.sync('offline');
      const r = this.s.offlineUsage.get(username) as { count: number; bytes: number };
      u = { count: r.count, bytes: r.bytes };
      this.offlineUsages.set(username, u);
    }
    return { ...u };
  }

  storeOffline(username: string, stanza: string): Promise<void> {
    const u = this.offlineUsage(username);
    this.offlineUsages.set(username, { count: u.count + 1, bytes: u.bytes + Buffer.byteLength(stanza) });
    const stamp = Date.now();
    return this.enqueue('offline', () => this.s.storeOffline.run(username, stanza, stamp));
  }

  getOffline(username: string, afterId = 0, limit = -1): { id: number; stanza: string }[] {
    this.sync('offline');
    return this.s.offline.all(username, afterId, limit) as { id: number; stanza: string }[];
  }

  deleteOffline(username: string, upToId: number): Promise<void> {
    this.offlineUsages.delete(username); // recounted (after this delete commits) when next asked
    return this.enqueue('offline', () => this.s.delOffline.run(username, upToId));
  }

  // ---- vcard ----

  getVcard(username: string): string | undefined {
    this.sync('vcard');
    return this.s.vcard.get(username) as string | undefined;
  }

  setVcard(username: string, xml: string): Promise<void> {
    return this.enqueue('vcard', () => this.s.setVcard.run(username, xml));
  }

  // ---- invites: rare, committed at once ----

  async createInvite(token: string, ttlSeconds: number, maxUses: number | null = 1): Promise<Invite> {
    const now = Date.now();
    this.s.addInvite.run(token, now, now + ttlSeconds * 1000, maxUses);
    return this.getInvite(token)!;
  }

  private toInvite(r: InviteRow): Invite {
    return {
      token: r.token, createdAt: r.created_at, expiresAt: r.expires_at, usedBy: r.used_by ?? undefined,
      maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at ?? undefined,
      users: this.s.inviteUsers.all(r.token) as string[],
    };
  }

  getInvite(token: string): Invite | undefined {
    const r = this.s.invite.get(token) as InviteRow | undefined;
    return r ? this.toInvite(r) : undefined;
  }

  inviteStatus(token: string): InviteStatus {
    const r = this.s.invite.get(token) as InviteRow | undefined;
    if (!r) return 'unknown';
    if (r.revoked_at !== null) return 'revoked';
    if (r.expires_at <= Date.now()) return 'expired';
    if (r.max_uses !== null && r.uses >= r.max_uses) return 'used-up';
    return 'valid';
  }

  checkInvite(token: string): boolean {
    return this.inviteStatus(token) === 'valid';
  }

  consumeInvite(token: string, username: string): boolean {
    const now = Date.now();
    return this.db.transaction(() => {
      if (this.s.useInvite.run(username, now, token, now).changes !== 1) return false;
      this.s.addInviteUse.run(token, username, now);
      return true;
    })();
  }

  releaseInvite(token: string, username: string): void {
    this.db.transaction(() => {
      if (this.s.delInviteUse.run(token, username).changes === 1) this.s.unuseInvite.run(token);
    })();
  }

  revokeInvite(token: string): boolean {
    return this.s.revokeInvite.run(Date.now(), token).changes === 1;
  }

  listInvites(): Invite[] {
    return (this.s.invites.all() as InviteRow[]).map((r) => this.toInvite(r));
  }
}

interface InviteRow {
  token: string; created_at: number; expires_at: number; used_by: string | null;
  max_uses: number | null; uses: number; revoked_at: number | null;
}
