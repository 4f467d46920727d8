// PostgreSQL backend, for many nodes or many Pis on one database. Writes are group-committed as
// on SQLite: queued, then one transaction per window (at most maxCommitsPerSecond), committed with
// synchronous_commit on, so a settled write survives a crash of the node or of the database.
// A batch in which one write fails is rolled back and its writes are retried one transaction
// each: the bad one fails alone. While the database cannot be reached, problem() says why
// (/health answers 503) and the node recovers on its own when it returns.
import pg from 'pg';
import type { CompiledQuery } from 'kysely';
import { ddl } from './ddl.js';
import { queryBuilder } from './kysely.js';
import { SchemaTooNew, type Backend, type Migrations, type ModuleDb, type Query, type WriteResult } from './store.js';

export interface PostgresOptions {
  /** postgres://USER[:PASSWORD]@HOST:PORT/DB */
  url: string;
  /** Overrides the URL's password (PI_IM_DB_PASSWORD_FILE). */
  password?: string | undefined;
  commitWindowMs: number;
  maxBatch: number;
  /** 0: no cap. */
  maxCommitsPerSecond?: number;
  poolSize?: number;
  onCommit?: (writes: number, seconds: number) => void;
  onError?: (err: Error) => void;
}

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

const INT8 = 20;
const NUMERIC = 1700;
/** count(*) and sum() come back as int8/numeric, which pg gives as strings: our values fit a double. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8 || oid === NUMERIC ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

interface Pending { module: string; statements: CompiledQuery[]; resolve: (r: WriteResult[]) => void; reject: (e: Error) => void }

/** Serialises migrations of nodes that start together. */
const MIGRATION_LOCK = 0x70_69_69_6d; // "piim"

export class PostgresBackend implements Backend {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The last commit under way or done: true when its transaction committed. */
  private committing: Promise<boolean> = Promise.resolve(true);
  private running = 0;
  private scheduled: { promise: Promise<boolean>; resolve: (v: Promise<boolean>) => void } | undefined;
  private lastCommitAt = 0;
  /** Writes per module queued or being committed: a read of that module waits for them. */
  private readonly inFlight = new Map<string, number>();
  private down: string | null = null;
  private readonly watch: NodeJS.Timeout;

  constructor(private readonly opts: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      max: opts.poolSize ?? 8,
      connectionTimeoutMillis: 5000,
      types,
    });
    // An idle client whose server went away: noted, never a crash.
    this.pool.on('error', (e) => this.failed(e));
    this.watch = setInterval(() => void this.ping(), 5000);
    this.watch.unref();
  }

  /** Connects, retrying for up to `waitMs` (a database container may start after the node). */
  async ready(waitMs = 60_000): Promise<void> {
    const until = Date.now() + waitMs;
    for (;;) {
      try {
        await this.pool.query('SELECT 1');
        this.down = null;
        await this.pool.query('CREATE TABLE IF NOT EXISTS module_schema (module TEXT PRIMARY KEY, version BIGINT NOT NULL)');
        return;
      } catch (e) {
        this.failed(e as Error);
        if (Date.now() > until) throw new Error(`cannot reach PostgreSQL at ${redactUrl(this.opts.url)}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  problem(): string | null {
    return this.down;
  }

  private failed(e: Error): void {
    this.down = `PostgreSQL unreachable: ${e.message}`;
  }

  private async ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
      this.down = null;
    } catch (e) {
      this.failed(e as Error);
    }
  }

  async open<Tables>(module: string, migrations: Migrations): Promise<ModuleDb<Tables>> {
    await this.migrate(module, migrations);
    const read = async <R>(query: Query<R>): Promise<R[]> => {
      // It sees its module's queued writes: it waits for their commit, when the window (and the
      // commit cap) say so, rather than committing early (a steady read would defeat the cap).
      if (this.inFlight.get(module)) await this.next();
      const c = query.compile();
      return (await this.query(c.sql, c.parameters)).rows as R[];
    };
    return {
      dialect: 'postgres',
      q: queryBuilder<Tables>('postgres'),
      read,
      readOne: async (query) => (await read(query))[0],
      write: (...statements) => this.enqueue(module, statements.map((s) => s.compile())),
    };
  }

  private async query(text: string, values: readonly unknown[]): Promise<pg.QueryResult> {
    try {
      const r = await this.pool.query(text, values as unknown[]);
      this.down = null;
      return r;
    } catch (e) {
      if (isConnectionError(e)) this.failed(e as Error);
      throw e;
    }
  }

  private async migrate(module: string, migrations: Migrations): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const r = await client.query('SELECT version FROM module_schema WHERE module = $1', [module]);
      const current = r.rows[0] ? Number(r.rows[0].version) : 0;
      if (current > migrations.length) throw new SchemaTooNew(module, current, migrations.length);
      for (let v = current; v < migrations.length; v++) await client.query(ddl(migrations[v]!, 'postgres'));
      if (current < migrations.length) {
        await client.query('INSERT INTO module_schema VALUES ($1, $2) ON CONFLICT (module) DO UPDATE SET version = excluded.version', [module, migrations.length]);
      }
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  // ---- group commit ----

  private enqueue(module: string, statements: CompiledQuery[]): Promise<WriteResult[]> {
    this.inFlight.set(module, (this.inFlight.get(module) ?? 0) + 1);
    const done = (): void => { const n = (this.inFlight.get(module) ?? 1) - 1; if (n) this.inFlight.set(module, n); else this.inFlight.delete(module); };
    const p = new Promise<WriteResult[]>((resolve, reject) => this.queue.push({ module, statements, resolve, reject }));
    p.then(done, done);
    if (!this.timer) {
      const rate = this.opts.maxCommitsPerSecond ?? 0;
      const spaced = rate > 0 ? this.lastCommitAt + 1000 / rate - performance.now() : 0;
      this.timer = setTimeout(() => this.flush(), Math.max(this.opts.commitWindowMs, spaced));
    }
    if (this.queue.length >= this.opts.maxBatch) this.flush();
    return p;
  }

  /** Commits what is queued now (after the commit under way); false when a transaction failed. */
  private flush(): Promise<boolean> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    const batch = this.queue;
    const scheduled = this.scheduled;
    this.queue = [];
    this.scheduled = undefined;
    // Nothing queued: only a commit still under way counts (an old failure was told long ago).
    if (batch.length === 0) return this.running > 0 ? this.committing : Promise.resolve(true);
    // The cap spaces batches from when they are cut (the next window is set from this at once).
    this.lastCommitAt = performance.now();
    const before = this.running > 0 ? this.committing : Promise.resolve(true);
    this.running++;
    this.committing = before.then(() => this.commit(batch)).finally(() => { this.running--; });
    const result = Promise.all([before, this.committing]).then(([a, b]) => a && b);
    scheduled?.resolve(result);
    return result;
  }

  /** The queued batch's outcome, when its window ends (a barrier does not commit early: the
   * window and the commit cap hold whoever waits). */
  private next(): Promise<boolean> {
    if (this.queue.length === 0) return this.running > 0 ? this.committing : Promise.resolve(true);
    if (!this.scheduled) {
      let resolve!: (v: Promise<boolean>) => void;
      const promise = new Promise<boolean>((r) => { resolve = r; });
      this.scheduled = { promise, resolve };
    }
    return this.scheduled.promise;
  }

  /** False when the batch's transaction could not commit (its writers were told). A write that
   * failed on its own (a constraint) was told too, and does not make the batch fail. */
  private async commit(batch: Pending[]): Promise<boolean> {
    const t0 = performance.now();
    try {
      const results = await this.transaction(batch);
      this.opts.onCommit?.(batch.length, (performance.now() - t0) / 1000);
      batch.forEach((w, i) => w.resolve(results[i]!));
      return true;
    } catch (e) {
      if (batch.length === 1 || isConnectionError(e)) {
        if (isConnectionError(e)) this.failed(e as Error);
        this.opts.onError?.(e as Error);
        for (const w of batch) w.reject(e as Error);
        return !isConnectionError(e);
      }
    }
    // One write spoilt the batch: each on its own, so only the bad one fails.
    let ok = true;
    for (const w of batch) {
      try {
        w.resolve((await this.transaction([w]))[0]!);
      } catch (e) {
        if (isConnectionError(e)) { ok = false; this.failed(e as Error); }
        this.opts.onError?.(e as Error);
        w.reject(e as Error);
      }
    }
    return ok;
  }

  private async transaction(batch: Pending[]): Promise<WriteResult[][]> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const out: WriteResult[][] = [];
      for (const w of batch) {
        const rs: WriteResult[] = [];
        for (const c of w.statements) {
          const r = await client.query(c.sql, c.parameters as unknown[]);
          rs.push({ rows: r.rows, affected: r.rowCount ?? r.rows.length });
        }
        out.push(rs);
      }
      await client.query('COMMIT');
      this.down = null;
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  /** Settles when every write queued so far is durable; rejects when a transaction failed. */
  async barrier(): Promise<void> {
    if (!(await this.next())) throw new Error(this.down ?? 'a PostgreSQL transaction failed: nothing of it was acknowledged');
  }

  async close(): Promise<void> {
    clearInterval(this.watch);
    await this.flush().catch(() => {});
    await this.pool.end();
  }
}

/** Errors of the connection rather than of the statement (PostgreSQL class 08, 57P, or a socket error). */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string } | undefined)?.code ?? '';
  return code.startsWith('08') || code.startsWith('57P') || /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH)$/.test(code)
    || /Connection terminated|timeout exceeded when trying to connect/i.test((e as Error)?.message ?? '');
}
