import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type TestServer } from './helpers.js';

let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open' }); });
test.after.always(async () => { await server?.stop(); });

for (const transport of ['tcp', 'ws'] as const) {
  test(`${transport}: register in-band, log in with SCRAM, exchange messages to bare and full JIDs`, async (t) => {
    const a = uniq('alice'), b = uniq('bob');
    const alice = await connect(server, { username: a, password: 'secret-a', register: true, transport, resource: 'laptop' });
    const bob = await connect(server, { username: b, password: 'secret-b', register: true, transport, resource: 'phone' });
    t.is(alice.jid?.toString(), `${a}@localhost/laptop`);
    await alice.send(xml('presence'));
    await bob.send(xml('presence'));
    await alice.send(xml('message', { to: `${b}@localhost`, type: 'chat', id: 'm1' }, xml('body', {}, 'hello bare')));
    const m1 = await waitFor(bob, (s) => s.is('message') && s.attrs.id === 'm1', 'message to bare JID');
    t.is(m1.getChildText('body'), 'hello bare');
    t.is(m1.attrs.from, `${a}@localhost/laptop`);
    await bob.send(xml('message', { to: `${a}@localhost/laptop`, type: 'chat', id: 'm2' }, xml('body', {}, 'hello full')));
    const m2 = await waitFor(alice, (s) => s.is('message') && s.attrs.id === 'm2', 'message to full JID');
    t.is(m2.getChildText('body'), 'hello full');
    await stopClient(alice);
    await stopClient(bob);
  });
}
