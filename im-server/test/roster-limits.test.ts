// Rosters are bounded (limits.maxRosterItems, default 1000): a roster set or subscription that
// would add an item past it is refused with <not-allowed/> naming the limit; the unanswered
// subscription requests waiting for one account are bounded the same way (resource-constraint to
// the requester). A subscription request to an account that does not exist is answered on its
// behalf with "unsubscribed" and leaves nothing stored (RFC 6121 §3.1.3): 1,100 of them used to
// become 1,100 roster items.
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type XmppClient } from './helpers.js';

const RO = 'jabber:iq:roster';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const ping = (c: XmppClient): Promise<Element> => c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })), 30_000);
const rosterItems = async (c: XmppClient): Promise<Element[]> => (await c.iqCaller.get(xml('query', { xmlns: RO }), undefined, 30_000)).getChildren('item');
const addItem = (c: XmppClient, jid: string, name?: string): Promise<Element> => c.iqCaller.set(xml('query', { xmlns: RO }, xml('item', { jid, name })), undefined, 30_000);
const iqError = async (p: Promise<unknown>): Promise<{ condition: string; text: string }> => {
  try { await p; return { condition: 'no error', text: '' }; } catch (e) {
    const err = e as { condition?: string; text?: string };
    return { condition: err.condition ?? String(e), text: err.text ?? '' };
  }
};

test('a roster holds at most 1,000 items: the next roster set is refused with not-allowed naming the limit; changes to existing items still work', async (t) => {
  const server = await startServer();
  try {
    const alice = await connect(server, { username: uniq('alice'), password: 'pw', register: true });
    for (let chunk = 0; chunk < 10; chunk++) {
      await Promise.all([...Array(100).keys()].map((i) => addItem(alice, `c${chunk * 100 + i}@example.org`)));
    }
    const refused = await iqError(addItem(alice, 'one-too-many@example.org'));
    t.is(refused.condition, 'not-allowed');
    t.regex(refused.text, /at most 1000 contacts \(limits\.maxRosterItems\)/);
    t.is((await rosterItems(alice)).length, 1000);
    // Renaming an existing item is no new item; removing one makes room.
    await addItem(alice, 'c0@example.org', 'renamed');
    await alice.iqCaller.set(xml('query', { xmlns: RO }, xml('item', { jid: 'c1@example.org', subscription: 'remove' })));
    await addItem(alice, 'one-too-many@example.org');
    const items = await rosterItems(alice);
    t.is(items.length, 1000);
    t.is(items.find((i) => i.attrs.jid === 'c0@example.org')?.attrs.name, 'renamed');
    await stopClient(alice);
  } finally {
    await server.stop();
  }
});

test('subscription requests to accounts that do not exist are answered "unsubscribed" and store nothing', async (t) => {
  const server = await startServer();
  try {
    const alice = await connect(server, { username: uniq('alice'), password: 'pw', register: true });
    await rosterItems(alice); // interested: would get roster pushes
    await alice.send(xml('presence'));
    const N = 1100; // more than the roster limit: none of them may count
    for (let i = 0; i < N; i++) {
      await alice.send(xml('presence', { to: `ghost${i}@localhost`, type: 'subscribe' }));
      if (i % 100 === 99) await ping(alice);
    }
    await ping(alice);
    const answers = alice.received.filter((s) => s.is('presence') && s.attrs.type === 'unsubscribed' && /^ghost\d+@localhost$/.test(s.attrs.from ?? ''));
    t.is(answers.length, N, 'each request is answered on the missing account\'s behalf');
    t.false(alice.received.some((s) => s.is('iq') && s.attrs.type === 'set' && s.getChild('query', RO)), 'no roster push: nothing changed');
    t.deepEqual(await rosterItems(alice), [], 'no roster item was stored');

    // A real contact can still be added.
    const b = uniq('bob');
    const bob = await connect(server, { username: b, password: 'pw', register: true });
    await bob.send(xml('presence'));
    await alice.send(xml('presence', { to: `${b}@localhost`, type: 'subscribe' }));
    await waitFor(bob, (s) => s.is('presence') && s.attrs.type === 'subscribe', 'the real request');
    t.deepEqual((await rosterItems(alice)).map((i) => [i.attrs.jid, i.attrs.ask]), [[`${b}@localhost`, 'subscribe']]);
    await Promise.all([stopClient(alice), stopClient(bob)]);
  } finally {
    await server.stop();
  }
});

test('with limits.maxRosterItems 3: a subscription that would add a 4th item is refused, and a 4th waiting request is refused to its sender', async (t) => {
  const server = await startServer({ config: { limits: { maxRosterItems: 3 } } });
  try {
    const c = uniq('carol');
    const carol = await connect(server, { username: c, password: 'pw', register: true });
    for (const jid of ['x1@example.org', 'x2@example.org', 'x3@example.org']) await addItem(carol, jid);
    await carol.send(xml('presence'));
    const d = uniq('dave');
    const dave = await connect(server, { username: d, password: 'pw', register: true });
    await dave.send(xml('presence'));

    // Carol's roster is full: asking for dave's presence would add an item.
    await carol.send(xml('presence', { to: `${d}@localhost`, type: 'subscribe', id: 's1' }));
    const err = await waitFor(carol, (s) => s.is('presence') && s.attrs.type === 'error' && s.attrs.id === 's1', 'the refusal');
    t.truthy(err.getChild('error')?.getChild('not-allowed', STANZAS));
    t.regex(err.getChild('error')?.getChildText('text', STANZAS) ?? '', /at most 3 contacts/);
    await ping(dave);
    t.false(dave.received.some((s) => s.is('presence') && s.attrs.type === 'subscribe'), 'the request did not go out');
    t.is((await rosterItems(carol)).length, 3);

    // Four others ask carol (offline): three requests wait for her, the fourth sender is refused.
    await stopClient(carol);
    const askers = await Promise.all([1, 2, 3, 4].map((i) => connect(server, { username: uniq(`ask${i}`), password: 'pw', register: true })));
    for (const a of askers) {
      await a.send(xml('presence')); // the refusal goes to the requester's available resources
      await a.send(xml('presence', { to: `${c}@localhost`, type: 'subscribe', id: 'req' }));
      await ping(a);
    }
    const refusedTo = askers.filter((a) => a.received.some((s) => s.is('presence') && s.attrs.type === 'error'));
    t.is(refusedTo.length, 1);
    t.is(refusedTo[0], askers[3]);
    const e4 = refusedTo[0]!.received.find((s) => s.is('presence') && s.attrs.type === 'error')!.getChild('error')!;
    t.truthy(e4.getChild('resource-constraint', STANZAS));
    t.regex(e4.getChildText('text', STANZAS) ?? '', /too many unanswered subscription requests \(at most 3\)/);

    const again = await connect(server, { username: c, password: 'pw' });
    await again.send(xml('presence'));
    await ping(again);
    const requests = again.received.filter((s) => s.is('presence') && s.attrs.type === 'subscribe').map((s) => s.attrs.from);
    t.deepEqual(requests.sort(), askers.slice(0, 3).map((a) => `${a.jid!.local}@localhost`).sort());
    await Promise.all([again, dave, ...askers].map(stopClient));
  } finally {
    await server.stop();
  }
});
