// The embedded backend: module stores on the node's SQLite file, their writes in SqliteStorage's
// group commit (one transaction and one fsync per window, the fsync cap, full-disk reporting).
import type Database from 'better-sqlite3';
import type { CompiledQuery } from 'kysely';
import { queryBuilder } from './kysely.js';
import type { SqliteStorage } from './sqlite.js';
import { SchemaTooNew, type Backend, type Migrations, type ModuleDb, type Query, type WriteResult } from './store.js';

/** better-sqlite3 binds numbers, strings, bigints, Buffers and null only. */
function bind(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

/** better-sqlite3's SqliteError is not a plain Error to every check (e.g. util.types.isNativeError): keep its code, be one. */
function asError(e: unknown): Error {
  const o = e as { message?: string; code?: string };
  return Object.assign(new Error(o?.message ?? String(e)), { code: o?.code });
}

export class SqliteBackend implements Backend {
  readonly dialect = 'sqlite' as const;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly storage: SqliteStorage) {}

  private run(c: CompiledQuery): WriteResult {
    let st = this.statements.get(c.sql);
    if (!st) { st = this.storage.db.prepare(c.sql); this.statements.set(c.sql, st); }
    const params = c.parameters.map(bind);
    if (st.reader) { const rows = st.all(...params); return { rows, affected: rows.length }; }
    return { rows: [], affected: st.run(...params).changes };
  }

  async open<Tables>(module: string, migrations: Migrations): Promise<ModuleDb<Tables>> {
    let store;
    try {
      store = this.storage.moduleStore(module, [...migrations]);
    } catch (e) {
      const m = /schema version (\d+) is newer than this server \((\d+)\)/.exec((e as Error).message);
      if (m) throw new SchemaTooNew(module, Number(m[1]), Number(m[2]));
      throw e;
    }
    const read = async <R>(query: Query<R>): Promise<R[]> => {
      store.sync();
      return this.run(query.compile()).rows as R[];
    };
    return {
      dialect: 'sqlite',
      q: queryBuilder<Tables>('sqlite'),
      read,
      readOne: async (query) => (await read(query))[0],
      write: (...statements) => {
        const compiled = statements.map((s) => s.compile());
        const results: WriteResult[] = [];
        // Nested in the batch's transaction, better-sqlite3 makes this a savepoint: a failing
        // write is rolled back alone and the rest of the batch commits, as on PostgreSQL.
        const tx = this.storage.db.transaction(() => { for (const c of compiled) results.push(this.run(c)); });
        let failure: unknown;
        return store.write(() => { try { tx(); } catch (e) { failure = e; results.length = 0; } }).then(() => {
          if (failure !== undefined) throw asError(failure);
          return results;
        });
      },
    };
  }

  barrier(): Promise<void> {
    return this.storage.barrier();
  }

  problem(): string | null {
    return null;
  }

  async close(): Promise<void> {
    this.storage.close();
  }
}
