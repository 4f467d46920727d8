// The backend-neutral seam modules keep their data behind. A module declares its tables (a
// Kysely table-type map) and its migrations, and gets a ModuleDb: it builds queries with Kysely
// (one builder, both dialects) and runs them here. Nothing outside src/storage names SQLite or
// PostgreSQL; the backend is chosen at start (--db).
//
// Writes go into the backend's group commit: many writes, one transaction, one fsync; a write's
// promise settles when its transaction is durable (SQLite synchronous=FULL, PostgreSQL
// synchronous_commit=on), so nothing is acknowledged before. Reads see every write made before
// them (a read first commits its module's queued writes).
import type { Compilable, Kysely } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

/** A query or statement built with `ModuleDb.q`. */
export type Query<R = unknown> = Compilable<R>;

export interface WriteResult {
  /** Rows changed (INSERT/UPDATE/DELETE). */
  affected: number;
  /** What a RETURNING clause gave. */
  rows: unknown[];
}

export interface ModuleDb<Tables> {
  readonly dialect: Dialect;
  /** Builds queries only: run them with read() and write(). */
  readonly q: Kysely<Tables>;
  read<R>(query: Query<R>): Promise<R[]>;
  readOne<R>(query: Query<R>): Promise<R | undefined>;
  /** Runs the statements in order, atomically, in the next group commit; settles when durable. */
  write(...statements: Query[]): Promise<WriteResult[]>;
}

/** Schema versions of one module: migrations[i] takes it to version i+1. Written in SQLite's
 * dialect and translated for PostgreSQL (ddl.ts), so one text serves both. */
export type Migrations = readonly string[];

export interface Backend {
  readonly dialect: Dialect;
  /** Creates and migrates the module's tables (refusing a database newer than the code). */
  open<Tables>(module: string, migrations: Migrations): Promise<ModuleDb<Tables>>;
  /** Settles when every write queued so far is durable. */
  barrier(): Promise<void>;
  /** Null while the database answers; otherwise why not, for /health. */
  problem(): string | null;
  close(): Promise<void>;
}

/** Raised when a database's schema is newer than this server knows. */
export class SchemaTooNew extends Error {
  constructor(module: string, found: number, known: number) {
    super(`the database's schema for ${module} is version ${found}, newer than this server knows (${known}): upgrade pi-im, or restore a backup made by this version`);
  }
}
