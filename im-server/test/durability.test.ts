// Durability: a stanza the server acknowledged survives kill -9.
// "Acknowledged" = the XEP-0198 <a h='n'/> the server sends in answer to <r/>: it counts a
// stanza only once the writes it caused (here: offline storage) are committed and fsynced.
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, type XmppClient } from './helpers.js';

/** Resolves once `done()` holds for what `c` received, or after `ms` (the assertions then say what is missing). */
function arrived(c: XmppClient, done: () => boolean, ms = 15_000): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => { if (done()) { clearTimeout(timer); c.off('stanza', check); resolve(); } };
    const timer = setTimeout(() => { c.off('stanza', check); resolve(); }, ms);
    c.on('stanza', check);
    check();
  });
}

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
    // Offline messages come in batches at the pace the client reads: wait for them (or time out).
    await arrived(bob, () => ackedNow.every((id) => bob.received.some((s) => s.is('message') && s.attrs.id === id)));
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

// The storage writes of a steady message stream (offline messages, archives) are committed at
// most --max-commits-per-second times a second: an SD card sees that many fsyncs, not one per burst.
async function offlineStream(commitsPerSecond: number): Promise<{ fsyncs: number; seconds: number; delivered: number; sent: number }> {
  const server = await startServer({ registration: 'open', args: ['--max-commits-per-second', String(commitsPerSecond)] });
  const fsyncs = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    return Number(/^pi_im_storage_fsyncs_total (\d+)/m.exec(text)![1]);
  };
  try {
    const sender = uniq('snd'), receiver = uniq('rcv');
    await stopClient(await connect(server, { username: receiver, password: 'pw', register: true }));
    const alice = await connect(server, { username: sender, password: 'pw', register: true });
    await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    const acked = new Set<string>();
    alice.streamManagement.on('ack', (s: Element) => { if (s.is('message')) acked.add(s.attrs.id!); });
    const before = await fsyncs();
    const t0 = performance.now();
    // 30 bursts of 10 messages, 50 ms apart: 200 messages a second for 1.5 s.
    let sent = 0;
    for (let burst = 0; burst < 30; burst++) {
      for (let i = 0; i < 10; i++, sent++) {
        alice.send(xml('message', { to: `${receiver}@localhost`, type: 'chat', id: `s${sent}` }, xml('body', {}, `steady ${sent}`))).catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await alice.send(xml('r', { xmlns: 'urn:xmpp:sm:3' }));
    while (acked.size < sent) await new Promise((r) => setTimeout(r, 10));
    const seconds = (performance.now() - t0) / 1000;
    const fsynced = (await fsyncs()) - before;
    const bob = await connect(server, { username: receiver, password: 'pw' });
    await bob.send(xml('presence'));
    const steady = (): number => bob.received.filter((s) => s.is('message') && s.getChildText('body')?.startsWith('steady')).length;
    await arrived(bob, () => steady() >= sent); // delivered in batches, at the pace the client reads
    const delivered = steady();
    await stopClient(bob);
    await stopClient(alice);
    return { fsyncs: fsynced, seconds, delivered, sent };
  } finally {
    await server.stop();
  }
}

test('a steady stream of stored messages is fsynced at most --max-commits-per-second times a second, and none is lost', async (t) => {
  const capped = await offlineStream(4);
  const uncapped = await offlineStream(0);
  t.log(`capped at 4/s: ${capped.fsyncs} commits in ${capped.seconds.toFixed(2)} s; uncapped: ${uncapped.fsyncs} commits in ${uncapped.seconds.toFixed(2)} s`);
  t.is(capped.delivered, capped.sent, 'every message reached the receiver at its next login');
  t.is(uncapped.delivered, uncapped.sent);
  // The first commit comes at once, the next ones at least 250 ms apart; a read that must see
  // queued writes (the receiver's offline count, once) commits them at once.
  t.true(capped.fsyncs <= Math.floor(capped.seconds * 4) + 3, `${capped.fsyncs} commits in ${capped.seconds.toFixed(2)} s`);
  t.true(uncapped.fsyncs >= 2 * capped.fsyncs, 'without the cap, each burst commits on its own');
});
