// Failed logins are held against the address they come from (mod_fail2ban with a growing delay),
// never against an account: wrong passwords for alice from one address cannot keep alice out
// from another. Unit tests of the AuthThrottle, then the real server with clients bound to
// different loopback addresses (127.0.0.1, .2, .3 ... all reach a server on 127.0.0.1 on Linux).
import test from 'ava';
import { AuthThrottle, throttleKey } from '../src/core/limits.js';
import { bannedText, humanSeconds } from '../src/core/auth.js';
import { connect, rawScramSha256, rawSecure, startServer, stopClient, uniq, type TestServer } from './helpers.js';

// ---- the throttle on its own ----

test('delay schedule: 0, 0, 1, 2, 4 ... s, capped', (t) => {
  const th = new AuthThrottle(5, 20, 600_000, { maxDelayMs: 15_000 });
  t.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 10].map((n) => th.delayMs(n)), [0, 0, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
});

test('an address is banned after perAddress failures; the ban ends; other addresses are untouched', (t) => {
  let now = 1_000_000;
  const th = new AuthThrottle(5, 3, 60_000, { now: () => now });
  t.is(th.fail('alice', '198.51.100.7'), undefined);
  t.is(th.fail('alice', '198.51.100.7'), undefined);
  t.deepEqual(th.fail('bob', '198.51.100.7'), { banned: 60 });
  t.is(th.bannedFor('198.51.100.7'), 60);
  t.is(th.bannedFor('198.51.100.8'), 0, 'a neighbour is not banned');
  now += 30_000;
  t.is(th.bannedFor('198.51.100.7'), 30);
  now += 30_001;
  t.is(th.bannedFor('198.51.100.7'), 0, 'the ban expired');
  t.is(th.fail('alice', '198.51.100.7'), undefined, 'counting starts again from zero after a ban');
});

test('failures are forgotten when lockoutMs passes without a new one', (t) => {
  let now = 0;
  const th = new AuthThrottle(5, 3, 10_000, { now: () => now });
  th.fail(undefined, '192.0.2.1');
  th.fail(undefined, '192.0.2.1');
  now += 10_001;
  t.is(th.fail(undefined, '192.0.2.1'), undefined, 'the two old failures no longer count');
  t.is(th.fail(undefined, '192.0.2.1'), undefined);
  t.deepEqual(th.fail(undefined, '192.0.2.1'), { banned: 10 });
});

test('IPv6 addresses are counted per /64; IPv4-mapped addresses as IPv4', (t) => {
  t.is(throttleKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.is(throttleKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  t.is(throttleKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.is(throttleKey('::ffff:203.0.113.9'), '203.0.113.9');
  t.is(throttleKey('203.0.113.9'), '203.0.113.9');
  t.is(throttleKey('::1'), '0:0:0:0::/64');
  const th = new AuthThrottle(5, 2, 60_000);
  th.fail(undefined, '2001:db8:1:2::a');
  th.fail(undefined, '2001:db8:1:2::b');
  t.true(th.bannedFor('2001:db8:1:2::c') > 0, 'another address of the same /64 is banned too');
  t.is(th.bannedFor('2001:db8:1:3::a'), 0);
});

test('memory stays bounded: at most maxEntries per map, stale entries swept', (t) => {
  let now = 0;
  const th = new AuthThrottle(5, 20, 1000, { maxEntries: 1000, now: () => now });
  for (let i = 0; i < 5000; i++) {
    th.fail(`user${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    th.succeed(`user${i}`, `10.9.${(i >> 8) & 255}.${i & 255}`);
  }
  const s = th.size;
  t.true(s.addresses <= 1000 && s.accounts <= 1000 && s.known <= 1000, JSON.stringify(s));
  now += 60_000;
  th.sweep(now);
  t.is(th.size.addresses, 0);
  t.is(th.size.accounts, 0);
});

test.serial('gate: parallel attempts from one address get no more evaluations than its failures allow', async (t) => {
  const th = new AuthThrottle(100, 4, 60_000, { maxDelayMs: 200 });
  // Each delay step is 1 s by design; shrink the wait by starting with no failures and a 200 ms cap.
  const results = await Promise.all(Array.from({ length: 10 }, async () => {
    const g = await th.gate('192.0.2.50', 'alice', () => false);
    if (!g?.ok) return 'banned';
    await new Promise((r) => setTimeout(r, 5)); // an asynchronous check (PLAIN) in progress
    g.done('failure');
    return 'evaluated';
  }));
  t.is(results.filter((r) => r === 'evaluated').length, 4, results.join(','));
  t.true(th.bannedFor('192.0.2.50') > 0);
});

// Timing: serial tests run alone, before the others (which could hold the event loop).
test('gate: a known address skips the account delay; a new one waits accountDelayMs; neither is refused', async (t) => {
  const waits: number[] = [];
  const th = new AuthThrottle(2, 20, 60_000, { accountDelayMs: 1000, sleep: async (ms) => { waits.push(ms); } });
  th.succeed('alice', '192.0.2.10');
  for (const a of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) th.fail('alice', a); // a distributed guess
  const waited = async (addr: string): Promise<number[]> => {
    waits.length = 0;
    const g = await th.gate(addr, 'alice', () => false);
    if (!g?.ok) throw new Error('refused');
    g.done('success');
    return [...waits];
  };
  t.deepEqual(await waited('192.0.2.10'), [], 'alice at home is not slowed');
  t.deepEqual(await waited('192.0.2.99'), [1000], 'a new address waits the small account delay');
  t.deepEqual(await waited('192.0.2.99'), [], 'once it logged in, that address is known');
});

test.serial('gate: a client that leaves while waiting is not evaluated and not counted', async (t) => {
  const th = new AuthThrottle(100, 3, 60_000, { maxDelayMs: 300 });
  th.fail(undefined, '192.0.2.60');
  th.fail(undefined, '192.0.2.60'); // the next attempt waits 1 s (capped here at 300 ms)
  let gone = false;
  const p = th.gate('192.0.2.60', undefined, () => gone);
  gone = true;
  t.is(await p, undefined);
  const g = await th.gate('192.0.2.60', undefined, () => false);
  t.true(g?.ok, 'the address is not banned: the abandoned attempt did not count');
});

test('the ban text says why and when to retry', (t) => {
  t.is(humanSeconds(598), '9 min 58 s');
  t.is(humanSeconds(600), '10 min');
  t.is(humanSeconds(42), '42 s');
  t.is(humanSeconds(3900), '1 h 5 min');
  t.is(bannedText(600, Date.UTC(2025, 0, 1, 12, 0, 0)),
    'too many failed logins from your address: logins from it are refused for 10 min; try again after 2025-01-01T12:10:00Z');
});

// ---- the real server ----

type Outcome = 'ok' | 'not-authorized' | 'temporary-auth-failure' | string;

/** One SCRAM-SHA-256 login attempt on a fresh connection from `from`: its outcome, failure text and duration. */
async function attempt(s: TestServer, from: string, username: string, password: string): Promise<{ outcome: Outcome; text: string; ms: number }> {
  const c = await rawSecure(s.c2sPort, from);
  const t0 = Date.now();
  try {
    const ok = await rawScramSha256(c, username, password);
    const cond = /<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><([\w-]+)\/>/.exec(c.data)?.[1] ?? 'unknown';
    const text = /<text[^>]*>([^<]*)<\/text>/.exec(c.data)?.[1] ?? '';
    return { outcome: ok ? 'ok' : cond, text, ms: Date.now() - t0 };
  } finally { c.end(); }
}

const A = '127.0.0.1', B = '127.0.0.2';

async function withServer(limits: Record<string, unknown>, fn: (s: TestServer) => Promise<void>): Promise<void> {
  const s = await startServer({ registration: 'open', config: { limits } });
  try { await fn(s); } finally { await s.stop(); }
}

test('wrong passwords for alice from A slow and then ban A; alice logs in from B all along; A can log in again once the ban ends', async (t) => {
  await withServer({ authFailuresPerAddress: 4, authLockoutSeconds: 5, authFailuresPerAccount: 2 }, async (s) => {
    const alice = uniq('alice');
    await stopClient(await connect(s, { username: alice, password: 'right', register: true }));

    // A guesses: the first two answers come at once, then each waits longer (1 s, 2 s).
    const a1 = await attempt(s, A, alice, 'guess1');
    const a2 = await attempt(s, A, alice, 'guess2');
    t.deepEqual([a1.outcome, a2.outcome], ['not-authorized', 'not-authorized']);
    const a3 = await attempt(s, A, alice, 'guess3');
    t.is(a3.outcome, 'not-authorized');
    t.true(a3.ms >= 700, `third attempt waited ~1 s (${a3.ms} ms)`);
    t.true(a1.ms < a3.ms && a2.ms < a3.ms, `no delay for the first two (${a1.ms}, ${a2.ms} ms)`);

    // While A's fourth guess waits its 2 s, alice logs in from B with the right password.
    const a4p = attempt(s, A, alice, 'guess4');
    await new Promise((r) => setTimeout(r, 200));
    const b1 = await attempt(s, B, alice, 'right');
    t.is(b1.outcome, 'ok', 'the account is not locked for B');
    t.true(b1.ms < 5000, `B got its answer without waiting for A's ban or delays (${b1.ms} ms; the account delay is 1 s)`);
    const a4 = await a4p;
    t.is(a4.outcome, 'not-authorized');
    t.true(a4.ms >= 1500, `fourth attempt waited ~2 s (${a4.ms} ms)`);

    // A is banned now: even the right password is refused, with a text saying when to retry.
    const banned = await attempt(s, A, alice, 'right');
    t.is(banned.outcome, 'temporary-auth-failure');
    t.regex(banned.text, /too many failed logins from your address: logins from it are refused for [45] s; try again after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    t.true(banned.ms < 1500, `a ban is answered at once (${banned.ms} ms)`);
    const plain = await rawSecure(s.c2sPort, A);
    plain.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${alice}\0right`).toString('base64')}</auth>`);
    await plain.until('<temporary-auth-failure/>');
    plain.end();
    t.regex(s.logs.join('\n'), /address banned after repeated failed logins/);

    // B is untouched by A's ban, and alice's right password still works from there.
    t.is((await attempt(s, B, alice, 'right')).outcome, 'ok');

    // The ban ends: A logs in with the right password.
    await new Promise((r) => setTimeout(r, 5200));
    const again = await attempt(s, A, alice, 'right');
    t.is(again.outcome, 'ok', `A after the ban: ${again.outcome} ${again.text}`);

    const metrics = await (await fetch(`http://127.0.0.1:${s.httpPort}/metrics`)).text();
    t.regex(metrics, /pi_im_auth_failures_total [1-9]/);
  });
});

test('many parallel connections from one address get no more guesses than the ban allows', async (t) => {
  await withServer({ authFailuresPerAddress: 4, authLockoutSeconds: 30 }, async (s) => {
    const u = uniq('par');
    await stopClient(await connect(s, { username: u, password: 'right', register: true }));
    const results = await Promise.all(Array.from({ length: 10 }, () => attempt(s, '127.0.0.3', u, 'wrong')));
    const counts = results.reduce<Record<string, number>>((m, r) => ({ ...m, [r.outcome]: (m[r.outcome] ?? 0) + 1 }), {});
    t.deepEqual(counts, { 'not-authorized': 4, 'temporary-auth-failure': 6 });
    t.is((await attempt(s, B, u, 'right')).outcome, 'ok');
  });
});

test('a client that disconnects during its delay is fine: no error, and its attempt is not counted', async (t) => {
  await withServer({ authFailuresPerAddress: 4, authLockoutSeconds: 30 }, async (s) => {
    const u = uniq('gone');
    await stopClient(await connect(s, { username: u, password: 'right', register: true }));
    const from = '127.0.0.4';
    for (let i = 0; i < 3; i++) t.is((await attempt(s, from, u, 'wrong')).outcome, 'not-authorized');
    // The next attempt from there waits 2 s: send it (SCRAM to the proof) and hang up at once.
    const c = await rawSecure(s.c2sPort, from);
    void rawScramSha256(c, u, 'wrong').catch(() => false);
    await c.until('</challenge>');
    await new Promise((r) => setTimeout(r, 300));
    c.end();
    await c.closed;
    await new Promise((r) => setTimeout(r, 2500));
    // Not banned (the abandoned attempt did not count as the 4th failure), and the server is well.
    const next = await attempt(s, from, u, 'right');
    t.is(next.outcome, 'ok', `${next.outcome} ${next.text}`);
    t.is((await fetch(`http://127.0.0.1:${s.httpPort}/health`)).status, 200);
    t.notRegex(s.logs.join('\n'), /error while checking a login|uncaught|unhandled/i);
  });
});
