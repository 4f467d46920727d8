// Slot metadata for XEP-0363 uploads, in the module's own table (SQLite or PostgreSQL), written
// through the backend's group commit. All nodes share the database, so a slot made on one node
// can be PUT and GET on another.
import type { Backend, ModuleDb } from '../../storage/store.js';

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

export const UPLOAD_MIGRATIONS = [
  `CREATE TABLE upload_slots (
     id TEXT PRIMARY KEY, username TEXT NOT NULL, filename TEXT NOT NULL, size INTEGER NOT NULL,
     content_type TEXT, created_at INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, uploaded_at INTEGER);
   CREATE INDEX upload_slots_user ON upload_slots (username);`,
];

export interface UploadTables {
  upload_slots: {
    id: string; username: string; filename: string; size: number; content_type: string | null;
    created_at: number; state: number; uploaded_at: number | null;
  };
}
type Row = UploadTables['upload_slots'];
const toSlot = (r: Row): Slot => ({
  id: r.id, username: r.username, filename: r.filename, size: r.size, contentType: r.content_type ?? undefined,
  createdAt: r.created_at, state: r.state as SlotState, uploadedAt: r.uploaded_at ?? undefined,
});

export class UploadStore {
  private constructor(private readonly db: ModuleDb<UploadTables>) {}

  static async open(backend: Backend): Promise<UploadStore> {
    return new UploadStore(await backend.open<UploadTables>('upload', UPLOAD_MIGRATIONS));
  }

  async add(slot: Omit<Slot, 'state' | 'uploadedAt'>): Promise<void> {
    await this.db.write(this.db.q.insertInto('upload_slots').values({
      id: slot.id, username: slot.username, filename: slot.filename, size: slot.size,
      content_type: slot.contentType ?? null, created_at: slot.createdAt, state: SlotState.Open, uploaded_at: null,
    }));
  }

  async get(id: string): Promise<Slot | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('upload_slots').selectAll().where('id', '=', id));
    return r ? toSlot(r) : undefined;
  }

  /** Bytes the user has stored or reserved: files uploaded after `filesSince` (all when files do not
   * expire), open slots made after `slotsSince`. Those count against the quota. */
  async used(username: string, filesSince: number, slotsSince: number, expires: boolean): Promise<number> {
    const r = await this.db.readOne(this.db.q.selectFrom('upload_slots')
      .select((eb) => eb.fn.sum<number | null>('size').as('bytes'))
      .where('username', '=', username)
      .where((eb) => eb.or([
        eb.and([eb('state', '=', SlotState.Done), ...(expires ? [eb('uploaded_at', '>', filesSince)] : [])]),
        eb.and([eb('state', '<', SlotState.Done), eb('created_at', '>', slotsSince)]),
      ])));
    return Number(r?.bytes ?? 0);
  }

  /** Takes the slot for one PUT; false when it is taken or used already (by any node). */
  async claim(id: string): Promise<boolean> {
    const [r] = await this.db.write(this.db.q.updateTable('upload_slots').set({ state: SlotState.Uploading }).where('id', '=', id).where('state', '=', SlotState.Open));
    return r!.affected === 1;
  }

  async release(id: string): Promise<void> {
    await this.db.write(this.db.q.updateTable('upload_slots').set({ state: SlotState.Open }).where('id', '=', id).where('state', '=', SlotState.Uploading));
  }

  /** False when the slot is gone (its account was removed during the PUT). */
  async markDone(id: string): Promise<boolean> {
    const [r] = await this.db.write(this.db.q.updateTable('upload_slots').set({ state: SlotState.Done, uploaded_at: Date.now() }).where('id', '=', id));
    return r!.affected === 1;
  }

  async delete(id: string): Promise<void> {
    await this.db.write(this.db.q.deleteFrom('upload_slots').where('id', '=', id));
  }

  /** Deletes the user's slots (queued at once) and gives their ids, whose files are to go. */
  async deleteUser(username: string): Promise<string[]> {
    const [r] = await this.db.write(this.db.q.deleteFrom('upload_slots').where('username', '=', username).returning('id'));
    return (r!.rows as { id: string }[]).map((x) => x.id);
  }

  /** The users who have slots or files. */
  async users(): Promise<string[]> {
    return (await this.db.read(this.db.q.selectFrom('upload_slots').select('username').distinct())).map((r) => r.username);
  }

  /** Ids to delete: files uploaded before `filesBefore` (when files expire), slots made before `slotsBefore`. */
  async stale(filesBefore: number, slotsBefore: number, expires: boolean): Promise<string[]> {
    const rows = await this.db.read(this.db.q.selectFrom('upload_slots').select('id').where((eb) => eb.or([
      ...(expires ? [eb.and([eb('state', '=', SlotState.Done), eb('uploaded_at', '<=', filesBefore)])] : []),
      eb.and([eb('state', '<', SlotState.Done), eb('created_at', '<=', slotsBefore)]),
    ])));
    return rows.map((r) => r.id);
  }
}
