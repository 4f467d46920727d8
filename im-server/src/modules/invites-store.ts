// Invites (XEP-0401 tokens, `pi-im-admin invite`): owned by the register module. The tables are the
// ones the core made before (adopted as they are); the admin tool opens the same store.
import { sql } from 'kysely';
import type { Backend, ModuleDb } from '../storage/store.js';
import type { Invite, InviteStatus } from '../storage/types.js';

interface InviteRow { token: string; created_at: number; expires_at: number; used_by: string | null; used_at: number | null; max_uses: number | null; uses: number; revoked_at: number | null }
interface Tables {
  invites: InviteRow;
  invite_uses: { token: string; username: string; used_at: number };
}

const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS invites (token TEXT PRIMARY KEY, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_by TEXT, used_at INTEGER,
     max_uses INTEGER DEFAULT 1, uses INTEGER NOT NULL DEFAULT 0, revoked_at INTEGER);
   CREATE TABLE IF NOT EXISTS invite_uses (token TEXT NOT NULL, username TEXT NOT NULL, used_at INTEGER NOT NULL, PRIMARY KEY (token, username));`,
];

function status(r: InviteRow | undefined, now = Date.now()): InviteStatus {
  if (!r) return 'unknown';
  if (r.revoked_at !== null) return 'revoked';
  if (r.expires_at <= now) return 'expired';
  if (r.max_uses !== null && r.uses >= r.max_uses) return 'used-up';
  return 'valid';
}

export class InviteStore {
  private constructor(private readonly db: ModuleDb<Tables>) {}

  static async open(backend: Backend): Promise<InviteStore> {
    return new InviteStore(await backend.open<Tables>('invites', MIGRATIONS));
  }

  private row(token: string): Promise<InviteRow | undefined> {
    return this.db.readOne(this.db.q.selectFrom('invites').selectAll().where('token', '=', token));
  }

  private async toInvite(r: InviteRow): Promise<Invite> {
    const users = await this.db.read(this.db.q.selectFrom('invite_uses').select('username').where('token', '=', r.token).orderBy('used_at').orderBy('username'));
    return {
      token: r.token, createdAt: r.created_at, expiresAt: r.expires_at, usedBy: r.used_by ?? undefined,
      maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at ?? undefined, users: users.map((u) => u.username),
    };
  }

  /** maxUses: registrations it allows (null: unlimited). */
  async create(token: string, ttlSeconds: number, maxUses: number | null = 1): Promise<Invite> {
    const now = Date.now();
    await this.db.write(this.db.q.insertInto('invites').values({ token, created_at: now, expires_at: now + ttlSeconds * 1000, used_by: null, used_at: null, max_uses: maxUses, uses: 0, revoked_at: null }));
    return (await this.get(token))!;
  }

  async get(token: string): Promise<Invite | undefined> {
    const r = await this.row(token);
    return r ? this.toInvite(r) : undefined;
  }

  async status(token: string): Promise<InviteStatus> {
    return status(await this.row(token));
  }

  /** Takes one use for `username`; false when the invite is no longer valid. One conditional
   * UPDATE takes the use (atomic across nodes: the row is locked and the condition rechecked);
   * the use is recorded in the same transaction only when that UPDATE counted it. */
  async consume(token: string, username: string): Promise<boolean> {
    const now = Date.now();
    const q = this.db.q;
    const [taken] = await this.db.write(
      q.updateTable('invites')
        .set({ uses: sql`uses + 1`, used_by: sql`coalesce(used_by, ${username})`, used_at: now })
        .where('token', '=', token).where('revoked_at', 'is', null).where('expires_at', '>', now)
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))])),
      q.insertInto('invite_uses')
        .columns(['token', 'username', 'used_at'])
        .expression((eb) => eb.selectFrom('invites').select([eb.val(token).as('token'), eb.val(username).as('username'), eb.val(now).as('used_at')])
          .where('token', '=', token)
          .where('uses', '>', eb.selectFrom('invite_uses').select((e) => e.fn.countAll<number>().as('n')).where('token', '=', token)))
        .onConflict((oc) => oc.doNothing()),
    );
    return taken!.affected === 1;
  }

  /** Gives back a use taken by consume() (the account could not be created). */
  async release(token: string, username: string): Promise<void> {
    const q = this.db.q;
    await this.db.write(
      q.updateTable('invites').set({ uses: sql`uses - 1` }).where('token', '=', token).where('uses', '>', 0)
        .where((eb) => eb.exists(eb.selectFrom('invite_uses').select('token').where('token', '=', token).where('username', '=', username))),
      q.deleteFrom('invite_uses').where('token', '=', token).where('username', '=', username),
    );
  }

  /** false when there is no such token or it was revoked already. */
  async revoke(token: string): Promise<boolean> {
    const [r] = await this.db.write(this.db.q.updateTable('invites').set({ revoked_at: Date.now() }).where('token', '=', token).where('revoked_at', 'is', null));
    return r!.affected === 1;
  }

  async list(): Promise<Invite[]> {
    const rows = await this.db.read(this.db.q.selectFrom('invites').selectAll().orderBy('created_at'));
    return Promise.all(rows.map((r) => this.toInvite(r)));
  }
}
