// Blocked traffic leaves no trace in any archive (XEP-0191 with XEP-0313). Hooks run in named
// phases (policy, observe, archive, copy, deliver): the block list, in the policy phase, refuses
// a message before the archive phase could keep a copy in the recipient's archive (they tied at
// one priority, and MAM ran first) or in the sender's own (archived as it left the client).
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type XmppClient } from './helpers.js';
import { chat, mamQuery } from './mam-helpers.js';

const BL = 'urn:xmpp:blocking';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const bodies = (p: { items: { body: string | undefined }[] }): (string | undefined)[] => p.items.map((i) => i.body);
const errorOf = (c: XmppClient, id: string): Promise<Element> => waitFor(c, (s) => s.is('message') && s.attrs.type === 'error' && s.attrs.id === id, `error for ${id}`);

for (const recipientOnline of [true, false]) {
  test(`a message refused by the recipient's block list is in neither archive (recipient ${recipientOnline ? 'online' : 'offline'}); so is one to a JID the sender blocked`, async (t) => {
    const server = await startServer();
    try {
      const a = uniq('alice'), b = uniq('bob');
      const alice = await connect(server, { username: a, password: 'pw', register: true });
      const bob = await connect(server, { username: b, password: 'pw', register: true });
      await Promise.all([alice.send(xml('presence')), bob.send(xml('presence'))]);
      // Before the block, both directions are archived on both sides (the baseline).
      await bob.send(chat(`${a}@localhost`, 'before', 'b0'));
      await waitFor(alice, (s) => s.getChildText('body') === 'before', 'the message before the block');
      await alice.iqCaller.request(xml('iq', { type: 'set' }, xml('block', { xmlns: BL }, xml('item', { jid: `${b}@localhost` }))));
      if (!recipientOnline) await stopClient(alice);

      // Bob -> alice, who blocked him: the error he got before, and no copy anywhere.
      await bob.send(chat(`${a}@localhost`, 'blocked inbound', 'b1'));
      const refused = await errorOf(bob, 'b1');
      t.truthy(refused.getChild('error')?.getChild('service-unavailable', STANZAS), 'bob gets service-unavailable, as before');
      t.deepEqual(bodies(await mamQuery(bob)), ['before'], 'not in the sender\'s archive');

      const alice2 = recipientOnline ? alice : await connect(server, { username: a, password: 'pw' });
      if (!recipientOnline) await alice2.send(xml('presence'));
      t.deepEqual(bodies(await mamQuery(alice2)), ['before'], 'not in the recipient\'s archive');
      t.false(alice2.received.some((s) => s.getChildText('body') === 'blocked inbound'), 'not delivered (nor stored offline)');

      // Alice -> bob, whom she blocked: refused with the blocked error, archived nowhere.
      await alice2.send(chat(`${b}@localhost`, 'blocked outbound', 'a1'));
      const err = (await errorOf(alice2, 'a1')).getChild('error')!;
      t.truthy(err.getChild('not-acceptable', STANZAS));
      t.truthy(err.getChild('blocked', 'urn:xmpp:blocking:errors'));
      t.deepEqual(bodies(await mamQuery(alice2)), ['before'], 'not in the blocker\'s archive');
      t.deepEqual(bodies(await mamQuery(bob)), ['before'], 'not in the blocked contact\'s archive');
      t.false(bob.received.some((s) => s.getChildText('body') === 'blocked outbound'));

      // Unblocked: archived on both sides again.
      await alice2.iqCaller.request(xml('iq', { type: 'set' }, xml('unblock', { xmlns: BL }, xml('item', { jid: `${b}@localhost` }))));
      await bob.send(chat(`${a}@localhost`, 'after', 'b2'));
      await waitFor(alice2, (s) => s.getChildText('body') === 'after', 'the message after unblocking');
      t.deepEqual(bodies(await mamQuery(alice2)), ['before', 'after']);
      t.deepEqual(bodies(await mamQuery(bob)), ['before', 'after']);
      await Promise.all([stopClient(alice2), stopClient(bob)]);
    } finally {
      await server.stop();
    }
  });
}
