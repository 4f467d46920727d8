import test from 'ava';
import { sql } from 'kysely';
import { MIGRATIONS } from '../src/modules/mam/store.js';
import { testBackend } from './test-db.js';
import { xml } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';
import { NS_MAM, NS_SID, chat, got, iqError, mamQuery } from './mam-helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer(); });
test.after.always(async () => { await server?.stop(); });

const online = async (username: string): Promise<XmppClient> => {
  const c = await connect(server, { username, password: 'pw', register: true });
  await c.send(xml('presence'));
  return c;
};
const bodies = (p: { items: { body: string | undefined }[] }): (string | undefined)[] => p.items.map((i) => i.body);

test('a conversation is in both archives; the delivered stanza-id is the archive id; only the owner may query', async (t) => {
  const a = uniq('ann'), b = uniq('bob');
  const ann = await online(a), bob = await online(b);
  await ann.send(xml('message', { to: `${b}@localhost`, type: 'chat', id: 'm1' }, xml('body', {}, 'hello bob'), xml('origin-id', { xmlns: 'urn:xmpp:sid:0', id: 'orig-1' }),
    xml('stanza-id', { xmlns: NS_SID, by: `${b}@localhost`, id: 'forged' })));
  const m1 = await got(bob, 'hello bob');
  const sids = m1.getChildren('stanza-id', NS_SID);
  t.is(sids.length, 1, 'the forged stanza-id was stripped');
  t.is(sids[0]!.attrs.by, `${b}@localhost`);
  t.is(m1.getChild('origin-id', NS_SID)?.attrs.id, 'orig-1');
  await bob.send(chat(`${a}@localhost/${ann.jid!.resource}`, 'hi ann'));
  await got(ann, 'hi ann');
  await ann.send(xml('message', { to: `${b}@localhost`, type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await ann.send(xml('message', { to: `${b}@localhost`, type: 'chat', id: 'omemo' }, xml('encrypted', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('payload', {}, 'AAAA'))));
  await waitFor(bob, (s) => s.attrs.id === 'omemo', 'the encrypted message');

  const bobs = await mamQuery(bob, { with: `${a}@localhost` });
  t.deepEqual(bodies(bobs), ['hello bob', 'hi ann', undefined]);
  t.truthy(bobs.items[2]!.message.getChild('encrypted', 'eu.siacs.conversations.axolotl'), 'an encrypted payload without body is archived');
  t.is(bobs.items[0]!.id, sids[0]!.attrs.id ?? 'none', 'stanza-id = archive UID');
  t.is(bobs.items[0]!.message.attrs.from, `${a}@localhost/${ann.jid!.resource}`);
  t.true(bobs.complete);
  t.is(bobs.count, 3);
  const anns = await mamQuery(ann);
  t.deepEqual(bodies(anns), ['hello bob', 'hi ann', undefined], 'sender archive has them all, no chat state');
  t.truthy(anns.items[0]!.stamp);
  // 'with' a full JID matches only that resource.
  t.deepEqual(bodies(await mamQuery(bob, { with: `${a}@localhost/elsewhere` })), []);
  t.deepEqual(bodies(await mamQuery(ann, { with: `${b}@localhost/${bob.jid!.resource}` })), ['hi ann']);

  t.is(await iqError(ann.iqCaller.request(xml('iq', { type: 'set', to: `${b}@localhost` }, xml('query', { xmlns: NS_MAM })))), 'forbidden');
  const info = await ann.iqCaller.request(xml('iq', { type: 'get', to: `${a}@localhost` }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  t.true(features.includes(NS_MAM) && features.includes(NS_SID));
  await Promise.all([stopClient(ann), stopClient(bob)]);
});

test('paging 25 messages by 10, forward and backward; filters; errors', async (t) => {
  const a = uniq('cat'), b = uniq('dan');
  const cat = await online(a), dan = await online(b);
  const start = new Date().toISOString();
  for (let i = 1; i <= 25; i++) await cat.send(chat(`${b}@localhost`, `n${i}`));
  await got(dan, 'n25');
  const want = Array.from({ length: 25 }, (_, i) => `n${i + 1}`);

  const fwd: (string | undefined)[] = [];
  let page = await mamQuery(dan, { max: 10 });
  t.is(page.count, 25);
  t.is(page.firstIndex, 0);
  const completes = [page.complete];
  fwd.push(...bodies(page));
  while (!page.complete) {
    page = await mamQuery(dan, { max: 10, after: page.last! });
    completes.push(page.complete);
    fwd.push(...bodies(page));
  }
  t.deepEqual(fwd, want);
  t.deepEqual(completes, [false, false, true]);

  const back: (string | undefined)[][] = [];
  page = await mamQuery(dan, { max: 10, before: '' });
  t.is(page.firstIndex, 15);
  back.push(bodies(page));
  while (!page.complete) {
    page = await mamQuery(dan, { max: 10, before: page.first! });
    back.push(bodies(page));
  }
  t.deepEqual(back, [want.slice(15), want.slice(5, 15), want.slice(0, 5)]);

  // Extended: after-id/before-id, ids, flip-page.
  const all = await mamQuery(dan);
  const ids = all.items.map((i) => i.id);
  t.deepEqual(bodies(await mamQuery(dan, { fields: { 'after-id': ids[2]!, 'before-id': ids[6]! } })), ['n4', 'n5', 'n6']);
  t.deepEqual(bodies(await mamQuery(dan, { fields: { ids: [ids[9]!, ids[0]!] } })), ['n1', 'n10']);
  t.deepEqual(bodies(await mamQuery(dan, { max: 3, before: '', flip: true })), ['n25', 'n24', 'n23']);
  const md = (await dan.iqCaller.request(xml('iq', { type: 'get' }, xml('metadata', { xmlns: NS_MAM })))).getChild('metadata', NS_MAM)!;
  t.deepEqual([md.getChild('start')?.attrs.id, md.getChild('end')?.attrs.id], [ids[0], ids[24]]);
  const form = (await dan.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_MAM })))).getChild('query', NS_MAM)!.getChild('x', 'jabber:x:data')!;
  t.deepEqual(form.getChildren('field').map((f) => f.attrs.var), ['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']);

  // Time filters.
  t.is((await mamQuery(dan, { start })).items.length, 25);
  t.is((await mamQuery(dan, { end: start, start: '2000-01-01T00:00:00Z' })).items.length, 0);
  t.is((await mamQuery(dan, { start: new Date(Date.now() + 60_000).toISOString() })).items.length, 0);

  // Errors.
  const q = (x: Parameters<typeof mamQuery>[1]): Promise<string> => iqError(mamQuery(dan, x));
  t.is(await q({ after: 'no-such-id' }), 'item-not-found');
  t.is(await q({ before: 'no-such-id' }), 'item-not-found');
  t.is(await q({ fields: { 'after-id': 'nope' } }), 'item-not-found');
  t.is(await q({ start: 'yesterday' }), 'bad-request');
  t.is(await q({ with: 'a@b@c' }), 'bad-request');
  t.is(await q({ fields: { 'urn:example:fulltext': 'x' } }), 'feature-not-implemented');
  await Promise.all([stopClient(cat), stopClient(dan)]);
});

test('a message to an offline user is archived, and the offline copy carries its stanza-id', async (t) => {
  const a = uniq('eve'), b = uniq('fay');
  await stopClient(await connect(server, { username: b, password: 'pw', register: true }));
  const eve = await online(a);
  await eve.send(chat(`${b}@localhost`, 'while you were out'));
  await eve.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  const fay = await connect(server, { username: b, password: 'pw' });
  await fay.send(xml('presence'));
  const m = await got(fay, 'while you were out');
  const arch = await mamQuery(fay);
  t.deepEqual(bodies(arch), ['while you were out']);
  t.is(m.getChild('stanza-id', NS_SID)?.attrs.id, arch.items[0]!.id);
  await Promise.all([stopClient(eve), stopClient(fay)]);
});

test('preferences: never archives nothing for that user; get returns what was set', async (t) => {
  const a = uniq('gil'), b = uniq('hue');
  const gil = await online(a), hue = await online(b);
  const set = await hue.iqCaller.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'never' }, xml('always'), xml('never'))));
  t.is(set.getChild('prefs', NS_MAM)?.attrs.default, 'never');
  const got1 = await hue.iqCaller.request(xml('iq', { type: 'get' }, xml('prefs', { xmlns: NS_MAM })));
  t.is(got1.getChild('prefs', NS_MAM)?.attrs.default, 'never');
  await gil.send(chat(`${b}@localhost`, 'not kept'));
  const m = await got(hue, 'not kept');
  t.falsy(m.getChild('stanza-id', NS_SID), 'not archived, so no stanza-id');
  t.deepEqual(bodies(await mamQuery(hue)), []);
  t.deepEqual(bodies(await mamQuery(gil)), ['not kept'], 'the sender\'s archive follows the sender\'s prefs');
  // An 'always' exception wins over default never.
  await hue.iqCaller.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'never' }, xml('always', {}, xml('jid', {}, `${a}@localhost`)))));
  await gil.send(chat(`${b}@localhost`, 'kept'));
  await got(hue, 'kept');
  t.deepEqual(bodies(await mamQuery(hue)), ['kept']);
  t.is(await iqError(hue.iqCaller.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'sometimes' })))), 'bad-request');
  await Promise.all([stopClient(gil), stopClient(hue)]);
});

test('the archive survives a restart; items older than retentionDays are deleted at start; pages are capped', async (t) => {
  const srv = await startServer({ config: { mam: { maxPageSize: 2 } } });
  try {
    const a = uniq('ida'), b = uniq('jay');
    const ida = await connect(srv, { username: a, password: 'pw', register: true });
    const jay = await connect(srv, { username: b, password: 'pw', register: true });
    await jay.send(xml('presence'));
    for (const body of ['old one', 'old two', 'recent']) await ida.send(chat(`${b}@localhost`, body));
    await got(jay, 'recent');
    const capped = await mamQuery(jay, { max: 10 });
    t.deepEqual([bodies(capped), capped.complete, capped.count], [['old one', 'old two'], false, 3], 'mam.maxPageSize caps max');
    await Promise.all([stopClient(ida), stopClient(jay)]);
    t.is(await srv.stop(), 0);
    // Age two of them by 40 days, as if archived then.
    const backend = await testBackend(srv.dataDir);
    const db = await backend.open<{ mam_archive: { stamp: number; stanza: string } }>('mam', MIGRATIONS);
    await db.write(db.q.updateTable('mam_archive').set({ stamp: sql<number>`stamp - ${40 * 86400000}` }).where('stanza', 'like', '%old %'));
    await backend.close();
    const again = await startServer({ dataDir: srv.dataDir, config: { mam: { retentionDays: 30 } } });
    try {
      const jay2 = await connect(again, { username: b, password: 'pw' });
      t.deepEqual(bodies(await mamQuery(jay2)), ['recent']);
      const ida2 = await connect(again, { username: a, password: 'pw' });
      t.deepEqual(bodies(await mamQuery(ida2)), ['recent']);
      await Promise.all([stopClient(ida2), stopClient(jay2)]);
    } finally { await again.stop(); }
  } finally { await srv.stop(); }
});

test('removing an account deletes its archive', async (t) => {
  const a = uniq('kay'), b = uniq('lou');
  const kay = await online(a), lou = await online(b);
  await kay.send(chat(`${b}@localhost`, 'bye'));
  await got(lou, 'bye');
  await lou.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
  await stopClient(lou);
  const lou2 = await connect(server, { username: b, password: 'pw2', register: true });
  t.deepEqual(bodies(await mamQuery(lou2)), []);
  t.deepEqual(bodies(await mamQuery(kay)), ['bye'], 'the other party keeps its copy');
  await Promise.all([stopClient(kay), stopClient(lou2)]);
});
