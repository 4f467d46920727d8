// What a client learns before and right after logging in: the WebSocket endpoint from
// /.well-known/host-meta(.json) (XEP-0156, as converse.js asks for it) and the operators'
// contact addresses in the server's disco#info (XEP-0157).
import http from 'node:http';
import test from 'ava';
import { xml, type Element } from '@xmpp/client';
import { WebSocket } from 'ws';
import { ConfigError, loadConfig, validateConfig } from '../src/config.js';
import { connect, startServer, stopClient, uniq, type TestServer } from './helpers.js';

interface Got { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A plain HTTP request to the server, with the headers nginx would set (Host, X-Forwarded-Proto). */
function get(s: TestServer, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: s.httpPort, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The WebSocket URL in each document (XRD and JSON). */
async function advertised(s: TestServer, headers: Record<string, string> = {}): Promise<{ xrd: string | undefined; json: string | undefined }> {
  const x = await get(s, '/.well-known/host-meta', headers);
  const j = await get(s, '/.well-known/host-meta.json', headers);
  const xrd = /<Link rel='urn:xmpp:alt-connections:websocket' href='([^']*)'\/>/.exec(x.body)?.[1];
  const links = (JSON.parse(j.body) as { links: { rel: string; href: string }[] }).links;
  return { xrd, json: links.find((l) => l.rel === 'urn:xmpp:alt-connections:websocket')?.href };
}

const serverinfo = (info: Element): Element | undefined => info.getChildren('x', 'jabber:x:data')
  .find((x) => x.getChildren('field').some((f) => f.attrs.var === 'FORM_TYPE' && f.getChildText('value') === 'http://jabber.org/network/serverinfo'));

test('host-meta: the WebSocket URL from the Host header and X-Forwarded-Proto, both formats, any origin', async (t) => {
  const s = await startServer();
  try {
    const x = await get(s, '/.well-known/host-meta', { host: 'chat.example.org', 'x-forwarded-proto': 'https', origin: 'https://web.example' });
    t.is(x.status, 200);
    t.regex(x.headers['content-type'] ?? '', /^application\/xrd\+xml/);
    t.is(x.headers['access-control-allow-origin'], '*');
    t.regex(x.body, /^<\?xml version='1.0' encoding='utf-8'\?>\n<XRD xmlns='http:\/\/docs.oasis-open.org\/ns\/xri\/xrd-1.0'>/);
    const j = await get(s, '/.well-known/host-meta.json', { host: 'chat.example.org', 'x-forwarded-proto': 'https' });
    t.is(j.status, 200);
    t.is(j.headers['content-type'], 'application/json');
    t.is(j.headers['access-control-allow-origin'], '*');
    t.deepEqual(JSON.parse(j.body), { links: [{ rel: 'urn:xmpp:alt-connections:websocket', href: 'wss://chat.example.org/xmpp-websocket' }] });
    t.deepEqual(await advertised(s, { host: 'chat.example.org', 'x-forwarded-proto': 'https' }),
      { xrd: 'wss://chat.example.org/xmpp-websocket', json: 'wss://chat.example.org/xmpp-websocket' });

    // Plain HTTP straight to the node: ws:// on the address it was asked at, which works.
    const direct = `127.0.0.1:${s.httpPort}`;
    const plain = await advertised(s, { host: direct });
    t.deepEqual(plain, { xrd: `ws://${direct}/xmpp-websocket`, json: `ws://${direct}/xmpp-websocket` });
    const ws = new WebSocket(plain.json!, 'xmpp');
    await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    t.is(ws.protocol, 'xmpp');
    ws.close();

    // A Host header that is not a host name is not echoed; the server's own name stands in.
    const odd = await advertised(s, { host: `x'/><Link rel='evil' href='http://evil` });
    t.regex(odd.xrd!, /^ws:\/\/localhost:\d+\/xmpp-websocket$/);
    t.is(odd.json, odd.xrd);

    t.is((await get(s, '/.well-known/host-meta', {}, 'OPTIONS')).status, 204);
    t.is((await get(s, '/.well-known/host-meta', {}, 'POST')).status, 405);
    t.is((await get(s, '/.well-known/host-meta.xml')).status, 404);

    // No contact addresses configured: no serverinfo form.
    const c = await connect(s, { username: uniq('disc'), password: 'pw', register: true });
    const info = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'localhost');
    t.is(serverinfo(info), undefined);
    await stopClient(c);
  } finally { await s.stop(); }
});

// One server for the configured cases.
const CONTACT = { abuse: ['mailto:abuse@example.org', 'xmpp:abuse@example.org'], security: ['https://example.org/security'] };
let configured: Promise<TestServer> | undefined;
const configuredServer = (): Promise<TestServer> =>
  (configured ??= startServer({ config: { contact: CONTACT }, args: ['--websocket-url', 'wss://chat.example.org:8443/xmpp-websocket'] }));
test.after.always(async () => { if (configured) await (await configured).stop(); });

test('host-meta: a configured WebSocket URL (--websocket-url) whatever the request says', async (t) => {
  const s = await configuredServer();
  for (const headers of [{}, { host: 'other.example', 'x-forwarded-proto': 'https' }] as Record<string, string>[]) {
    t.deepEqual(await advertised(s, headers), { xrd: 'wss://chat.example.org:8443/xmpp-websocket', json: 'wss://chat.example.org:8443/xmpp-websocket' });
  }
});

// NEEDS the disco.ts change (disco.ts is another helper's): in the server's disco#info handler,
// after the features loop, `for (const x of host.discoExtensions) q.append(x.clone());`. Until
// then this test fails and is marked so; once applied, ava says it passed unexpectedly: make it test().
test('contact addresses (XEP-0157): the serverinfo form in the server\'s disco#info with the configured URIs', async (t) => {
  const s = await configuredServer();
  const c = await connect(s, { username: uniq('disc'), password: 'pw', register: true });
  const info = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'localhost');
  await stopClient(c);
  const form = serverinfo(info);
  t.truthy(form, 'the serverinfo form is in disco#info');
  const fields = Object.fromEntries((form?.getChildren('field') ?? []).filter((f) => f.attrs.var !== 'FORM_TYPE')
    .map((f) => [f.attrs.var, f.getChildren('value').map((v) => v.text())]));
  t.deepEqual(fields, { 'abuse-addresses': CONTACT.abuse, 'security-addresses': CONTACT.security });
});

test('config: --websocket-url must be a ws(s) URL, contact addresses mailto:/xmpp:/https: URIs', (t) => {
  t.is(loadConfig(['--websocket-url', 'wss://chat.example.org/xmpp-websocket'], {}).web.publicWebsocketUrl, 'wss://chat.example.org/xmpp-websocket');
  t.is(loadConfig([], { PI_IM_WEBSOCKET_URL: 'ws://10.0.0.2:5280/xmpp-websocket' }).web.publicWebsocketUrl, 'ws://10.0.0.2:5280/xmpp-websocket');
  const e = t.throws(() => loadConfig(['--websocket-url', 'https://chat.example.org/xmpp-websocket'], {}), { instanceOf: ConfigError });
  t.regex(e!.message, /web\.publicWebsocketUrl: must be a ws:\/\/ or wss:\/\/ URL \(set by --websocket-url, PI_IM_WEBSOCKET_URL\)/);
  t.deepEqual(validateConfig({ contact: { admin: ['xmpp:ops@example.org', 'mailto:ops@example.org', 'https://example.org/contact'] } }).contact.admin,
    ['xmpp:ops@example.org', 'mailto:ops@example.org', 'https://example.org/contact']);
  for (const uri of ['ops@example.org', 'http://example.org/contact', 'mailto:', 'tel:+1555']) {
    const c = t.throws(() => validateConfig({ contact: { abuse: ['mailto:abuse@example.org', uri] } }), { instanceOf: ConfigError });
    t.regex(c!.message, /contact\.abuse\.1: expected a mailto:, xmpp: or https: URI/, uri);
  }
});
