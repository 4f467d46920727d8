// The offline module's table: messages stored for an account with no available resource, in
// arrival order (ids increase), each with its size in bytes (UTF-8), so the per-user usage is a
// sum on either backend. The core created the table before: adopted with CREATE TABLE IF NOT
// EXISTS, so old SQLite data dirs keep their messages (their sizes are filled in at start).
import type { Generated } from 'kysely';
import type { Backend, ModuleDb } from '../storage/store.js';

export const OFFLINE_MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS offline (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, stanza TEXT NOT NULL, stamp INTEGER NOT NULL);
   CREATE INDEX IF NOT EXISTS offline_user ON offline (username, id);`,
  'ALTER TABLE offline ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;',
] as const;

interface Tables {
  offline: { id: Generated<number>; username: string; stanza: string; stamp: number; bytes: number };
}

export interface OfflineUsage { count: number; bytes: number }

export interface OfflineStore {
  /** How many messages the user has stored, and their size in bytes (UTF-8). */
  usage(username: string): Promise<OfflineUsage>;
  /** Stores a message; durable when it resolves. */
  store(username: string, stanza: string): Promise<void>;
  /** The user's messages with id > afterId, oldest first, at most `limit`; they stay stored until deleteUpTo. */
  list(username: string, afterId?: number, limit?: number): Promise<{ id: number; stanza: string }[]>;
  /** Deletes the user's messages with id <= upToId. */
  deleteUpTo(username: string, upToId: number): Promise<void>;
  removeUser(username: string): Promise<void>;
  /** Fills in the size of rows stored before sizes were (an old data dir); returns how many. */
  fillSizes(): Promise<number>;
}

export async function openOfflineStore(backend: Backend): Promise<OfflineStore> {
  const db: ModuleDb<Tables> = await backend.open<Tables>('offline', OFFLINE_MIGRATIONS);
  const { q } = db;
  return {
    async usage(username) {
      const r = await db.readOne(q.selectFrom('offline')
        .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.sum<number | null>('bytes').as('bytes')])
        .where('username', '=', username));
      return { count: Number(r?.count ?? 0), bytes: Number(r?.bytes ?? 0) };
    },
    async store(username, stanza) {
      await db.write(q.insertInto('offline').values({ username, stanza, stamp: Date.now(), bytes: Buffer.byteLength(stanza) }));
    },
    async list(username, afterId = 0, limit) {
      let query = q.selectFrom('offline').select(['id', 'stanza']).where('username', '=', username).where('id', '>', afterId).orderBy('id');
      if (limit !== undefined && limit >= 0) query = query.limit(limit);
      return (await db.read(query)).map((r) => ({ id: Number(r.id), stanza: r.stanza }));
    },
    async deleteUpTo(username, upToId) {
      await db.write(q.deleteFrom('offline').where('username', '=', username).where('id', '<=', upToId));
    },
    async removeUser(username) {
      await db.write(q.deleteFrom('offline').where('username', '=', username));
    },
    async fillSizes() {
      let after = 0;
      let n = 0;
      for (;;) {
        const rows = await db.read(q.selectFrom('offline').select(['id', 'stanza']).where('bytes', '=', 0).where('id', '>', after).orderBy('id').limit(500));
        if (rows.length === 0) return n;
        await db.write(...rows.map((r) => q.updateTable('offline').set({ bytes: Buffer.byteLength(r.stanza) }).where('id', '=', r.id)));
        after = Number(rows[rows.length - 1]!.id);
        n += rows.length;
      }
    },
  };
}
