// SQLite storage with group commit. Writes are queued and committed together in one
// transaction per window (commitWindowMs) or when maxBatch writes are waiting: one WAL fsync
// per batch (synchronous=FULL), so an SD card sees few fsyncs at any message rate. Under a steady
// stream of writes the window stretches so that at most maxCommitsPerSecond commits happen: a
// write waits longer (at most 1/rate s), the card is written less often. A write's promise
// settles only after its transaction committed; callers acknowledge nothing before.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ModuleStore } from './types.js';

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

export class SqliteStorage {
  readonly db: Database.Database;
  private queue: (() => void)[] = [];
  /** Writes of each module waiting in the batch: a read of that module commits them first. */
  private pending = new Map<string, number>();
  private batch: Deferred | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastCommitAt = 0;

  constructor(private readonly opts: SqliteOptions) {
    mkdirSync(dirname(opts.path), { recursive: true });
    const db = new Database(opts.path);
    this.db = db;
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous.toUpperCase()}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    migrate(db);
  }

  // ---- group commit ----

  private enqueue(module: string, op: () => void): Promise<void> {
    this.queue.push(op);
    this.pending.set(module, (this.pending.get(module) ?? 0) + 1);
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
    this.pending.clear();
    const t0 = process.hrtime.bigint();
    this.lastCommitAt = performance.now();
    try {
      this.db.transaction(() => { for (const op of ops) op(); })();
    } catch (e) {
      // Nothing of this batch is durable: its writers are told, nothing is acknowledged.
      this.opts.onError?.(e as Error);
      batch.reject(e as Error);
      return;
    }
    this.opts.onCommit?.(ops.length, Number(process.hrtime.bigint() - t0) / 1e9);
    batch.resolve();
  }

  /** Opens (creating and migrating) the tables of module `name`: migrations[i] is its schema version i+1. */
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
    return { db, write: (op) => this.enqueue(name, op), sync: () => { if (this.pending.get(name)) this.flush(); } };
  }

  /** Settles when every write queued so far is durable. */
  barrier(): Promise<void> {
    return this.batch ? this.batch.promise : RESOLVED;
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
