// Property-based fuzzing of the stream parser and the stanza handlers (fast-check): generated
// XMPP traffic (every kind of stanza the server handles, and mutations of it: truncation, random
// and invalid UTF-8 bytes, deep nesting, huge and many attributes, entity and DTD tricks, wrong
// namespaces) sent over real TCP and WebSocket connections to one server, before login and in a
// logged-in session. Seeds: what @xmpp/client sends in a login and a few stanzas, recorded.
// Checks, for every generated case:
//   - the connection is answered or closed in time: a ping sent after the input is answered, or
//     the server closes the stream; if neither (the input left an element open), our end of the
//     stream (FIN / WebSocket close) must make the server close within ANSWER_MS: no hang;
//   - no internal-server-error (stream or stanza), and well-formed input is never refused as
//     malformed; every IQ get/set of a well-formed case addressed to the server is answered;
//   - the server process stays alive, no uncaught/unhandled error or "error while handling input"
//     in its log, and its RSS (/proc/<pid>/status) stays under FUZZ_RSS_MIB; /health 200 after.
// Time: FUZZ_SECONDS (default 60) for the five properties together (they run at once).
// Replay: the seed is printed; FUZZ_SEED=<n> (or `random`), and for one counterexample
// FUZZ_PROPERTY=<name> FUZZ_PATH=<path from the report>.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import tls from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { xml } from '@xmpp/client';
import { WebSocket } from 'ws';
import { connect, startServer, stopClient, type TestServer, type XmppClient } from './helpers.js';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 60);
const SEED = process.env.FUZZ_SEED === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED ?? 20260601);
const ONLY = process.env.FUZZ_PROPERTY;
const PATH = process.env.FUZZ_PATH;
const RSS_LIMIT_MIB = Number(process.env.FUZZ_RSS_MIB ?? 600);
const ANSWER_MS = Number(process.env.FUZZ_ANSWER_MS ?? 10_000);
const D = 'localhost';
const USERS = ['fuzz0', 'fuzz1', 'fuzz2', 'fuzz3'];
const PASSWORD = 'fuzz-pw';
const NS_CLIENT = 'jabber:client';
const HEADER = `<?xml version='1.0'?><stream:stream to='${D}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
const WS_OPEN = `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="${D}" version="1.0"/>`;
/** Log lines that mean a bug: an exception escaped a handler, or the server answered with internal-server-error. */
const BAD_LOG = /uncaught|unhandled|error while handling input|internal-server-error|"level":(50|60)/i;

let server: TestServer;
let rssMaxMiB = 0;
let rssTimer: NodeJS.Timeout | undefined;
/** Stanzas @xmpp/client sent once bound (the seed corpus), serialised. */
const recorded: string[] = [];

test.before(async () => {
  server = await startServer({
    registration: 'open',
    args: ['--log-level', 'info'],
    config: { limits: { stanzasPerSecond: 5000, stanzaBurst: 5000, maxConnectionsPerAddress: 10_000 } },
  });
  const pid = server.proc.pid!;
  const rss = (): void => {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) rssMaxMiB = Math.max(rssMaxMiB, Number(m[1]) / 1024);
    } catch { /* exited: the checks say so */ }
  };
  rss();
  rssTimer = setInterval(rss, 200);
  for (const u of USERS) await stopClient(await connect(server, { username: u, password: PASSWORD, register: true }));
  await recordCorpus();
  console.log(`fuzz: seed ${SEED}, ${SECONDS} s, server pid ${pid}, ${recorded.length} recorded stanzas in the seed corpus`);
});

test.after.always(async () => {
  if (rssTimer) clearInterval(rssTimer);
  await server?.stop();
});

/** A login and a few stanzas by @xmpp/client, as the seed corpus. */
async function recordCorpus(): Promise<void> {
  const c: XmppClient = await connect(server, { username: USERS[0]!, password: PASSWORD, resource: 'recorder' });
  c.on('send', (el: { toString(): string }) => recorded.push(el.toString()));
  const iq = (type: string, to: string | undefined, child: ReturnType<typeof xml>) => c.iqCaller.request(xml('iq', { type, ...(to ? { to } : {}) }, child)).catch(() => undefined);
  await c.send(xml('presence', {}, xml('show', {}, 'chat'), xml('status', {}, 'fuzzing'), xml('c', { xmlns: 'http://jabber.org/protocol/caps', hash: 'sha-1', node: 'https://example.org', ver: 'QgayPKawpkPSDYmwT/WM94uAlu0=' })));
  await iq('get', undefined, xml('query', { xmlns: 'jabber:iq:roster' }));
  await iq('get', D, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
  await iq('get', D, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }));
  await iq('get', undefined, xml('vCard', { xmlns: 'vcard-temp' }));
  await iq('set', undefined, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Fuzz Zero'), xml('NICKNAME', {}, 'fz')));
  await iq('get', D, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await iq('set', undefined, xml('query', { xmlns: 'jabber:iq:private' }, xml('storage', { xmlns: 'storage:bookmarks' }, xml('conference', { jid: `lobby@conference.${D}`, autojoin: 'true' }))));
  await iq('get', undefined, xml('query', { xmlns: 'jabber:iq:private' }, xml('storage', { xmlns: 'storage:bookmarks' })));
  await iq('set', undefined, xml('enable', { xmlns: 'urn:xmpp:carbons:2' }));
  await iq('get', undefined, xml('blocklist', { xmlns: 'urn:xmpp:blocking' }));
  await iq('set', undefined, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' }, xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, xml('max', {}, '5'), xml('before'))));
  await iq('set', undefined, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }, xml('publish', { node: 'http://jabber.org/protocol/tune' }, xml('item', { id: 'current' }, xml('tune', { xmlns: 'http://jabber.org/protocol/tune' }, xml('title', {}, 'Fuzz'))))));
  await iq('get', `upload.${D}`, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename: 'a.png', size: '1000', 'content-type': 'image/png' }));
  await c.send(xml('presence', { to: `lobby@conference.${D}/zero` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }, xml('history', { maxstanzas: '3' }))));
  await c.send(xml('message', { to: `lobby@conference.${D}`, type: 'groupchat', id: 'g1' }, xml('body', {}, 'hello room')));
  await c.send(xml('message', { to: `${USERS[1]}@${D}`, type: 'chat', id: 'm1' }, xml('body', {}, 'hello'), xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' }), xml('request', { xmlns: 'urn:xmpp:receipts' }), xml('origin-id', { xmlns: 'urn:xmpp:sid:0', id: 'o1' })));
  await c.send(xml('presence', { to: `${USERS[2]}@${D}`, type: 'subscribe' }));
  await iq('get', D, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await stopClient(c);
}

// ---- a small XML model, serialised well-formed ----

interface X { n: string; a?: Record<string, string | undefined>; c?: Array<X | string> }
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escA = (s: string): string => esc(s).replace(/"/g, '&quot;');
function ser(x: X | string): string {
  if (typeof x === 'string') return esc(x);
  const attrs = Object.entries(x.a ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${escA(v!)}"`).join('');
  return x.c?.length ? `<${x.n}${attrs}>${x.c.map(ser).join('')}</${x.n}>` : `<${x.n}${attrs}/>`;
}
const el = (n: string, a: Record<string, string | undefined> = {}, ...c: Array<X | string>): X => ({ n, a, c });
/** Present half of the time. */
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined, freq: 2 });
/** Present one time in ten (what closes a stream, e.g. a forged from). */
const rare = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });

// ---- generators of well-formed traffic ----

/** Only characters XML 1.0 allows (mutations add the others). */
const xmlChars = (s: string): string => s.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '');
const text = fc.string({ unit: 'grapheme', maxLength: 30 }).map(xmlChars);
const longText = fc.oneof(text, fc.string({ unit: 'grapheme-ascii', minLength: 200, maxLength: 5000 }).map(xmlChars));
const ident = fc.string({ unit: 'grapheme-ascii', maxLength: 12 }).map(xmlChars);
const bare = USERS.map((u) => `${u}@${D}`);
const ROOMS = [`room1@conference.${D}`, `room2@conference.${D}`, `lobby@conference.${D}`];
/** Addresses whose IQs the server itself must answer (result or error). */
const serverTo = fc.constantFrom<string | undefined>(undefined, D, `conference.${D}`, `upload.${D}`, `ghost@${D}`, `remote.example`, ...ROOMS, ...bare);
const anyTo = fc.oneof(
  serverTo,
  fc.constantFrom(`${USERS[1]}@${D}/r`, `${ROOMS[0]}/nick`, `${ROOMS[1]}/fz`, 'user@remote.example/x', `@${D}`, 'a@b@c', `${D}/`, `${USERS[2]}@${D}/fuzz-tcp`),
  text,
);
/** Blocking and roster targets that do not cut the fuzz accounts off from the server or each other. */
const safeJid = fc.oneof(fc.constantFrom(`ghost@${D}`, 'remote.example', 'spam@remote.example', `nobody@${D}/x`), text.map((t) => `${t}@remote.example`));
const num = fc.oneof(fc.integer({ min: -5, max: 300 }).map(String), fc.constantFrom('', 'abc', '1e999', '-0', '4294967296', '99999999999999999999', ' 5 '));
const date = fc.oneof(fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }).map((d) => d.toISOString()), text);
const base64 = fc.uint8Array({ maxLength: 3000 }).map((b) => Buffer.from(b).toString('base64'));
const form = (type: string, formType: string | undefined, fields: Array<[string, string[]]>): X =>
  el('x', { xmlns: 'jabber:x:data', type },
    ...(formType ? [el('field', { var: 'FORM_TYPE', type: 'hidden' }, el('value', {}, formType))] : []),
    ...fields.map(([v, vals]) => el('field', { var: v }, ...vals.map((val) => el('value', {}, val)))));
const fields = (names: string[], value: fc.Arbitrary<string>): fc.Arbitrary<Array<[string, string[]]>> =>
  fc.array(fc.tuple(fc.constantFrom(...names), fc.array(value, { maxLength: 2 })), { maxLength: 4 });
const ns = fc.constantFrom('urn:example:unknown', 'jabber:iq:roster', 'http://jabber.org/protocol/disco#info', 'urn:xmpp:mam:2', 'vcard-temp',
  'http://jabber.org/protocol/pubsub', 'jabber:iq:private', 'urn:xmpp:ping', 'jabber:client', 'jabber:x:data', 'storage:bookmarks', 'jabber:iq:register');

type Iq = { type: 'get' | 'set'; p?: X; extra?: X };
const PUBSUB = 'http://jabber.org/protocol/pubsub';
const pepNode = fc.oneof(fc.constantFrom('http://jabber.org/protocol/tune', 'urn:xmpp:avatar:metadata', 'urn:xmpp:avatar:data', 'eu.siacs.conversations.axolotl.devicelist', 'urn:xmpp:omemo:2:bundles', 'urn:xmpp:bookmarks:1', 'storage:bookmarks'), text);
const payload: fc.Arbitrary<X> = fc.oneof(
  fc.record({ t: text }).map(({ t }) => el('tune', { xmlns: 'http://jabber.org/protocol/tune' }, el('title', {}, t))),
  fc.record({ ns, t: longText }).map(({ ns: n, t }) => el('data', { xmlns: n }, t)),
  fc.record({ j: fc.constantFrom(...ROOMS), t: text }).map(({ j, t }) => el('conference', { xmlns: 'urn:xmpp:bookmarks:1', autojoin: 'true', name: t }, el('nick', {}, t), el('extensions', {}, el('x', { xmlns: j })))),
);
const iqArb: fc.Arbitrary<Iq> = fc.oneof(
  fc.record({ n: fc.constantFrom('info', 'items'), node: opt(text) }).map(({ n, node }) => ({ type: 'get' as const, p: el('query', { xmlns: `http://jabber.org/protocol/disco#${n}`, node }) })),
  opt(text).map((ver) => ({ type: 'get' as const, p: el('query', { xmlns: 'jabber:iq:roster', ver }) })),
  fc.record({ jid: fc.oneof(safeJid, fc.constantFrom(...bare)), name: opt(text), sub: opt(fc.constantFrom('remove', 'both', 'none', 'to', 'from', 'bogus')), groups: fc.array(text, { maxLength: 3 }), ask: opt(fc.constantFrom('subscribe', 'x')) })
    .map((r) => ({ type: 'set' as const, p: el('query', { xmlns: 'jabber:iq:roster' }, el('item', { jid: r.jid, name: r.name, subscription: r.sub, ask: r.ask }, ...r.groups.map((g) => el('group', {}, g)))) })),
  fc.constant({ type: 'get' as const, p: el('vCard', { xmlns: 'vcard-temp' }) }),
  fc.record({ fn: text, nick: opt(text), photo: opt(base64), type: opt(fc.constantFrom('image/png', 'text/html', '')) })
    .map((r) => ({ type: 'set' as const, p: el('vCard', { xmlns: 'vcard-temp' }, el('FN', {}, r.fn), ...(r.nick !== undefined ? [el('NICKNAME', {}, r.nick)] : []), ...(r.photo !== undefined ? [el('PHOTO', {}, el('TYPE', {}, r.type ?? ''), el('BINVAL', {}, r.photo))] : [])) })),
  fc.record({ n: fc.oneof(ns, fc.constantFrom('storage:rosternotes', 'exodus:prefs', 'jabber:x:oob', 'http://jabber.org/x')) }).map(({ n }) => ({ type: 'get' as const, p: el('query', { xmlns: 'jabber:iq:private' }, el('x', { xmlns: n })) })),
  fc.record({ n: fc.oneof(ns, fc.constantFrom('storage:rosternotes', 'exodus:prefs', 'jabber:x:oob')), body: longText, many: fc.boolean() })
    .map(({ n, body, many }) => ({ type: 'set' as const, p: el('query', { xmlns: 'jabber:iq:private' }, el('x', { xmlns: n }, body), ...(many ? [el('y', { xmlns: 'urn:fuzz:second' })] : [])) })),
  fc.constant({ type: 'set' as const, p: el('query', { xmlns: 'jabber:iq:private' }) }),
  fc.record({
    qid: opt(ident), fs: fields(['with', 'start', 'end', 'before-id', 'after-id', 'ids', 'bogus'], fc.oneof(date, fc.constantFrom(...bare), text)),
    max: opt(num), after: opt(text), before: opt(fc.oneof(text, fc.constant(''))), index: opt(num), flip: fc.boolean(), formType: opt(fc.constantFrom('urn:xmpp:mam:2', 'urn:xmpp:mam:1', 'bogus')),
  }).map((r) => ({
    type: 'set' as const,
    p: el('query', { xmlns: 'urn:xmpp:mam:2', queryid: r.qid }, form('submit', r.formType, r.fs),
      el('set', { xmlns: 'http://jabber.org/protocol/rsm' }, ...(r.max !== undefined ? [el('max', {}, r.max)] : []), ...(r.after !== undefined ? [el('after', {}, r.after)] : []), ...(r.before !== undefined ? [el('before', {}, r.before)] : []), ...(r.index !== undefined ? [el('index', {}, r.index)] : [])),
      ...(r.flip ? [el('flip-page')] : [])),
  })),
  fc.constantFrom<Iq>({ type: 'get', p: el('metadata', { xmlns: 'urn:xmpp:mam:2' }) }, { type: 'get', p: el('prefs', { xmlns: 'urn:xmpp:mam:2' }) }, { type: 'get', p: el('query', { xmlns: 'urn:xmpp:mam:2' }) }),
  fc.record({ def: fc.constantFrom('always', 'never', 'roster', 'bogus'), always: fc.array(fc.constantFrom(...bare), { maxLength: 2 }) })
    .map((r) => ({ type: 'set' as const, p: el('prefs', { xmlns: 'urn:xmpp:mam:2', default: r.def }, el('always', {}, ...r.always.map((j) => el('jid', {}, j))), el('never')) })),
  fc.record({ node: pepNode, id: opt(ident), p: payload, po: opt(fields(['pubsub#access_model', 'pubsub#persist_items', 'pubsub#max_items', 'pubsub#send_last_published_item', 'bogus'], fc.oneof(fc.constantFrom('open', 'presence', 'roster', 'whitelist', 'true', 'false', 'max', 'on_sub_and_presence'), num))) })
    .map((r) => ({ type: 'set' as const, p: el('pubsub', { xmlns: PUBSUB }, el('publish', { node: r.node }, el('item', { id: r.id }, r.p)), ...(r.po ? [el('publish-options', {}, form('submit', 'http://jabber.org/protocol/pubsub#publish-options', r.po))] : [])) })),
  fc.record({ node: pepNode, max: opt(num), ids: fc.array(ident, { maxLength: 3 }) })
    .map((r) => ({ type: 'get' as const, p: el('pubsub', { xmlns: PUBSUB }, el('items', { node: r.node, max_items: r.max }, ...r.ids.map((id) => el('item', { id })))) })),
  fc.record({ node: pepNode, id: ident, notify: opt(fc.constantFrom('true', '1', 'false')) })
    .map((r) => ({ type: 'set' as const, p: el('pubsub', { xmlns: PUBSUB }, el('retract', { node: r.node, notify: r.notify }, el('item', { id: r.id }))) })),
  fc.record({ node: opt(pepNode), op: fc.constantFrom('create', 'subscribe', 'unsubscribe', 'subscriptions', 'affiliations') })
    .map((r) => ({ type: 'set' as const, p: el('pubsub', { xmlns: PUBSUB }, el(r.op, { node: r.node, jid: r.op.endsWith('subscribe') ? bare[0] : undefined })) })),
  fc.record({ node: pepNode, op: fc.constantFrom('configure', 'delete', 'purge'), fs: fields(['pubsub#access_model', 'pubsub#max_items', 'pubsub#persist_items', 'pubsub#title', 'pubsub#roster_groups_allowed', 'pubsub#notify_retract'], fc.oneof(fc.constantFrom('open', 'whitelist', 'roster', 'max', '0', '1'), text)), submit: fc.boolean() })
    .map((r) => ({ type: r.submit ? 'set' as const : 'get' as const, p: el('pubsub', { xmlns: `${PUBSUB}#owner` }, el(r.op, { node: r.node }, ...(r.submit && r.op === 'configure' ? [form('submit', `${PUBSUB}#node_config`, r.fs)] : []))) })),
  fc.constant({ type: 'get' as const, p: el('blocklist', { xmlns: 'urn:xmpp:blocking' }) }),
  fc.record({ op: fc.constantFrom('block', 'unblock'), jids: fc.array(safeJid, { maxLength: 3 }) })
    .map((r) => ({ type: 'set' as const, p: el(r.op, { xmlns: 'urn:xmpp:blocking' }, ...r.jids.map((jid) => el('item', { jid }))) })),
  fc.constantFrom<Iq>(
    { type: 'get', p: el('ping', { xmlns: 'urn:xmpp:ping' }) }, { type: 'get', p: el('query', { xmlns: 'jabber:iq:version' }) },
    { type: 'get', p: el('time', { xmlns: 'urn:xmpp:time' }) }, { type: 'get', p: el('query', { xmlns: 'jabber:iq:last' }) },
    { type: 'get', p: el('query', { xmlns: 'jabber:iq:register' }) }, { type: 'set', p: el('enable', { xmlns: 'urn:xmpp:carbons:2' }) },
    { type: 'set', p: el('disable', { xmlns: 'urn:xmpp:carbons:2' }) }, { type: 'set', p: el('session', { xmlns: 'urn:ietf:params:xml:ns:xmpp-session' }) },
    { type: 'set', p: el('bind', { xmlns: 'urn:ietf:params:xml:ns:xmpp-bind' }, el('resource', {}, 'again')) },
    { type: 'get' }, { type: 'set' }, { type: 'get', p: el('query', { xmlns: 'jabber:iq:roster' }), extra: el('query', { xmlns: 'jabber:iq:version' }) },
    { type: 'get', p: el('vCard', { xmlns: 'urn:example:unknown' }) }, { type: 'set', p: el('command', { xmlns: 'http://jabber.org/protocol/commands', node: 'x' }) },
  ),
  fc.record({ name: fc.oneof(text, fc.constantFrom('a.png', '../../etc/passwd', 'x\u202Egnp.exe', '')), size: num, ct: opt(fc.constantFrom('image/png', 'text/html', '', 'a/b; c=d')) })
    .map((r) => ({ type: 'get' as const, p: el('request', { xmlns: 'urn:xmpp:http:upload:0', filename: r.name, size: r.size, 'content-type': r.ct }) })),
  fc.record({ submit: fc.boolean(), fs: fields(['muc#roomconfig_persistentroom', 'muc#roomconfig_membersonly', 'muc#roomconfig_moderatedroom', 'muc#roomconfig_passwordprotectedroom', 'muc#roomconfig_roomsecret', 'muc#roomconfig_maxusers', 'muc#roomconfig_whois', 'muc#roomconfig_historylength', 'muc#roomconfig_roomname', 'muc#roomconfig_allowinvites'], fc.oneof(fc.constantFrom('1', '0', 'true', 'anyone', 'moderators', 'none'), num, text)), destroy: fc.boolean() })
    .map((r) => ({ type: r.submit || r.destroy ? 'set' as const : 'get' as const, p: el('query', { xmlns: 'http://jabber.org/protocol/muc#owner' }, ...(r.destroy ? [el('destroy', { jid: ROOMS[2] }, el('reason', {}, 'fuzz'))] : r.submit ? [form('submit', 'http://jabber.org/protocol/muc#roomconfig', r.fs)] : [])) })),
  fc.record({ items: fc.array(fc.record({ aff: opt(fc.constantFrom('owner', 'admin', 'member', 'outcast', 'none', 'bogus')), role: opt(fc.constantFrom('moderator', 'participant', 'visitor', 'none', 'x')), jid: opt(fc.oneof(fc.constantFrom(...bare), safeJid)), nick: opt(text) }), { minLength: 1, maxLength: 3 }), get: fc.boolean() })
    .map((r) => ({ type: r.get ? 'get' as const : 'set' as const, p: el('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, ...r.items.map((i) => el('item', { affiliation: i.aff, role: i.role, jid: i.jid, nick: i.nick }, el('reason', {}, 'fuzz')))) })),
);

const chatStates = ['active', 'composing', 'paused', 'inactive', 'gone'];
const messageChild: fc.Arbitrary<X> = fc.oneof(
  longText.map((t) => el('body', {}, t)), text.map((t) => el('subject', {}, t)), text.map((t) => el('thread', {}, t)),
  fc.constantFrom(...chatStates).map((s) => el(s, { xmlns: 'http://jabber.org/protocol/chatstates' })),
  fc.constant(el('request', { xmlns: 'urn:xmpp:receipts' })), ident.map((id) => el('received', { xmlns: 'urn:xmpp:receipts', id })),
  ident.map((id) => el('origin-id', { xmlns: 'urn:xmpp:sid:0', id })), ident.map((id) => el('stanza-id', { xmlns: 'urn:xmpp:sid:0', id, by: bare[1] })),
  fc.record({ j: fc.constantFrom(...ROOMS), pw: opt(text) }).map(({ j, pw }) => el('x', { xmlns: 'jabber:x:conference', jid: j, password: pw })),
  fc.record({ to: fc.constantFrom(...bare, 'x@remote.example'), decline: fc.boolean() }).map(({ to, decline }) => el('x', { xmlns: 'http://jabber.org/protocol/muc#user' }, el(decline ? 'decline' : 'invite', { to }, el('reason', {}, 'come')))),
  fc.record({ rid: num, iv: base64, key: base64 }).map((r) => el('encrypted', { xmlns: 'eu.siacs.conversations.axolotl' }, el('header', { sid: r.rid }, el('key', { rid: r.rid }, r.key), el('iv', {}, r.iv)), el('payload', {}, r.key))),
  fc.constantFrom('private', 'no-copy', 'no-store', 'store', 'no-permanent-store').map((h) => el(h, { xmlns: h === 'private' ? 'urn:xmpp:carbons:2' : 'urn:xmpp:hints' })),
  fc.record({ id: ident, r: fc.array(text, { maxLength: 2 }) }).map(({ id, r }) => el('reactions', { xmlns: 'urn:xmpp:reactions:0', id }, ...r.map((x) => el('reaction', {}, x)))),
  date.map((stamp) => el('delay', { xmlns: 'urn:xmpp:delay', stamp })),
  fc.record({ ns, t: text }).map(({ ns: n, t }) => el('x', { xmlns: n }, t)),
  fc.constant(el('sent', { xmlns: 'urn:xmpp:carbons:2' }, el('forwarded', { xmlns: 'urn:xmpp:forward:0' }, el('message', { xmlns: NS_CLIENT, to: bare[0], from: bare[1] }, el('body', {}, 'forged carbon'))))),
);
const messageArb = fc.record({ type: opt(fc.constantFrom('chat', 'normal', 'headline', 'groupchat', 'error', 'bogus')), to: opt(anyTo), id: opt(ident), kids: fc.array(messageChild, { maxLength: 4 }), from: rare(fc.constantFrom(bare[1]!, `${D}`, 'evil@remote.example')), lang: rare(fc.constantFrom('en', 'de', '', 'x-bogus')) })
  .map((r): X => el('message', { type: r.type, to: r.to, id: r.id, from: r.from, 'xml:lang': r.lang }, ...r.kids));
const presenceArb = fc.record({
  type: opt(fc.constantFrom('unavailable', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'error', 'bogus')),
  to: opt(fc.oneof(anyTo, fc.record({ r: fc.constantFrom(...ROOMS), nick: fc.oneof(fc.constantFrom('fz', 'nick', 'zero'), text) }).map(({ r, nick }) => `${r}/${nick}`))),
  show: opt(fc.constantFrom('away', 'chat', 'dnd', 'xa', 'bogus', '')), status: opt(longText), prio: opt(num),
  caps: opt(fc.record({ hash: fc.constantFrom('sha-1', 'sha-256', 'md5', ''), node: text, ver: fc.oneof(base64, text) })),
  muc: opt(fc.record({ pw: opt(text), maxstanzas: opt(num), since: opt(date), seconds: opt(num) })),
  photo: opt(fc.oneof(fc.constant(''), ident)),
}).map((r): X => el('presence', { type: r.type, to: r.to },
  ...(r.show !== undefined ? [el('show', {}, r.show)] : []), ...(r.status !== undefined ? [el('status', {}, r.status)] : []), ...(r.prio !== undefined ? [el('priority', {}, r.prio)] : []),
  ...(r.caps ? [el('c', { xmlns: 'http://jabber.org/protocol/caps', hash: r.caps.hash, node: r.caps.node, ver: r.caps.ver })] : []),
  ...(r.muc ? [el('x', { xmlns: 'http://jabber.org/protocol/muc' }, ...(r.muc.pw !== undefined ? [el('password', {}, r.muc.pw)] : []), el('history', { maxstanzas: r.muc.maxstanzas, since: r.muc.since, seconds: r.muc.seconds }))] : []),
  ...(r.photo !== undefined ? [el('x', { xmlns: 'vcard-temp:x:update' }, el('photo', {}, r.photo))] : [])));
/** Stream-level elements a logged-in client may send (XEP-0198, XEP-0352) and some it should not. */
const nonzaArb = fc.oneof(
  fc.record({ resume: opt(fc.constantFrom('true', 'false', '1', 'x')), max: opt(num) }).map((r) => el('enable', { xmlns: 'urn:xmpp:sm:3', resume: r.resume, max: r.max })),
  fc.constant(el('r', { xmlns: 'urn:xmpp:sm:3' })), num.map((h) => el('a', { xmlns: 'urn:xmpp:sm:3', h })),
  fc.record({ previd: text, h: num }).map((r) => el('resume', { xmlns: 'urn:xmpp:sm:3', previd: r.previd, h: r.h })),
  fc.constantFrom('active', 'inactive').map((s) => el(s, { xmlns: 'urn:xmpp:csi:0' })),
  fc.constant(el('starttls', { xmlns: 'urn:ietf:params:xml:ns:xmpp-tls' })),
  fc.constant(el('auth', { xmlns: 'urn:ietf:params:xml:ns:xmpp-sasl', mechanism: 'PLAIN' }, Buffer.from(`\0${USERS[1]}\0${PASSWORD}`).toString('base64'))),
  fc.record({ n: fc.constantFrom('features', 'error', 'thing'), ns: fc.constantFrom('http://etherx.jabber.org/streams', 'urn:example:unknown', NS_CLIENT) }).map((r) => el(`stream:${r.n}`, { 'xmlns:stream': r.ns })),
);

const saslPayload = fc.oneof(
  fc.constant(Buffer.from(`\0${USERS[0]}\0wrong`).toString('base64')), fc.constant(Buffer.from(`\0${USERS[0]}\0${PASSWORD}`).toString('base64')),
  fc.record({ u: text, r: ident }).map(({ u, r }) => Buffer.from(`n,,n=${u},r=${r}`).toString('base64')),
  fc.record({ a: text, u: text, p: text }).map(({ a, u, p }) => Buffer.from(`${a}\0${u}\0${p}`).toString('base64')),
  text.map((t) => Buffer.from(t).toString('base64')), base64, fc.constantFrom('=', '', '!!notbase64!!', 'biws', 'cD10ZXN0'),
  fc.record({ gs2: fc.constantFrom('n,,', 'y,,', 'p=tls-unique,,', 'n,a=x@y,', ''), rest: text }).map(({ gs2, rest }) => Buffer.from(gs2 + rest).toString('base64')),
);
const preauthArb: fc.Arbitrary<X> = fc.oneof(
  fc.constant(el('starttls', { xmlns: 'urn:ietf:params:xml:ns:xmpp-tls' })),
  fc.record({ mech: fc.constantFrom('PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'DIGEST-MD5', 'ANONYMOUS', 'EXTERNAL', ''), p: saslPayload })
    .map(({ mech, p }) => el('auth', { xmlns: 'urn:ietf:params:xml:ns:xmpp-sasl', mechanism: mech }, p)),
  fc.record({ n: fc.constantFrom('response', 'abort', 'success', 'challenge', 'failure'), p: saslPayload }).map(({ n, p }) => el(n, { xmlns: 'urn:ietf:params:xml:ns:xmpp-sasl' }, p)),
  fc.record({ u: fc.oneof(text, fc.constant(USERS[0]!)), p: text, get: fc.boolean() })
    .map((r) => el('iq', { type: r.get ? 'get' : 'set', id: 'reg' }, el('query', { xmlns: 'jabber:iq:register' }, ...(r.get ? [] : [el('username', {}, r.u), el('password', {}, r.p)])))),
  fc.record({ token: text }).map(({ token }) => el('iq', { type: 'set', id: 'pre' }, el('preauth', { xmlns: 'urn:xmpp:pars:0', token }))),
  messageArb, presenceArb,
  fc.constant(el('iq', { type: 'get', id: 'p', to: D }, el('ping', { xmlns: 'urn:xmpp:ping' }))),
);

// ---- mutations: what a broken or hostile client sends ----

type Mutation =
  | { k: 'truncate'; at: number } | { k: 'bytes'; at: number; b: number[] } | { k: 'nest'; depth: number }
  | { k: 'hugeAttr'; len: number } | { k: 'manyAttrs'; n: number } | { k: 'insert'; at: number; s: string }
  | { k: 'ns'; ns: string } | { k: 'dupAttr' } | { k: 'rename'; name: string } | { k: 'bigText'; len: number };
const at = fc.double({ min: 0, max: 1, noNaN: true });
const BAD_BYTES = [[0x80], [0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc3], [0xe2, 0x82], [0x00], [0x1b], [0xef, 0xbf, 0xbe]];
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('truncate' as const), at }),
  fc.record({ k: fc.constant('bytes' as const), at, b: fc.oneof(fc.constantFrom(...BAD_BYTES), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 })) }),
  fc.record({ k: fc.constant('nest' as const), depth: fc.integer({ min: 10, max: 120 }) }),
  fc.record({ k: fc.constant('hugeAttr' as const), len: fc.integer({ min: 1000, max: 400_000 }) }),
  fc.record({ k: fc.constant('manyAttrs' as const), n: fc.integer({ min: 20, max: 3000 }) }),
  fc.record({ k: fc.constant('bigText' as const), len: fc.integer({ min: 10_000, max: 400_000 }) }),
  fc.record({
    k: fc.constant('insert' as const), at, s: fc.constantFrom('&foo;', '&#0;', '&#x0;', '&#xD800;', '&#x110000;', '&#;', '&#x;', '&amp', '&#99999999999;', '&#x41;', '&lt;&gt;&amp;&quot;&apos;',
      '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>', '<!ENTITY b SYSTEM "file:///etc/passwd">', '&b;', '&a;', '<![CDATA[ <not> & ]]>', '<!-- c -->', '<?pi x?>', ']]>', '\u0000', '\u001b', '\uFFFE', '\uD800', '\uDC00x',
      '</stream:stream>', HEADER, '</iq>', '<', '>', '&', '"', "'", '=', '<x:y/>', '<stream:error/>', '</a>', '<a', '<?xml version="1.0"?>', '<a xmlns:p="">', '<p:a/>', ' xmlns=""', ' xml:lang=""', ' xmlns:xml="x"', '\r\n\t  ', '<a b=c/>', '<a b="1" b="2"/>'),
  }),
  fc.record({ k: fc.constant('ns' as const), ns: fc.constantFrom('', 'urn:wrong', 'jabber:server', 'http://etherx.jabber.org/streams', 'jabber:component:accept', 'JABBER:CLIENT', 'urn:ietf:params:xml:ns:xmpp-sasl', 'drop', 'prefix') }),
  fc.record({ k: fc.constant('dupAttr' as const) }),
  fc.record({ k: fc.constant('rename' as const), name: fc.constantFrom('stream:stream', 'x:iq', '1iq', 'IQ', 'Message', 'presence:presence', 'stream:features', 'open', 'close', 'a'.repeat(5000)) }),
);

/** The first start tag's end (">" or "/>"), for inserting attributes. */
function firstTagEnd(s: string): number {
  const m = /^<[^>]*?(\/?)>/.exec(s);
  return m ? m[0].length - 1 - m[1]!.length : -1;
}
function mutate(s: string, m: Mutation): Buffer {
  const pos = (f: number): number => Math.floor(f * s.length);
  const ins = (i: number, x: string): string => s.slice(0, i) + x + s.slice(i);
  const tagEnd = firstTagEnd(s);
  switch (m.k) {
    case 'truncate': return Buffer.from(s).subarray(0, Math.floor(m.at * Buffer.byteLength(s)));
    case 'bytes': { const b = Buffer.from(s); const i = Math.floor(m.at * b.length); return Buffer.concat([b.subarray(0, i), Buffer.from(m.b), b.subarray(i)]); }
    case 'nest': {
      if (tagEnd < 0) return Buffer.from('<x>'.repeat(m.depth) + s + '</x>'.repeat(m.depth));
      const open = s[tagEnd] === '/' ? '' : '>';
      const inner = '<x>'.repeat(m.depth) + '</x>'.repeat(m.depth);
      return Buffer.from(open ? ins(tagEnd + 1, inner) : `${s.slice(0, tagEnd)}>${inner}</${/^<([^\s/>]+)/.exec(s)![1]}>`);
    }
    case 'hugeAttr': return Buffer.from(tagEnd < 0 ? s : ins(tagEnd, ` h="${'A'.repeat(m.len)}"`));
    case 'manyAttrs': return Buffer.from(tagEnd < 0 ? s : ins(tagEnd, Array.from({ length: m.n }, (_, i) => ` a${i}="${i}"`).join('')));
    case 'bigText': {
      const close = s.lastIndexOf('</');
      return Buffer.from(close < 0 ? s + 'T'.repeat(m.len) : ins(close, 'T'.repeat(m.len)));
    }
    case 'insert': return Buffer.from(ins(pos(m.at), m.s));
    case 'ns': {
      if (m.ns === 'prefix') return Buffer.from(s.replace(/^<([\w:]+)/, '<undeclared:$1'));
      const re = /xmlns=(["'])[^"']*\1/;
      if (!re.test(s)) return Buffer.from(tagEnd < 0 ? s : ins(tagEnd, m.ns === 'drop' ? '' : ` xmlns="${m.ns}"`));
      return Buffer.from(s.replace(re, m.ns === 'drop' ? '' : `xmlns="${m.ns}"`));
    }
    case 'dupAttr': { const a = /^<[^\s/>]+(\s+[^\s=]+=(["'])[^"']*\2)/.exec(s); return Buffer.from(a && tagEnd > 0 ? ins(tagEnd, a[1]!) : s); }
    case 'rename': return Buffer.from(s.replace(/^<([^\s/>]+)/, `<${m.name}`).replace(/<\/([^\s/>]+)>$/, `</${m.name}>`));
  }
}

// ---- cases ----

type Item = { x: X; mut?: Mutation } | { raw: string; mut?: Mutation };
interface Case { items: Item[]; cuts: number[]; pauses: boolean }
/** Well-formed, or (with probability p) mutated. */
const mutated = (x: fc.Arbitrary<X>, p: number): fc.Arbitrary<Item> => fc.oneof(
  { weight: Math.round((1 - p) * 100), arbitrary: x.map((v): Item => ({ x: v })) },
  { weight: Math.round(p * 100), arbitrary: fc.record({ x, mut: mutationArb }) },
);
const caseOf = (item: fc.Arbitrary<Item>, max = 8): fc.Arbitrary<Case> =>
  fc.record({ items: fc.array(item, { minLength: 1, maxLength: max }), cuts: fc.array(at, { maxLength: 6 }), pauses: fc.boolean() });

const iqItem = fc.record({ iq: iqArb, to: serverTo, id: ident }).map(({ iq, to, id }): X => ({ n: 'iq', a: { type: iq.type, to, id }, c: [iq.p, iq.extra].filter((x): x is X => !!x) }));
const unsolicited = fc.record({ type: fc.constantFrom('result', 'error', 'bogus'), to: opt(anyTo), id: opt(ident) }).map((r) => el('iq', { type: r.type, to: r.to, id: r.id }));
function loggedInCase(): fc.Arbitrary<Case> {
  const stanza = fc.oneof(
    { weight: 4, arbitrary: mutated(iqItem, 0.15) }, { weight: 3, arbitrary: mutated(messageArb, 0.15) }, { weight: 3, arbitrary: mutated(presenceArb, 0.15) },
    { weight: 1, arbitrary: mutated(nonzaArb, 0.2) }, { weight: 1, arbitrary: mutated(unsolicited, 0.2) },
    { weight: 2, arbitrary: fc.record({ raw: fc.constantFrom(...recorded), mut: opt(mutationArb) }).map((r) => (r.mut ? r : { raw: r.raw })) },
  );
  return caseOf(stanza);
}
const preauthCase = (): fc.Arbitrary<Case> => caseOf(mutated(preauthArb, 0.35), 5);
/** Pre-auth on a fresh connection: a stream header (sometimes mutated or missing) comes first. */
const headerArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ raw: HEADER } as Item) },
  { weight: 3, arbitrary: fc.record({ raw: fc.constant(HEADER), mut: mutationArb }) as fc.Arbitrary<Item> },
  { weight: 1, arbitrary: fc.constantFrom<Item>({ raw: '' }, { raw: HEADER.replace("version='1.0'", "version='2.0'") }, { raw: HEADER.replace("to='localhost'", "to='elsewhere'") },
    { raw: HEADER.replace('<?xml version=\'1.0\'?>', '<?xml version=\'1.0\' encoding=\'UTF-16\'?>') }, { raw: '<stream:stream xmlns:stream="http://etherx.jabber.org/streams">' },
    { raw: `\uFEFF${HEADER}` }, { raw: HEADER.replace("xmlns='jabber:client'", "xmlns='jabber:server'") }) },
);

// ---- connections ----

interface Conn {
  data: string;
  /** Stream ids the server gave this connection (its log lines carry them). */
  readonly ids: Set<string>;
  readonly closed: boolean;
  write(b: Buffer | string): void;
  wait(pred: () => boolean, ms: number): Promise<boolean>;
  /** Our end of the stream: FIN (TCP) or a WebSocket close. */
  end(): void;
  destroy(): void;
}

function tcpConn(localAddress: string): Promise<Conn & { starttls(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port: server.c2sPort, host: '127.0.0.1', localAddress });
    let cur: net.Socket | tls.TLSSocket = sock;
    const listeners = new Set<() => void>();
    let closed = false;
    const attach = (s: net.Socket | tls.TLSSocket): void => {
      const dec = new StringDecoder('utf8');
      s.on('data', (b: Buffer) => { const d = dec.write(b); scanIds(conn.ids, conn.data, d); conn.data += d; for (const l of [...listeners]) l(); });
      s.on('error', () => {});
    };
    const conn = {
      data: '',
      ids: new Set<string>(),
      get closed() { return closed; },
      write(b: Buffer | string) { if (!closed) cur.write(b); },
      wait(pred: () => boolean, ms: number): Promise<boolean> {
        if (pred()) return Promise.resolve(true);
        return new Promise<boolean>((res) => {
          const check = (): void => { if (pred()) { clearTimeout(timer); listeners.delete(check); res(true); } };
          const timer = setTimeout(() => { listeners.delete(check); res(pred()); }, ms);
          listeners.add(check);
        });
      },
      end() { cur.end(); },
      destroy() { sock.destroy(); cur.destroy(); },
      async starttls() {
        conn.write(HEADER);
        if (!(await conn.wait(() => conn.data.includes('</stream:features>'), ANSWER_MS))) throw new Error(`no features before STARTTLS: ${conn.data.slice(-300)}`);
        conn.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
        if (!(await conn.wait(() => conn.data.includes('<proceed'), ANSWER_MS))) throw new Error(`no <proceed/>: ${conn.data.slice(-300)}`);
        sock.removeAllListeners('data');
        const t = tls.connect({ socket: sock, servername: D, rejectUnauthorized: false });
        await new Promise<void>((res, rej) => { t.once('secureConnect', res); t.once('error', rej); });
        cur = t;
        attach(t);
        conn.data = '';
        conn.write(HEADER);
        if (!(await conn.wait(() => conn.data.includes('</stream:features>'), ANSWER_MS))) throw new Error(`no features after STARTTLS: ${conn.data.slice(-300)}`);
      },
    };
    attach(sock);
    sock.on('close', () => { closed = true; for (const l of [...listeners]) l(); });
    sock.once('connect', () => resolve(conn));
    sock.once('error', reject);
  });
}

function wsConn(localAddress: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.httpPort}/xmpp-websocket`, 'xmpp', { localAddress });
    const listeners = new Set<() => void>();
    let closed = false;
    const conn: Conn = {
      data: '',
      ids: new Set<string>(),
      get closed() { return closed; },
      write(b) { if (!closed && ws.readyState === ws.OPEN) ws.send(b, { binary: false }); },
      wait(pred, ms) {
        if (pred()) return Promise.resolve(true);
        return new Promise<boolean>((res) => {
          const check = (): void => { if (pred()) { clearTimeout(timer); listeners.delete(check); res(true); } };
          const timer = setTimeout(() => { listeners.delete(check); res(pred()); }, ms);
          listeners.add(check);
        });
      },
      end() { try { ws.close(1000); } catch { /* closing */ } },
      destroy() { ws.terminate(); },
    };
    ws.on('message', (d) => { const s = d.toString(); scanIds(conn.ids, conn.data, s); conn.data += s; for (const l of [...listeners]) l(); });
    ws.on('close', () => { closed = true; for (const l of [...listeners]) l(); });
    ws.on('error', () => {});
    ws.once('open', () => resolve(conn));
    ws.once('unexpected-response', () => reject(new Error('WebSocket upgrade refused')));
    ws.once('error', reject);
  });
}

/** PLAIN, restart, bind: a logged-in session (TCP after STARTTLS, or WebSocket from loopback). */
async function login(c: Conn, ws: boolean, user: string, resource: string): Promise<void> {
  const restart = ws ? WS_OPEN : HEADER;
  const sns = ws ? ` xmlns="${NS_CLIENT}"` : '';
  if (ws) {
    c.write(WS_OPEN);
    if (!(await c.wait(() => c.data.includes('</stream:features>'), ANSWER_MS))) throw new Error(`no features: ${c.data.slice(-300)}`);
  }
  c.data = '';
  c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64')}</auth>`);
  if (!(await c.wait(() => /<success|<failure/.test(c.data), ANSWER_MS)) || !c.data.includes('<success')) throw new Error(`login failed: ${c.data.slice(-300)}`);
  c.data = '';
  c.write(restart);
  if (!(await c.wait(() => c.data.includes('</stream:features>'), ANSWER_MS))) throw new Error(`no features after login: ${c.data.slice(-300)}`);
  c.write(`<iq${sns} type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  if (!(await c.wait(() => c.data.includes('</jid>'), ANSWER_MS))) throw new Error(`no bind: ${c.data.slice(-300)}`);
  c.data = '';
}

let counter = 0;
/** How cases ended, per property (logged, to see what the fuzzing reached). */
const outcomes = new Map<string, Record<string, number>>();
const note = (prop: string, k: string, n = 1): void => { const o = outcomes.get(prop) ?? {}; o[k] = (o[k] ?? 0) + n; outcomes.set(prop, o); };
/** A pre-auth source address other than 127.0.0.1: failed logins there must not slow the logged-in properties. */
const randomLoopback = (): string => `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 250)}`;

/** Serialises a case: ids of the IQ get/set the server must answer (well-formed ones to the server). */
function render(items: Item[], ws: boolean, run: number): { parts: Buffer[]; tracked: string[]; wellFormed: boolean } {
  const tracked: string[] = [];
  let wellFormed = true;
  const parts = items.map((it, i) => {
    let s: string;
    if ('x' in it) {
      const x: X = { ...it.x, a: { ...it.x.a } };
      if (ws && ['iq', 'message', 'presence'].includes(x.n)) x.a!.xmlns = NS_CLIENT;
      if (x.n === 'iq' && (x.a!.type === 'get' || x.a!.type === 'set') && !it.mut) {
        x.a!.id = `fz${run}x${i}`;
        tracked.push(x.a!.id);
      }
      s = ser(x);
    } else {
      s = ws && /^<(iq|message|presence)[\s>/]/.test(it.raw) && !/^<[^>]*xmlns=/.test(it.raw) ? it.raw.replace(/^<(\w+)/, `<$1 xmlns="${NS_CLIENT}"`) : it.raw;
    }
    if (it.mut) wellFormed = false;
    return it.mut ? mutate(s, it.mut) : Buffer.from(s);
  });
  return { parts, tracked, wellFormed };
}

const STREAM_ID = /<(?:stream:stream|open)\b[^>]*?\sid=["']([^"']+)["']/g;
/** Notes the stream ids in newly received data (with the end of what came before, for split tags). */
function scanIds(ids: Set<string>, prev: string, chunk: string): void {
  for (const m of (prev.slice(-400) + chunk).matchAll(STREAM_ID)) ids.add(m[1]!);
}

const MALFORMED = /<(not-well-formed|restricted-xml|invalid-xml|bad-format)\s/;

/**
 * Sends a case and checks the answer. `session`: a logged-in stream, where a final ping must be
 * answered unless the stream was closed.
 */
async function exercise(prop: string, c: Conn, cs: Case, ws: boolean, session: boolean, headerFirst?: Item): Promise<void> {
  const run = ++counter;
  const rendered = render(headerFirst ? [headerFirst, ...cs.items] : cs.items, ws, run);
  const { parts, tracked } = rendered;
  // A stream header other than the standard one (XML 2.0, a BOM, UTF-16, none) may be refused as malformed.
  const wellFormed = rendered.wellFormed && (!headerFirst || ('raw' in headerFirst && headerFirst.raw === (ws ? WS_OPEN : HEADER)));
  if (ws) {
    // RFC 7395: one element per message; `cuts` > 2 sends everything as one message instead.
    if (cs.cuts.length > 4) c.write(Buffer.concat(parts));
    else for (const p of parts) { c.write(p); if (cs.pauses) await new Promise((r) => setImmediate(r)); }
  } else {
    const all = Buffer.concat(parts);
    const cuts = [...new Set(cs.cuts.map((f) => Math.floor(f * all.length)))].sort((a, b) => a - b);
    let from = 0;
    for (const cut of [...cuts, all.length]) {
      if (cut > from) c.write(all.subarray(from, cut));
      from = Math.max(from, cut);
      if (cs.pauses) await new Promise((r) => setTimeout(r, 2));
    }
  }
  const sentinel = `sentinel${run}`;
  const answeredRe = new RegExp(`id=["']${sentinel}["']`);
  if (session) c.write(`<iq${ws ? ` xmlns="${NS_CLIENT}"` : ''} type='get' id='${sentinel}' to='${D}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const settled = await c.wait(() => c.closed || (session && answeredRe.test(c.data)), session ? ANSWER_MS : 1500);
  const noteAs = (k: string): void => note(prop, k);
  if (settled && session && !c.closed) noteAs('ping answered');
  else if (settled && c.closed) noteAs('closed by the server');
  if (!settled || (!c.closed && !session)) {
    noteAs('closed after our end of the stream');
    // The input may have left an element open: the server waits for the rest. Once we end our
    // side of the stream it must close its own.
    c.end();
    if (!(await c.wait(() => c.closed, ANSWER_MS))) {
      c.destroy();
      throw new Error(`hang: no answer to a ping and no close within ${ANSWER_MS} ms of the input and again of our end of the stream; got: ${c.data.slice(-400)}`);
    }
  }
  if (/internal-server-error/.test(c.data)) throw new Error(`internal-server-error in the answer: ${c.data.slice(Math.max(0, c.data.indexOf('internal-server-error') - 600), c.data.indexOf('internal-server-error') + 200)}`);
  if (wellFormed && MALFORMED.test(c.data)) throw new Error(`well-formed input refused as malformed: ${c.data.slice(-400)}`);
  if (session && wellFormed && !c.closed && tracked.length) {
    const missing = (): string[] => tracked.filter((id) => !new RegExp(`id=["']${id}["']`).test(c.data));
    await c.wait(() => missing().length === 0 || c.closed, ANSWER_MS);
    if (!c.closed && missing().length) throw new Error(`IQ get/set to the server not answered within ${ANSWER_MS} ms: ${missing().join(', ')}; got: ${c.data.slice(-400)}`);
    note(prop, 'IQs checked answered', tracked.length);
  }
  const errs = c.data.match(/<(?:stream:)?error[^>]*>\s*<([\w-]+)/g);
  if (errs) for (const e of errs) note(prop, `error: ${/<([\w-]+)$/.exec(e)![1]}`);
  c.destroy();
  serverStillWell(c.ids);
}

/**
 * The server is alive, under the memory bound, and its log holds no sign of a bug about these
 * streams (checked after every case; log lines of no stream are checked after each property, as
 * they cannot be told apart between cases running at once).
 */
function serverStillWell(ids: Set<string>): void {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) throw new Error(`the server died (exit ${server.proc.exitCode}, signal ${server.proc.signalCode}): ${server.logs.slice(-5).join('\n')}`);
  if (rssMaxMiB > RSS_LIMIT_MIB) throw new Error(`server RSS ${rssMaxMiB.toFixed(0)} MiB is over the ${RSS_LIMIT_MIB} MiB bound`);
  if (!ids.size) return;
  const bad = server.logs.find((l) => BAD_LOG.test(l) && [...ids].some((id) => l.includes(`"stream":"${id}"`)));
  if (bad) throw new Error(`server log about this connection: ${bad.slice(0, 1500)}`);
}

/** Every log line that means a bug, whatever stream it concerns. */
const badLogLines = (): string[] => server.logs.filter((l) => BAD_LOG.test(l));

// ---- the properties ----

async function fuzz(t: ExecutionContext, name: string, index: number, arb: fc.Arbitrary<Case | [Item, Case]>, run: (v: Case | [Item, Case]) => Promise<void>): Promise<void> {
  if (ONLY && ONLY !== name) { t.pass(); return; }
  t.timeout(SECONDS * 1000 + 180_000);
  const seed = SEED + index;
  const details = await fc.check(fc.asyncProperty(arb, run), {
    seed, ...(PATH && ONLY ? { path: PATH } : {}), numRuns: PATH ? 1 : 1_000_000,
    interruptAfterTimeLimit: SECONDS * 1000, markInterruptAsFailure: false, endOnFailure: !!PATH,
  });
  t.log(`${name}: seed ${seed}, ${details.numRuns} cases; server RSS max so far ${rssMaxMiB.toFixed(0)} MiB; ${JSON.stringify(outcomes.get(name) ?? {})}`);
  if (details.failed) {
    const report = fc.defaultReportMessage(details) ?? '';
    const err = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    t.fail(`fuzz property "${name}" found a problem: ${err.slice(0, 3000)}\n(replay: FUZZ_SEED=${SEED} FUZZ_PROPERTY='${name}' FUZZ_PATH='${details.counterexamplePath}')\n${report.slice(0, 4000)}`);
  }
  // After the fuzzing: alive, healthy, quiet log, bounded memory.
  serverStillWell(new Set());
  const bad = badLogLines();
  t.deepEqual(bad.map((l) => l.slice(0, 1500)), [], 'no uncaught error, unhandled rejection or internal-server-error in the server log');
  const health = await fetch(`http://127.0.0.1:${server.httpPort}/health`);
  t.is(health.status, 200, `/health after "${name}"`);
  t.true(rssMaxMiB < RSS_LIMIT_MIB, `server RSS stayed under ${RSS_LIMIT_MIB} MiB (max ${rssMaxMiB.toFixed(0)})`);
}

test('fuzz: TCP before STARTTLS (stream header, pre-auth stanzas, mutations)', async (t) => {
  await fuzz(t, 'tcp-preauth', 1, fc.tuple(headerArb, preauthCase()), async (v) => {
    const [header, cs] = v as [Item, Case];
    const c = await tcpConn(randomLoopback());
    await exercise('tcp-preauth', c, cs, false, false, header);
  });
});

test('fuzz: TCP after STARTTLS, before login (SASL, registration, mutations)', async (t) => {
  await fuzz(t, 'tcp-sasl', 2, preauthCase(), async (v) => {
    const c = await tcpConn(randomLoopback());
    await c.starttls();
    c.data = '';
    await exercise('tcp-sasl', c, v as Case, false, false);
  });
});

test('fuzz: TCP, logged in (every stanza kind, recorded client traffic, mutations)', async (t) => {
  await fuzz(t, 'tcp-session', 3, loggedInCase(), async (v) => {
    const c = await tcpConn('127.0.0.1');
    await c.starttls();
    await login(c, false, USERS[counter % USERS.length]!, `fuzz-tcp-${counter}`);
    await exercise('tcp-session', c, v as Case, false, true);
  });
});

test('fuzz: WebSocket before login (framing, SASL, mutations)', async (t) => {
  const wsHeader = fc.oneof(
    { weight: 6, arbitrary: fc.constant<Item>({ raw: WS_OPEN }) },
    { weight: 2, arbitrary: fc.record({ raw: fc.constant(WS_OPEN), mut: mutationArb }) as fc.Arbitrary<Item> },
    { weight: 1, arbitrary: fc.constantFrom<Item>({ raw: '' }, { raw: HEADER }, { raw: WS_OPEN.replace('1.0', '2.0') }, { raw: '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>' }, { raw: WS_OPEN.replace('to="localhost"', 'to="elsewhere"') }) },
  );
  await fuzz(t, 'ws-preauth', 4, fc.tuple(wsHeader, preauthCase()), async (v) => {
    const [header, cs] = v as [Item, Case];
    const c = await wsConn(randomLoopback());
    await exercise('ws-preauth', c, cs, true, false, header);
  });
});

test('fuzz: WebSocket, logged in (every stanza kind, recorded client traffic, mutations)', async (t) => {
  await fuzz(t, 'ws-session', 5, loggedInCase(), async (v) => {
    const c = await wsConn('127.0.0.1');
    await login(c, true, USERS[counter % USERS.length]!, `fuzz-ws-${counter}`);
    await exercise('ws-session', c, v as Case, true, true);
  });
});
