import type Database from 'better-sqlite3';
// Value types shared by the core and the modules' stores (the stores themselves are in
// store.ts, sqlite-backend.ts, postgres.ts and each module's folder).

export interface ScramCredentials {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface Account {
  username: string;
  sha1: ScramCredentials;
  sha256: ScramCredentials;
}

export type Subscription = 'none' | 'to' | 'from' | 'both';

export interface RosterItem {
  contact: string;
  name?: string | undefined;
  subscription: Subscription;
  /** Pending-out: we asked for the contact's presence and wait for an answer. */
  ask: boolean;
  groups: string[];
}

export interface Invite {
  token: string;
  createdAt: number;
  expiresAt: number;
  /** The first account registered with it. */
  usedBy?: string | undefined;
  /** null: unlimited. */
  maxUses: number | null;
  uses: number;
  revokedAt?: number | undefined;
  /** Accounts registered with it, oldest first. */
  users: string[];
}

export type InviteStatus = 'valid' | 'unknown' | 'expired' | 'revoked' | 'used-up';

/** A module's own tables (mod_* style): migrated per module, written through the shared group
 * commit so its writes cost no extra fsync. SQLite-specific by design: a module that must run on
 * another backend gets a store of its own there. */
export interface ModuleStore {
  readonly db: Database.Database;
  /** Queues `op` (which runs prepared statements on `db`) in the next group commit; settles when durable. */
  write(op: () => void): Promise<void>;
  /** Commits this store's queued writes now, so a read on `db` sees them. Call before reading. */
  sync(): void;
}

/** A failed write because the disk under the storage has no room left (SQLite: SQLITE_FULL). */
export function isDiskFull(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === 'SQLITE_FULL';
}
