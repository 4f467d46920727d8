// Slot metadata for XEP-0363 uploads, in the module's own tables on the shared group commit.
// All nodes share the database, so a slot made on one node can be PUT and GET on another.
import type { ModuleStore, Storage } from '../../storage/types.js';

/** open: waiting for its PUT; uploading: a PUT is writing it (claimed atomically); done: stored. */
export const enum SlotState { Open = 0, Uploading = 1, Done = 2 }

export interface Slot {
  id: string;
  username: string;
  filename: string;
  size: number;
  contentType: string | undefined;
  createdAt: number;
  state: SlotState;
  uploadedAt: number | undefined;
}

const MIGRATIONS = [
  `CREATE TABLE upload_slots (
     id TEXT PRIMARY KEY, username TEXT NOT NULL, filename TEXT NOT NULL, size INTEGER NOT NULL,
     content_type TEXT, created_at INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, uploaded_at INTEGER);
   CREATE INDEX upload_slots_user ON upload_slots (username);`,
];

interface Row { id: string; username: string; filename: string; size: number; content_type: string | null; created_at: number; state: number; uploaded_at: number | null }
const toSlot = (r: Row): Slot => ({
  id: r.id, username: r.username, filename: r.filename, size: r.size, contentType: r.content_type ?? undefined,
  createdAt: r.created_at, state: r.state as SlotState, uploadedAt: r.uploaded_at ?? undefined,
});

export class UploadStore {
  private readonly store: ModuleStore;
  private readonly s;

  constructor(storage: Storage) {
    this.store = storage.moduleStore('upload', MIGRATIONS);
    const db = this.store.db;
    this.s = {
      insert: db.prepare('INSERT INTO upload_slots (id, username, filename, size, content_type, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      get: db.prepare('SELECT * FROM upload_slots WHERE id = ?'),
      // Open slots still usable and stored files not yet expired count against the quota.
      used: db.prepare(`SELECT coalesce(sum(size), 0) FROM upload_slots WHERE username = ?
        AND ((state = 2 AND (? = 0 OR uploaded_at > ?)) OR (state < 2 AND created_at > ?))`).pluck(),
      claim: db.prepare('UPDATE upload_slots SET state = 1 WHERE id = ? AND state = 0'),
      release: db.prepare('UPDATE upload_slots SET state = 0 WHERE id = ? AND state = 1'),
      done: db.prepare('UPDATE upload_slots SET state = 2, uploaded_at = ? WHERE id = ?'),
      del: db.prepare('DELETE FROM upload_slots WHERE id = ?'),
      ofUser: db.prepare('SELECT id FROM upload_slots WHERE username = ?').pluck(),
      // Expired files, slots never used in time, and files of accounts removed by the admin command.
      stale: db.prepare(`SELECT id FROM upload_slots WHERE (state = 2 AND ? > 0 AND uploaded_at <= ?)
        OR (state < 2 AND created_at <= ?) OR username NOT IN (SELECT username FROM accounts)`).pluck(),
    };
  }

  add(slot: Omit<Slot, 'state' | 'uploadedAt'>): Promise<void> {
    return this.store.write(() => this.s.insert.run(slot.id, slot.username, slot.filename, slot.size, slot.contentType ?? null, slot.createdAt));
  }

  get(id: string): Slot | undefined {
    this.store.sync();
    const r = this.s.get.get(id) as Row | undefined;
    return r ? toSlot(r) : undefined;
  }

  /** Bytes the user has stored or reserved: files uploaded after `filesSince` (0: all), open slots made after `slotsSince`. */
  used(username: string, filesSince: number, slotsSince: number, expires: boolean): number {
    this.store.sync();
    return this.s.used.get(username, expires ? 1 : 0, filesSince, slotsSince) as number;
  }

  /** Takes the slot for one PUT; false when it is taken or used already (by any node). */
  async claim(id: string): Promise<boolean> {
    let ok = false;
    await this.store.write(() => { ok = this.s.claim.run(id).changes === 1; });
    return ok;
  }

  release(id: string): Promise<void> {
    return this.store.write(() => this.s.release.run(id));
  }

  markDone(id: string): Promise<void> {
    const now = Date.now();
    return this.store.write(() => this.s.done.run(now, id));
  }

  delete(id: string): Promise<void> {
    return this.store.write(() => this.s.del.run(id));
  }

  idsOf(username: string): string[] {
    this.store.sync();
    return this.s.ofUser.all(username) as string[];
  }

  /** Ids to delete: files uploaded before `filesBefore` (when files expire), slots made before `slotsBefore`. */
  stale(filesBefore: number, slotsBefore: number, expires: boolean): string[] {
    this.store.sync();
    return this.s.stale.all(expires ? 1 : 0, filesBefore, slotsBefore) as string[];
  }
}
