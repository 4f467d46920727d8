// A full disk under the database: nothing acknowledged is lost, nothing unstored is passed off as
// sent (the sender gets an error), health says what is wrong, and storing resumes once there is room.
import test from 'ava';
import { testDb } from './test-db.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xml, type Element } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor, type XmppClient } from './helpers.js';

type Outcome = { kind: 'acked' } | { kind: 'error'; stanza: Element } | { kind: 'closed' };

/** Sends one message and asks for an ack: acknowledged (stored), bounced, or the stream ended. */
function sendAndSettle(c: XmppClient, to: string, id: string, body: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const done = (o: Outcome): void => {
      c.streamManagement.off('ack', onAck); c.off('stanza', onStanza); c.off('offline', onClosed); c.off('disconnect', onClosed);
      clearTimeout(timer);
      resolve(o);
    };
    const onAck = (s: Element): void => { if (s.attrs.id === id) done({ kind: 'acked' }); };
    const onStanza = (s: Element): void => { if (s.is('message') && s.attrs.type === 'error' && s.attrs.id === id) done({ kind: 'error', stanza: s }); };
    const onClosed = (): void => done({ kind: 'closed' });
    const timer = setTimeout(onClosed, 20_000);
    c.streamManagement.on('ack', onAck);
    c.on('stanza', onStanza);
    c.on('offline', onClosed);
    c.on('disconnect', onClosed);
    c.send(xml('message', { to, type: 'chat', id }, xml('body', {}, body))).catch(() => {});
    c.send(xml('r', { xmlns: 'urn:xmpp:sm:3' })).catch(() => {});
  });
}

// A full disk needs a small file system: a tmpfs, which only root can mount (as in CI). It is the
// SQLite data dir that fills; on PostgreSQL (PI_IM_TEST_DB) the database lives elsewhere, and its
// failure mode, the database away, is tested in test/store.test.ts.
(process.getuid?.() === 0 && testDb === 'sqlite' ? test : test.skip)('a full disk: acknowledged messages survive, the sender hears of the rest, health reports it, storing resumes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-dbfull-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir]);
  const server = await startServer({ dataDir: dir }).catch((e: Error) => { execFileSync('umount', [dir]); throw e; });
  const health = async (): Promise<{ code: number; body: { status: string; storage?: string } }> => {
    const r = await fetch(`http://127.0.0.1:${server.httpPort}/health`);
    return { code: r.status, body: await r.json() as { status: string; storage?: string } };
  };
  try {
    const a = uniq('full'), b = uniq('away');
    await stopClient(await connect(server, { username: b, password: 'pw', register: true }));
    let alice = await connect(server, { username: a, password: 'pw', register: true });
    await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    t.is((await health()).code, 200);

    // 40 KB messages to an offline contact (each stored for them and archived) until the disk is full.
    const acked: string[] = [];
    let failure: Outcome | undefined;
    for (let i = 0; i < 100 && !failure; i++) {
      const o = await sendAndSettle(alice, `${b}@localhost`, `big${i}`, `${i} `.padEnd(40_000, 'x'));
      if (o.kind === 'acked') acked.push(`big${i}`); else failure = o;
    }
    t.true(acked.length > 0, 'some messages fitted');
    t.is(failure?.kind, 'error', 'the message that did not fit is bounced to its sender');
    const err = (failure as { stanza: Element }).stanza.getChild('error');
    t.truthy(err?.getChild('resource-constraint'), err?.toString());
    t.regex(err?.getChildText('text') ?? '', /disk is full/);
    const h = await health();
    t.is(h.code, 503);
    t.is(h.body.status, 'storage-failing');
    t.regex(h.body.storage ?? '', /is full: free space there/);
    t.true(server.logs.some((l) => l.includes('storage commit failed') && l.includes(`the disk holding ${dir} is full`)), 'the log says what to do');

    // Room again (an admin cleaned up): storing resumes without a restart.
    execFileSync('mount', ['-o', 'remount,size=32m', dir]);
    await stopClient(alice);
    alice = await connect(server, { username: a, password: 'pw' });
    t.is((await sendAndSettle(alice, `${b}@localhost`, 'after', 'room again')).kind, 'acked');
    t.is((await health()).code, 200);

    const bob = await connect(server, { username: b, password: 'pw' });
    await bob.send(xml('presence'));
    await waitFor(bob, (s) => s.is('message') && s.attrs.id === 'after', 'the message sent after the cleanup');
    const delivered = bob.received.filter((s) => s.is('message')).map((s) => s.attrs.id);
    t.deepEqual(acked.filter((id) => !delivered.includes(id)), [], 'every acknowledged message is delivered');
    t.false(delivered.includes((failure as { stanza: Element }).stanza.attrs.id), 'the bounced message was not stored');
    t.log(`${acked.length} messages stored before the disk was full`);
    await stopClient(bob);
    await stopClient(alice);
  } finally {
    await server.stop();
    execFileSync('umount', [dir]);
  }
});
