// Where a connection comes from (the PROXY protocol on TCP, X-Real-IP on WebSocket, trusted only
// from configured proxies) so that per-address limits see the real client; and how it starts:
// many clients doing STARTTLS at once, each as early as the protocol allows.
import net from 'node:net';
import tls from 'node:tls';
import test from 'ava';
import { WebSocket } from 'ws';
import { startServer, streamHeader, type TestServer } from './helpers.js';

const limits = { maxConnectionsPerAddress: 2, connectionLimitExempt: [] };

/** The server logged a line containing `text` (logs arrive through a pipe: give them a moment). */
async function logged(s: TestServer, text: string): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    if (s.logs.some((l) => l.includes(text))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Opens a TCP connection that first sends `prefix` (a PROXY header), then the stream header; resolves with what came back once the server answered or closed. */
function tcpWith(port: number, prefix: string | Buffer, opts: { localAddress?: string } = {}): Promise<{ data: string; socket: net.Socket }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
    let data = '';
    const done = (): void => resolve({ data, socket });
    const timer = setTimeout(done, 5000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => { data += d; if (data.includes('</stream:features>') || data.includes('</stream:error>')) { clearTimeout(timer); done(); } });
    socket.on('error', () => {});
    socket.on('close', () => { clearTimeout(timer); done(); });
    socket.write(prefix);
    socket.write(streamHeader);
  });
}

const v1 = (address: string): string => `PROXY TCP4 ${address} 127.0.0.1 40000 5222\r\n`;
function v2(address: string): Buffer {
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c]);
  const body = Buffer.alloc(12);
  address.split('.').forEach((b, i) => body.writeUInt8(Number(b), i));
  body.writeUInt8(127, 4); body.writeUInt8(1, 7); body.writeUInt16BE(40000, 8); body.writeUInt16BE(5222, 10);
  return Buffer.concat([head, body]);
}

test('PROXY protocol: the per-address connection limit counts the client nginx names, not nginx', async (t) => {
  const s = await startServer({ config: { limits, proxy: { protocol: true } } });
  try {
    const a1 = await tcpWith(s.c2sPort, v1('203.0.113.7'));
    const a2 = await tcpWith(s.c2sPort, v2('203.0.113.7'));
    t.regex(a1.data, /<\/stream:features>/);
    t.regex(a2.data, /<\/stream:features>/);
    const a3 = await tcpWith(s.c2sPort, v1('203.0.113.7'));
    t.regex(a3.data, /too many connections from your address/, 'the third connection of 203.0.113.7 is refused');
    const b = await tcpWith(s.c2sPort, v1('203.0.113.8'));
    t.regex(b.data, /<\/stream:features>/, 'another client behind the same proxy is not affected');
    // Without the header, nothing is served: a client must not pass for the proxy.
    const bare = await tcpWith(s.c2sPort, '');
    t.notRegex(bare.data, /stream:features/);
    t.true(await logged(s, 'expected a PROXY protocol header'));
    for (const c of [a1, a2, a3, b, bare]) c.socket.destroy();
  } finally { await s.stop(); }
});

test('PROXY protocol: only trusted proxies may name a client; direct TLS works behind it too', async (t) => {
  const s = await startServer({ config: { limits, proxy: { protocol: true, trusted: ['127.0.0.1'] } }, args: ['--c2s-direct-tls-port', '0'] });
  try {
    const spoof = await tcpWith(s.c2sPort, v1('203.0.113.9'), { localAddress: '127.0.0.2' });
    t.is(spoof.data, '', 'a connection from an untrusted address is closed unanswered');
    t.true(await logged(s, 'not a trusted proxy'));
    // Direct TLS (XEP-0368): the PROXY header, then the TLS handshake, then the stream.
    const data = await new Promise<string>((resolve, reject) => {
      const raw = net.connect(s.c2sDirectTlsPort!, '127.0.0.1', () => {
        raw.write(v1('203.0.113.10'));
        const c = tls.connect({ socket: raw, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['xmpp-client'] }, () => c.write(streamHeader));
        let got = '';
        c.setEncoding('utf8');
        c.on('data', (d: string) => { got += d; if (got.includes('</stream:features>')) { c.destroy(); resolve(got); } });
        c.on('error', reject);
      });
    });
    t.regex(data, /<mechanism>PLAIN<\/mechanism>/, 'SASL at once over direct TLS, PLAIN included');
  } finally { await s.stop(); }
});

function wsConnect(port: number, opts: { localAddress?: string; realIp?: string }): Promise<{ ok: boolean; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, 'xmpp', { localAddress: opts.localAddress, headers: opts.realIp ? { 'x-real-ip': opts.realIp, 'x-forwarded-for': opts.realIp } : {} });
    ws.on('error', () => {});
    ws.once('open', () => {
      ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`);
      ws.on('message', (d) => { if (d.toString().includes('stream:features')) resolve({ ok: true, ws }); });
    });
    ws.once('close', () => resolve({ ok: false, ws }));
  });
}

test('WebSocket: X-Real-IP from a trusted proxy names the client for the limits; from anyone else it is ignored', async (t) => {
  const s = await startServer({ config: { limits, proxy: { trusted: ['127.0.0.1'] } } });
  try {
    const viaProxy = [await wsConnect(s.httpPort, { realIp: '198.51.100.1' }), await wsConnect(s.httpPort, { realIp: '198.51.100.1' })];
    t.true(viaProxy.every((c) => c.ok));
    t.false((await wsConnect(s.httpPort, { realIp: '198.51.100.1' })).ok, 'the third connection of 198.51.100.1 is refused');
    t.true((await wsConnect(s.httpPort, { realIp: '198.51.100.2' })).ok, 'another client behind the proxy is served');
    // 127.0.0.2 is not a trusted proxy: its X-Real-IP is ignored, so it counts as itself.
    const direct = [await wsConnect(s.httpPort, { localAddress: '127.0.0.2', realIp: '198.51.100.3' }), await wsConnect(s.httpPort, { localAddress: '127.0.0.2', realIp: '198.51.100.4' })];
    t.true(direct.every((c) => c.ok));
    t.false((await wsConnect(s.httpPort, { localAddress: '127.0.0.2', realIp: '198.51.100.5' })).ok, 'a spoofed X-Real-IP does not escape the limit');
  } finally { await s.stop(); }
});

/** One client at full speed: STARTTLS, then the ClientHello the moment <proceed/> arrives, the new
 * stream header the moment TLS is up, SASL PLAIN, the post-auth header at once, bind, message. */
function fastLogin(port: number, user: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const plain = net.connect(port, '127.0.0.1');
    let sock: net.Socket = plain;
    let buf = '';
    let phase = 'features';
    const finish = (err?: string): void => { clearTimeout(timer); sock.destroy(); resolve(err); };
    const timer = setTimeout(() => finish(`${user}: timeout in ${phase}: ${buf.slice(-300)}`), 60_000);
    const onData = (d: string): void => {
      buf += d;
      if (buf.includes('stream:error')) return finish(`${user}: ${phase}: ${buf.slice(buf.indexOf('<stream:error'))}`);
      if (phase === 'features' && buf.includes('</stream:features>')) { phase = 'proceed'; plain.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); return; }
      if (phase === 'proceed' && buf.includes('<proceed')) {
        phase = 'tls'; buf = '';
        plain.removeAllListeners('data');
        const secure = tls.connect({ socket: plain, servername: 'localhost', rejectUnauthorized: false }, () => {
          secure.write(streamHeader + `<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>${user}</username><password>pw</password></query></iq>`);
        });
        sock = secure;
        secure.setEncoding('utf8');
        secure.on('data', onData);
        secure.on('error', (e) => finish(`${user}: TLS: ${e.message}`));
        return;
      }
      if (phase === 'tls' && /id=["']reg["']/.test(buf)) {
        phase = 'auth'; buf = '';
        sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`);
      } else if (phase === 'auth' && buf.includes('<success')) {
        phase = 'bound'; buf = '';
        sock.write(streamHeader + `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence/><message to='${user}@localhost' type='chat'><body>echo</body></message>`);
      } else if (phase === 'auth' && buf.includes('<failure')) finish(`${user}: ${buf}`);
      else if (phase === 'bound' && buf.includes('<body>echo</body>')) finish();
    };
    plain.setEncoding('utf8');
    plain.on('data', onData);
    plain.on('error', (e) => finish(`${user}: ${e.message}`));
    plain.write(streamHeader);
  });
}

test('200 clients doing STARTTLS and logging in at once, each as early as the protocol allows: every one succeeds', async (t) => {
  const s = await startServer({ registration: 'open', config: { limits: { maxConnectionsPerAddress: 1000 } } });
  try {
    const runs: Promise<string | undefined>[] = [];
    for (let i = 0; i < 200; i++) {
      runs.push(fastLogin(s.c2sPort, `race${i}`));
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 50));
    }
    const errors = (await Promise.all(runs)).filter((e): e is string => e !== undefined);
    t.deepEqual(errors, []);
    t.false(s.logs.some((l) => l.includes('not-well-formed')), 'no stream was refused as not-well-formed');
  } finally { await s.stop(); }
});

/** A client that takes whatever the server sends next as the answer to its last request and then
 * sends the next one (as some load tools do): it stays in step only if each answer comes in one
 * piece, and if what it sends early is kept for the stream it belongs to. */
function lockstepLogin(port: number, user: string, mechanism: 'PLAIN', early: 'no' | 'same-read' | 'while-checked' = 'no'): Promise<string> {
  return new Promise((resolve, reject) => {
    const plain = net.connect(port, '127.0.0.1');
    let sock: net.Socket = plain;
    let log = '';
    let headerSent: Promise<void> = Promise.resolve();
    const auth = `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mechanism}'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`;
    const steps: (() => void)[] = [
      () => sock.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`),
      () => {
        plain.removeAllListeners('data');
        const secure = tls.connect({ socket: plain, servername: 'localhost', rejectUnauthorized: false }, () => secure.write(streamHeader));
        sock = secure;
        secure.setEncoding('utf8');
        secure.on('data', onData);
        secure.on('error', reject);
      },
      () => {
        if (early === 'no') return void sock.write(auth);
        // Early: the next stream's header before <success/> came, in the same write as <auth/>
        // or a moment later (while the password is checked); the bind waits until it went out.
        steps.shift();
        if (early === 'same-read') return void sock.write(auth + streamHeader);
        sock.write(auth);
        headerSent = new Promise((r) => setTimeout(() => { sock.write(streamHeader); r(); }, 2));
      },
      () => sock.write(streamHeader),
      () => void headerSent.then(() => sock.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)),
    ];
    const onData = (d: string): void => {
      log += d;
      if (log.includes('stream:error') || log.includes('</jid>')) { sock.destroy(); resolve(log); return; }
      steps.shift()?.();
    };
    plain.setEncoding('utf8');
    plain.on('data', onData);
    plain.on('error', reject);
    plain.write(streamHeader);
    setTimeout(() => { sock.destroy(); resolve(log); }, 20_000).unref();
  });
}

test('each answer of the server comes in one piece, and what a client sends before <success/> is kept for the new stream', async (t) => {
  const s = await startServer({ registration: 'open' });
  try {
    const { connect, stopClient } = await import('./helpers.js');
    await stopClient(await connect(s, { username: 'lockstep', password: 'pw', register: true }));
    for (let i = 0; i < 9; i++) {
      const log = await lockstepLogin(s.c2sPort, 'lockstep', 'PLAIN', (['no', 'same-read', 'while-checked'] as const)[i % 3]);
      t.notRegex(log, /stream:error/, log);
      t.regex(log, /<success/);
      t.regex(log, /<jid>lockstep@localhost\/[^<]+<\/jid>/, 'the early stream header opened the authenticated stream');
    }
  } finally { await s.stop(); }
});
