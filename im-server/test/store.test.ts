// The storage conformance suite: the same tests, one file, on SQLite and on a real PostgreSQL
// (started here from Debian's binaries). What a module may rely on: migrations, read-after-write,
// group commit, isolation of a failing write, value types, durability, refusal of a newer schema.
import test from 'ava';
import { PostgresBackend } from '../src/storage/postgres.js';
import { backends, type Kind, type Made } from './backends.js';

interface Tables {
  notes: { id: number | undefined; owner: string; body: string; stamp: number };
  blobs: { k: string; v: Buffer };
}
const MIGRATIONS = [
  `CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, body TEXT NOT NULL, stamp INTEGER NOT NULL);
   CREATE INDEX notes_owner ON notes (owner, id);`,
  'CREATE TABLE blobs (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID',
];

const shared = backends(test);
const make = (kind: Kind, window = 5): Promise<Made> => shared.make(kind, { commitWindowMs: window });

for (const kind of ['sqlite', 'postgres'] as const) {
  test.serial(`${kind}: a write is read back at once, ids grow, values keep their types`, async (t) => {
    const { backend } = await make(kind);
    const db = await backend.open<Tables>('notes', MIGRATIONS);
    const stamp = Date.now();
    const w = db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'ann', body: 'héllo ✓', stamp }));
    const rows = await db.read(db.q.selectFrom('notes').selectAll().where('owner', '=', 'ann'));
    t.is(rows.length, 1, 'a read sees the write queued before it');
    await w;
    await db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'ann', body: 'two', stamp: stamp + 1 }));
    const all = await db.read(db.q.selectFrom('notes').selectAll().orderBy('id'));
    t.deepEqual(all.map((r) => [r.body, r.stamp]), [['héllo ✓', stamp], ['two', stamp + 1]]);
    t.true(all[1]!.id! > all[0]!.id!);
    t.is(typeof all[0]!.id, 'number');
    const c = await db.readOne(db.q.selectFrom('notes').select((e) => [e.fn.countAll<number>().as('n'), e.fn.sum<number>('stamp').as('s')]));
    t.deepEqual(c, { n: 2, s: 2 * stamp + 1 }, 'count and sum are numbers on both backends');
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    await db.write(db.q.insertInto('blobs').values({ k: 'a', v: bytes }));
    const b = await db.readOne(db.q.selectFrom('blobs').select('v').where('k', '=', 'a'));
    t.true(Buffer.isBuffer(b?.v) && b!.v.equals(bytes));
    const ret = await db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'bob', body: 'r', stamp }).returning('id'));
    t.is(ret[0]!.rows.length, 1);
    const upd = await db.write(db.q.updateTable('notes').set({ body: 'x' }).where('owner', '=', 'ann'));
    t.is(upd[0]!.affected, 2);
    await backend.close();
  });

  test.serial(`${kind}: many writes share few commits, and every one is durable when it settles`, async (t) => {
    const m = await make(kind, 20);
    const db = await m.backend.open<Tables>('notes', MIGRATIONS);
    await Promise.all(Array.from({ length: 200 }, (_, i) => db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'c', body: String(i), stamp: i }))));
    t.true(m.commits.length < 20, `200 writes in ${m.commits.length} commits`);
    await m.backend.close();
    const again = await m.reopen();
    const db2 = await again.open<Tables>('notes', MIGRATIONS);
    const n = await db2.readOne(db2.q.selectFrom('notes').select((e) => e.fn.countAll<number>().as('n')));
    t.is(n?.n, 200);
    await again.close();
  });

  test.serial(`${kind}: the statements of one write are atomic, and a failing write spoils no other`, async (t) => {
    const { backend } = await make(kind, 20);
    const db = await backend.open<Tables>('notes', MIGRATIONS);
    await db.write(db.q.insertInto('blobs').values({ k: 'taken', v: Buffer.from('1') }));
    const good = db.write(db.q.insertInto('blobs').values({ k: 'good', v: Buffer.from('2') }));
    const bad = db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'half', body: 'never', stamp: 1 }), db.q.insertInto('blobs').values({ k: 'taken', v: Buffer.from('3') }));
    await t.throwsAsync(bad, { message: /UNIQUE|duplicate key/ });
    await t.notThrowsAsync(good, 'the other write of the same batch commits');
    const half = await db.read(db.q.selectFrom('notes').selectAll().where('owner', '=', 'half'));
    t.deepEqual(half, [], 'the first statement of the failed write was rolled back with it');
    await backend.close();
  });

  test.serial(`${kind}: migrations run once; a database newer than the code is refused with a clear message`, async (t) => {
    const m = await make(kind);
    await m.backend.open<Tables>('notes', MIGRATIONS);
    await m.backend.close();
    const again = await m.reopen();
    await t.notThrowsAsync(again.open<Tables>('notes', MIGRATIONS), 'reopening applies nothing twice');
    const err = await t.throwsAsync(again.open<Tables>('notes', MIGRATIONS.slice(0, 1)));
    t.regex(err!.message, /notes is version 2, newer than this server knows \(1\): upgrade pi-im/);
    await again.close();
  });
}

test.serial('postgres: an acknowledged write survives kill -9 of the database', async (t) => {
  const url = await shared.postgres().database();
  const b = new PostgresBackend({ url, commitWindowMs: 5, maxBatch: 1000 });
  await b.ready();
  const db = await b.open<Tables>('notes', MIGRATIONS);
  await Promise.all(Array.from({ length: 50 }, (_, i) => db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'k', body: String(i), stamp: i }))));
  await shared.postgres().kill();
  await shared.postgres().start();
  const rows = await db.read(db.q.selectFrom('notes').select('body').where('owner', '=', 'k'));
  t.is(rows.length, 50);
  await b.close();
});

test.serial('postgres: while the database is down, problem() says so and writes fail; it recovers on its own', async (t) => {
  const url = await shared.postgres().database();
  const b = new PostgresBackend({ url, commitWindowMs: 5, maxBatch: 1000 });
  await b.ready();
  const db = await b.open<Tables>('notes', MIGRATIONS);
  t.is(b.problem(), null);
  await shared.postgres().stop();
  await t.throwsAsync(db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'd', body: 'x', stamp: 1 })));
  t.regex(b.problem() ?? '', /PostgreSQL unreachable/);
  await shared.postgres().start();
  const until = Date.now() + 15_000;
  while (b.problem() !== null && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  t.is(b.problem(), null, 'the node notices by itself that the database is back');
  await db.write(db.q.insertInto('notes').values({ id: undefined, owner: 'd', body: 'y', stamp: 2 }));
  t.is((await db.read(db.q.selectFrom('notes').select('body').where('owner', '=', 'd'))).length, 1);
  await b.close();
});

test('ddl: SQLite migrations become PostgreSQL ones; what has no translation is refused', async (t) => {
  const { ddl } = await import('../src/storage/ddl.js');
  t.is(ddl('CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, c INTEGER NOT NULL) WITHOUT ROWID', 'postgres'),
    'CREATE TABLE a (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, b BYTEA, c BIGINT NOT NULL)');
  t.throws(() => ddl('INSERT OR REPLACE INTO a VALUES (1)', 'postgres'), { message: /cannot be translated/ });
});
