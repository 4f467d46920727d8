// Both storage backends for the store tests of one file: SQLite in a temporary folder and a real
// PostgreSQL (started before the file's tests, removed after), so the same tests run on each.
import type { TestFn } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresBackend } from '../src/storage/postgres.js';
import { SqliteBackend } from '../src/storage/sqlite-backend.js';
import { SqliteStorage } from '../src/storage/sqlite.js';
import type { Backend } from '../src/storage/store.js';
import { startPostgres, type PostgresServer } from './postgres-server.js';

export type Kind = 'sqlite' | 'postgres';
export const KINDS = ['sqlite', 'postgres'] as const;

export interface Made {
  backend: Backend;
  /** Another backend on the same database (a restart, or a second node; SQLite: the same file). */
  reopen(): Promise<Backend>;
  /** Batch sizes of the commits so far (group commit). */
  commits: number[];
}

export interface Backends {
  /** A fresh, empty database on that backend. */
  make(kind: Kind, opts?: { commitWindowMs?: number }): Promise<Made>;
  /** A new SQLite file path in a folder removed after the tests. */
  sqlitePath(): string;
  sqliteStorage(path: string): SqliteStorage;
  /** The file's PostgreSQL server (to stop, kill or restart it). */
  postgres(): PostgresServer;
}

export function backends(test: TestFn): Backends {
  let server: PostgresServer | undefined;
  const dirs: string[] = [];
  test.before(async () => { server = await startPostgres(); });
  test.after.always(async () => {
    await server?.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const sqlitePath = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-im-store-'));
    dirs.push(dir);
    return join(dir, 'db.sqlite');
  };
  const sqliteStorage = (path: string, commitWindowMs = 2, onCommit?: (n: number) => void): SqliteStorage =>
    new SqliteStorage({ path, commitWindowMs, maxBatch: 1000, synchronous: 'full', ...(onCommit ? { onCommit } : {}) });
  return {
    sqlitePath,
    sqliteStorage: (path) => sqliteStorage(path),
    postgres: () => server!,
    async make(kind, opts = {}) {
      const window = opts.commitWindowMs ?? 2;
      const commits: number[] = [];
      const onCommit = (n: number): void => { commits.push(n); };
      if (kind === 'sqlite') {
        const path = sqlitePath();
        const open = async (): Promise<Backend> => new SqliteBackend(sqliteStorage(path, window, onCommit));
        return { backend: await open(), reopen: open, commits };
      }
      const url = await server!.database();
      const open = async (): Promise<Backend> => {
        const b = new PostgresBackend({ url, commitWindowMs: window, maxBatch: 1000, onCommit });
        await b.ready();
        return b;
      };
      return { backend: await open(), reopen: open, commits };
    },
  };
}
