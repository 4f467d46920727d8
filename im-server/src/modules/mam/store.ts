// The archive tables (module store 'mam'): one table for every archive, user (owner = bare JID)
// or room (owner = room JID). `seq` orders an archive; `id` is the random public UID that
// clients see (stanza-id, RSM). Writes go through the shared group commit.
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { ModuleStore, Storage } from '../../storage/types.js';

const MIGRATIONS = [
  `CREATE TABLE mam_archive (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, id TEXT NOT NULL, stamp INTEGER NOT NULL,
     with_jid TEXT NOT NULL, with_bare TEXT NOT NULL, stanza TEXT NOT NULL);
   CREATE INDEX mam_owner_seq ON mam_archive (owner, seq);
   CREATE INDEX mam_owner_id ON mam_archive (owner, id);
   CREATE INDEX mam_owner_with ON mam_archive (owner, with_bare, seq);
   CREATE INDEX mam_stamp ON mam_archive (stamp);
   CREATE TABLE mam_prefs (owner TEXT PRIMARY KEY, dflt TEXT NOT NULL, always TEXT NOT NULL, never TEXT NOT NULL);`,
];

export interface ArchivedItem { seq: number; id: string; stamp: number; stanza: string }

export type Policy = 'always' | 'roster' | 'never';
export interface Prefs { default: Policy; always: string[]; never: string[] }

/** What selects items of one archive (before RSM paging). */
export interface Filter {
  with?: { jid: string; full: boolean } | undefined;
  start?: number | undefined;
  end?: number | undefined;
  afterSeq?: number | undefined;
  beforeSeq?: number | undefined;
  ids?: string[] | undefined;
}

export interface Page {
  items: ArchivedItem[];
  /** No more items past this page in its direction. */
  complete: boolean;
  count: number;
  /** Position of the first item in the filtered set. */
  firstIndex: number;
}

/** 96 random bits, URL-safe: unguessable and never reused in practice. */
export const newId = (): string => randomBytes(12).toString('base64url');

export class ArchiveStore {
  private readonly store: ModuleStore;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly prefsCache = new Map<string, Prefs | null>();
  private readonly s;

  constructor(storage: Storage) {
    this.store = storage.moduleStore('mam', MIGRATIONS);
    this.db = this.store.db;
    const db = this.db;
    this.s = {
      insert: db.prepare('INSERT INTO mam_archive (owner, id, stamp, with_jid, with_bare, stanza) VALUES (?, ?, ?, ?, ?, ?)'),
      seqOf: db.prepare('SELECT seq FROM mam_archive WHERE owner = ? AND id = ?').pluck(),
      deleteOwner: db.prepare('DELETE FROM mam_archive WHERE owner = ?'),
      deletePrefs: db.prepare('DELETE FROM mam_prefs WHERE owner = ?'),
      expire: db.prepare('DELETE FROM mam_archive WHERE stamp < ?'),
      prefs: db.prepare('SELECT dflt, always, never FROM mam_prefs WHERE owner = ?'),
      setPrefs: db.prepare('INSERT OR REPLACE INTO mam_prefs VALUES (?, ?, ?, ?)'),
      ends: db.prepare(`SELECT id, stamp FROM mam_archive WHERE seq = (SELECT min(seq) FROM mam_archive WHERE owner = ?)
        UNION ALL SELECT id, stamp FROM mam_archive WHERE seq = (SELECT max(seq) FROM mam_archive WHERE owner = ?)`),
    };
  }

  /** Queues the item; returns its UID at once (the write is durable with the next commit). */
  append(owner: string, withJid: string, withBare: string, stanza: string, stamp = Date.now()): string {
    const id = newId();
    void this.store.write(() => { this.s.insert.run(owner, id, stamp, withJid, withBare, stanza); }).catch(() => {});
    return id;
  }

  /** The ordering key of a UID in this archive, undefined when it is not there. */
  seqOf(owner: string, id: string): number | undefined {
    this.store.sync();
    return this.s.seqOf.get(owner, id) as number | undefined;
  }

  /** Oldest and newest item of an archive (XEP-0313 metadata). */
  ends(owner: string): { start: { id: string; stamp: number }; end: { id: string; stamp: number } } | undefined {
    this.store.sync();
    const rows = this.s.ends.all(owner, owner) as { id: string; stamp: number }[];
    return rows.length === 2 ? { start: rows[0]!, end: rows[1]! } : undefined;
  }

  /** One page: forward from the start (or from `offset`), or backward from the end. */
  page(owner: string, f: Filter, max: number, backward: boolean, offset = 0): Page {
    this.store.sync();
    const where = ['owner = ?'];
    const args: (string | number)[] = [owner];
    if (f.with) { where.push(f.with.full ? 'with_jid = ?' : 'with_bare = ?'); args.push(f.with.jid); }
    if (f.start !== undefined) { where.push('stamp >= ?'); args.push(f.start); }
    if (f.end !== undefined) { where.push('stamp <= ?'); args.push(f.end); }
    if (f.ids) { where.push(`id IN (${f.ids.map(() => '?').join(',')})`); args.push(...f.ids); }
    const base = where.join(' AND ');
    const count = this.stmt(`SELECT count(*) FROM mam_archive WHERE ${base}`).pluck().get(...args) as number;
    const cursor = [...where];
    const cargs = [...args];
    if (f.afterSeq !== undefined) { cursor.push('seq > ?'); cargs.push(f.afterSeq); }
    if (f.beforeSeq !== undefined) { cursor.push('seq < ?'); cargs.push(f.beforeSeq); }
    const sql = `SELECT seq, id, stamp, stanza FROM mam_archive WHERE ${cursor.join(' AND ')} ORDER BY seq ${backward ? 'DESC' : 'ASC'} LIMIT ? OFFSET ?`;
    const rows = this.stmt(sql).all(...cargs, max + 1, backward ? 0 : offset) as ArchivedItem[];
    const complete = rows.length <= max;
    const items = rows.slice(0, max);
    if (backward) items.reverse();
    const firstIndex = items.length === 0 ? 0
      : this.stmt(`SELECT count(*) FROM mam_archive WHERE ${base} AND seq < ?`).pluck().get(...args, items[0]!.seq) as number;
    return { items, complete, count, firstIndex };
  }

  deleteOwner(owner: string): Promise<void> {
    this.prefsCache.delete(owner);
    return this.store.write(() => { this.s.deleteOwner.run(owner); this.s.deletePrefs.run(owner); });
  }

  /** Deletes items archived before `cutoff` (ms since the epoch). */
  expire(cutoff: number): Promise<void> {
    return this.store.write(() => { this.s.expire.run(cutoff); });
  }

  getPrefs(owner: string): Prefs | undefined {
    let p = this.prefsCache.get(owner);
    if (p === undefined) {
      this.store.sync();
      const r = this.s.prefs.get(owner) as { dflt: Policy; always: string; never: string } | undefined;
      p = r ? { default: r.dflt, always: JSON.parse(r.always) as string[], never: JSON.parse(r.never) as string[] } : null;
      this.prefsCache.set(owner, p);
    }
    return p ?? undefined;
  }

  setPrefs(owner: string, p: Prefs): Promise<void> {
    this.prefsCache.set(owner, p);
    return this.store.write(() => { this.s.setPrefs.run(owner, p.default, JSON.stringify(p.always), JSON.stringify(p.never)); });
  }

  /** Dynamic queries (filters vary) are prepared once per shape. */
  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) { s = this.db.prepare(sql); this.stmts.set(sql, s); }
    return s;
  }
}
