import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, type TestServer } from './helpers.js';
import { createRoom, groupchat, join, room, SERVICE, waitGroupchat } from './muc-helpers.js';

// The service's own limits, from the muc section of the config file.
let server: TestServer;
const boss = uniq('boss');
test.before(async () => {
  server = await startServer({ registration: 'open', config: { muc: { roomCreation: 'admins', admins: [boss], historyMessages: 2, maxOccupants: 3 } } });
});
test.after.always(async () => { await server?.stop(); });

test('only the configured admins create rooms; history and occupancy follow the service limits', async (t) => {
  const b = await connect(server, { username: boss, password: 'pw', register: true });
  const u = await connect(server, { username: uniq('usr'), password: 'pw', register: true });
  const r = room('admins');
  t.is((await t.throwsAsync(join(u, r, 'usr')))?.message, 'join refused: not-allowed');
  await createRoom(b, r, 'boss');
  await join(u, r, 'usr');
  for (const n of ['one', 'two', 'three']) await groupchat(b, r, n);
  await waitGroupchat(u, r, 'three');
  const late = await connect(server, { username: uniq('late'), password: 'pw', register: true });
  const jl = await join(late, r, 'late');
  t.deepEqual(jl.history.map((m) => m.getChildText('body')), ['two', 'three'], 'muc.historyMessages bounds history');
  const extra = await connect(server, { username: uniq('xtra'), password: 'pw', register: true });
  t.is((await t.throwsAsync(join(extra, r, 'xtra')))?.message, 'join refused: service-unavailable', 'muc.maxOccupants bounds rooms');
  const items = await u.iqCaller.request(xml('iq', { type: 'get', to: SERVICE }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' })));
  t.true(items.getChild('query')!.getChildren('item').some((i) => i.attrs.jid === r));
  await Promise.all([b, u, late, extra].map(stopClient));
});
