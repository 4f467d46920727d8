import type Database from 'better-sqlite3';
// The storage seam: SQLite now (sqlite.ts), PostgreSQL for a fleet later.
// Writes return a promise that settles when the write is durable (committed and fsynced);
// reads see every write made before them.

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

export interface Storage {
  /** Opens (creating and migrating) the tables of module `name`: migrations[i] is its schema version i+1. */
  moduleStore(name: string, migrations: string[]): ModuleStore;

  getAccount(username: string): Account | undefined;
  /** false when the username is taken. Durable when it resolves. */
  createAccount(account: Account): Promise<boolean>;
  setCredentials(account: Account): Promise<void>;
  /** Removes the account and everything stored for it. */
  deleteAccount(username: string): Promise<void>;
  listAccounts(): string[];

  getRoster(username: string): { version: number; items: RosterItem[] };
  getRosterItem(username: string, contact: string): RosterItem | undefined;
  countRoster(username: string): number;
  /** Returns the new roster version at once; `durable` settles on commit. */
  setRosterItem(username: string, item: RosterItem): { version: number; durable: Promise<void> };
  removeRosterItem(username: string, contact: string): { version: number; durable: Promise<void> };

  /** Subscription requests waiting for the user's answer (RFC 6121 pending-in). */
  getPendingIn(username: string): { contact: string; stanza: string }[];
  hasPendingIn(username: string, contact: string): boolean;
  countPendingIn(username: string): number;
  addPendingIn(username: string, contact: string, stanza: string): Promise<void>;
  removePendingIn(username: string, contact: string): Promise<void>;

  countOffline(username: string): number;
  /** What the user's offline messages take: how many, and their size in bytes (UTF-8). */
  offlineUsage(username: string): { count: number; bytes: number };
  storeOffline(username: string, stanza: string): Promise<void>;
  /** Offline messages in arrival order (ids increase), those with id > afterId, at most `limit`;
   * they stay stored until deleteOffline. */
  getOffline(username: string, afterId?: number, limit?: number): { id: number; stanza: string }[];
  /** Deletes the user's offline messages with id <= upToId (queued in the group commit). */
  deleteOffline(username: string, upToId: number): Promise<void>;

  getVcard(username: string): string | undefined;
  setVcard(username: string, xml: string): Promise<void>;

  /** maxUses: registrations it allows (null: unlimited; default 1). */
  createInvite(token: string, ttlSeconds: number, maxUses?: number | null): Promise<Invite>;
  getInvite(token: string): Invite | undefined;
  inviteStatus(token: string): InviteStatus;
  /** True when the token exists, is not expired, revoked or used up. */
  checkInvite(token: string): boolean;
  /** Counts one use by `username` (atomically, across nodes); false when the invite is no longer valid. */
  consumeInvite(token: string, username: string): boolean;
  /** Gives back a use taken by consumeInvite (the account could not be created). */
  releaseInvite(token: string, username: string): void;
  /** false when there is no such token or it was revoked already. */
  revokeInvite(token: string): boolean;
  listInvites(): Invite[];

  /** Settles when every write queued so far is durable. */
  barrier(): Promise<void>;
  /** Commits what is queued now. */
  flush(): void;
  close(): void;
}

/** A failed write because the disk under the storage has no room left (SQLite: SQLITE_FULL). */
export function isDiskFull(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === 'SQLITE_FULL';
}
