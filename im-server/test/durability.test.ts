// Durability: a stanza the server acknowledged survives kill -9.
// "Acknowledged" = the XEP-0198 <a h='n'/> the server sends in answer to <r/>: it counts a
// stanza only once the writes it caused (here: offline storage) are committed and fsynced.
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq } from './helpers.js';

test('every acknowledged offline message survives kill -9 and is delivered after restart, in order', async (t) => {
  const server = await startServer({ registration: 'open' });
  const sender = uniq('snd'), receiver = uniq('rcv');
  await stopClient(await connect(server, { username: receiver, password: 'pw', register: true }));
  const alice = await connect(server, { username: sender, password: 'pw', register: true });
  await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.true(alice.streamManagement.enabled, 'stream management is on');

  const acked: string[] = [];
  alice.streamManagement.on('ack', (s: Element) => { if (s.is('message')) acked.push(s.attrs.id!); });
  let killed = false;
  const killedAt = new Promise<void>((resolve) => {
    const check = (): void => { if (!killed && acked.length >= 150) { killed = true; void server.kill9().then(resolve); } };
    alice.streamManagement.on('ack', check);
  });
  // Chunks of 50 messages, each followed by an ack request; we keep sending while acks come
  // back, and the server is killed mid-stream once 150 are acknowledged.
  let sent = 0;
  for (let chunk = 0; chunk < 10 && !killed; chunk++) {
    for (let i = 0; i < 50; i++, sent++) {
      alice.send(xml('message', { to: `${receiver}@localhost`, type: 'chat', id: `d${sent}` }, xml('body', {}, `durable ${sent}`))).catch(() => {});
    }
    await alice.send(xml('r', { xmlns: 'urn:xmpp:sm:3' })).catch(() => {});
    await new Promise((r) => setTimeout(r, 20));
  }
  await killedAt;
  t.true(acked.length >= 150);
  const ackedNow = [...acked];

  const again = await startServer({ dataDir: server.dataDir, registration: 'open' });
  try {
    const bob = await connect(again, { username: receiver, password: 'pw' });
    await bob.send(xml('presence'));
    await bob.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    const ids = bob.received.filter((s) => s.is('message')).map((s) => s.attrs.id!);
    const missing = ackedNow.filter((id) => !ids.includes(id));
    t.deepEqual(missing, [], `${missing.length} acknowledged messages lost`);
    const order = ids.map((id) => Number(id.slice(1)));
    t.deepEqual(order, [...order].sort((a, b) => a - b), 'delivered in the order sent');
    t.log(`sent ${sent}, acknowledged ${ackedNow.length} before kill -9, delivered after restart ${ids.length}`);
    await stopClient(bob);
    await stopClient(alice);
  } finally {
    await again.stop();
  }
});

test('SIGTERM closes streams with system-shutdown, exits 0, and data persists', async (t) => {
  const server = await startServer({ registration: 'open' });
  const u = uniq('term');
  const c = await connect(server, { username: u, password: 'pw', register: true, transport: 'ws' });
  const tcp = await connect(server, { username: u, password: 'pw' });
  const errs = Promise.all([c, tcp].map((x) => new Promise<string>((resolve) => x.on('error', (e: { condition?: string }) => resolve(e.condition ?? String(e))))));
  const code = await server.stop();
  t.deepEqual(await errs, ['system-shutdown', 'system-shutdown']);
  t.is(code, 0);
  const again = await startServer({ dataDir: server.dataDir, registration: 'closed' });
  try {
    const back = await connect(again, { username: u, password: 'pw' });
    t.truthy(back.jid);
    await stopClient(back);
  } finally {
    await again.stop();
  }
});
