// The roster and offline modules' stores on both backends (SQLite and a real PostgreSQL): roster
// items and versions (shared by two nodes on one database), pending-in requests, pre-approvals,
// offline messages (order, paging, usage, deletion), account removal, and an old SQLite data dir
// whose tables the core created keeps its rows.
import test from 'ava';
import Database from 'better-sqlite3';
import { openOfflineStore } from '../src/modules/offline-store.js';
import { openRosterStore } from '../src/modules/roster-store.js';
import { SqliteBackend } from '../src/storage/sqlite-backend.js';
import { SqliteStorage } from '../src/storage/sqlite.js';
import { backends } from './backends.js';

const { make, sqlitePath } = backends(test);

for (const kind of ['sqlite', 'postgres'] as const) {
  test.serial(`${kind}: roster items are stored, listed by contact, changed and removed; each change a new version`, async (t) => {
    const { backend } = await make(kind);
    const r = await openRosterStore(backend);
    t.deepEqual(await r.getRoster('ann'), { version: 0, items: [] });
    t.is(await r.setItem('ann', { contact: 'zed@x', name: 'Zed ✓', subscription: 'to', ask: false, groups: ['Friends', 'Work'] }), 1);
    t.is(await r.setItem('ann', { contact: 'bob@x', subscription: 'none', ask: true, groups: [] }), 2);
    t.is(await r.setItem('cat', { contact: 'ann@x', subscription: 'both', ask: false, groups: [] }), 1, 'versions are per user');
    const roster = await r.getRoster('ann');
    t.is(roster.version, 2);
    t.deepEqual(roster.items, [
      { contact: 'bob@x', name: undefined, subscription: 'none', ask: true, groups: [] },
      { contact: 'zed@x', name: 'Zed ✓', subscription: 'to', ask: false, groups: ['Friends', 'Work'] },
    ]);
    t.is(await r.setItem('ann', { contact: 'bob@x', name: 'Bob', subscription: 'from', ask: false, groups: ['G'] }), 3, 'an update');
    t.deepEqual(await r.getItem('ann', 'bob@x'), { contact: 'bob@x', name: 'Bob', subscription: 'from', ask: false, groups: ['G'] });
    t.is(await r.count('ann'), 2);
    t.is(await r.removeItem('ann', 'bob@x'), 4);
    t.is(await r.getItem('ann', 'bob@x'), undefined);
    t.is(await r.count('ann'), 1);
    t.is(await r.version('ann'), 4);
    await backend.close();
  });

  test.serial(`${kind}: two nodes on one database hand out one sequence of roster versions`, async (t) => {
    const m = await make(kind);
    const a = await openRosterStore(m.backend);
    t.is(await a.setItem('ann', { contact: 'b@x', subscription: 'none', ask: false, groups: [] }), 1);
    if (kind === 'sqlite') await m.backend.close(); // one process per SQLite file: the second node is the restarted one
    const second = await m.reopen();
    const b = await openRosterStore(second);
    const versions = await Promise.all([
      b.setItem('ann', { contact: 'c@x', subscription: 'none', ask: false, groups: [] }),
      ...(kind === 'postgres' ? [a.setItem('ann', { contact: 'd@x', subscription: 'none', ask: false, groups: [] })] : []),
      b.removeItem('ann', 'b@x'),
    ]);
    t.is(new Set(versions).size, versions.length, 'no version given twice');
    t.is(Math.max(...versions), versions.length + 1);
    t.is((await b.getRoster('ann')).version, versions.length + 1);
    if (kind === 'postgres') t.is((await a.getRoster('ann')).version, versions.length + 1, 'the other node sees the same version');
    await second.close();
    if (kind === 'postgres') await m.backend.close();
  });

  test.serial(`${kind}: pending-in requests are kept until answered; pre-approvals`, async (t) => {
    const { backend } = await make(kind);
    const r = await openRosterStore(backend);
    await r.addPendingIn('ann', 'zed@x', '<presence type="subscribe" from="zed@x"/>');
    await r.addPendingIn('ann', 'bob@x', '<presence type="subscribe" from="bob@x"/>');
    t.deepEqual((await r.pendingIn('ann')).map((p) => p.contact), ['bob@x', 'zed@x']);
    t.true(await r.hasPendingIn('ann', 'bob@x'));
    t.false(await r.hasPendingIn('bob', 'ann@x'));
    t.is(await r.countPendingIn('ann'), 2);
    await r.addPendingIn('ann', 'zed@x', '<presence type="subscribe" from="zed@x"><status>again</status></presence>');
    t.is(await r.countPendingIn('ann'), 2, 'a repeated request replaces the first');
    t.regex((await r.pendingIn('ann')).find((p) => p.contact === 'zed@x')!.stanza, /again/);
    await r.removePendingIn('ann', 'bob@x');
    t.false(await r.hasPendingIn('ann', 'bob@x'));
    t.is(await r.countPendingIn('ann'), 1);

    t.false(await r.isPreApproved('ann', 'eve@x'));
    await r.setPreApproved('ann', 'eve@x', true);
    await r.setPreApproved('ann', 'eve@x', true);
    t.true(await r.isPreApproved('ann', 'eve@x'));
    t.deepEqual([...await r.preApproved('ann')], ['eve@x']);
    await r.setItem('ann', { contact: 'eve@x', subscription: 'none', ask: false, groups: [] });
    await r.removeItem('ann', 'eve@x');
    t.false(await r.isPreApproved('ann', 'eve@x'), 'removing the item drops its pre-approval');
    await r.setPreApproved('ann', 'fay@x', true);
    await r.setPreApproved('ann', 'fay@x', false);
    t.false(await r.isPreApproved('ann', 'fay@x'));
    await backend.close();
  });

  test.serial(`${kind}: removing an account removes its roster, version, requests and pre-approvals only`, async (t) => {
    const { backend } = await make(kind);
    const r = await openRosterStore(backend);
    await r.setItem('ann', { contact: 'bob@x', subscription: 'both', ask: false, groups: [] });
    await r.setItem('bob', { contact: 'ann@x', subscription: 'both', ask: false, groups: [] });
    await r.addPendingIn('ann', 'cat@x', '<presence/>');
    await r.setPreApproved('ann', 'dan@x', true);
    await r.removeUser('ann');
    t.deepEqual(await r.getRoster('ann'), { version: 0, items: [] });
    t.deepEqual(await r.pendingIn('ann'), []);
    t.false(await r.isPreApproved('ann', 'dan@x'));
    t.is((await r.getRoster('bob')).items.length, 1, 'other users keep theirs');
    await backend.close();
  });

  test.serial(`${kind}: offline messages in arrival order, paged, counted in bytes, deleted up to an id`, async (t) => {
    const m = await make(kind);
    const o = await openOfflineStore(m.backend);
    t.deepEqual(await o.usage('bob'), { count: 0, bytes: 0 });
    const stanzas = ['<message>één</message>', '<message>two</message>', '<message>✓✓✓</message>', '<message>four</message>'];
    await Promise.all(stanzas.map((s) => o.store('bob', s)));
    await o.store('cat', '<message>other</message>');
    const all = await o.list('bob');
    t.deepEqual(all.map((r) => r.stanza), stanzas);
    t.true(all.every((r, i) => i === 0 || r.id > all[i - 1]!.id), 'ids increase');
    t.deepEqual(await o.usage('bob'), { count: 4, bytes: stanzas.reduce((n, s) => n + Buffer.byteLength(s), 0) }, 'UTF-8 bytes, not characters');
    const page = await o.list('bob', all[0]!.id, 2);
    t.deepEqual(page.map((r) => r.stanza), stanzas.slice(1, 3));
    await o.deleteUpTo('bob', all[1]!.id);
    t.deepEqual((await o.list('bob')).map((r) => r.stanza), stanzas.slice(2));
    t.deepEqual(await o.usage('bob'), { count: 2, bytes: Buffer.byteLength(stanzas[2]!) + Buffer.byteLength(stanzas[3]!) });
    t.is((await o.list('cat')).length, 1, 'another user keeps theirs');
    await o.removeUser('bob');
    t.deepEqual(await o.usage('bob'), { count: 0, bytes: 0 });
    t.is(await o.fillSizes(), 0, 'nothing to fill in: sizes are stored with the messages');
    await m.backend.close();
    const again = await m.reopen();
    const o2 = await openOfflineStore(again);
    t.deepEqual((await o2.list('cat')).map((r) => r.stanza), ['<message>other</message>'], 'durable');
    await again.close();
  });
}

test.serial('sqlite: an old data dir (tables created by the core) keeps its rosters, requests and offline messages, sizes filled in', async (t) => {
  const path = sqlitePath();
  // The core created these tables (and the module's v1) before: rows as an old server left them.
  const first = new SqliteStorage({ path, commitWindowMs: 2, maxBatch: 1000, synchronous: 'full' });
  first.moduleStore('roster', ['CREATE TABLE roster_approved (username TEXT NOT NULL, contact TEXT NOT NULL, PRIMARY KEY (username, contact));']);
  first.close();
  const raw = new Database(path);
  const hasRoster = raw.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'roster'").pluck().get() as number;
  if (hasRoster === 0) {
    // The core no longer creates them: make them as it did.
    raw.exec(`CREATE TABLE roster (username TEXT NOT NULL, contact TEXT NOT NULL, name TEXT, subscription TEXT NOT NULL,
       ask INTEGER NOT NULL DEFAULT 0, groups TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (username, contact));
     CREATE TABLE roster_version (username TEXT PRIMARY KEY, version INTEGER NOT NULL);
     CREATE TABLE pending_in (username TEXT NOT NULL, contact TEXT NOT NULL, stanza TEXT NOT NULL, PRIMARY KEY (username, contact));
     CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, stanza TEXT NOT NULL, stamp INTEGER NOT NULL);
     CREATE INDEX offline_user ON offline (username, id);`);
  }
  raw.prepare('INSERT INTO roster VALUES (?, ?, ?, ?, ?, ?)').run('ann', 'bob@x', 'Bob', 'both', 0, '["G"]');
  raw.prepare('INSERT INTO roster_version VALUES (?, ?)').run('ann', 7);
  raw.prepare('INSERT INTO pending_in VALUES (?, ?, ?)').run('ann', 'cat@x', '<presence type="subscribe"/>');
  raw.prepare('INSERT INTO offline (username, stanza, stamp) VALUES (?, ?, ?)').run('ann', '<message>ü</message>', 1);
  raw.close();

  const backend = new SqliteBackend(new SqliteStorage({ path, commitWindowMs: 2, maxBatch: 1000, synchronous: 'full' }));
  const r = await openRosterStore(backend);
  t.deepEqual(await r.getRoster('ann'), { version: 7, items: [{ contact: 'bob@x', name: 'Bob', subscription: 'both', ask: false, groups: ['G'] }] });
  t.is(await r.setItem('ann', { contact: 'dan@x', subscription: 'none', ask: false, groups: [] }), 8, 'versions go on from the stored one');
  t.deepEqual((await r.pendingIn('ann')).map((p) => p.contact), ['cat@x']);
  const o = await openOfflineStore(backend);
  t.deepEqual(await o.usage('ann'), { count: 1, bytes: 0 }, 'before the sizes are filled in');
  t.is(await o.fillSizes(), 1);
  t.deepEqual(await o.usage('ann'), { count: 1, bytes: Buffer.byteLength('<message>ü</message>') });
  t.is(await o.fillSizes(), 0);
  await backend.close();
});
