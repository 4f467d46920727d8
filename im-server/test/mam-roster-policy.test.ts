// MAM's 'roster' default policy (XEP-0441): whether a message goes into a user archive depends
// on the user's roster, which is read from the database (asynchronously). The delivered stanza and
// its carbon copies still carry the stanza-id of the archive item (archive runs before copy and
// deliver); a message with a JID not in the roster is neither archived nor stamped.
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';
import { NS_CARBONS, NS_MAM, NS_SID, chat, got, mamQuery } from './mam-helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer(); });
test.after.always(async () => { await server?.stop(); });

const FWD = 'urn:xmpp:forward:0';
const receivedCarbon = (c: XmppClient, body: string): Promise<Element> =>
  waitFor(c, (s) => s.is('message') && s.getChild('received', NS_CARBONS)?.getChild('forwarded', FWD)?.getChild('message')?.getChildText('body') === body, `carbon "${body}"`)
    .then((w) => w.getChild('received', NS_CARBONS)!.getChild('forwarded', FWD)!.getChild('message')!);
const bodies = (p: { items: { body: string | undefined }[] }): (string | undefined)[] => p.items.map((i) => i.body);

test('roster policy: only messages with roster contacts are archived; the delivered message and its carbon carry the archive id', async (t) => {
  const a = uniq('ann'), b = uniq('bob');
  const ann = await connect(server, { username: a, password: 'pw', register: true });
  const b1 = await connect(server, { username: b, password: 'pw', register: true, resource: 'b1' });
  const b2 = await connect(server, { username: b, password: 'pw', resource: 'b2' });
  for (const c of [ann, b1, b2]) await c.send(xml('presence'));
  for (const c of [b1, b2]) await c.iqCaller.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS })));
  for (const [c, u] of [[ann, a], [b1, b]] as const) {
    await c.iqCaller.request(xml('iq', { type: 'set', to: `${u}@localhost` }, xml('prefs', { xmlns: NS_MAM, default: 'roster' }, xml('always'), xml('never'))));
  }
  const bob = `${b}@localhost`;

  // Not in either roster: delivered, copied, neither archived nor stamped.
  await ann.send(chat(`${bob}/b1`, 'stranger'));
  const m1 = await got(b1, 'stranger');
  t.is(m1.getChild('stanza-id', NS_SID), undefined);
  t.is((await receivedCarbon(b2, 'stranger')).getChild('stanza-id', NS_SID), undefined);

  // Bob puts Ann in his roster (no subscription needed): her messages go into his archive.
  await b1.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: `${a}@localhost` }))));
  await ann.send(chat(`${bob}/b1`, 'contact'));
  const m2 = await got(b1, 'contact');
  const sid = m2.getChild('stanza-id', NS_SID);
  t.is(sid?.attrs.by, bob);
  t.is((await receivedCarbon(b2, 'contact')).getChild('stanza-id', NS_SID)?.attrs.id, sid?.attrs.id, 'the carbon carries the same stanza-id');
  const bobs = await mamQuery(b1);
  t.deepEqual(bodies(bobs), ['contact']);
  t.is(bobs.items[0]!.id, sid?.attrs.id ?? 'none');

  // Ann has not put Bob in her roster: her outgoing messages are not in her archive, Bob's answer neither.
  await b1.send(chat(`${a}@localhost`, 'answer'));
  await got(ann, 'answer');
  t.deepEqual(bodies(await mamQuery(ann)), []);
  t.deepEqual(bodies(await mamQuery(b1)), ['contact', 'answer'], 'Bob archives what he sends to a contact');
  await Promise.all([stopClient(ann), stopClient(b1), stopClient(b2)]);
});
