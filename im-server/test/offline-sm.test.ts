// Offline messages are delivered at least once: with stream management (XEP-0198) they stay
// stored until the client's <a h/> covers them, so a client that drops before acking gets them
// again at its next login. Without SM they are deleted once handed to the socket.
import test from 'ava';
import { xml } from '@xmpp/client';
import { connect, rawLogin, startServer, stopClient, uniq, type RawConn, type TestServer } from './helpers.js';

const N = 20;
const SM = 'urn:xmpp:sm:3';

async function fillOffline(server: TestServer, receiver: string): Promise<void> {
  await stopClient(await connect(server, { username: receiver, password: 'pw', register: true }));
  const alice = await connect(server, { username: uniq('snd'), password: 'pw', register: true });
  for (let i = 0; i < N; i++) await alice.send(xml('message', { to: `${receiver}@localhost`, type: 'chat', id: `o${i}` }, xml('body', {}, `offline ${i}`)));
  // The ping's result is held until queued writes commit: all N are stored.
  await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  await stopClient(alice);
}

const bodies = (data: string): number[] => [...data.matchAll(/<body>offline (\d+)<\/body>/g)].map((m) => Number(m[1]));
const stanzaCount = (data: string): number => (data.match(/<(message|presence|iq)[\s>/]/g) ?? []).length;

/** Logs in (SM on when asked), sends initial presence, and waits until a ping round trip shows all it was sent. */
async function login(server: TestServer, user: string, resource: string, sm: boolean): Promise<RawConn> {
  const c = await rawLogin(server.c2sPort, user, 'pw', resource);
  if (sm) {
    c.send(`<enable xmlns='${SM}'/>`);
    await c.until('<enabled');
    c.data = '';
  }
  c.send(`<presence/>`);
  c.send(`<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until(/<iq[^>]*id="sync"/);
  return c;
}

test('with stream management, offline messages not acked before the connection drops are delivered again', async (t) => {
  const server = await startServer({ registration: 'open' });
  try {
    const bob = uniq('rcv');
    await fillOffline(server, bob);
    const all = [...Array(N).keys()];

    const first = await login(server, bob, 'one', true);
    t.deepEqual(bodies(first.data), all, 'first login gets all, in order');
    await first.until(`<r xmlns="${SM}"/>`);
    first.socket.destroy(); // drops before acking
    await first.closed;

    const second = await login(server, bob, 'two', true);
    t.deepEqual(bodies(second.data), all, 'nothing lost: the unacked messages come again');
    await second.until(`<r xmlns="${SM}"/>`);
    second.send(`<a xmlns='${SM}' h='${stanzaCount(second.data)}'/>`);
    second.data = '';
    second.send(`<r xmlns='${SM}'/>`); // answered after queued writes (the delete) commit
    await second.until('<a ');
    second.send('</stream:stream>');
    await second.closed;

    const third = await login(server, bob, 'three', true);
    t.deepEqual(bodies(third.data), [], 'acked messages are gone');
    third.end();
  } finally {
    await server.stop();
  }
});

test('without stream management, offline messages are deleted once sent', async (t) => {
  const server = await startServer({ registration: 'open' });
  try {
    const bob = uniq('rcv');
    await fillOffline(server, bob);
    const first = await login(server, bob, 'one', false);
    t.deepEqual(bodies(first.data), [...Array(N).keys()]);
    t.false(first.data.includes(`<r xmlns="${SM}"/>`), 'no ack request without SM');
    first.socket.destroy();
    await first.closed;
    // A ping from a new session is answered after queued writes (the delete) commit.
    const second = await login(server, bob, 'two', false);
    t.deepEqual(bodies(second.data), []);
    second.end();
  } finally {
    await server.stop();
  }
});
