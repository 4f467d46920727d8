// The stores of blocking (XEP-0191), private XML (XEP-0049), vcard-temp and HTTP upload
// (XEP-0363) on both backends: the same tests on SQLite and on a real PostgreSQL. What is
// stored, listed, replaced and deleted, the upload quota and expiry sums, one claim per slot;
// and on SQLite, that the data of an existing data dir is kept by the new migrations.
import test from 'ava';
import Database from 'better-sqlite3';
import { BlockStore } from '../src/modules/blocking.js';
import { PRIVATE_MIGRATIONS, PrivateStore } from '../src/modules/private.js';
import { SlotState, UploadStore } from '../src/modules/upload/store.js';
import { VcardStore } from '../src/modules/vcard.js';
import { SqliteBackend } from '../src/storage/sqlite-backend.js';
import { backends } from './backends.js';

const { make, sqlitePath, sqliteStorage } = backends(test);

for (const kind of ['sqlite', 'postgres'] as const) {
  test.serial(`${kind}: block list: added once, listed sorted per user, removed, cleared, kept across a restart`, async (t) => {
    const m = await make(kind);
    const s = await BlockStore.open(m.backend);
    await s.add('ann', ['spam@example.org', 'example.net', 'bob@localhost/phone']);
    await s.add('ann', ['spam@example.org', 'eve@localhost']); // one already there: no error, no duplicate
    await s.add('bob', ['ann@localhost']);
    t.deepEqual(await s.list('ann'), ['bob@localhost/phone', 'eve@localhost', 'example.net', 'spam@example.org']);
    await s.remove('ann', ['example.net', 'never@blocked']);
    t.deepEqual(await s.list('ann'), ['bob@localhost/phone', 'eve@localhost', 'spam@example.org']);
    await m.backend.close();
    const again = await m.reopen();
    const s2 = await BlockStore.open(again);
    t.deepEqual(await s2.list('ann'), ['bob@localhost/phone', 'eve@localhost', 'spam@example.org'], 'durable');
    await s2.clear('ann');
    t.deepEqual(await s2.list('ann'), []);
    t.deepEqual(await s2.list('bob'), ['ann@localhost'], 'another user\'s list is untouched');
    await again.close();
  });

  test.serial(`${kind}: block list: 1000 JIDs in one write, read back at once`, async (t) => {
    const { backend } = await make(kind);
    const s = await BlockStore.open(backend);
    const jids = Array.from({ length: 1000 }, (_, i) => `u${String(i).padStart(4, '0')}@example.org`);
    const w = s.add('ann', jids);
    t.is((await s.list('ann')).length, 1000, 'a read sees the queued write');
    await w;
    await backend.close();
  });

  test.serial(`${kind}: private XML: stored per user and namespace, replaced, cleared, all of a user deleted`, async (t) => {
    const m = await make(kind);
    const s = await PrivateStore.open(m.backend);
    const bm = '<storage xmlns="storage:bookmarks"><conference jid="den@conference.localhost"/></storage>';
    await s.put('ann', [{ ns: 'storage:bookmarks', text: bm }, { ns: 'x:notes', text: '<n xmlns="x:notes">é ✓</n>' }]);
    await s.put('bob', [{ ns: 'storage:bookmarks', text: '<storage xmlns="storage:bookmarks"/>' }]);
    t.is(await s.get('ann', 'storage:bookmarks'), bm);
    t.is(await s.get('ann', 'x:notes'), '<n xmlns="x:notes">é ✓</n>');
    t.is(await s.get('ann', 'x:none'), undefined);
    t.deepEqual([...await s.namespaces('ann')].sort(), ['storage:bookmarks', 'x:notes']);
    // A set replaces a namespace's content and clears another, in one write.
    await s.put('ann', [{ ns: 'storage:bookmarks', text: '<storage xmlns="storage:bookmarks"/>' }, { ns: 'x:notes', text: undefined }]);
    t.is(await s.get('ann', 'storage:bookmarks'), '<storage xmlns="storage:bookmarks"/>');
    t.deepEqual([...await s.namespaces('ann')], ['storage:bookmarks']);
    t.deepEqual((await s.users()).sort(), ['ann', 'bob']);
    await s.removeUser('ann');
    t.deepEqual([...await s.namespaces('ann')], []);
    t.deepEqual(await s.users(), ['bob']);
    await m.backend.close();
    const again = await m.reopen();
    t.is(await (await PrivateStore.open(again)).get('bob', 'storage:bookmarks'), '<storage xmlns="storage:bookmarks"/>', 'durable');
    await again.close();
  });

  test.serial(`${kind}: vCard: set, replaced, read by name, deleted`, async (t) => {
    const m = await make(kind);
    const s = await VcardStore.open(m.backend);
    t.is(await s.get('ann'), undefined);
    await s.set('ann', '<vCard xmlns="vcard-temp"><FN>Ann</FN></vCard>');
    await s.set('bob', '<vCard xmlns="vcard-temp"><FN>Bob</FN></vCard>');
    await s.set('ann', '<vCard xmlns="vcard-temp"><FN>Ann Smith</FN></vCard>');
    t.is(await s.get('ann'), '<vCard xmlns="vcard-temp"><FN>Ann Smith</FN></vCard>');
    t.deepEqual((await s.users()).sort(), ['ann', 'bob']);
    await s.remove('ann');
    t.is(await s.get('ann'), undefined);
    t.is(await s.get('bob'), '<vCard xmlns="vcard-temp"><FN>Bob</FN></vCard>');
    await m.backend.close();
    const again = await m.reopen();
    t.is(await (await VcardStore.open(again)).get('bob'), '<vCard xmlns="vcard-temp"><FN>Bob</FN></vCard>', 'durable');
    await again.close();
  });

  test.serial(`${kind}: upload slots: stored and read back, one claim per slot, done, deleted with the user`, async (t) => {
    const { backend } = await make(kind);
    const s = await UploadStore.open(backend);
    const now = Date.now();
    await s.add({ id: 'slot-a', username: 'ann', filename: 'photo é.jpg', size: 3_000_000_000, contentType: 'image/jpeg', createdAt: now });
    await s.add({ id: 'slot-b', username: 'ann', filename: 'notes.txt', size: 10, contentType: undefined, createdAt: now });
    await s.add({ id: 'slot-c', username: 'bob', filename: 'x', size: 5, contentType: undefined, createdAt: now });
    t.deepEqual(await s.get('slot-a'), { id: 'slot-a', username: 'ann', filename: 'photo é.jpg', size: 3_000_000_000, contentType: 'image/jpeg', createdAt: now, state: SlotState.Open, uploadedAt: undefined });
    t.is(await s.get('nope'), undefined);
    const claims = await Promise.all([s.claim('slot-a'), s.claim('slot-a')]);
    t.deepEqual(claims.sort(), [false, true], 'two PUTs at once: one gets the slot');
    await s.release('slot-a');
    t.is((await s.get('slot-a'))!.state, SlotState.Open, 'released after a failed PUT');
    t.true(await s.claim('slot-a'));
    t.true(await s.markDone('slot-a'));
    const done = (await s.get('slot-a'))!;
    t.is(done.state, SlotState.Done);
    t.true(done.uploadedAt! >= now);
    t.false(await s.claim('slot-a'), 'a stored file is never written again');
    t.deepEqual((await s.users()).sort(), ['ann', 'bob']);
    t.deepEqual((await s.deleteUser('ann')).sort(), ['slot-a', 'slot-b'], 'the ids whose files are to go');
    t.is(await s.get('slot-b'), undefined);
    t.false(await s.markDone('slot-b'), 'a PUT that ends after its account went learns it');
    t.deepEqual(await s.users(), ['bob']);
    await s.delete('slot-c');
    t.deepEqual(await s.users(), []);
    await backend.close();
  });

  test.serial(`${kind}: upload quota and expiry: what counts against the quota and what is stale`, async (t) => {
    const { backend } = await make(kind);
    const s = await UploadStore.open(backend);
    const now = Date.now();
    const hour = 3600_000;
    // Two files (slots made 10 h and 1 h ago, uploaded now), an open slot made now, one made 3 h ago.
    for (const [id, size, createdAt] of [['file-a', 100, now - 10 * hour], ['file-b', 20, now - hour], ['open-now', 3, now], ['open-old', 4000, now - 3 * hour]] as const) {
      await s.add({ id, username: 'ann', filename: id, size, contentType: undefined, createdAt });
    }
    await s.add({ id: 'bobs', username: 'bob', filename: 'b', size: 7, contentType: undefined, createdAt: now });
    for (const id of ['file-a', 'file-b']) { t.true(await s.claim(id)); t.true(await s.markDone(id)); }
    t.is(await s.used('nobody', now - 5 * hour, now - 2 * hour, true), 0, 'nothing stored: 0, not null');
    // Files do not expire: both files count, and the slot made in the last 2 h.
    t.is(await s.used('ann', now - 5 * hour, now - 2 * hour, false), 123);
    // Files expire after 5 h: both were uploaded now, so both count.
    t.is(await s.used('ann', now - 5 * hour, now - 2 * hour, true), 123);
    // ...and a window that ends after their upload: neither counts.
    t.is(await s.used('ann', Date.now() + 1, now - 2 * hour, true), 3);
    t.is(await s.used('ann', now - 5 * hour, now - 4 * hour, true), 4123, 'a slot made within the slot window counts');
    t.deepEqual((await s.stale(Date.now() + 1, now - 2 * hour, true)).sort(), ['file-a', 'file-b', 'open-old'], 'expired files and unused slots');
    t.deepEqual((await s.stale(Date.now() + 1, now - 2 * hour, false)).sort(), ['open-old'], 'files that never expire are never stale');
    t.deepEqual(await s.stale(now - 5 * hour, now - 4 * hour, true), []);
    await backend.close();
  });
}

// Existing SQLite data dirs: what they hold is kept by the modules' new migrations.

test.serial('sqlite: vcard adopts the table the core created, with its rows', async (t) => {
  const path = sqlitePath();
  const core = sqliteStorage(path); // the core's migrations created `vcard` before
  core.db.prepare('INSERT INTO vcard VALUES (?, ?)').run('ann', '<vCard xmlns="vcard-temp"><FN>Ann</FN></vCard>');
  const s = await VcardStore.open(new SqliteBackend(core));
  t.is(await s.get('ann'), '<vCard xmlns="vcard-temp"><FN>Ann</FN></vCard>');
  await s.set('bob', '<vCard xmlns="vcard-temp"/>');
  t.is(core.db.prepare('SELECT xml FROM vcard WHERE username = ?').pluck().get('bob'), '<vCard xmlns="vcard-temp"/>', 'one table, seen by both');
  core.close();
});

test.serial('sqlite: private XML stored before version 2 (with account_created) is kept', async (t) => {
  const path = sqlitePath();
  const old = sqliteStorage(path);
  const store = old.moduleStore('private', [PRIVATE_MIGRATIONS[0]!]);
  await store.write(() => store.db.prepare('INSERT INTO private_xml VALUES (?, ?, ?, ?)').run('ann', 'storage:bookmarks', '<storage xmlns="storage:bookmarks"/>', 1700000000000));
  old.close();
  const s = await PrivateStore.open(new SqliteBackend(sqliteStorage(path)));
  t.is(await s.get('ann', 'storage:bookmarks'), '<storage xmlns="storage:bookmarks"/>');
  await s.put('ann', [{ ns: 'x:new', text: '<a xmlns="x:new"/>' }]);
  t.deepEqual([...await s.namespaces('ann')].sort(), ['storage:bookmarks', 'x:new']);
  const db = new Database(path, { readonly: true });
  t.deepEqual((db.prepare('PRAGMA table_info(private_xml)').all() as { name: string }[]).map((c) => c.name), ['username', 'ns', 'xml']);
  db.close();
});
