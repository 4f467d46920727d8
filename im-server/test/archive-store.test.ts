// The message archive (XEP-0313) and room (XEP-0045) stores on both backends, SQLite and a real
// PostgreSQL: the same tests, one loop. What a user would notice: which messages a query lists
// and in what order, paging, what expiry and account removal delete, preferences, and what a
// persistent room keeps across a restart (affiliations, subject, the last N messages).
import test from 'ava';
import { ArchiveStore, MIGRATIONS as MAM_MIGRATIONS, type Tables as MamTables } from '../src/modules/mam/store.js';
import { MIGRATIONS as MUC_MIGRATIONS, MucStore, type Tables as MucTables } from '../src/modules/muc/store.js';
import type { Backend } from '../src/storage/store.js';
import { backends } from './backends.js';

const { make } = backends(test);

const archive = async (b: Backend): Promise<ArchiveStore> => ArchiveStore.open(await b.open<MamTables>('mam', MAM_MIGRATIONS), (what, err) => { throw new Error(`${what}: ${String(err)}`); });
const rooms = async (b: Backend): Promise<MucStore> => new MucStore(await b.open<MucTables>('muc', MUC_MIGRATIONS), (what, err) => { throw new Error(`${what}: ${String(err)}`); });

const ANN = 'ann@localhost';
const T0 = Date.UTC(2026, 0, 1);
const MIN = 60_000;

/** Ann's archive: 10 messages, one a minute, alternately with bob (phone, then laptop) and cid. */
function fill(s: ArchiveStore): string[] {
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) {
    const bob = i % 2 === 0;
    const full = bob ? (i < 5 ? 'bob@localhost/phone' : 'bob@localhost/laptop') : 'cid@localhost/x';
    ids.push(s.append(ANN, full, bob ? 'bob@localhost' : 'cid@localhost', `<message><body>m${i}</body></message>`, T0 + i * MIN));
  }
  s.append('bob@localhost', 'ann@localhost/x', ANN, '<message><body>bob own</body></message>', T0);
  return ids;
}
const bodies = (items: { stanza: string }[]): string[] => items.map((i) => /<body>(.*?)<\/body>/.exec(i.stanza)![1]!);

for (const kind of ['sqlite', 'postgres'] as const) {
  test.serial(`${kind}: archive queries by with, start and end, with forward, after, before and last-page paging`, async (t) => {
    const { backend } = await make(kind);
    const s = await archive(backend);
    const ids = fill(s);
    t.is(new Set(ids).size, 10, 'every message has its own id, known at once');

    const all = await s.page(ANN, {}, 100, false);
    t.deepEqual(bodies(all.items), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9'], 'in archive order, and only ann\'s');
    t.deepEqual(all.items.map((i) => i.id), ids);
    t.deepEqual(all.items.map((i) => i.stamp), ids.map((_, i) => T0 + i * MIN), 'timestamps come back as numbers');
    t.true(all.complete);
    t.is(all.count, 10);

    t.deepEqual(bodies((await s.page(ANN, { with: { jid: 'bob@localhost', full: false } }, 100, false)).items), ['m0', 'm2', 'm4', 'm6', 'm8']);
    t.deepEqual(bodies((await s.page(ANN, { with: { jid: 'bob@localhost/laptop', full: true } }, 100, false)).items), ['m6', 'm8'], 'a full JID matches that resource only');
    t.deepEqual(bodies((await s.page(ANN, { start: T0 + 3 * MIN, end: T0 + 5 * MIN }, 100, false)).items), ['m3', 'm4', 'm5'], 'start and end are inclusive');
    t.deepEqual(bodies((await s.page(ANN, { ids: [ids[7]!, ids[2]!] }, 100, false)).items), ['m2', 'm7']);
    t.deepEqual((await s.page(ANN, { ids: [] }, 100, false)).items, []);

    // Forward paging by 4: pages of 4, 4, 2; the last says it is complete.
    const p1 = await s.page(ANN, {}, 4, false);
    t.deepEqual(bodies(p1.items), ['m0', 'm1', 'm2', 'm3']);
    t.false(p1.complete);
    t.is(p1.firstIndex, 0);
    const p2 = await s.page(ANN, { afterSeq: (await s.seqOf(ANN, p1.items[3]!.id))! }, 4, false);
    t.deepEqual(bodies(p2.items), ['m4', 'm5', 'm6', 'm7']);
    t.is(p2.firstIndex, 4);
    t.is(p2.count, 10, 'count is of the whole filtered set');
    const p3 = await s.page(ANN, { afterSeq: p2.items[3]!.seq }, 4, false);
    t.deepEqual(bodies(p3.items), ['m8', 'm9']);
    t.true(p3.complete);

    // The last page, then backward from it; with a filter.
    const last = await s.page(ANN, {}, 3, true);
    t.deepEqual(bodies(last.items), ['m7', 'm8', 'm9']);
    t.is(last.firstIndex, 7);
    t.false(last.complete);
    const before = await s.page(ANN, { beforeSeq: last.items[0]!.seq }, 3, true);
    t.deepEqual(bodies(before.items), ['m4', 'm5', 'm6']);
    const bobLast = await s.page(ANN, { with: { jid: 'bob@localhost', full: false }, beforeSeq: last.items[2]!.seq }, 2, true);
    t.deepEqual(bodies(bobLast.items), ['m6', 'm8']);
    t.is(bobLast.firstIndex, 3);
    t.is(bobLast.count, 5);
    const between = await s.page(ANN, { afterSeq: all.items[2]!.seq, beforeSeq: all.items[6]!.seq }, 100, false);
    t.deepEqual(bodies(between.items), ['m3', 'm4', 'm5']);
    t.deepEqual(bodies((await s.page(ANN, {}, 3, false, 5)).items), ['m5', 'm6', 'm7'], 'RSM index skips ahead');

    // Ids: looked up in their own archive only; the oldest and newest for metadata.
    t.is(await s.seqOf(ANN, 'nope'), undefined);
    t.is(await s.seqOf('bob@localhost', ids[0]!), undefined, 'another archive\'s id is not found');
    const found = await s.seqsOf(ANN, [ids[1]!, 'nope', ids[1]!, ids[9]!]);
    t.deepEqual([...found.keys()].sort(), [ids[1]!, ids[9]!].sort());
    const ends = await s.ends(ANN);
    t.deepEqual(ends, { start: { id: ids[0]!, stamp: T0 }, end: { id: ids[9]!, stamp: T0 + 9 * MIN } });
    t.is(await s.ends('nobody@localhost'), undefined);
    t.deepEqual(await s.page('nobody@localhost', {}, 10, false), { items: [], complete: true, count: 0, firstIndex: 0 });
    await backend.close();
  });

  test.serial(`${kind}: expiry deletes old items of every archive; removing an owner deletes its archive and preferences only`, async (t) => {
    const { backend } = await make(kind);
    const s = await archive(backend);
    const ids = fill(s);
    t.is(await s.expire(T0 + 4 * MIN), 5, 'm0..m3 of ann and bob\'s one item');
    t.deepEqual(bodies((await s.page(ANN, {}, 100, false)).items), ['m4', 'm5', 'm6', 'm7', 'm8', 'm9']);
    t.is((await s.page('bob@localhost', {}, 100, false)).count, 0);
    t.is(await s.seqOf(ANN, ids[0]!), undefined, 'an expired id is no longer found');

    await s.setPrefs(ANN, { default: 'never', always: [], never: [] });
    await s.setPrefs('bob@localhost', { default: 'always', always: [], never: [] });
    s.append('bob@localhost', 'ann@localhost/x', ANN, '<message><body>kept</body></message>');
    await s.deleteOwner(ANN);
    t.is((await s.page(ANN, {}, 100, false)).count, 0);
    t.is(s.getPrefs(ANN), undefined);
    t.deepEqual(bodies((await s.page('bob@localhost', {}, 100, false)).items), ['kept']);
    t.is((await archive(backend)).getPrefs(ANN), undefined, 'the preferences are gone from the database too');
    t.is((await archive(backend)).getPrefs('bob@localhost')?.default, 'always');
    await backend.close();
  });

  test.serial(`${kind}: preferences are stored, replaced, and loaded again after a restart`, async (t) => {
    const m = await make(kind);
    const s = await archive(m.backend);
    t.is(s.getPrefs(ANN), undefined, 'none until set (the server default applies)');
    await s.setPrefs(ANN, { default: 'roster', always: ['bob@localhost'], never: ['eve@localhost', 'mal@localhost'] });
    t.deepEqual(s.getPrefs(ANN), { default: 'roster', always: ['bob@localhost'], never: ['eve@localhost', 'mal@localhost'] });
    await s.setPrefs(ANN, { default: 'always', always: [], never: ['eve@localhost'] });
    s.append(ANN, 'bob@localhost/x', 'bob@localhost', '<message><body>durable</body></message>');
    await m.backend.barrier();
    await m.backend.close();

    const again = await m.reopen();
    const s2 = await archive(again);
    t.deepEqual(s2.getPrefs(ANN), { default: 'always', always: [], never: ['eve@localhost'] }, 'the second setting replaced the first');
    t.deepEqual(bodies((await s2.page(ANN, {}, 10, false)).items), ['durable']);
    await again.close();
  });

  test.serial(`${kind}: persistent rooms keep config, subject, affiliations and their last messages across a restart`, async (t) => {
    const m = await make(kind);
    const st = await rooms(m.backend);
    const den = 'den@conference.localhost', attic = 'attic@conference.localhost', gone = 'gone@conference.localhost';
    st.saveRoom({ jid: den, config: '{"persistent":true}', subject: undefined });
    st.setAffiliation(den, 'ann@localhost', 'owner');
    st.setAffiliation(den, 'bob@localhost', 'member');
    st.setAffiliation(den, 'bob@localhost', 'admin');
    st.setAffiliation(den, 'eve@localhost', 'outcast');
    st.setAffiliation(den, 'eve@localhost', 'none');
    for (let i = 0; i < 8; i++) st.addHistory(den, T0 + i, `<message><body>d${i}</body></message>`, 5);
    st.saveRoom({ jid: den, config: '{"persistent":true,"name":"Den"}', subject: { text: 'Welcome', nick: 'ann', stamp: T0 } });

    // A room that became persistent with what it had; one destroyed.
    st.saveAll({ jid: attic, config: '{}', subject: undefined }, [['cid@localhost', 'owner']], [{ stamp: T0, stanza: '<message><body>a0</body></message>' }, { stamp: T0 + 1, stanza: '<message><body>a1</body></message>' }]);
    st.saveAll({ jid: gone, config: '{}', subject: undefined }, [['cid@localhost', 'owner']], [{ stamp: T0, stanza: '<message><body>g</body></message>' }]);
    st.deleteRoom(gone);

    const loaded = await st.loadAll(3);
    t.deepEqual(loaded.map((r) => r.jid), [attic, den]);
    const d = loaded[1]!;
    t.is(d.config, '{"persistent":true,"name":"Den"}', 'the room was updated, not duplicated');
    t.deepEqual(d.subject, { text: 'Welcome', nick: 'ann', stamp: T0 });
    t.deepEqual(new Map(d.affiliations), new Map([['ann@localhost', 'owner'], ['bob@localhost', 'admin']]), 'an affiliation is replaced; none removes it');
    t.deepEqual(bodies(d.history), ['d5', 'd6', 'd7'], 'the newest maxHistory, oldest first');
    t.deepEqual(d.history.map((h) => h.stamp), [T0 + 5, T0 + 6, T0 + 7]);
    t.deepEqual(loaded[0], { jid: attic, config: '{}', subject: undefined, affiliations: [['cid@localhost', 'owner']], history: [{ stamp: T0, stanza: '<message><body>a0</body></message>' }, { stamp: T0 + 1, stanza: '<message><body>a1</body></message>' }] });
    t.deepEqual(bodies((await st.loadAll(100))[1]!.history), ['d3', 'd4', 'd5', 'd6', 'd7'], 'each room keeps only its history length');
    t.deepEqual((await st.loadAll(0))[1]!.history, []);

    // saveAll again replaces what was there; clearing history empties it.
    st.saveAll({ jid: attic, config: '{"v":2}', subject: undefined }, [['dan@localhost', 'owner']], []);
    st.clearHistory(den);
    await m.backend.barrier();
    await m.backend.close();

    const again = await m.reopen();
    const back = await (await rooms(again)).loadAll(10);
    t.deepEqual(back.map((r) => [r.jid, r.config, r.affiliations, r.history.length]), [
      [attic, '{"v":2}', [['dan@localhost', 'owner']], 0],
      [den, '{"persistent":true,"name":"Den"}', [['ann@localhost', 'owner'], ['bob@localhost', 'admin']], 0],
    ]);
    await again.close();
  });
}
