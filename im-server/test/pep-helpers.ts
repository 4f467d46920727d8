// PEP test helpers: XEP-0115 caps for @xmpp/client sessions, mutual subscriptions, pubsub requests.
import { createHash } from 'node:crypto';
import { xml, type Element } from '@xmpp/client';
import { waitFor, type XmppClient } from './helpers.js';

export const PUBSUB = 'http://jabber.org/protocol/pubsub';
export const EVENT = 'http://jabber.org/protocol/pubsub#event';
export const ERRORS = 'http://jabber.org/protocol/pubsub#errors';
const CAPS_NODE = 'https://pi-im.test/caps';

type Callee = { iqCallee: { get(ns: string, name: string, fn: (ctx: { stanza: Element }) => Element): void } };

/** Sends presence with XEP-0115 caps (sha-1) for these features and answers the server's disco#info
 * query; resolves once the server has the answer (a unique feature makes the hash new, so the
 * server always asks, and a ping after the answer is handled after it). */
export async function announceCaps(c: XmppClient, features: string[], lie = false): Promise<void> {
  const all = [...new Set(['http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/caps', `urn:test:${Math.random()}`, ...features])].sort();
  // lie: the hash announced is of the set without the +notify features (a forged or broken client).
  const hashed = lie ? all.filter((f) => !f.endsWith('+notify')) : all;
  const ver = createHash('sha1').update('client/pc//pep-test<' + hashed.map((f) => f + '<').join('')).digest('base64');
  let answered!: () => void;
  const asked = new Promise<void>((res) => { answered = res; });
  (c as unknown as Callee).iqCallee.get('http://jabber.org/protocol/disco#info', 'query', ({ stanza }) => {
    setImmediate(answered); // after the answer went out
    return xml('query', { xmlns: 'http://jabber.org/protocol/disco#info', node: stanza.getChild('query')?.attrs.node },
      xml('identity', { category: 'client', type: 'pc', name: 'pep-test' }), ...all.map((f) => xml('feature', { var: f })));
  });
  await c.send(xml('presence', {}, xml('c', { xmlns: 'http://jabber.org/protocol/caps', hash: 'sha-1', node: CAPS_NODE, ver })));
  await asked;
  await c.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }), 'localhost');
}

const isPush = (contact: string, sub: string) => (s: Element): boolean =>
  s.is('iq') && s.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.jid === contact
  && s.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.subscription === sub;

/** Subscribes a and b to each other's presence (both sessions must have fetched the roster; they go online). */
export async function befriend(a: XmppClient, aJid: string, b: XmppClient, bJid: string): Promise<void> {
  await a.send(xml('presence'));
  await b.send(xml('presence'));
  for (const [x, xJid, y, yJid] of [[a, aJid, b, bJid], [b, bJid, a, aJid]] as const) {
    await x.send(xml('presence', { to: yJid, type: 'subscribe' }));
    await waitFor(y, (s) => s.is('presence') && s.attrs.type === 'subscribe' && s.attrs.from === xJid, 'subscribe');
    await y.send(xml('presence', { to: xJid, type: 'subscribed' }));
  }
  await waitFor(a, isPush(bJid, 'both'), 'both at a');
  await waitFor(b, isPush(aJid, 'both'), 'both at b');
}

export function publishOptions(fields: Record<string, string>): Element {
  return xml('publish-options', {}, xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#publish-options')),
    ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v)))));
}

export function publish(c: XmppClient, node: string, id: string | undefined, payload: Element, options?: Element): Promise<Element> {
  return c.iqCaller.set(xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node }, xml('item', { id }, payload)), options));
}

/** The items of a node (payload elements by item id), or throws the error stanza. */
export async function items(c: XmppClient, owner: string, node: string, max?: number): Promise<Element[]> {
  const r = await c.iqCaller.get(xml('pubsub', { xmlns: PUBSUB }, xml('items', { node, max_items: max === undefined ? undefined : String(max) })), owner);
  return r.getChild('items')!.getChildren('item');
}

/** The error condition and pubsub#errors condition of a failed request. */
export async function errorOf(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) {
    const el = (err as { element?: Element }).element;
    const app = el?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === ERRORS);
    return `${(err as { condition?: string }).condition ?? String(err)}${app ? '/' + app.name : ''}`;
  }
  return 'no error';
}

export const isEvent = (node: string) => (s: Element): boolean =>
  s.is('message') && s.getChild('event', EVENT)?.getChild('items')?.attrs.node === node;
