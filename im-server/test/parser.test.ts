// The stream parser's hand-off between streams: input that arrives in the same read as the element
// that restarts or holds the stream is parsed by the stream it belongs to, never lost or misread.
import test from 'ava';
import { StreamParser, type ParserHandler } from '../src/core/parser.js';
import type { Element } from '../src/core/xml.js';

const LIMITS = { maxStanzaSize: 100_000, maxDepth: 20, maxAttributes: 100, maxKeepaliveBytes: 1000 };
const HEADER = `<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
const AUTH = `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAcHc=</auth>`;
const BIND = `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`;

/** A parser whose handler logs events and holds on <auth/>, as the SASL step does. */
function setup(framed = false) {
  const log: string[] = [];
  let held = false;
  const handler: ParserHandler = {
    streamStart: (name, ns, attrs) => log.push(`start ${name} ${ns} ${attrs.xmlns}`),
    element: (el: Element) => { log.push(`el ${el.name}${el.attrs.id ? '#' + el.attrs.id : ''}`); if (el.name === 'auth') held = true; },
    streamEnd: () => log.push('end'),
    error: (condition, text) => log.push(`error ${condition}: ${text}`),
    held: () => held,
  };
  const parser = new StreamParser(handler, LIMITS, framed);
  const release = (): void => { held = false; while (parser.backlogged) parser.resume(); };
  return { parser, log, release };
}

test('a new stream header in the same read as <auth/> opens the authenticated stream after success', (t) => {
  const { parser, log, release } = setup();
  parser.write(HEADER);
  parser.write(AUTH + HEADER + BIND);
  t.deepEqual(log, ['start stream http://etherx.jabber.org/streams jabber:client', 'el auth'], 'nothing after <auth/> is parsed while the password is checked');
  t.true(parser.backlogged);
  parser.restart(); // SASL success
  release();
  t.deepEqual(log.slice(2), ['start stream http://etherx.jabber.org/streams jabber:client', 'el iq#b']);
});

test('after a failed <auth/>, what followed it in the same read is parsed in the same stream, which still closes', (t) => {
  const { parser, log, release } = setup();
  parser.write(HEADER + AUTH + `<iq type='get' id='x'/></stream:stream>`);
  t.is(log.at(-1), 'el auth');
  release(); // SASL failure: no restart
  t.deepEqual(log.slice(2), ['el iq#x', 'end']);
});

test('a new stream header after a failed <auth/> is not well-formed, as it would be in a separate read', (t) => {
  const { parser, log, release } = setup();
  parser.write(HEADER + AUTH + HEADER);
  release();
  t.regex(log.at(-1)!, /^error not-well-formed: .*XML declaration/);
});

test('a restart asked for while an element is handled applies to the rest of the same read', (t) => {
  const log: string[] = [];
  const parser: StreamParser = new StreamParser({
    streamStart: (name) => log.push('start ' + name),
    element: (el) => { log.push('el ' + el.name); if (el.name === 'auth') parser.restart(); },
    streamEnd: () => log.push('end'),
    error: (c, text) => log.push(`error ${c}: ${text}`),
  }, LIMITS);
  parser.write(HEADER + AUTH + HEADER + BIND);
  while (parser.backlogged) parser.resume();
  t.deepEqual(log, ['start stream', 'el auth', 'start stream', 'el iq']);
});

test('an element whose end tag does not match is never handed out; one before a later error is', (t) => {
  const a = setup();
  a.parser.write(HEADER + `<message to='x'><body>hi</body></iq>`);
  t.false(a.log.some((l) => l.startsWith('el ')), a.log.join('\n'));
  t.regex(a.log.at(-1)!, /^error not-well-formed/);
  const b = setup();
  b.parser.write(HEADER + `<message id='m'/><a<`);
  t.deepEqual(b.log.slice(1, 2), ['el message#m']);
  t.regex(b.log.at(-1)!, /^error not-well-formed/);
});

test('WebSocket framing: an <open/> in the same message as <auth/> waits for the SASL answer', (t) => {
  const { parser, log, release } = setup(true);
  parser.write(AUTH + `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`);
  t.deepEqual(log, ['el auth']);
  release();
  t.deepEqual(log, ['el auth', 'el open']);
  parser.endOfMessage();
  t.is(log.length, 2, 'the message held whole elements');
});

test('prefixes the client declared on the stream root still resolve after a hold', (t) => {
  const { parser, log, release } = setup();
  parser.write(HEADER.replace("xmlns='jabber:client'", "xmlns='jabber:client' xmlns:x='urn:example:x'") + AUTH + `<iq type='get' id='p'><x:q/></iq>`);
  release();
  t.deepEqual(log.slice(2), ['el iq#p'], log.join('\n'));
});
