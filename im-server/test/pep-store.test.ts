// The PEP store (XEP-0163) on both backends: the same tests on SQLite and on a real PostgreSQL.
// Nodes and their configuration per account, items newest-last by their sequence, the newest N,
// trimming to a node's limit, republishing an id, retract/purge/delete, per-owner node counts,
// the caps cache, an account's removal; and on SQLite, that an existing data dir's rows are kept.
import test from 'ava';
import { DEFAULT_CONFIG, type NodeConfig } from '../src/modules/pep/config.js';
import { PEP_MIGRATIONS, PepStore } from '../src/modules/pep/store.js';
import { SqliteBackend } from '../src/storage/sqlite-backend.js';
import { backends } from './backends.js';

const { make, sqlitePath, sqliteStorage } = backends(test);

const cfg = (over: Partial<NodeConfig>): NodeConfig => ({ ...DEFAULT_CONFIG, rosterGroups: [], ...over });
const ids = (items: { id: string }[]): string[] => items.map((i) => i.id);

for (const kind of ['sqlite', 'postgres'] as const) {
  test.serial(`${kind}: nodes: created, configured, listed by name per owner, counted, kept across a restart`, async (t) => {
    const m = await make(kind);
    const s = await PepStore.open(m.backend);
    t.is(await s.getNode('ann', 'urn:xmpp:avatar:data'), undefined);
    t.is(await s.countNodes('ann'), 0);
    await s.putNode('ann', 'urn:xmpp:avatar:metadata', cfg({ accessModel: 'open' }), 1);
    await s.putNode('ann', 'http://jabber.org/protocol/tune', cfg({}), 1);
    await s.putNode('bob', 'urn:xmpp:bookmarks:1', cfg({ accessModel: 'whitelist', maxItems: 'max', title: 'Bookmarks é' }), 100);
    t.deepEqual(await s.getNode('ann', 'urn:xmpp:avatar:metadata'), cfg({ accessModel: 'open' }));
    t.deepEqual((await s.nodes('ann')).map((n) => n.node), ['http://jabber.org/protocol/tune', 'urn:xmpp:avatar:metadata']);
    t.is(await s.countNodes('ann'), 2);
    t.is(await s.countNodes('bob'), 1);
    // Reconfiguring replaces the configuration (one node still).
    await s.putNode('ann', 'urn:xmpp:avatar:metadata', cfg({ accessModel: 'roster', rosterGroups: ['Friends'] }), 1);
    t.deepEqual(await s.getNode('ann', 'urn:xmpp:avatar:metadata'), cfg({ accessModel: 'roster', rosterGroups: ['Friends'] }));
    t.is(await s.countNodes('ann'), 2);
    await m.backend.close();
    const again = await m.reopen();
    const s2 = await PepStore.open(again);
    t.deepEqual(await s2.getNode('bob', 'urn:xmpp:bookmarks:1'), cfg({ accessModel: 'whitelist', maxItems: 'max', title: 'Bookmarks é' }), 'durable');
    t.is(await s2.countNodes('ann'), 2);
    await again.close();
  });

  test.serial(`${kind}: items: newest N oldest first, trimmed to the limit, a republished id becomes the newest`, async (t) => {
    const m = await make(kind);
    const s = await PepStore.open(m.backend);
    const node = 'urn:xmpp:bookmarks:1';
    await s.putNode('ann', node, cfg({ maxItems: 3 }), 3);
    await s.putNode('ann', 'other', cfg({}), 10);
    for (const id of ['a', 'b', 'c']) await s.publish('ann', node, id, `<p xmlns="x">${id}</p>`, 3);
    await s.publish('ann', 'other', 'z', '<p xmlns="x">z</p>', 10);
    t.deepEqual(ids(await s.latest('ann', node, 10)), ['a', 'b', 'c']);
    t.deepEqual(ids(await s.latest('ann', node, 2)), ['b', 'c'], 'the newest two, oldest first');
    t.deepEqual(await s.latest('ann', node, 0), []);
    // Republishing 'a' replaces its payload and makes it the newest.
    await s.publish('ann', node, 'a', '<p xmlns="x">a2 ✓</p>', 3);
    t.deepEqual(ids(await s.latest('ann', node, 10)), ['b', 'c', 'a']);
    t.is((await s.item('ann', node, 'a'))!.payload, '<p xmlns="x">a2 ✓</p>');
    // A fourth id: the oldest goes (limit 3).
    await s.publish('ann', node, 'd', '<p xmlns="x">d</p>', 3);
    t.deepEqual(ids(await s.latest('ann', node, 10)), ['c', 'a', 'd']);
    t.is(await s.item('ann', node, 'b'), undefined);
    // Items are kept in their sequence across publishes without waiting for each (one group commit).
    await Promise.all(['e', 'f', 'g'].map((id) => s.publish('ann', node, id, `<p xmlns="x">${id}</p>`, 3)));
    t.deepEqual(ids(await s.latest('ann', node, 10)), ['e', 'f', 'g']);
    // Lowering the node's limit trims at once.
    await s.putNode('ann', node, cfg({ maxItems: 1 }), 1);
    t.deepEqual(ids(await s.latest('ann', node, 10)), ['g']);
    t.deepEqual(ids(await s.latest('ann', 'other', 10)), ['z'], 'another node is untouched');
    await m.backend.close();
    const again = await m.reopen();
    const s2 = await PepStore.open(again);
    t.deepEqual(ids(await s2.latest('ann', node, 10)), ['g'], 'durable');
    await s2.publish('ann', node, 'h', '<p xmlns="x">h</p>', 2);
    t.deepEqual(ids(await s2.latest('ann', node, 10)), ['g', 'h'], 'the sequence goes on after a restart');
    await again.close();
  });

  test.serial(`${kind}: retract, purge and delete a node`, async (t) => {
    const { backend } = await make(kind);
    const s = await PepStore.open(backend);
    await s.putNode('ann', 'n', cfg({ maxItems: 10 }), 10);
    await s.putNode('ann', 'm', cfg({ maxItems: 10 }), 10);
    for (const id of ['a', 'b', 'c', 'd']) await s.publish('ann', 'n', id, `<p xmlns="x">${id}</p>`, 10);
    await s.publish('ann', 'm', 'a', '<p xmlns="x">m</p>', 10);
    await s.retract('ann', 'n', ['b', 'd']);
    t.deepEqual(ids(await s.latest('ann', 'n', 10)), ['a', 'c']);
    t.is((await s.item('ann', 'm', 'a'))!.payload, '<p xmlns="x">m</p>', 'same id in another node stays');
    await s.purge('ann', 'n');
    t.deepEqual(await s.latest('ann', 'n', 10), []);
    t.truthy(await s.getNode('ann', 'n'), 'a purged node stays');
    await s.publish('ann', 'n', 'x', '<p xmlns="x">x</p>', 10);
    await s.deleteNode('ann', 'n');
    t.is(await s.getNode('ann', 'n'), undefined);
    t.deepEqual(await s.latest('ann', 'n', 10), [], 'its items went with it');
    t.is(await s.countNodes('ann'), 1);
    // Created again: empty.
    await s.putNode('ann', 'n', cfg({}), 1);
    t.deepEqual(await s.latest('ann', 'n', 10), []);
    await backend.close();
  });

  test.serial(`${kind}: removing an account deletes its nodes and items only`, async (t) => {
    const { backend } = await make(kind);
    const s = await PepStore.open(backend);
    for (const owner of ['ann', 'bob']) {
      await s.putNode(owner, 'n', cfg({}), 5);
      await s.publish(owner, 'n', 'i', `<p xmlns="x">${owner}</p>`, 5);
    }
    await s.deleteUser('ann');
    t.is(await s.countNodes('ann'), 0);
    t.deepEqual(await s.nodes('ann'), []);
    t.is(await s.item('ann', 'n', 'i'), undefined);
    t.is(await s.countNodes('bob'), 1);
    t.is((await s.item('bob', 'n', 'i'))!.payload, '<p xmlns="x">bob</p>');
    // A name registered again starts empty, and its items start a new sequence.
    await s.putNode('ann', 'n', cfg({}), 5);
    await s.publish('ann', 'n', 'j', '<p xmlns="x">new</p>', 5);
    t.deepEqual(ids(await s.latest('ann', 'n', 5)), ['j']);
    await backend.close();
  });

  test.serial(`${kind}: caps cache: stored, replaced, read by hash`, async (t) => {
    const m = await make(kind);
    const s = await PepStore.open(m.backend);
    t.is(await s.caps('sha-1 abc='), undefined);
    await s.putCaps('sha-1 abc=', ['http://jabber.org/protocol/tune+notify', 'urn:xmpp:avatar:metadata+notify']);
    await s.putCaps('sha-1 abc=', ['http://jabber.org/protocol/tune+notify']);
    t.deepEqual(await s.caps('sha-1 abc='), ['http://jabber.org/protocol/tune+notify']);
    await m.backend.close();
    const again = await m.reopen();
    t.deepEqual(await (await PepStore.open(again)).caps('sha-1 abc='), ['http://jabber.org/protocol/tune+notify'], 'durable');
    await again.close();
  });
}

test.serial('sqlite: nodes and items of an existing data dir (the old SQLite-only store) are kept, in their order', async (t) => {
  const path = sqlitePath();
  const old = sqliteStorage(path);
  const store = old.moduleStore('pep', [...PEP_MIGRATIONS]);
  // The old store numbered items with one counter for all nodes.
  await store.write(() => {
    store.db.prepare('INSERT INTO pep_nodes VALUES (?, ?, ?)').run('ann', 'n', JSON.stringify(cfg({ maxItems: 5 })));
    const item = store.db.prepare('INSERT INTO pep_items VALUES (?, ?, ?, ?, ?)');
    item.run('ann', 'n', 'old1', 7, '<p xmlns="x">1</p>');
    item.run('bob', 'm', 'other', 8, '<p xmlns="x">b</p>');
    item.run('ann', 'n', 'old2', 9, '<p xmlns="x">2</p>');
    store.db.prepare('INSERT INTO pep_caps VALUES (?, ?)').run('sha-1 v=', '["a+notify"]');
  });
  old.close();
  const backend = new SqliteBackend(sqliteStorage(path));
  const s = await PepStore.open(backend);
  t.deepEqual(await s.getNode('ann', 'n'), cfg({ maxItems: 5 }));
  t.deepEqual(ids(await s.latest('ann', 'n', 5)), ['old1', 'old2']);
  await s.publish('ann', 'n', 'new', '<p xmlns="x">3</p>', 5);
  await s.publish('ann', 'n', 'old1', '<p xmlns="x">1b</p>', 5);
  t.deepEqual(ids(await s.latest('ann', 'n', 5)), ['old2', 'new', 'old1']);
  t.deepEqual(await s.caps('sha-1 v='), ['a+notify']);
  await backend.close();
});
