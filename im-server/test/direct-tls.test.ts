// XEP-0368 direct TLS: a client that speaks TLS from the first byte (as Conversations and Monal
// do when DNS has an _xmpps-client SRV record) logs in without STARTTLS and talks to everyone else.
import test from 'ava';
import tls from 'node:tls';
import { xml } from '@xmpp/client';
import { connect, startServer, stopClient, uniq, waitFor } from './helpers.js';

const HEADER = `<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

test('direct TLS: register and log in over xmpps://, chat with a STARTTLS user', async (t) => {
  const server = await startServer({ args: ['--c2s-direct-tls-port', '0'] });
  try {
    t.truthy(server.c2sDirectTlsPort, 'the ready line names the direct TLS port');
    const a = uniq('dtls'), b = uniq('stls');
    const alice = await connect(server, { username: a, password: 'pw', register: true, transport: 'tls' });
    const bob = await connect(server, { username: b, password: 'pw', register: true, transport: 'tcp' });
    await alice.send(xml('presence'));
    await bob.send(xml('presence'));
    await alice.send(xml('message', { to: `${b}@localhost`, type: 'chat', id: 'm1' }, xml('body', {}, 'over direct TLS')));
    t.is((await waitFor(bob, (s) => s.is('message') && s.attrs.id === 'm1')).getChildText('body'), 'over direct TLS');
    await bob.send(xml('message', { to: `${a}@localhost`, type: 'chat', id: 'm2' }, xml('body', {}, 'over STARTTLS')));
    t.is((await waitFor(alice, (s) => s.is('message') && s.attrs.id === 'm2')).getChildText('body'), 'over STARTTLS');
    await stopClient(alice);
    await stopClient(bob);
  } finally {
    await server.stop();
  }
});

test('direct TLS: ALPN xmpp-client is chosen; the stream offers SASL (PLAIN too) and no STARTTLS; other ALPN is refused', async (t) => {
  const server = await startServer({ args: ['--c2s-direct-tls-port', '0'] });
  try {
    const socket = tls.connect({ port: server.c2sDirectTlsPort!, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['xmpp-client'] });
    await new Promise<void>((res, rej) => { socket.once('secureConnect', res); socket.once('error', rej); });
    t.is(socket.alpnProtocol, 'xmpp-client');
    let data = '';
    socket.setEncoding('utf8');
    const features = new Promise<string>((resolve) => socket.on('data', (d: string) => { data += d; if (data.includes('</stream:features>')) resolve(data); }));
    socket.write(HEADER);
    const f = await features;
    t.regex(f, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
    t.regex(f, /<mechanism>PLAIN<\/mechanism>/, 'PLAIN is offered: the connection is encrypted');
    t.notRegex(f, /starttls/);
    socket.destroy();

    const h2 = tls.connect({ port: server.c2sDirectTlsPort!, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const err = await new Promise<Error>((resolve) => { h2.once('error', resolve); h2.once('secureConnect', () => resolve(new Error('connected'))); });
    t.regex(String((err as NodeJS.ErrnoException).code), /NO_APPLICATION_PROTOCOL/);
  } finally {
    await server.stop();
  }
});

test('direct TLS is off unless a port is given', async (t) => {
  const server = await startServer({});
  try {
    t.is(server.c2sDirectTlsPort, undefined);
    t.false(server.logs.some((l) => l.includes('c2sDirectTlsPort')), 'no direct TLS listener');
  } finally {
    await server.stop();
  }
});
