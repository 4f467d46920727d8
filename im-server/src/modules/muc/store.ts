// What persistent rooms keep across restarts: config, affiliations, subject and the recent history,
// in the module's own tables on the shared group commit. Occupants are never stored.
import type Database from 'better-sqlite3';
import type { ModuleStore, Storage } from '../../storage/types.js';

const MIGRATIONS = [
  `CREATE TABLE muc_rooms (jid TEXT PRIMARY KEY, config TEXT NOT NULL, subject TEXT, subject_nick TEXT, subject_stamp INTEGER,
     created_at INTEGER NOT NULL);
   CREATE TABLE muc_affiliations (room TEXT NOT NULL, jid TEXT NOT NULL, affiliation TEXT NOT NULL, PRIMARY KEY (room, jid));
   CREATE INDEX muc_affiliations_jid ON muc_affiliations (jid);
   CREATE TABLE muc_history (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, stamp INTEGER NOT NULL, stanza TEXT NOT NULL);
   CREATE INDEX muc_history_room ON muc_history (room, id);`,
];

export interface StoredRoom {
  jid: string;
  config: string;
  subject: { text: string; nick: string; stamp: number } | undefined;
  affiliations: [string, string][];
  history: { stamp: number; stanza: string }[];
}

export interface RoomRecord {
  jid: string;
  config: string;
  subject: { text: string; nick: string; stamp: number } | undefined;
}

export class MucStore {
  private readonly store: ModuleStore;
  private readonly s: Record<string, Database.Statement>;

  constructor(storage: Storage) {
    this.store = storage.moduleStore('muc', MIGRATIONS);
    const db = this.store.db;
    this.s = {
      rooms: db.prepare('SELECT jid, config, subject, subject_nick, subject_stamp FROM muc_rooms ORDER BY jid'),
      affiliations: db.prepare('SELECT jid, affiliation FROM muc_affiliations WHERE room = ?'),
      history: db.prepare('SELECT stamp, stanza FROM (SELECT id, stamp, stanza FROM muc_history WHERE room = ? ORDER BY id DESC LIMIT ?) ORDER BY id'),
      upsertRoom: db.prepare(`INSERT INTO muc_rooms (jid, config, subject, subject_nick, subject_stamp, created_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (jid) DO UPDATE SET config = excluded.config, subject = excluded.subject, subject_nick = excluded.subject_nick,
        subject_stamp = excluded.subject_stamp`),
      deleteRoom: db.prepare('DELETE FROM muc_rooms WHERE jid = ?'),
      deleteAffiliations: db.prepare('DELETE FROM muc_affiliations WHERE room = ?'),
      deleteHistory: db.prepare('DELETE FROM muc_history WHERE room = ?'),
      setAffiliation: db.prepare('INSERT OR REPLACE INTO muc_affiliations VALUES (?, ?, ?)'),
      delAffiliation: db.prepare('DELETE FROM muc_affiliations WHERE room = ? AND jid = ?'),
      addHistory: db.prepare('INSERT INTO muc_history (room, stamp, stanza) VALUES (?, ?, ?)'),
      trimHistory: db.prepare(`DELETE FROM muc_history WHERE room = ? AND id <= (SELECT id FROM muc_history WHERE room = ?
        ORDER BY id DESC LIMIT 1 OFFSET ?)`),
    };
  }

  private write(op: () => void): void {
    this.store.write(op).catch(() => { /* the storage logs failed batches */ });
  }

  loadAll(maxHistory: number): StoredRoom[] {
    this.store.sync();
    return (this.s.rooms!.all() as { jid: string; config: string; subject: string | null; subject_nick: string | null; subject_stamp: number | null }[])
      .map((r) => ({
        jid: r.jid, config: r.config,
        subject: r.subject === null ? undefined : { text: r.subject, nick: r.subject_nick ?? '', stamp: r.subject_stamp ?? 0 },
        affiliations: (this.s.affiliations!.all(r.jid) as { jid: string; affiliation: string }[]).map((a): [string, string] => [a.jid, a.affiliation]),
        history: maxHistory > 0 ? this.s.history!.all(r.jid, maxHistory) as { stamp: number; stanza: string }[] : [],
      }));
  }

  /** Writes config and subject (inserting the room when new). */
  saveRoom(r: RoomRecord): void {
    const row = [r.jid, r.config, r.subject?.text ?? null, r.subject?.nick ?? null, r.subject?.stamp ?? null, Date.now()];
    this.write(() => this.s.upsertRoom!.run(...row));
  }

  /** A room that just became persistent: everything it has so far. */
  saveAll(r: RoomRecord, affiliations: [string, string][], history: { stamp: number; stanza: string }[]): void {
    this.saveRoom(r);
    this.write(() => {
      this.s.deleteAffiliations!.run(r.jid);
      this.s.deleteHistory!.run(r.jid);
      for (const [jid, a] of affiliations) this.s.setAffiliation!.run(r.jid, jid, a);
      for (const h of history) this.s.addHistory!.run(r.jid, h.stamp, h.stanza);
    });
  }

  deleteRoom(jid: string): void {
    this.write(() => { this.s.deleteRoom!.run(jid); this.s.deleteAffiliations!.run(jid); this.s.deleteHistory!.run(jid); });
  }

  setAffiliation(room: string, jid: string, affiliation: string): void {
    this.write(() => {
      if (affiliation === 'none') this.s.delAffiliation!.run(room, jid);
      else this.s.setAffiliation!.run(room, jid, affiliation);
    });
  }

  addHistory(room: string, stamp: number, stanza: string, keep: number): void {
    this.write(() => {
      this.s.addHistory!.run(room, stamp, stanza);
      this.s.trimHistory!.run(room, room, keep);
    });
  }

  clearHistory(room: string): void {
    this.write(() => this.s.deleteHistory!.run(room));
  }
}
