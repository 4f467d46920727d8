// Helpers for the multi-user chat tests: joining a room as a client would, reading muc#user items.
import { xml, type Element } from '@xmpp/client';
import { connect, uniq, waitFor, type TestServer, type XmppClient } from './helpers.js';

export const MUC = 'http://jabber.org/protocol/muc';
export const MUC_USER = `${MUC}#user`;
export const MUC_ADMIN = `${MUC}#admin`;
export const MUC_OWNER = `${MUC}#owner`;
export const SERVICE = 'conference.localhost';
export const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

export const room = (p = 'room'): string => `${uniq(p)}@${SERVICE}`;

export async function user(server: TestServer, name: string): Promise<XmppClient> {
  const c = await connect(server, { username: uniq(name), password: 'pw', register: true });
  await c.send(xml('presence'));
  return c;
}

export function statusCodes(p: Element): string[] {
  return (p.getChild('x', MUC_USER)?.getChildren('status') ?? []).map((s) => s.attrs.code as string).sort();
}

export function item(p: Element): Record<string, string> {
  return (p.getChild('x', MUC_USER)?.getChild('item')?.attrs ?? {}) as Record<string, string>;
}

export function errorCondition(s: Element): string | undefined {
  return s.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS)?.name;
}

export interface JoinResult { self: Element; others: Element[]; history: Element[]; subject: Element }

/** Enters a room (creating it if needed); resolves with what the room sent, through the subject. */
export async function join(c: XmppClient, roomJid: string, nick: string, opts: { password?: string; history?: Record<string, string> } = {}): Promise<JoinResult> {
  const to = `${roomJid}/${nick}`;
  const x = xml('x', { xmlns: MUC }, opts.password ? xml('password', {}, opts.password) : undefined, opts.history ? xml('history', opts.history) : undefined);
  const id = uniq('join');
  await c.send(xml('presence', { to, id }, x));
  const self = await waitFor(c, (s) => s.is('presence') && ((s.attrs.from === to && statusCodes(s).includes('110')) || (s.attrs.id === id && s.attrs.type === 'error')), `self-presence in ${roomJid}`);
  if (self.attrs.type === 'error') throw Object.assign(new Error(`join refused: ${errorCondition(self)}`), { condition: errorCondition(self) });
  const subject = await waitFor(c, (s) => s.is('message') && s.attrs.from?.startsWith(roomJid) === true && s.getChild('subject') !== undefined && !s.getChild('body'), `subject of ${roomJid}`);
  const others: Element[] = [];
  const history: Element[] = [];
  for (const s of [...c.received]) {
    if (s.is('presence') && s.attrs.from?.startsWith(`${roomJid}/`)) { others.push(s); c.received.splice(c.received.indexOf(s), 1); }
    if (s.is('message') && s.attrs.from?.startsWith(`${roomJid}/`) && s.getChild('delay', 'urn:xmpp:delay')) { history.push(s); c.received.splice(c.received.indexOf(s), 1); }
  }
  return { self, others, history, subject };
}

/** Creates a room and accepts the default configuration (an instant room), or submits `fields`. */
export async function createRoom(c: XmppClient, roomJid: string, nick: string, fields: Record<string, string | string[]> = {}): Promise<JoinResult> {
  const r = await join(c, roomJid, nick);
  if (!statusCodes(r.self).includes('201')) throw new Error(`room ${roomJid} already existed`);
  await configure(c, roomJid, fields);
  return r;
}

export async function configure(c: XmppClient, roomJid: string, fields: Record<string, string | string[]>): Promise<void> {
  const form = xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, `${MUC}#roomconfig`)),
    ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, ...(Array.isArray(v) ? v : [v]).map((s) => xml('value', {}, s)))));
  await c.iqCaller.request(xml('iq', { type: 'set', to: roomJid }, xml('query', { xmlns: MUC_OWNER }, form)));
}

export async function iqError(p: Promise<unknown>): Promise<string | undefined> {
  try { await p; return undefined; } catch (e) { return (e as { condition?: string }).condition ?? String(e); }
}

export function groupchat(c: XmppClient, roomJid: string, body: string, id = uniq('m')): Promise<void> {
  return c.send(xml('message', { to: roomJid, type: 'groupchat', id }, xml('body', {}, body)));
}

export function waitGroupchat(c: XmppClient, roomJid: string, body: string): Promise<Element> {
  return waitFor(c, (s) => s.is('message') && s.attrs.type === 'groupchat' && s.attrs.from?.startsWith(roomJid) === true && s.getChildText('body') === body, `groupchat "${body}"`);
}
