// What persistent rooms keep across restarts: config, affiliations, subject and the recent history,
// in the module's own tables. Occupants are never stored. The rooms are read once, when the module
// starts; after that the rooms in memory are the truth for this node and every change is written
// through, in the group commit.
import type { Generated } from 'kysely';
import type { ModuleDb } from '../../storage/store.js';

export const MIGRATIONS = [
  `CREATE TABLE muc_rooms (jid TEXT PRIMARY KEY, config TEXT NOT NULL, subject TEXT, subject_nick TEXT, subject_stamp INTEGER,
     created_at INTEGER NOT NULL);
   CREATE TABLE muc_affiliations (room TEXT NOT NULL, jid TEXT NOT NULL, affiliation TEXT NOT NULL, PRIMARY KEY (room, jid));
   CREATE INDEX muc_affiliations_jid ON muc_affiliations (jid);
   CREATE TABLE muc_history (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, stamp INTEGER NOT NULL, stanza TEXT NOT NULL);
   CREATE INDEX muc_history_room ON muc_history (room, id);`,
];

export interface Tables {
  muc_rooms: { jid: string; config: string; subject: string | null; subject_nick: string | null; subject_stamp: number | null; created_at: number };
  muc_affiliations: { room: string; jid: string; affiliation: string };
  muc_history: { id: Generated<number>; room: string; stamp: number; stanza: string };
}

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

type Statement = Parameters<ModuleDb<Tables>['write']>[number];

export class MucStore {
  /** `failed` hears of writes that failed (nobody waits for them). */
  constructor(private readonly db: ModuleDb<Tables>, private readonly failed: (what: string, err: unknown) => void = () => {}) {}

  private write(what: string, ...statements: Statement[]): void {
    this.db.write(...statements).catch((err: unknown) => this.failed(what, err));
  }

  /** Every stored room, with its affiliations and its last `maxHistory` messages (oldest first). */
  async loadAll(maxHistory: number): Promise<StoredRoom[]> {
    const q = this.db.q;
    const rooms = await this.db.read(q.selectFrom('muc_rooms').select(['jid', 'config', 'subject', 'subject_nick', 'subject_stamp']).orderBy('jid'));
    const affiliations = await this.db.read(q.selectFrom('muc_affiliations').select(['room', 'jid', 'affiliation']).orderBy('room').orderBy('jid'));
    // The newest maxHistory of each room: numbered per room, newest first.
    const history = maxHistory <= 0 ? [] : await this.db.read(q.selectFrom(
      q.selectFrom('muc_history')
        .select((eb) => ['room', 'id', 'stamp', 'stanza', eb.fn.agg<number>('row_number').over((ob) => ob.partitionBy('room').orderBy('id', 'desc')).as('n')])
        .as('h'))
      .select(['room', 'stamp', 'stanza']).where('n', '<=', maxHistory).orderBy('room').orderBy('id'));
    const out = new Map<string, StoredRoom>();
    for (const r of rooms) {
      out.set(r.jid, {
        jid: r.jid, config: r.config,
        subject: r.subject === null ? undefined : { text: r.subject, nick: r.subject_nick ?? '', stamp: r.subject_stamp ?? 0 },
        affiliations: [], history: [],
      });
    }
    for (const a of affiliations) out.get(a.room)?.affiliations.push([a.jid, a.affiliation]);
    for (const h of history) out.get(h.room)?.history.push({ stamp: h.stamp, stanza: h.stanza });
    return [...out.values()];
  }

  private upsertRoom(r: RoomRecord): Statement {
    return this.db.q.insertInto('muc_rooms')
      .values({ jid: r.jid, config: r.config, subject: r.subject?.text ?? null, subject_nick: r.subject?.nick ?? null, subject_stamp: r.subject?.stamp ?? null, created_at: Date.now() })
      .onConflict((oc) => oc.column('jid').doUpdateSet({
        config: (eb) => eb.ref('excluded.config'), subject: (eb) => eb.ref('excluded.subject'),
        subject_nick: (eb) => eb.ref('excluded.subject_nick'), subject_stamp: (eb) => eb.ref('excluded.subject_stamp'),
      }));
  }

  /** Writes config and subject (inserting the room when new). */
  saveRoom(r: RoomRecord): void {
    this.write(`saving room ${r.jid}`, this.upsertRoom(r));
  }

  /** A room that just became persistent: everything it has so far, in one write. */
  saveAll(r: RoomRecord, affiliations: [string, string][], history: { stamp: number; stanza: string }[]): void {
    const q = this.db.q;
    const statements: Statement[] = [
      this.upsertRoom(r),
      q.deleteFrom('muc_affiliations').where('room', '=', r.jid),
      q.deleteFrom('muc_history').where('room', '=', r.jid),
    ];
    if (affiliations.length > 0) statements.push(q.insertInto('muc_affiliations').values(affiliations.map(([jid, affiliation]) => ({ room: r.jid, jid, affiliation }))));
    for (const h of history) statements.push(q.insertInto('muc_history').values({ room: r.jid, stamp: h.stamp, stanza: h.stanza }));
    this.write(`saving room ${r.jid}`, ...statements);
  }

  deleteRoom(jid: string): void {
    const q = this.db.q;
    this.write(`deleting room ${jid}`, q.deleteFrom('muc_rooms').where('jid', '=', jid),
      q.deleteFrom('muc_affiliations').where('room', '=', jid), q.deleteFrom('muc_history').where('room', '=', jid));
  }

  /** 'none' removes the affiliation. */
  setAffiliation(room: string, jid: string, affiliation: string): void {
    const q = this.db.q;
    this.write(`setting an affiliation in ${room}`, affiliation === 'none'
      ? q.deleteFrom('muc_affiliations').where('room', '=', room).where('jid', '=', jid)
      : q.insertInto('muc_affiliations').values({ room, jid, affiliation })
        .onConflict((oc) => oc.columns(['room', 'jid']).doUpdateSet({ affiliation: (eb) => eb.ref('excluded.affiliation') })));
  }

  /** Appends a message and keeps the room's newest `keep`. */
  addHistory(room: string, stamp: number, stanza: string, keep: number): void {
    const q = this.db.q;
    this.write(`storing history of ${room}`,
      q.insertInto('muc_history').values({ room, stamp, stanza }),
      q.deleteFrom('muc_history').where('room', '=', room)
        .where('id', '<=', q.selectFrom('muc_history').select('id').where('room', '=', room).orderBy('id', 'desc').limit(1).offset(keep)));
  }

  clearHistory(room: string): void {
    this.write(`clearing history of ${room}`, this.db.q.deleteFrom('muc_history').where('room', '=', room));
  }
}
