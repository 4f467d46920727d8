// XEP-0049 private XML storage: what a client keeps there (XEP-0048 bookmarks) is there from its
// other sessions and after a restart, is the owner's alone, and goes with the account.
import test from 'ava';
import { xml, type Client, type Element } from '@xmpp/client';
import { admin, connect, startServer, stopClient, uniq, type XmppClient } from './helpers.js';

const NS = 'jabber:iq:private';
const BOOKMARKS = 'storage:bookmarks';

const bookmarks = (...rooms: string[]): Element => xml('storage', { xmlns: BOOKMARKS },
  ...rooms.map((jid) => xml('conference', { jid, autojoin: 'true', name: jid.split('@')[0] }, xml('nick', {}, 'me'))));

const store = (c: Client, ...items: Element[]): Promise<Element> => c.iqCaller.set(xml('query', { xmlns: NS }, ...items));
/** The elements stored under the asked element's namespace. */
async function fetch(c: Client, asked: Element, to?: string): Promise<Element[]> {
  const q = await c.iqCaller.get(xml('query', { xmlns: NS }, asked), to);
  return q.children.filter((c): c is Element => typeof c !== 'string');
}
const rooms = (els: Element[]): string[] => els.flatMap((s) => s.getChildren('conference').map((c) => c.attrs.jid as string));
/** The error condition of a refused request. */
async function refused(p: Promise<unknown>): Promise<string> {
  try { await p; return 'ok'; } catch (e) { return (e as { condition?: string }).condition ?? String(e); }
}

test('private storage: bookmarks set in one session are read in another and after a restart; only by their owner', async (t) => {
  let s = await startServer({ config: { privateStorage: { maxItemSize: 2048, maxItemsPerUser: 3 } } });
  const user = uniq('priv');
  const clients: XmppClient[] = [];
  try {
    const a = await connect(s, { username: user, password: 'pw', register: true, resource: 'laptop' });
    const b = await connect(s, { username: user, password: 'pw', resource: 'phone' });
    const other = await connect(s, { username: uniq('other'), password: 'pw', register: true });
    clients.push(a, b, other);
    const info = await a.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'localhost');
    t.true(info.getChildren('feature').some((f) => f.attrs.var === NS));

    // Nothing stored yet: the empty element comes back.
    const none = await fetch(b, xml('storage', { xmlns: BOOKMARKS }));
    t.is(none.length, 1);
    t.true(none[0]!.is('storage', BOOKMARKS) && none[0]!.children.length === 0);

    await store(a, bookmarks('den@conference.localhost', 'cafe@conference.localhost'), xml('prefs', { xmlns: 'x:prefs' }, xml('theme', {}, 'dark')));
    t.deepEqual(rooms(await fetch(b, xml('storage', { xmlns: BOOKMARKS }))), ['den@conference.localhost', 'cafe@conference.localhost']);
    t.is((await fetch(b, xml('prefs', { xmlns: 'x:prefs' })))[0]!.getChildText('theme'), 'dark');
    // Addressed to the own bare JID explicitly: the same.
    t.deepEqual(rooms(await fetch(b, xml('storage', { xmlns: BOOKMARKS }), `${user}@localhost`)), ['den@conference.localhost', 'cafe@conference.localhost']);
    // A set replaces what its namespace held; the other namespace is untouched.
    await store(b, bookmarks('den@conference.localhost'));
    t.deepEqual(rooms(await fetch(a, xml('storage', { xmlns: BOOKMARKS }))), ['den@conference.localhost']);
    t.is((await fetch(a, xml('prefs', { xmlns: 'x:prefs' })))[0]!.getChildText('theme'), 'dark');

    // Someone else's storage: forbidden, for reading and writing, and nothing changes.
    t.is(await refused(fetch(other, xml('storage', { xmlns: BOOKMARKS }), `${user}@localhost`)), 'forbidden');
    t.is(await refused(other.iqCaller.set(xml('query', { xmlns: NS }, bookmarks('evil@conference.localhost')), `${user}@localhost`)), 'forbidden');
    t.deepEqual(rooms(await fetch(a, xml('storage', { xmlns: BOOKMARKS }))), ['den@conference.localhost']);
    t.deepEqual(rooms(await fetch(other, xml('storage', { xmlns: BOOKMARKS }))), [], 'each account has its own');

    // Reserved namespaces, empty requests, limits.
    t.is(await refused(store(a, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'x')))), 'not-acceptable');
    t.is(await refused(store(a, xml('query', { xmlns: 'jabber:iq:roster' }))), 'not-acceptable');
    t.is(await refused(fetch(a, xml('query', { xmlns: 'jabber:iq:roster' }))), 'not-acceptable');
    t.is(await refused(a.iqCaller.set(xml('query', { xmlns: NS }))), 'not-acceptable');
    t.is(await refused(a.iqCaller.get(xml('query', { xmlns: NS }))), 'bad-request');
    t.is(await refused(store(a, xml('big', { xmlns: 'x:big' }, 'x'.repeat(2100)))), 'policy-violation');
    t.is(await refused(store(a, xml('n3', { xmlns: 'x:n3' }, '3'))), 'ok');
    t.is(await refused(store(a, xml('n4', { xmlns: 'x:n4' }, '4'))), 'policy-violation', 'at most 3 namespaces');
    // Storing the empty element clears a namespace and frees its place.
    await store(a, xml('n3', { xmlns: 'x:n3' }));
    t.is((await fetch(a, xml('n3', { xmlns: 'x:n3' })))[0]!.children.length, 0);
    t.is(await refused(store(a, xml('n4', { xmlns: 'x:n4' }, '4'))), 'ok');

    for (const c of clients.splice(0)) await stopClient(c);
    t.is(await s.stop(), 0);
    s = await startServer({ dataDir: s.dataDir });
    const again = await connect(s, { username: user, password: 'pw' });
    clients.push(again);
    t.deepEqual(rooms(await fetch(again, xml('storage', { xmlns: BOOKMARKS }))), ['den@conference.localhost'], 'stored durably');
    t.is((await fetch(again, xml('n4', { xmlns: 'x:n4' })))[0]!.text(), '4');
  } finally {
    for (const c of clients) await stopClient(c);
    await s.stop();
  }
});

test('private storage goes with the account (in-band removal): the name registered again starts empty', async (t) => {
  const s = await startServer();
  const user = uniq('gone');
  try {
    const a = await connect(s, { username: user, password: 'pw', register: true });
    await store(a, bookmarks('den@conference.localhost'));
    const closed = new Promise<void>((resolve) => a.on('error', () => resolve()));
    await a.iqCaller.set(xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    await closed;
    await stopClient(a);
    const b = await connect(s, { username: user, password: 'pw2', register: true });
    t.deepEqual(rooms(await fetch(b, xml('storage', { xmlns: BOOKMARKS }))), []);
    await stopClient(b);
  } finally { await s.stop(); }
});

/** `pi-im-admin deluser`, as a site's admin runs it. */
async function adminDeluser(dataDir: string, user: string): Promise<void> {
  await admin(dataDir, 'deluser', user);
}

test('private storage of an account removed by admin deluser while the server was down is deleted at the next start', async (t) => {
  let s = await startServer();
  const user = uniq('gone');
  try {
    const a = await connect(s, { username: user, password: 'pw', register: true });
    await store(a, bookmarks('cafe@conference.localhost'));
    await stopClient(a);
    await s.stop();
    await adminDeluser(s.dataDir, user);
    s = await startServer({ dataDir: s.dataDir });
    const c = await connect(s, { username: user, password: 'pw3', register: true });
    t.deepEqual(rooms(await fetch(c, xml('storage', { xmlns: BOOKMARKS }))), [], 'the new owner does not see the old one\'s bookmarks');
    await stopClient(c);
  } finally { await s.stop(); }
});

test('after admin deluser while the server runs, the name registered again at once starts empty', async (t) => {
  const s = await startServer();
  const user = uniq('gone');
  try {
    const b = await connect(s, { username: user, password: 'pw2', register: true });
    await store(b, bookmarks('cafe@conference.localhost'));
    await stopClient(b);
    await adminDeluser(s.dataDir, user);
    const c = await connect(s, { username: user, password: 'pw3', register: true });
    t.deepEqual(rooms(await fetch(c, xml('storage', { xmlns: BOOKMARKS }))), [], 'the new owner does not see the old one\'s bookmarks');
    await stopClient(c);
  } finally { await s.stop(); }
});
