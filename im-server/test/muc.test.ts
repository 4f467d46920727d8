import test from 'ava';
import { mamQuery } from './mam-helpers.js';
import { xml } from '@xmpp/client';
import { stopClient, waitFor, type TestServer } from './helpers.js';
import { startServer } from './helpers.js';
import {
  MUC_ADMIN, MUC_OWNER, MUC_USER, SERVICE, configure, createRoom, errorCondition, groupchat, iqError, item, join, room,
  statusCodes, user, waitGroupchat,
} from './muc-helpers.js';

// Serial: each test logs in several clients (TLS + SCRAM); run together they starve the timing-sensitive
// tests of other files (limits.test.ts gives a login 2 s) on a 2-core machine.
let server: TestServer;
test.before(async () => { server = await startServer({ registration: 'open' }); });
test.after.always(async () => { await server?.stop(); });

const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

test.serial('the service is found by disco; a new room is locked until configured, then listed and joinable', async (t) => {
  const [ann, bob] = [await user(server, 'ann'), await user(server, 'bob')];
  const items = await ann.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: DISCO_ITEMS })));
  t.true(items.getChild('query')!.getChildren('item').some((i) => i.attrs.jid === SERVICE));
  const info = await ann.iqCaller.request(xml('iq', { type: 'get', to: SERVICE }, xml('query', { xmlns: DISCO_INFO })));
  const q = info.getChild('query')!;
  t.is(q.getChild('identity')!.attrs.category, 'conference');
  t.true(q.getChildren('feature').some((f) => f.attrs.var === 'http://jabber.org/protocol/muc'));

  const r = room('lock');
  const created = await join(ann, r, 'Ann');
  t.deepEqual(statusCodes(created.self), ['110', '201']);
  t.is(item(created.self).affiliation, 'owner');
  t.is(item(created.self).role, 'moderator');
  // Locked: others cannot enter yet.
  await t.throwsAsync(join(bob, r, 'Bob'), { message: /item-not-found/ });
  const form = await ann.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: MUC_OWNER })));
  const vars = form.getChild('query')!.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => f.attrs.var);
  for (const v of ['muc#roomconfig_roomname', 'muc#roomconfig_persistentroom', 'muc#roomconfig_membersonly', 'muc#roomconfig_passwordprotectedroom',
    'muc#roomconfig_roomsecret', 'muc#roomconfig_whois', 'muc#roomconfig_maxusers', 'muc#roomconfig_roomowners']) t.true(vars.includes(v), v);
  await configure(ann, r, { 'muc#roomconfig_roomname': 'Lobby', 'muc#roomconfig_roomdesc': 'Where we meet' });
  const listed = await bob.iqCaller.request(xml('iq', { type: 'get', to: SERVICE }, xml('query', { xmlns: DISCO_ITEMS })));
  t.truthy(listed.getChild('query')!.getChildren('item').find((i) => i.attrs.jid === r && i.attrs.name === 'Lobby'));
  const joined = await join(bob, r, 'Bob');
  t.deepEqual(statusCodes(joined.self), ['110']);
  t.is(item(joined.self).role, 'participant');
  t.is(item(joined.self).affiliation, 'none');
  t.is(joined.others.length, 1, 'Bob saw Ann');
  t.is(joined.others[0]!.attrs.from, `${r}/Ann`);
  // The room's disco#info reflects its configuration and occupancy.
  const rinfo = (await bob.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: DISCO_INFO })))).getChild('query')!;
  const features = rinfo.getChildren('feature').map((f) => f.attrs.var);
  for (const f of ['muc_public', 'muc_temporary', 'muc_open', 'muc_unmoderated', 'muc_unsecured', 'muc_semianonymous',
    'http://jabber.org/protocol/muc#self-ping-optimization']) t.true(features.includes(f), f);
  const fields = Object.fromEntries(rinfo.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => [f.attrs.var, f.getChildText('value')]));
  t.is(fields['muc#roominfo_description'], 'Where we meet');
  t.is(fields['muc#roominfo_occupants'], '2');
  t.is(rinfo.getChild('identity')!.attrs.name, 'Lobby');
  await Promise.all([stopClient(ann), stopClient(bob)]);
});

test.serial('messages fan out to every occupant with the room as sender; newcomers get history with delay stamps and the subject', async (t) => {
  const [a, b, c] = [await user(server, 'amy'), await user(server, 'ben'), await user(server, 'cat')];
  const r = room('talk');
  await createRoom(a, r, 'amy');
  await a.send(xml('message', { to: r, type: 'groupchat' }, xml('subject', {}, 'Plans for Friday')));
  await waitFor(a, (s) => s.is('message') && s.getChildText('subject') === 'Plans for Friday', 'subject reflected');
  const jb = await join(b, r, 'ben');
  t.is(jb.subject.getChildText('subject'), 'Plans for Friday');
  t.is(jb.subject.attrs.from, `${r}/amy`);
  await join(c, r, 'cat');
  await groupchat(a, r, 'hello all', 'msg-1');
  for (const cl of [a, b, c]) {
    const m = await waitGroupchat(cl, r, 'hello all');
    t.is(m.attrs.from, `${r}/amy`);
    t.is(m.attrs.id, 'msg-1', 'the id is kept (stable ids)');
  }
  // Two senders on two connections: 'third' is sent once 'second' went round, so the order is known.
  await groupchat(b, r, 'second');
  for (const cl of [a, b, c]) await waitGroupchat(cl, r, 'second');
  await groupchat(c, r, 'third');
  for (const cl of [a, b, c]) await waitGroupchat(cl, r, 'third');

  const d = await user(server, 'dan');
  const jd = await join(d, r, 'dan');
  t.deepEqual(jd.history.map((m) => m.getChildText('body')), ['hello all', 'second', 'third']);
  t.is(jd.history[0]!.getChild('delay', 'urn:xmpp:delay')!.attrs.from, r);
  t.truthy(Date.parse(jd.history[0]!.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp!));
  t.is(jd.others.length, 3);
  t.is(jd.subject.getChildText('subject'), 'Plans for Friday');
  // <history maxstanzas/> limits what a newcomer gets.
  const e = await user(server, 'eve');
  const je = await join(e, r, 'eve', { history: { maxstanzas: '1' } });
  t.deepEqual(je.history.map((m) => m.getChildText('body')), ['third']);
  const f = await user(server, 'fay');
  const jf = await join(f, r, 'fay', { history: { maxchars: '0' } });
  t.is(jf.history.length, 0);
  const h = await user(server, 'hal');
  const jh = await join(h, r, 'hal', { history: { since: new Date(Date.now() + 3_600_000).toISOString() } });
  t.is(jh.history.length, 0, 'nothing newer than a future "since"');
  await stopClient(h);
  // The others heard of each newcomer, and a non-occupant cannot post.
  await waitFor(a, (s) => s.is('presence') && s.attrs.from === `${r}/fay`, 'fay joined, seen by amy');
  const g = await user(server, 'gil');
  await groupchat(g, r, 'intruder', 'intr');
  const err = await waitFor(g, (s) => s.attrs.id === 'intr' && s.attrs.type === 'error', 'error for a non-occupant');
  t.is(errorCondition(err), 'not-acceptable');
  await Promise.all([a, b, c, d, e, f, g].map(stopClient));
});

test.serial('private messages go between occupants under their nicknames', async (t) => {
  const [a, b] = [await user(server, 'pia'), await user(server, 'quin')];
  const r = room('pm');
  await createRoom(a, r, 'pia');
  await join(b, r, 'quin');
  await a.send(xml('message', { to: `${r}/quin`, type: 'chat', id: 'pm1' }, xml('body', {}, 'just for you')));
  const pm = await waitFor(b, (s) => s.is('message') && s.attrs.id === 'pm1', 'private message');
  t.is(pm.attrs.from, `${r}/pia`);
  t.is(pm.getChildText('body'), 'just for you');
  t.truthy(pm.getChild('x', MUC_USER));
  t.falsy(a.received.find((s) => s.attrs.id === 'pm1'), 'not reflected to the room');
  await a.send(xml('message', { to: `${r}/nobody`, type: 'chat', id: 'pm2' }, xml('body', {}, 'x')));
  t.is(errorCondition(await waitFor(a, (s) => s.attrs.id === 'pm2', 'error for unknown nick')), 'item-not-found');
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('nick change is announced with 303; a taken nick is refused with conflict', async (t) => {
  const [a, b] = [await user(server, 'ned'), await user(server, 'ola')];
  const r = room('nick');
  await createRoom(a, r, 'ned');
  await join(b, r, 'ola');
  t.is((await t.throwsAsync(join(b, r, 'ned')))?.message, 'join refused: conflict');
  await b.send(xml('presence', { to: `${r}/ola2` }));
  const gone = await waitFor(a, (s) => s.is('presence') && s.attrs.from === `${r}/ola` && s.attrs.type === 'unavailable', 'old nick unavailable');
  t.deepEqual(statusCodes(gone), ['303']);
  t.is(item(gone).nick, 'ola2');
  await waitFor(a, (s) => s.is('presence') && s.attrs.from === `${r}/ola2` && !s.attrs.type, 'new nick available');
  const selfGone = await waitFor(b, (s) => s.is('presence') && s.attrs.from === `${r}/ola` && s.attrs.type === 'unavailable', 'own 303');
  t.deepEqual(statusCodes(selfGone), ['110', '303']);
  await groupchat(b, r, 'renamed');
  t.is((await waitGroupchat(a, r, 'renamed')).attrs.from, `${r}/ola2`);
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('members-only rooms refuse strangers; an admin\'s mediated invitation makes the invitee a member; declines reach the inviter', async (t) => {
  const [a, b, c] = [await user(server, 'moe'), await user(server, 'nia'), await user(server, 'oz')];
  const r = room('members');
  await createRoom(a, r, 'moe', { 'muc#roomconfig_membersonly': '1' });
  t.is((await t.throwsAsync(join(b, r, 'nia')))?.message, 'join refused: registration-required');
  await a.send(xml('message', { to: r }, xml('x', { xmlns: MUC_USER }, xml('invite', { to: b.jid!.toString().split('/')[0] }, xml('reason', {}, 'come in')))));
  const inv = await waitFor(b, (s) => s.is('message') && !!s.getChild('x', MUC_USER)?.getChild('invite'), 'invitation');
  t.is(inv.attrs.from, r);
  t.is(inv.getChild('x', MUC_USER)!.getChild('invite')!.attrs.from!.split('/')[0], a.jid!.toString().split('/')[0]);
  t.is(inv.getChild('x', MUC_USER)!.getChild('invite')!.getChildText('reason'), 'come in');
  const jb = await join(b, r, 'nia');
  t.is(item(jb.self).affiliation, 'member');
  // An ordinary member may not invite unless the room allows it.
  await b.send(xml('message', { to: r, id: 'inv2' }, xml('x', { xmlns: MUC_USER }, xml('invite', { to: c.jid!.toString().split('/')[0] }))));
  t.is(errorCondition(await waitFor(b, (s) => s.attrs.id === 'inv2' && s.attrs.type === 'error', 'refused invite')), 'forbidden');
  // A decline goes back to the inviter.
  await c.send(xml('message', { to: r }, xml('x', { xmlns: MUC_USER }, xml('decline', { to: a.jid!.toString() }, xml('reason', {}, 'busy')))));
  const dec = await waitFor(a, (s) => s.is('message') && !!s.getChild('x', MUC_USER)?.getChild('decline'), 'decline');
  t.is(dec.getChild('x', MUC_USER)!.getChild('decline')!.getChildText('reason'), 'busy');
  // The member list shows both.
  const list = await a.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'member' }))));
  t.deepEqual(list.getChild('query')!.getChildren('item').map((i) => i.attrs.jid), [b.jid!.toString().split('/')[0]]);
  await Promise.all([a, b, c].map(stopClient));
});

test.serial('password-protected rooms need the password', async (t) => {
  const [a, b] = [await user(server, 'pat'), await user(server, 'ray')];
  const r = room('secret');
  await createRoom(a, r, 'pat', { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'sesame' });
  t.is((await t.throwsAsync(join(b, r, 'ray')))?.message, 'join refused: not-authorized');
  t.is((await t.throwsAsync(join(b, r, 'ray', { password: 'wrong' })))?.message, 'join refused: not-authorized');
  await join(b, r, 'ray', { password: 'sesame' });
  const info = (await b.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: DISCO_INFO })))).getChild('query')!;
  t.true(info.getChildren('feature').some((f) => f.attrs.var === 'muc_passwordprotected'));
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('moderated rooms: visitors cannot speak until a moderator gives them voice', async (t) => {
  const [a, b] = [await user(server, 'mod'), await user(server, 'vis')];
  const r = room('moderated');
  await createRoom(a, r, 'mod', { 'muc#roomconfig_moderatedroom': '1' });
  const jb = await join(b, r, 'vis');
  t.is(item(jb.self).role, 'visitor');
  await groupchat(b, r, 'can I talk?', 'v1');
  t.is(errorCondition(await waitFor(b, (s) => s.attrs.id === 'v1' && s.attrs.type === 'error', 'forbidden for visitor')), 'forbidden');
  await a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'vis', role: 'participant' }))));
  const voiced = await waitFor(b, (s) => s.is('presence') && s.attrs.from === `${r}/vis` && item(s).role === 'participant', 'voice granted');
  t.true(statusCodes(voiced).includes('110'));
  await groupchat(b, r, 'thanks');
  await waitGroupchat(a, r, 'thanks');
  // A participant cannot change roles.
  t.is(await iqError(b.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'mod', role: 'visitor' }))))), 'forbidden');
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('kick (307) removes an occupant who may come back; ban (301) keeps them out; lists show the outcasts', async (t) => {
  const [a, b, c] = [await user(server, 'own'), await user(server, 'kid'), await user(server, 'wit')];
  const r = room('kick');
  await createRoom(a, r, 'own');
  await join(b, r, 'kid');
  await join(c, r, 'wit');
  await a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'kid', role: 'none' }, xml('reason', {}, 'calm down')))));
  const kicked = await waitFor(b, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/kid`, 'kicked self-presence');
  t.deepEqual(statusCodes(kicked), ['110', '307']);
  t.is(item(kicked).role, 'none');
  t.is(kicked.getChild('x', MUC_USER)!.getChild('item')!.getChildText('reason'), 'calm down');
  t.is(kicked.getChild('x', MUC_USER)!.getChild('item')!.getChild('actor')!.attrs.nick, 'own');
  t.deepEqual(statusCodes(await waitFor(c, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/kid`, 'witness sees kick')), ['307']);
  await join(b, r, 'kid');
  const kidBare = b.jid!.toString().split('/')[0]!;
  await a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: kidBare, affiliation: 'outcast' }))));
  const banned = await waitFor(b, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/kid`, 'banned self-presence');
  t.deepEqual(statusCodes(banned), ['110', '301']);
  t.is(item(banned).affiliation, 'outcast');
  t.is((await t.throwsAsync(join(b, r, 'kid')))?.message, 'join refused: forbidden');
  const outcasts = await a.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'outcast' }))));
  t.deepEqual(outcasts.getChild('query')!.getChildren('item').map((i) => i.attrs.jid), [kidBare]);
  // Non-admins may not read it, nor kick the owner.
  t.is(await iqError(c.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'outcast' }))))), 'forbidden');
  // Owners and admins: grant admin to wit, who becomes moderator; an admin cannot kick the owner.
  const witBare = c.jid!.toString().split('/')[0]!;
  await a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: witBare, affiliation: 'admin' }))));
  await waitFor(c, (s) => s.is('presence') && s.attrs.from === `${r}/wit` && item(s).affiliation === 'admin' && item(s).role === 'moderator', 'wit is admin');
  t.is(await iqError(c.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'own', role: 'none' }))))), 'not-allowed');
  const admins = await a.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'admin' }))));
  t.deepEqual(admins.getChild('query')!.getChildren('item').map((i) => i.attrs.jid), [witBare]);
  // The only owner cannot step down.
  t.is(await iqError(a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: a.jid!.toString().split('/')[0], affiliation: 'member' }))))), 'conflict');
  await Promise.all([a, b, c].map(stopClient));
});

test.serial('destroying a room tells occupants the reason and the alternate venue; the room is gone', async (t) => {
  const [a, b] = [await user(server, 'dee'), await user(server, 'eli')];
  const r = room('doomed');
  await createRoom(a, r, 'dee', { 'muc#roomconfig_persistentroom': '1' });
  await join(b, r, 'eli');
  t.is(await iqError(b.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_OWNER }, xml('destroy'))))), 'forbidden');
  await a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_OWNER }, xml('destroy', { jid: `new@${SERVICE}` }, xml('reason', {}, 'moved')))));
  const p = await waitFor(b, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/eli`, 'destroy presence');
  const d = p.getChild('x', MUC_USER)!.getChild('destroy')!;
  t.is(d.attrs.jid, `new@${SERVICE}`);
  t.is(d.getChildText('reason'), 'moved');
  t.is(await iqError(b.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: DISCO_INFO })))), 'item-not-found');
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('self-ping (XEP-0410): the room answers for a joined nick and says not-acceptable otherwise', async (t) => {
  const [a, b] = [await user(server, 'sp'), await user(server, 'sq')];
  const r = room('ping');
  await createRoom(a, r, 'sp');
  const ping = (c: typeof a, to: string): Promise<unknown> => c.iqCaller.request(xml('iq', { type: 'get', to }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(await iqError(ping(a, `${r}/sp`)), undefined);
  t.is(await iqError(ping(b, `${r}/sb`)), 'not-acceptable');
  await join(b, r, 'sb');
  t.is(await iqError(ping(b, `${r}/sb`)), undefined);
  await b.send(xml('presence', { to: `${r}/sb`, type: 'unavailable' }));
  await waitFor(b, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/sb`, 'left');
  t.is(await iqError(ping(b, `${r}/sb`)), 'not-acceptable');
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('an occupant whose session ends leaves the room; a temporary room vanishes when empty', async (t) => {
  const [a, b] = [await user(server, 'tmp'), await user(server, 'obs')];
  const r = room('temp');
  await createRoom(a, r, 'tmp');
  await join(b, r, 'obs');
  await stopClient(b);
  const left = await waitFor(a, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/obs`, 'session end seen as leave');
  t.is(item(left).role, 'none');
  await a.send(xml('presence', { to: `${r}/tmp`, type: 'unavailable' }));
  await waitFor(a, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/tmp`, 'left');
  t.is(await iqError(a.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: DISCO_INFO })))), 'item-not-found');
  await stopClient(a);
});

test.serial('a full room refuses newcomers with service-unavailable; only moderators change the subject by default', async (t) => {
  const [a, b, c] = [await user(server, 'fa'), await user(server, 'fb'), await user(server, 'fc')];
  const r = room('full');
  await createRoom(a, r, 'fa', { 'muc#roomconfig_maxusers': '2' });
  await join(b, r, 'fb');
  t.is((await t.throwsAsync(join(c, r, 'fc')))?.message, 'join refused: service-unavailable');
  await b.send(xml('message', { to: r, type: 'groupchat', id: 'subj' }, xml('subject', {}, 'mine now')));
  t.is(errorCondition(await waitFor(b, (s) => s.attrs.id === 'subj' && s.attrs.type === 'error', 'subject refused')), 'forbidden');
  await configure(a, r, { 'muc#roomconfig_changesubject': '1' });
  const notice = await waitFor(b, (s) => s.is('message') && statusCodes(s).includes('104'), 'config change notice');
  t.is(notice.attrs.from, r);
  await b.send(xml('message', { to: r, type: 'groupchat', id: 'subj2' }, xml('subject', {}, 'mine now')));
  await waitFor(a, (s) => s.is('message') && s.getChildText('subject') === 'mine now', 'subject changed by participant');
  await Promise.all([a, b, c].map(stopClient));
});

test.serial('one user joined from two devices under one nick: both get the messages, the others see one occupant', async (t) => {
  const a = await user(server, 'duo');
  const name = a.jid!.local;
  const { connect } = await import('./helpers.js');
  const a2 = await connect(server, { username: name, password: 'pw', resource: 'phone' });
  await a2.send(xml('presence'));
  const b = await user(server, 'solo');
  const r = room('multi');
  await createRoom(a, r, 'duo');
  await join(b, r, 'solo');
  await join(a2, r, 'duo');
  await groupchat(b, r, 'both of you');
  await waitGroupchat(a, r, 'both of you');
  await waitGroupchat(a2, r, 'both of you');
  // One device leaves: the others do not see the occupant leave.
  await a2.send(xml('presence', { to: `${r}/duo`, type: 'unavailable' }));
  await waitFor(a2, (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === `${r}/duo`, 'second device left');
  await groupchat(b, r, 'still there?');
  await waitGroupchat(a, r, 'still there?');
  t.falsy(b.received.find((s) => s.is('presence') && s.attrs.from === `${r}/duo` && s.attrs.type === 'unavailable'));
  await Promise.all([a, a2, b].map(stopClient));
});

test.serial('a persistent room keeps config, affiliations, subject and history across a restart; temporary rooms do not', async (t) => {
  const own = await startServer({ registration: 'open' });
  try {
    const [a, b] = [await user(own, 'keep'), await user(own, 'mem')];
    const r = room('kept');
    const tmp = room('gone');
    const bBare = b.jid!.toString().split('/')[0]!;
    await createRoom(a, r, 'keep', { 'muc#roomconfig_persistentroom': '1', 'muc#roomconfig_roomname': 'Kept', 'muc#roomconfig_membersonly': '1' });
    await createRoom(a, tmp, 'keep');
    await a.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: bBare, affiliation: 'member' }))));
    await a.send(xml('message', { to: r, type: 'groupchat' }, xml('subject', {}, 'kept subject')));
    await groupchat(a, r, 'before restart 1');
    await groupchat(a, r, 'before restart 2');
    await waitGroupchat(a, r, 'before restart 2');
    await a.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    await Promise.all([stopClient(a), stopClient(b)]);
    t.is(await own.stop(), 0);

    const again = await startServer({ registration: 'open', dataDir: own.dataDir });
    try {
      const b2 = await (await import('./helpers.js')).connect(again, { username: b.jid!.local, password: 'pw' });
      const listed = await b2.iqCaller.request(xml('iq', { type: 'get', to: SERVICE }, xml('query', { xmlns: DISCO_ITEMS })));
      const jids = listed.getChild('query')!.getChildren('item').map((i) => i.attrs.jid);
      t.true(jids.includes(r));
      t.false(jids.includes(tmp));
      const jb = await join(b2, r, 'mem');
      t.is(item(jb.self).affiliation, 'member', 'the member list survived');
      t.is(jb.others.length, 0, 'no occupants after a restart');
      t.is(jb.subject.getChildText('subject'), 'kept subject');
      t.deepEqual(jb.history.map((m) => m.getChildText('body')), ['before restart 1', 'before restart 2']);
      const info = (await b2.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: DISCO_INFO })))).getChild('query')!;
      t.is(info.getChild('identity')!.attrs.name, 'Kept');
      t.true(info.getChildren('feature').some((f) => f.attrs.var === 'muc_membersonly'));
      await stopClient(b2);
    } finally { await again.stop(); }
  } finally { await own.stop(); }
});

test.serial('room archive (MAM): forbidden to outsiders of a members-only room; occupants page through what the room broadcast, with the ids it stamped; client stanza-ids are stripped', async (t) => {
  const [a, b] = [await user(server, 'arc'), await user(server, 'out')];
  const r = room('archive');
  await createRoom(a, r, 'arc', { 'muc#roomconfig_membersonly': '1' });
  const mam = (c: typeof a): Promise<unknown> => c.iqCaller.request(xml('iq', { type: 'set', to: r }, xml('query', { xmlns: 'urn:xmpp:mam:2' })));
  t.is(await iqError(mam(b)), 'forbidden');
  const info = (await a.iqCaller.request(xml('iq', { type: 'get', to: r }, xml('query', { xmlns: DISCO_INFO })))).getChild('query')!;
  const features = info.getChildren('feature').map((f) => f.attrs.var);
  t.true(features.includes('urn:xmpp:mam:2') && features.includes('urn:xmpp:sid:0'), 'the room advertises its archive');
  await a.send(xml('message', { to: r, type: 'groupchat', id: 'forged' }, xml('body', {}, 'forged id'),
    xml('stanza-id', { xmlns: 'urn:xmpp:sid:0', by: r, id: 'fake' }), xml('stanza-id', { xmlns: 'urn:xmpp:sid:0', by: 'someone@else', id: 'kept' })));
  const m = await waitGroupchat(a, r, 'forged id');
  const ids = m.getChildren('stanza-id', 'urn:xmpp:sid:0');
  t.deepEqual(ids.map((s) => s.attrs.by).sort(), [r, 'someone@else'].sort());
  const roomId = ids.find((s) => s.attrs.by === r)!.attrs.id;
  t.not(roomId, 'fake', 'the forged room id was replaced by the room\'s own');
  for (const body of ['two', 'three']) { await groupchat(a, r, body); await waitGroupchat(a, r, body); }
  const page = await mamQuery(a, { to: r, max: 2, before: '' }); // the last page
  t.deepEqual(page.items.map((i) => i.body), ['two', 'three']);
  t.false(page.complete);
  const first = await mamQuery(a, { to: r, before: page.first ?? 'missing' });
  t.deepEqual(first.items.map((i) => i.body), ['forged id']);
  t.is(first.items[0]!.id, roomId ?? 'no room stanza-id', 'the archive id is the stanza-id occupants saw');
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('voice requests: a visitor asks, moderators get a form, an approval gives voice', async (t) => {
  const [a, b] = [await user(server, 'vm'), await user(server, 'vv')];
  const r = room('voice');
  await createRoom(a, r, 'vm', { 'muc#roomconfig_moderatedroom': '1' });
  await join(b, r, 'vv');
  const REQ = 'http://jabber.org/protocol/muc#request';
  const field = (v: string, value: string) => xml('field', { var: v }, xml('value', {}, value));
  await b.send(xml('message', { to: r }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, field('FORM_TYPE', REQ), field('muc#role', 'participant'))));
  const req = await waitFor(a, (s) => s.is('message') && s.attrs.from === r && !!s.getChild('x', 'jabber:x:data'), 'voice request at the moderator');
  const fields = Object.fromEntries(req.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => [f.attrs.var, f.getChildText('value')]));
  t.is(fields['muc#roomnick'], 'vv');
  t.is(fields['muc#jid'], b.jid!.toString().split('/')[0]);
  await a.send(xml('message', { to: r }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    field('FORM_TYPE', REQ), field('muc#role', 'participant'), field('muc#roomnick', 'vv'), field('muc#request_allow', 'true'))));
  await waitFor(b, (s) => s.is('presence') && s.attrs.from === `${r}/vv` && item(s).role === 'participant', 'voice granted');
  await groupchat(b, r, 'I can speak');
  await waitGroupchat(a, r, 'I can speak');
  await Promise.all([stopClient(a), stopClient(b)]);
});

test.serial('leaving gives the self-presence (110) at once; joining the same room again right after works, twice over', async (t) => {
  const a = await user(server, 'leaver');
  const r = room('leave');
  const to = `${r}/nick-one`;
  for (let round = 0; round < 2; round++) {
    const joined = await join(a, r, 'nick-one');
    t.true(statusCodes(joined.self).includes('110'));
    t.is(statusCodes(joined.self).includes('201'), true, `round ${round}: the empty room was removed, so the join makes it anew`);
    await a.send(xml('presence', { to, type: 'unavailable' }));
    const left = await waitFor(a, (s) => s.is('presence') && s.attrs.from === to && s.attrs.type === 'unavailable', `leave ${round}`, 5000);
    t.true(statusCodes(left).includes('110'), 'the leave is reflected to the leaver as its own');
  }
  await stopClient(a);
});
