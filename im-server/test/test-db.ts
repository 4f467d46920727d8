// Which database the servers under test keep their data in. By default SQLite in each server's
// data dir; with PI_IM_TEST_DB=postgres every behaviour test runs against a real PostgreSQL: the
// one at PI_IM_TEST_PG_URL (the test command starts one for the whole run) or one started here
// for this test file. A data dir keeps its database across restarts of its server, as a site would.
import { join } from 'node:path';
import pg from 'pg';
import { PostgresBackend } from '../src/storage/postgres.js';
import { SqliteBackend } from '../src/storage/sqlite-backend.js';
import { SqliteStorage } from '../src/storage/sqlite.js';
import type { Backend } from '../src/storage/store.js';
import { startPostgres, type PostgresServer } from './postgres-server.js';

export const testDb = process.env.PI_IM_TEST_DB === 'postgres' ? 'postgres' : 'sqlite';

let server: Promise<{ url: string; local?: PostgresServer }> | undefined;
const databases = new Map<string, Promise<string>>();
let n = 0;

function postgres(): Promise<{ url: string; local?: PostgresServer }> {
  server ??= (async () => {
    const shared = process.env.PI_IM_TEST_PG_URL;
    if (shared) return { url: shared };
    const local = await startPostgres();
    process.once('exit', () => local.destroySync());
    return { url: local.url, local };
  })();
  return server;
}

/** Extra server flags for a server on `dataDir`: none on SQLite, `--db URL` on PostgreSQL. */
export async function dbArgs(dataDir: string): Promise<string[]> {
  if (testDb === 'sqlite') return [];
  let db = databases.get(dataDir);
  if (!db) {
    db = (async () => {
      const { url } = await postgres();
      const name = `t${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      const u = new URL(url);
      u.pathname = '/' + name;
      return u.toString();
    })();
    databases.set(dataDir, db);
  }
  return ['--db', await db];
}

/** Environment for pi-im-admin run on `dataDir`: the same database as its server. */
export async function dbEnv(dataDir: string): Promise<Record<string, string>> {
  const args = await dbArgs(dataDir);
  return args.length ? { PI_IM_DB: args[1]! } : {};
}

/** The store a server on `dataDir` will use, opened by the test (e.g. to lay down older data). */
export async function testBackend(dataDir: string): Promise<Backend> {
  const args = await dbArgs(dataDir);
  if (!args.length) return new SqliteBackend(new SqliteStorage({ path: join(dataDir, 'pi-im.sqlite'), commitWindowMs: 0, maxBatch: 1, synchronous: 'full' }));
  const b = new PostgresBackend({ url: args[1]!, commitWindowMs: 0, maxBatch: 1 });
  await b.ready();
  return b;
}
