import test from 'ava';
import { admin, makeClient, startServer, stopClient, uniq, type TestServer } from './helpers.js';

const adminFails = (dataDir: string, ...args: string[]): Promise<string> =>
  admin(dataDir, ...args).then(() => 'succeeded', (e: { stderr: string }) => e.stderr);

/** Registers with the token; 'ok' or the error condition and text the client got. */
async function register(s: TestServer, token: string): Promise<string> {
  const c = makeClient(s, { username: uniq('inv'), password: 'pw', register: true, invite: token });
  const r = await c.start().then(() => 'ok', (e: { condition?: string; text?: string; message?: string }) =>
    e.condition ? `${e.condition}: ${e.text ?? ''}` : e.message ?? String(e));
  await stopClient(c);
  return r;
}

test('invites: a multi-use invite works N times, then is refused; revoked and expired invites are refused', async (t) => {
  const s = await startServer({ registration: 'invite' });
  try {
    const made = await admin(s.dataDir, 'invite', '--uses', '2', '--domain', 'localhost');
    const [token, uri] = made.stdout.trim().split('\n');
    t.regex(token!, /^[\w-]{22,}$/);
    t.is(uri, `xmpp:localhost?register;preauth=${token}`);
    t.is(await register(s, token!), 'ok');
    t.is(await register(s, token!), 'ok');
    t.regex(await register(s, token!), /^item-not-found: .*used as often as it allows/);
    t.regex((await admin(s.dataDir, 'invites')).stdout, new RegExp(`${token}\\tused up\\t.*\\t2/2 uses\\tused by inv\\w+,inv\\w+`));

    const unlimited = (await admin(s.dataDir, 'invite', '--unlimited')).stdout.split('\n')[0]!;
    for (let i = 0; i < 3; i++) t.is(await register(s, unlimited), 'ok');
    t.is((await admin(s.dataDir, 'revoke-invite', unlimited)).stdout.trim(), `revoked ${unlimited}`);
    t.regex(await register(s, unlimited), /^item-not-found: .*revoked/);
    t.regex(await adminFails(s.dataDir, 'revoke-invite', unlimited), /revoked already/);
    t.regex(await adminFails(s.dataDir, 'revoke-invite', 'nosuchtoken'), /no invite nosuchtoken/);
    t.regex((await admin(s.dataDir, 'invites')).stdout, new RegExp(`${unlimited}\\trevoked\\t.*\\t3/unlimited uses`));

    // Expiry: an invite valid for about a second (--ttl-hours takes fractions), used after it.
    const old = (await admin(s.dataDir, 'invite', '--uses', '5', '--ttl-hours', '0.0003')).stdout.split('\n')[0]!;
    await new Promise((r) => setTimeout(r, 1500));
    t.regex(await register(s, old), /^item-not-found: .*expired/);
    t.regex(await register(s, 'made-up-token'), /^item-not-found: unknown invite/);
    t.regex(await adminFails(s.dataDir, 'invite', '--uses', '0'), /--uses must be/);
  } finally { await s.stop(); }
});
