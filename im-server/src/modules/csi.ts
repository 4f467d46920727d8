// XEP-0352 client state indication: a client that says <inactive/> (screen off) is not woken
// for presence noise. While inactive, availability presences are held back, only the latest per
// sender kept, and so are chat-state-only messages (XEP-0085); anything that matters (a message
// with a body, any IQ, a subscription request or other non-availability presence) is sent at
// once, after what was held, so the order per sender is kept. <active/> sends what was held.
// Held stanzas are not written, so stream management does not count them until then.
import type { Host } from '../core/host.js';
import type { Session } from '../core/session.js';
import type { Element } from '../core/xml.js';

const NS_CSI = 'urn:xmpp:csi:0';
const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
/** More distinct held stanzas than this: send them (a client with a huge roster would otherwise grow this). */
const MAX_HELD = 200;

const hasBody = (el: Element): boolean => el.elements().some((c) => c.name === 'body' || hasBody(c));

/** The key a stanza is held under (the later one replaces it), or undefined when it goes at once. */
function holdKey(el: Element): string | undefined {
  const from = el.attrs.from ?? '';
  if (el.name === 'presence') {
    const type = el.attrs.type;
    return type === undefined || type === 'unavailable' ? 'p ' + from : undefined;
  }
  if (el.name === 'message') {
    if (el.attrs.type === 'error' || hasBody(el)) return undefined;
    const children = el.elements();
    return children.length > 0 && children.every((c) => c.ns === NS_CHATSTATES) ? 'cs ' + from : undefined;
  }
  return undefined;
}

export default function csi(host: Host): void {
  host.hooks.on<{ features: string[] }>('stream-features', ({ features }) => { features.push(`<csi xmlns="${NS_CSI}"/>`); });

  function inactive(session: Session): void {
    if (session.outFilter) return;
    const held = new Map<string, Element>();
    let flushing = false;
    const flush = (): void => {
      flushing = true;
      for (const el of held.values()) session.send(el);
      held.clear();
      flushing = false;
    };
    const filter = (el: Element): boolean => {
      if (flushing) return false;
      const key = holdKey(el);
      if (key === undefined) { flush(); return false; }
      held.delete(key); // re-inserted at the end: the latest keeps its place in time
      held.set(key, el.clone()); // the same object may go to other sessions and be changed later
      if (held.size > MAX_HELD) flush();
      return true;
    };
    (filter as Filter).flush = flush;
    session.outFilter = filter;
  }

  function active(session: Session): void {
    const filter = session.outFilter as Filter | undefined;
    if (!filter?.flush) return;
    session.outFilter = undefined;
    filter.flush();
  }

  host.hooks.on<{ session: Session; element: Element }>('nonza/' + NS_CSI, ({ session, element }) => {
    if (element.name === 'inactive') inactive(session);
    else if (element.name === 'active') active(session);
    else return false; // unknown element: the stream's usual error
    return true;
  });
}

type Filter = ((el: Element) => boolean) & { flush?: () => void };
