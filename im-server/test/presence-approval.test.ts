// Regression tests for the approval path (RFC 6121 §3.1.5-3.1.6) that Smack's
// RosterIntegrationTest found racy: order and reach of what the requester and the contact get.
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, rawScramSha256, rawSecure, startServer, stopClient, streamHeader, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open' }); });
test.after.always(async () => { await server?.stop(); });

/** Every stanza a client receives, in order (waitFor removes what it matched from `received`). */
function record(c: XmppClient): Element[] {
  const log: Element[] = [];
  c.on('stanza', (s: Element) => log.push(s));
  return log;
}
const pushOf = (contact: string, sub: string) => (s: Element): boolean => {
  const item = s.is('iq') && s.attrs.type === 'set' ? s.getChild('query', 'jabber:iq:roster')?.getChild('item') : undefined;
  return item?.attrs.jid === contact && item.attrs.subscription === sub;
};
const roster = (c: XmppClient): Promise<Element> => c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));

test('approval sent at once to the full JID: push, subscribed, then presence, on every interested resource', async (t) => {
  const a = uniq('req'), b = uniq('con');
  const A = `${a}@localhost`, B = `${b}@localhost`;
  const a1 = await connect(server, { username: a, password: 'pw', register: true, resource: 'one' });
  const a2 = await connect(server, { username: a, password: 'pw', resource: 'two' }); // interested, never available
  const b1 = await connect(server, { username: b, password: 'pw', register: true, resource: 'one' });
  const b2 = await connect(server, { username: b, password: 'pw', resource: 'two' });
  for (const c of [a1, a2, b1, b2]) await roster(c);
  await a1.send(xml('presence'));
  await b1.send(xml('presence', {}, xml('status', {}, 'here')));
  await b2.send(xml('presence'));
  const logA1 = record(a1), logA2 = record(a2);

  // b1 approves the moment the request arrives, addressed to a1's full JID (as Smack does).
  b1.on('stanza', (s: Element) => {
    if (s.is('presence') && s.attrs.type === 'subscribe') void b1.send(xml('presence', { to: `${A}/one`, type: 'subscribed' }));
  });
  await a1.send(xml('presence', { to: B, type: 'subscribe' }));

  await waitFor(a1, (s) => s.is('presence') && s.attrs.from === `${B}/two` && !s.attrs.type, 'b2 presence at a1');
  await waitFor(a1, (s) => s.is('presence') && s.attrs.from === `${B}/one` && !s.attrs.type, 'b1 presence at a1');
  const at = (log: Element[], p: (s: Element) => boolean): number => log.findIndex(p);
  const push = at(logA1, pushOf(B, 'to'));
  const subscribed = at(logA1, (s) => s.is('presence') && s.attrs.type === 'subscribed');
  const presence = at(logA1, (s) => s.is('presence') && (s.attrs.from ?? '').startsWith(`${B}/`) && !s.attrs.type);
  t.true(push >= 0 && push < subscribed && subscribed < presence, `order push < subscribed < presence: ${push} ${subscribed} ${presence}`);
  t.is(logA1[subscribed]!.attrs.from, B, 'approval stamped with the contact bare JID');

  // a2 asked for the roster but sent no presence: it still gets the push and the approval, no presence.
  await waitFor(a2, (s) => s.is('presence') && s.attrs.type === 'subscribed', 'approval at the interested resource');
  t.true(at(logA2, pushOf(B, 'to')) >= 0 && at(logA2, pushOf(B, 'to')) < at(logA2, (s) => s.is('presence')));
  t.false(logA2.some((s) => s.is('presence') && !s.attrs.type), 'no presence to an unavailable resource');

  // The contact's resources both get the push with 'from'.
  await waitFor(b1, pushOf(A, 'from'), 'push from at b1');
  await waitFor(b2, pushOf(A, 'from'), 'push from at b2');
  for (const c of [a1, a2, b1, b2]) await stopClient(c);
});

test('pre-approval (RFC 6121 3.4): a later request from the contact is approved at once', async (t) => {
  const a = uniq('pre'), b = uniq('ask');
  const A = `${a}@localhost`, B = `${b}@localhost`;
  const ann = await connect(server, { username: a, password: 'pw', register: true, resource: 'r' });
  const ben = await connect(server, { username: b, password: 'pw', register: true, resource: 'r' });
  // Offered after login, so clients know they may pre-approve.
  const raw = await rawSecure(server.c2sPort);
  t.true(await rawScramSha256(raw, a, 'pw'));
  raw.data = '';
  raw.send(streamHeader);
  await raw.until('</stream:features>');
  t.regex(raw.data, /<sub xmlns="urn:xmpp:features:pre-approval"\/>/);
  raw.end();
  for (const c of [ann, ben]) await roster(c);
  await ann.send(xml('presence'));
  await ben.send(xml('presence'));
  await ann.send(xml('presence', { to: B, type: 'subscribed' }));
  const pre = await waitFor(ann, pushOf(B, 'none'), 'pre-approval push');
  t.is(pre.getChild('query')!.getChild('item')!.attrs.approved, 'true');
  t.is((await roster(ann)).getChildren('item').find((i) => i.attrs.jid === B)?.attrs.approved, 'true', 'shown in the roster too');

  await ben.send(xml('presence', { to: A, type: 'subscribe' }));
  await waitFor(ben, pushOf(A, 'to'), 'ben subscribed');
  await waitFor(ben, (s) => s.is('presence') && s.attrs.type === 'subscribed' && s.attrs.from === A, 'approval');
  await waitFor(ben, (s) => s.is('presence') && s.attrs.from === `${A}/r` && !s.attrs.type, 'ann presence');
  const push = await waitFor(ann, pushOf(B, 'from'), 'ann push from');
  t.is(push.getChild('query')!.getChild('item')!.attrs.approved, undefined, 'the pre-approval is used up');
  t.false(ann.received.some((s) => s.is('presence') && s.attrs.type === 'subscribe'), 'no request shown to ann');
  for (const c of [ann, ben]) await stopClient(c);
});
