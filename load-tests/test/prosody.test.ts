// The client against a real Prosody (Debian's package): registration, SCRAM and PLAIN logins
// over TCP+STARTTLS and WebSocket, certificate checks, message round trips, account removal.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startProsody, prosodyAvailable, type Peer } from '../src/peers/prosody.js';
import { XmppClient, type ClientOptions } from '../src/xmpp/client.js';
import type { XmlElement } from '../src/xmpp/xml.js';

let peer: Peer | undefined;
let ca: Buffer;

test.before(async () => {
  if (!prosodyAvailable()) throw new Error('prosody is not installed: apt-get install prosody (npm run setup does it)');
  peer = await startProsody();
  ca = readFileSync(peer.caFile);
});
test.after.always(async () => {
  await peer?.stop();
});

const tcp = (extra: Partial<ClientOptions> = {}): XmppClient => new XmppClient({ domain: peer!.domain, port: peer!.c2sPort, ca, timeoutMs: 10_000, ...extra });
const ws = (extra: Partial<ClientOptions> = {}): XmppClient => tcp({ wsUrl: peer!.wsUrl, ...extra });
const user = () => `t${randomBytes(4).toString('hex')}`;

async function registered(make: () => XmppClient): Promise<{ name: string; password: string }> {
  const name = user();
  const password = randomBytes(8).toString('hex');
  const c = make();
  await c.connect();
  await c.register(name, password);
  c.destroy();
  return { name, password };
}

async function online(make: () => XmppClient, a: { name: string; password: string }): Promise<XmppClient> {
  const c = make();
  await c.connect();
  await c.login(a.name, a.password);
  return c;
}

for (const mechanism of ['SCRAM-SHA-1', 'PLAIN'] as const) {
  test(`TCP+STARTTLS: register and log in with ${mechanism}, bind a JID`, async (t) => {
    const a = await registered(() => tcp());
    const c = await online(() => tcp({ mechanism }), a);
    t.regex(c.jid, new RegExp(`^${a.name}@${peer!.domain.replace(/\./g, '\\.')}/.+`));
    await c.close();
    t.false(c.isOpen);
  });
}

test('WebSocket (RFC 7395): register, log in, ping the server', async (t) => {
  const a = await registered(() => ws());
  const c = await online(() => ws(), a);
  t.true(c.jid.startsWith(`${a.name}@`));
  const pong = await c.iq('get', peer!.domain, '<ping xmlns="urn:xmpp:ping"/>');
  t.is(pong.attrs.type, 'result');
  await c.close();
});

test('message round trip from a TCP user to a WebSocket user, with the body intact', async (t) => {
  const a = await registered(() => tcp());
  const b = await registered(() => ws());
  const ca1 = await online(() => tcp(), a);
  const cb = await online(() => ws(), b);
  cb.sendPresence();
  await new Promise((r) => setTimeout(r, 100)); // available presence processed before the message
  const got = new Promise<XmlElement>((resolve) => (cb.onMessage = resolve));
  const body = 'grüße <&> "quoted"';
  ca1.sendMessage(`${b.name}@${peer!.domain}`, body);
  const m = await got;
  t.is(m.child('body')?.text(), body);
  t.true(m.attrs.from?.startsWith(`${a.name}@`));
  await Promise.all([ca1.close(), cb.close()]);
});

test('a wrong password is refused with not-authorized', async (t) => {
  const a = await registered(() => tcp());
  const e = await t.throwsAsync(online(() => tcp(), { name: a.name, password: 'wrong' }));
  t.is((e as { condition?: string }).condition, 'not-authorized');
});

test('the certificate is checked: no CA given means the self-signed server is refused', async (t) => {
  const c = new XmppClient({ domain: peer!.domain, port: peer!.c2sPort, timeoutMs: 10_000 });
  await t.throwsAsync(c.connect(), { message: /self-signed|certificate/i });
  const insecure = new XmppClient({ domain: peer!.domain, port: peer!.c2sPort, insecure: true, timeoutMs: 10_000 });
  await insecure.connect();
  insecure.destroy();
});

test('registering an existing name is a conflict; removal deletes the account', async (t) => {
  const a = await registered(() => tcp());
  const again = tcp();
  await again.connect();
  const e = await t.throwsAsync(again.register(a.name, 'x'));
  t.is((e as { condition?: string }).condition, 'conflict');
  again.destroy();
  const c = await online(() => tcp(), a);
  await c.unregister().catch((err: { condition?: string }) => {
    if (err.condition !== 'closed') throw err; // the server may close the stream right after
  });
  c.destroy();
  const gone = await t.throwsAsync(online(() => tcp(), a));
  t.is((gone as { condition?: string }).condition, 'not-authorized');
});
