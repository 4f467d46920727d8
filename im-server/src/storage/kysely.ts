// Kysely as a query builder only: it compiles to the dialect's SQL and parameters, and the
// backends run what it compiled inside their own group commit.
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from 'kysely';
import type { Dialect } from './store.js';

export function queryBuilder<T>(dialect: Dialect): Kysely<T> {
  const pg = dialect === 'postgres';
  return new Kysely<T>({
    dialect: {
      createAdapter: () => (pg ? new PostgresAdapter() : new SqliteAdapter()),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => (pg ? new PostgresIntrospector(db) : new SqliteIntrospector(db)),
      createQueryCompiler: () => (pg ? new PostgresQueryCompiler() : new SqliteQueryCompiler()),
    },
  });
}
