// Usernames follow the PRECIS UsernameCaseMapped profile (RFC 8265 on RFC 8264's IdentifierClass)
// at registration and login: "alice" and "alice" + U+200B could both be registered before (one
// looking like the other), as could names with U+202E turning text around. Now invisible,
// default-ignorable and bidi-control characters are refused with the reason, fullwidth forms and
// case map to the same account, right-to-left names must pass the Bidi Rule, and a new name may
// not mix Latin, Greek and Cyrillic letters. Accounts stored before keep working when their name
// is valid; the few that are not are named in the log at start and can be removed.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { enforceLocal, prepLocal } from '../src/core/jid.js';
import { makeAccount } from '../src/core/sasl.js';
import { Accounts } from '../src/storage/accounts.js';
import { testBackend } from './test-db.js';
import { admin, connect, makeClient, rawScramSha256, rawSecure, startServer, stopClient, uniq, type TestServer } from './helpers.js';


const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** XEP-0077 registration on a raw stream: the condition ('ok' on success) and the error text. */
async function register(s: TestServer, username: string, password = 'pw'): Promise<{ condition: string; text: string }> {
  const c = await rawSecure(s.c2sPort);
  c.send(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>${esc(username)}</username><password>${password}</password></query></iq>`);
  const got = await c.until(/<iq[^>]*id="reg"[\s\S]*?(<\/iq>|\/>)/);
  c.end();
  if (/type="result"/.test(got)) return { condition: 'ok', text: '' };
  const condition = /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/.exec(got)?.[1] ?? 'unknown';
  return { condition, text: /<text[^>]*>([^<]*)<\/text>/.exec(got)?.[1] ?? '' };
}

/** SCRAM-SHA-256 on a raw stream with exactly this username. */
async function login(s: TestServer, username: string, password = 'pw'): Promise<boolean> {
  const c = await rawSecure(s.c2sPort);
  try { return await rawScramSha256(c, username, password); } finally { c.end(); }
}

test('the profile: width and case mapping, NFC; invisible, bidi-control, compatibility and symbol characters refused; the Bidi Rule; contextual rules', (t) => {
  const ok: [string, string][] = [
    ['Alice', 'alice'], ['ＡＬＩＣＥ', 'alice'], ['ﾊﾟ', 'パ'], ['e\u0301', '\u00e9'], ['Straße', 'straße'], ['ΟΔΟΣ', 'οδος'],
    ['juliet.o-neil_2', 'juliet.o-neil_2'], ['שלום', 'שלום'], ['שלום1', 'שלום1'], ['محمد٣', 'محمد٣'], ['l·l', 'l·l'],
    ['\u0915\u094d\u200d\u0937', '\u0915\u094d\u200d\u0937'], // ZWJ right after a virama (RFC 5892 A.2)
    ['007', '007'], ['김철수', '김철수'], ['田中', '田中'],
  ];
  for (const [input, want] of ok) t.is(prepLocal(input), want, JSON.stringify(input));
  const refused: [string, RegExp][] = [
    ['alice\u200b', /U\+200B/], ['al\u200dice', /U\+200D/], ['\u202ealice', /U\+202E/], ['alice\u2066', /U\+2066/],
    ['ali ce', /a space \(U\+0020\)/], ['alice\u3000', /U\+0020/], ['ﬁsh', /U\+FB01/], ['x²', /U\+00B2/], ['alice\u00ad', /U\+00AD/],
    ['alice😀', /U\+1F600/], ['a·b', /U\+00B7/], ['alice@home', /"@"/], ['a/b', /"\/"/], ['', /empty/],
    ['1שלום', /Bidi Rule/], ['aשלום', /Bidi Rule/], ['٣٣۳', /U\+0663/], ['alice\u0007', /U\+0007/],
  ];
  for (const [input, why] of refused) {
    const r = enforceLocal(input);
    t.is(typeof r, 'object', JSON.stringify(input));
    if (typeof r === 'object') t.regex(r.problem, why, JSON.stringify(input));
  }
  // Idempotent (RFC 8264 §7): preparing a prepared name changes nothing.
  for (const [input] of ok) t.is(prepLocal(prepLocal(input)!), prepLocal(input));
});

test('registration (XEP-0077) and login (SASL): alice and alice+U+200B cannot both exist; invisible and direction characters are refused with the reason; look-alikes map to the same account or are refused', async (t) => {
  const s = await startServer();
  try {
    const alice = uniq('alice');
    t.deepEqual(await register(s, alice, 'secret'), { condition: 'ok', text: '' });

    for (const variant of [`${alice}\u200b`, `${alice.slice(0, 3)}\u200d${alice.slice(3)}`, `\u202e${alice}`, `${alice}\u2060`]) {
      const r = await register(s, variant);
      t.is(r.condition, 'not-acceptable', JSON.stringify(variant));
      t.regex(r.text, /not allowed in usernames/);
      t.false(await login(s, variant, 'secret'), `login as ${JSON.stringify(variant)} fails`);
    }
    // Case and width map to alice herself: taken, and her password logs her in.
    const fullwidth = [...alice].map((c) => String.fromCodePoint(c.codePointAt(0)! - 0x21 + 0xff01)).join('');
    for (const same of [alice.toUpperCase(), fullwidth]) {
      t.is((await register(s, same)).condition, 'conflict', JSON.stringify(same));
      t.true(await login(s, same, 'secret'), `login as ${JSON.stringify(same)} is alice`);
    }
    // A Cyrillic "а" among Latin letters: a look-alike name, refused.
    const cyr = await register(s, `\u0430${alice.slice(1)}`);
    t.is(cyr.condition, 'not-acceptable');
    t.regex(cyr.text, /mixes Latin and Cyrillic letters/);
    // Real names in other scripts register and log in.
    for (const name of [`шура${Date.now() % 1000}`, 'שלום', 'straße']) {
      t.is((await register(s, name)).condition, 'ok', name);
      t.true(await login(s, name));
    }
    const c = await connect(s, { username: alice.toUpperCase(), password: 'secret' });
    t.is(c.jid!.local, alice, '@xmpp/client (SCRAM-SHA-1) logs in as the prepared name');
    await stopClient(c);
  } finally {
    await s.stop();
  }
});

test('accounts stored before keep working; a stored name the rules now refuse is named in the log at start, cannot log in, and admin deluser removes it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-names-'));
  // Stored as an older release did, without today's checks, in the store the server will use.
  const backend = await testBackend(dir);
  const accounts = await Accounts.open(backend);
  for (const u of ['carol', 'zoë', 'bob\u200b']) await accounts.create(await makeAccount(u, 'pw', 4096));
  await backend.close();

  const s = await startServer({ dataDir: dir });
  try {
    const warned = s.logs.filter((l) => l.includes('account name not valid under the username rules'));
    t.is(warned.length, 1);
    t.regex(warned[0]!, /"user":"bob\\u200b"|"user":"bob\u200b"/);
    t.regex(warned[0]!, /U\+200B/);
    t.true(await login(s, 'carol'), 'an ASCII name stored before logs in');
    t.true(await login(s, 'Zoë'), 'a non-ASCII name stored before logs in');
    t.false(await login(s, 'bob\u200b'));
    t.false(await login(s, 'bob'), 'and it is not bob');
    t.is((await register(s, 'bob')).condition, 'ok', 'bob is free');
    const out = await admin(dir, 'deluser', 'bob\u200b');
    t.regex(out.stdout, /deleted bob\u200b/);
    const users = await admin(dir, 'users');
    t.deepEqual(users.stdout.trim().split('\n').sort(), ['bob', 'carol', 'zoë']);
    const refused = await admin(dir, 'adduser', 'dave\u200b', '--password-file', '/dev/null').catch((e: { stderr: string }) => e);
    t.regex((refused as { stderr: string }).stderr, /not a valid user JID: .*U\+200B/);
    const c = makeClient(s, { username: 'carol', password: 'pw' });
    await c.start();
    await stopClient(c);
  } finally {
    await s.stop();
  }
});
