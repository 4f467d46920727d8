// Helpers to build replies and errors (RFC 6120 §8.3).
import { Element, xml } from './xml.js';

export const NS = {
  client: 'jabber:client',
  stream: 'http://etherx.jabber.org/streams',
  streams: 'urn:ietf:params:xml:ns:xmpp-streams',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  tls: 'urn:ietf:params:xml:ns:xmpp-tls',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  session: 'urn:ietf:params:xml:ns:xmpp-session',
  framing: 'urn:ietf:params:xml:ns:xmpp-framing',
  sm: 'urn:xmpp:sm:3',
  roster: 'jabber:iq:roster',
  rosterver: 'urn:xmpp:features:rosterver',
  register: 'jabber:iq:register',
  registerFeature: 'http://jabber.org/features/iq-register',
  preauth: 'urn:xmpp:pars:0',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  discoItems: 'http://jabber.org/protocol/disco#items',
  ping: 'urn:xmpp:ping',
  vcard: 'vcard-temp',
  version: 'jabber:iq:version',
  delay: 'urn:xmpp:delay',
} as const;

export type ErrorType = 'cancel' | 'continue' | 'modify' | 'auth' | 'wait';

const DEFAULT_TYPE: Record<string, ErrorType> = {
  'bad-request': 'modify', 'conflict': 'cancel', 'feature-not-implemented': 'cancel', 'forbidden': 'auth',
  'item-not-found': 'cancel', 'jid-malformed': 'modify', 'not-acceptable': 'modify', 'not-allowed': 'cancel',
  'not-authorized': 'auth', 'policy-violation': 'modify', 'recipient-unavailable': 'wait', 'remote-server-not-found': 'cancel',
  'resource-constraint': 'wait', 'service-unavailable': 'cancel', 'internal-server-error': 'cancel', 'unexpected-request': 'wait',
};

export function errorElement(condition: string, text?: string, type?: ErrorType): Element {
  return xml('error', { type: type ?? DEFAULT_TYPE[condition] ?? 'cancel' },
    xml(condition, { xmlns: NS.stanzas }),
    text ? xml('text', { xmlns: NS.stanzas, 'xml:lang': 'en' }, text) : undefined);
}

/** The error reply to a stanza: addresses swapped, original payload kept for iq. */
export function errorReply(stanza: Element, condition: string, text?: string, type?: ErrorType): Element {
  const reply = xml(stanza.name, { xmlns: NS.client, type: 'error', id: stanza.attrs.id, from: stanza.attrs.to, to: stanza.attrs.from });
  if (stanza.name !== 'iq') for (const c of stanza.children) if (typeof c !== 'string' && c.name === 'body') reply.append(c.clone());
  return reply.append(errorElement(condition, text, type));
}

export function iqResult(iq: Element, payload?: Element): Element {
  return xml('iq', { xmlns: NS.client, type: 'result', id: iq.attrs.id, from: iq.attrs.to, to: iq.attrs.from }, payload);
}
