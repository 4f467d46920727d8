// MAM and carbons test helpers: run an archive query and collect its result messages.
import { xml, type Element } from '@xmpp/client';
import { waitFor, type XmppClient } from './helpers.js';

export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_RSM = 'http://jabber.org/protocol/rsm';
export const NS_SID = 'urn:xmpp:sid:0';
export const NS_CARBONS = 'urn:xmpp:carbons:2';

export interface MamQuery {
  to?: string;
  with?: string;
  start?: string;
  end?: string;
  fields?: Record<string, string | string[]>;
  max?: number;
  after?: string;
  /** '' asks for the last page. */
  before?: string;
  flip?: boolean;
}

export interface MamItem { id: string; stamp: string; message: Element; body: string | undefined }
export interface MamPage { items: MamItem[]; complete: boolean; first?: string; last?: string; count?: number; firstIndex?: number }

let n = 0;

export function queryElement(q: MamQuery, queryid: string): Element {
  const fields: Element[] = [xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS_MAM))];
  const all: Record<string, string | string[]> = { ...q.fields };
  if (q.with) all.with = q.with;
  if (q.start) all.start = q.start;
  if (q.end) all.end = q.end;
  for (const [k, v] of Object.entries(all)) fields.push(xml('field', { var: k }, ...(Array.isArray(v) ? v : [v]).map((x) => xml('value', {}, x))));
  const set = xml('set', { xmlns: NS_RSM },
    q.max === undefined ? undefined : xml('max', {}, String(q.max)),
    q.after === undefined ? undefined : xml('after', {}, q.after),
    q.before === undefined ? undefined : xml('before', {}, q.before));
  return xml('query', { xmlns: NS_MAM, queryid }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...fields), set, q.flip ? xml('flip-page') : undefined);
}

/** Runs a query; resolves with the results (in the order received) and the <fin/> data. */
export async function mamQuery(c: XmppClient, q: MamQuery = {}): Promise<MamPage> {
  const queryid = `q${++n}`;
  const items: MamItem[] = [];
  const on = (s: Element): void => {
    const r = s.is('message') ? s.getChild('result', NS_MAM) : undefined;
    if (!r || r.attrs.queryid !== queryid) return;
    const fwd = r.getChild('forwarded', 'urn:xmpp:forward:0')!;
    const message = fwd.getChild('message')!;
    items.push({ id: r.attrs.id ?? '', stamp: fwd.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp ?? '', message, body: message.getChildText('body') ?? undefined });
  };
  c.on('stanza', on);
  try {
    const res = await c.iqCaller.request(xml('iq', { type: 'set', to: q.to }, queryElement(q, queryid)), 15_000);
    const fin = res.getChild('fin', NS_MAM)!;
    const set = fin.getChild('set', NS_RSM);
    const first = set?.getChild('first');
    const count = set?.getChildText('count');
    return {
      items, complete: fin.attrs.complete === 'true', first: first?.text(), last: set?.getChildText('last') ?? undefined,
      count: count ? Number(count) : undefined, firstIndex: first ? Number(first.attrs.index) : undefined,
    };
  } finally {
    c.off('stanza', on);
    c.received = c.received.filter((s) => s.getChild('result', NS_MAM)?.attrs.queryid !== queryid);
  }
}

/** The condition of a failed IQ (or 'no error'). */
export async function iqError(p: Promise<unknown>): Promise<string> {
  try { await p; return 'no error'; } catch (e) { return (e as { condition?: string }).condition ?? String(e); }
}

export const chat = (to: string, body: string, id?: string, type = 'chat'): Element => xml('message', { to, type, id }, xml('body', {}, body));

/** Waits for a message with this body at `c`. */
export const got = (c: XmppClient, body: string): Promise<Element> =>
  waitFor(c, (s) => s.is('message') && s.getChildText('body') === body, `message "${body}"`);
