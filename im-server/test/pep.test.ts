// XEP-0163 PEP: what users of avatars, tunes, OMEMO and bookmarks notice.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';
import { befriend, errorOf, isEvent, items, publish, publishOptions, announceCaps, EVENT, PUBSUB } from './pep-helpers.js';

const TUNE = 'http://jabber.org/protocol/tune';
const DEVICES = 'eu.siacs.conversations.axolotl.devicelist';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const tune = (title: string): Element => xml('tune', { xmlns: TUNE }, xml('title', {}, title));

let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open' }); });
test.after.always(async () => { await server?.stop(); });

async function login(user: string, resource: string, register = false): Promise<XmppClient> {
  const c = await connect(server, { username: user, password: 'pw', register, resource });
  await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
  return c;
}
/** A message sent after `c` would have got an event: seen first means no event came before it. */
async function nothingBefore(sender: XmppClient, c: XmppClient, to: string, pred: (s: Element) => boolean): Promise<boolean> {
  const marker = uniq('m');
  await sender.send(xml('message', { to, type: 'chat', id: marker }, xml('body', {}, marker)));
  await waitFor(c, (s) => s.is('message') && s.attrs.id === marker, 'marker');
  return !c.received.some(pred);
}

test('notifications follow +notify caps, contacts get the last item when they come online, access models hold', async (t) => {
  const a = uniq('ann'), b = uniq('ben'), x = uniq('xen');
  const A = `${a}@localhost`, B = `${b}@localhost`;
  const ann = await login(a, 'phone', true);
  const ben = await login(b, 'notify', true);
  const deaf = await login(b, 'deaf');
  const liar = await login(b, 'liar');
  const xen = await login(x, 'x', true);
  await befriend(ann, A, ben, B);

  await announceCaps(ann, [`${TUNE}+notify`]);
  await announceCaps(ben, [`${TUNE}+notify`, `${DEVICES}+notify`]);
  await announceCaps(deaf, ['urn:xmpp:ping']);
  await liar.send(xml('presence'));
  await announceCaps(liar, [`${TUNE}+notify`], true);
  await waitFor(ann, (s) => s.is('presence') && s.attrs.from === `${B}/notify`, 'ben online at ann');
  await waitFor(ann, (s) => s.is('presence') && s.attrs.from === `${B}/deaf`, 'deaf online at ann');

  const r = await publish(ann, TUNE, undefined, tune('Song 1'));
  const id = r.getChild('publish')!.getChild('item')!.attrs.id!;
  t.truthy(id, 'the server names an item published without id');
  const ev = await waitFor(ben, isEvent(TUNE), 'tune event at ben');
  t.is(ev.attrs.from, A);
  t.is(ev.attrs.type, 'headline');
  t.is(ev.getChild('event', EVENT)!.getChild('items')!.getChild('item')!.getChild('tune', TUNE)!.getChildText('title'), 'Song 1');
  await waitFor(ann, isEvent(TUNE), 'the owner with +notify gets its own event');
  t.true(await nothingBefore(ann, deaf, `${B}/deaf`, isEvent(TUNE)), 'a session without +notify gets no event');
  t.true(await nothingBefore(ann, liar, `${B}/liar`, isEvent(TUNE)), 'caps whose hash does not verify are not trusted');

  // OMEMO device list, open to anyone; the tune node (presence access) is not for strangers.
  await publish(ann, DEVICES, 'current', xml('list', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('device', { id: '42' })),
    publishOptions({ 'pubsub#access_model': 'open' }));
  await waitFor(ben, isEvent(DEVICES), 'device list event');
  const list = await items(xen, A, DEVICES);
  t.is(list[0]!.getChild('list')!.getChild('device')!.attrs.id, '42');
  t.is(await errorOf(items(xen, A, TUNE)), 'not-authorized/presence-subscription-required');
  t.is((await items(ben, A, TUNE))[0]!.attrs.id, id, 'a subscribed contact reads the node');

  // A later login of ben with +notify gets the last tune (and device list) at once.
  await publish(ann, TUNE, 'second', tune('Song 2'));
  await waitFor(ben, (s) => isEvent(TUNE)(s) && s.toString().includes('Song 2'), 'second tune');
  const late = await login(b, 'late');
  await announceCaps(late, [`${TUNE}+notify`]);
  const last = await waitFor(late, isEvent(TUNE), 'last item at login');
  t.is(last.getChild('event', EVENT)!.getChild('items')!.getChild('item')!.attrs.id, 'second');
  t.true(await nothingBefore(ann, late, `${B}/late`, isEvent(DEVICES)), 'no device list to a session without that +notify');

  // Retract notifies; publishing into another account is forbidden; unknown nodes are item-not-found.
  await ann.iqCaller.set(xml('pubsub', { xmlns: PUBSUB }, xml('retract', { node: TUNE, notify: 'true' }, xml('item', { id: 'second' }))));
  const retract = await waitFor(ben, (s) => isEvent(TUNE)(s) && !!s.getChild('event', EVENT)!.getChild('items')!.getChild('retract'), 'retract event');
  t.is(retract.getChild('event', EVENT)!.getChild('items')!.getChild('retract')!.attrs.id, 'second');
  t.is(await errorOf(ben.iqCaller.set(xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node: TUNE }, xml('item', {}, tune('x')))), A)), 'forbidden');
  t.is(await errorOf(items(ben, A, 'no-such-node')), 'item-not-found');
  for (const c of [ann, ben, deaf, liar, xen, late]) await stopClient(c);
});

test('bookmarks: whitelist node with publish-options, preconditions, disco, delete', async (t) => {
  const a = uniq('bea'), b = uniq('bob');
  const A = `${a}@localhost`, B = `${b}@localhost`;
  const bea = await login(a, 'r', true);
  const bob = await login(b, 'r', true);
  await befriend(bea, A, bob, B);
  const opts = { 'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist' };
  const conf = (jid: string): Element => xml('conference', { xmlns: BOOKMARKS, name: jid, autojoin: 'true' });
  await publish(bea, BOOKMARKS, 'room1@conference.localhost', conf('one'), publishOptions(opts));
  await publish(bea, BOOKMARKS, 'room2@conference.localhost', conf('two'), publishOptions(opts));
  await publish(bea, BOOKMARKS, 'room1@conference.localhost', conf('one again'), publishOptions(opts));
  const mine = await items(bea, A, BOOKMARKS);
  t.deepEqual(mine.map((i) => i.attrs.id).sort(), ['room1@conference.localhost', 'room2@conference.localhost'], 'max_items=max keeps every bookmark, same id replaces');
  t.is(mine.find((i) => i.attrs.id === 'room1@conference.localhost')!.getChild('conference')!.attrs.name, 'one again');

  t.is(await errorOf(items(bob, A, BOOKMARKS)), 'not-allowed/closed-node', 'a contact cannot read a whitelist node');
  const discoItems = async (c: XmppClient): Promise<string[]> =>
    (await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }), A)).getChildren('item').map((i) => i.attrs.node!);
  t.true((await discoItems(bea)).includes(BOOKMARKS));
  t.false((await discoItems(bob)).includes(BOOKMARKS), 'the whitelist node is not listed to others');

  t.is(await errorOf(publish(bea, BOOKMARKS, 'r3', conf('three'), publishOptions({ ...opts, 'pubsub#access_model': 'open' }))),
    'conflict/precondition-not-met', 'publish-options that contradict the node are refused');
  t.is(await errorOf(publish(bea, 'urn:xmpp:test', 'x', conf('x'), publishOptions({ 'pubsub#no_such_option': '1' }))), 'conflict/precondition-not-met');

  const info = await bea.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), A);
  t.true(info.getChildren('identity').some((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'pep'));
  t.true(info.getChildren('feature').some((f) => f.attrs.var === `${PUBSUB}#publish-options`));
  const serverInfo = await bea.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'localhost');
  t.true(serverInfo.getChildren('feature').some((f) => f.attrs.var === `${PUBSUB}#publish-options`), 'the server advertises PEP too');

  const owner = 'http://jabber.org/protocol/pubsub#owner';
  const form = await bea.iqCaller.get(xml('pubsub', { xmlns: owner }, xml('configure', { node: BOOKMARKS })));
  const field = form.getChild('configure')!.getChild('x')!.getChildren('field').find((f) => f.attrs.var === 'pubsub#access_model');
  t.is(field!.getChildText('value'), 'whitelist');
  await bea.iqCaller.set(xml('pubsub', { xmlns: owner }, xml('delete', { node: BOOKMARKS })));
  t.is(await errorOf(items(bea, A, BOOKMARKS)), 'item-not-found');
  for (const c of [bea, bob]) await stopClient(c);
});

test('items survive a restart; max_items keeps the newest; account removal deletes the nodes', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pi-im-pep-'));
  let srv = await startServer({ registration: 'open', dataDir });
  const u = uniq('kim');
  const K = `${u}@localhost`;
  let kim = await connect(srv, { username: u, password: 'pw', register: true, resource: 'r' });
  await publish(kim, 'urn:test:log', '1', xml('entry', { xmlns: 'urn:test' }, 'one'), publishOptions({ 'pubsub#max_items': '2' }));
  await publish(kim, 'urn:test:log', '2', xml('entry', { xmlns: 'urn:test' }, 'two'), publishOptions({ 'pubsub#max_items': '2' }));
  await publish(kim, 'urn:test:log', '3', xml('entry', { xmlns: 'urn:test' }, 'three'));
  await stopClient(kim);
  await srv.stop();
  srv = await startServer({ registration: 'open', dataDir });
  try {
    kim = await connect(srv, { username: u, password: 'pw', resource: 'r' });
    t.deepEqual((await items(kim, K, 'urn:test:log')).map((i) => i.attrs.id), ['2', '3']);
    t.deepEqual((await items(kim, K, 'urn:test:log', 1)).map((i) => i.attrs.id), ['3'], 'max_items=1 is the newest');
    await kim.iqCaller.set(xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    await stopClient(kim);
    kim = await connect(srv, { username: u, password: 'pw', register: true, resource: 'r' });
    t.is(await errorOf(items(kim, K, 'urn:test:log')), 'item-not-found', 'a new account of the same name starts empty');
    await stopClient(kim);
  } finally { await srv.stop(); }
});
