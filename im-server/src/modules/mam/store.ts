// The archive tables (module 'mam'): one table for every archive, user (owner = bare JID) or room
// (owner = room JID). `seq` orders an archive; `id` is the random public UID that clients see
// (stanza-id, RSM). The UID is made here, in memory, so a message is stamped at once; its row
// goes into the next group commit (a read sees it as soon as it is queued). Preferences are few
// (one row per user who set them) and are read on every archived message: they are all loaded
// when the module starts and kept in memory, written through.
import { randomBytes } from 'node:crypto';
import type { Generated } from 'kysely';
import type { ModuleDb } from '../../storage/store.js';

export const MIGRATIONS = [
  `CREATE TABLE mam_archive (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, id TEXT NOT NULL, stamp INTEGER NOT NULL,
     with_jid TEXT NOT NULL, with_bare TEXT NOT NULL, stanza TEXT NOT NULL);
   CREATE INDEX mam_owner_seq ON mam_archive (owner, seq);
   CREATE INDEX mam_owner_id ON mam_archive (owner, id);
   CREATE INDEX mam_owner_with ON mam_archive (owner, with_bare, seq);
   CREATE INDEX mam_stamp ON mam_archive (stamp);
   CREATE TABLE mam_prefs (owner TEXT PRIMARY KEY, dflt TEXT NOT NULL, always TEXT NOT NULL, never TEXT NOT NULL);`,
];

export interface Tables {
  mam_archive: { seq: Generated<number>; owner: string; id: string; stamp: number; with_jid: string; with_bare: string; stanza: string };
  mam_prefs: { owner: string; dflt: string; always: string; never: string };
}

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
  private readonly prefs = new Map<string, Prefs>();

  private constructor(private readonly db: ModuleDb<Tables>, private readonly failed: (what: string, err: unknown) => void) {}

  /** Opens (and migrates) the tables and loads the preferences. `failed` hears of writes nobody waits for that failed. */
  static async open(db: ModuleDb<Tables>, failed: (what: string, err: unknown) => void = () => {}): Promise<ArchiveStore> {
    const s = new ArchiveStore(db, failed);
    for (const r of await db.read(db.q.selectFrom('mam_prefs').selectAll())) {
      s.prefs.set(r.owner, { default: r.dflt as Policy, always: JSON.parse(r.always) as string[], never: JSON.parse(r.never) as string[] });
    }
    return s;
  }

  /** Queues the item; returns its UID at once (the row is durable with the next commit). */
  append(owner: string, withJid: string, withBare: string, stanza: string, stamp = Date.now()): string {
    const id = newId();
    this.db.write(this.db.q.insertInto('mam_archive').values({ owner, id, stamp, with_jid: withJid, with_bare: withBare, stanza }))
      .catch((err: unknown) => this.failed('archiving a message', err));
    return id;
  }

  /** The ordering key of a UID in this archive, undefined when it is not there. */
  async seqOf(owner: string, id: string): Promise<number | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('mam_archive').select('seq').where('owner', '=', owner).where('id', '=', id));
    return r?.seq;
  }

  /** The ordering keys of those of `ids` this archive holds. */
  async seqsOf(owner: string, ids: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.db.read(this.db.q.selectFrom('mam_archive').select(['id', 'seq']).where('owner', '=', owner).where('id', 'in', unique.slice(i, i + 500)));
      for (const r of rows) out.set(r.id, r.seq);
    }
    return out;
  }

  /** Oldest and newest item of an archive (XEP-0313 metadata). */
  async ends(owner: string): Promise<{ start: { id: string; stamp: number }; end: { id: string; stamp: number } } | undefined> {
    const one = (dir: 'asc' | 'desc'): Promise<{ id: string; stamp: number } | undefined> =>
      this.db.readOne(this.db.q.selectFrom('mam_archive').select(['id', 'stamp']).where('owner', '=', owner).orderBy('seq', dir).limit(1));
    const [start, end] = await Promise.all([one('asc'), one('desc')]);
    return start && end ? { start, end } : undefined;
  }

  /** One page: forward from the start (or from `offset`), or backward from the end. */
  async page(owner: string, f: Filter, max: number, backward: boolean, offset = 0): Promise<Page> {
    const q = this.db.q;
    let base = q.selectFrom('mam_archive').where('owner', '=', owner);
    if (f.with) base = base.where(f.with.full ? 'with_jid' : 'with_bare', '=', f.with.jid);
    if (f.start !== undefined) base = base.where('stamp', '>=', f.start);
    if (f.end !== undefined) base = base.where('stamp', '<=', f.end);
    if (f.ids?.length === 0) return { items: [], complete: true, count: 0, firstIndex: 0 };
    if (f.ids) base = base.where('id', 'in', f.ids);
    const countOf = async (b: typeof base): Promise<number> =>
      Number((await this.db.readOne(b.select((eb) => eb.fn.countAll<number>().as('n'))))?.n ?? 0);
    let cursor = base;
    if (f.afterSeq !== undefined) cursor = cursor.where('seq', '>', f.afterSeq);
    if (f.beforeSeq !== undefined) cursor = cursor.where('seq', '<', f.beforeSeq);
    const [count, rows] = await Promise.all([
      countOf(base),
      this.db.read(cursor.select(['seq', 'id', 'stamp', 'stanza']).orderBy('seq', backward ? 'desc' : 'asc').limit(max + 1).offset(backward ? 0 : offset)),
    ]);
    const complete = rows.length <= max;
    const items = rows.slice(0, max) as ArchivedItem[];
    if (backward) items.reverse();
    const firstIndex = items.length === 0 ? 0 : await countOf(base.where('seq', '<', items[0]!.seq));
    return { items, complete, count, firstIndex };
  }

  /** Everything of one archive: its items and its preferences (an account or a room removed). */
  deleteOwner(owner: string): Promise<void> {
    this.prefs.delete(owner);
    const q = this.db.q;
    return this.db.write(q.deleteFrom('mam_archive').where('owner', '=', owner), q.deleteFrom('mam_prefs').where('owner', '=', owner)).then(() => {});
  }

  /** Deletes items archived before `cutoff` (ms since the epoch); resolves with how many. */
  async expire(cutoff: number): Promise<number> {
    const [r] = await this.db.write(this.db.q.deleteFrom('mam_archive').where('stamp', '<', cutoff));
    return r?.affected ?? 0;
  }

  getPrefs(owner: string): Prefs | undefined {
    return this.prefs.get(owner);
  }

  /** Used at once by shouldArchive; settles when durable (and is undone in memory if the write fails). */
  async setPrefs(owner: string, p: Prefs): Promise<void> {
    const before = this.prefs.get(owner);
    this.prefs.set(owner, p);
    const row = { owner, dflt: p.default, always: JSON.stringify(p.always), never: JSON.stringify(p.never) };
    try {
      await this.db.write(this.db.q.insertInto('mam_prefs').values(row)
        .onConflict((oc) => oc.column('owner').doUpdateSet({ dflt: (eb) => eb.ref('excluded.dflt'), always: (eb) => eb.ref('excluded.always'), never: (eb) => eb.ref('excluded.never') })));
    } catch (err) {
      if (this.prefs.get(owner) === p) {
        if (before) this.prefs.set(owner, before);
        else this.prefs.delete(owner);
      }
      throw err;
    }
  }
}
