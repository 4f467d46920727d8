// Parsing a MAM query: the XEP-0004 filter form (XEP-0313 §4.1) and XEP-0059 result set
// management. Pure functions: the element in, a typed request or the error to answer out.
import { parseJid } from '../../core/jid.js';
import { type Element, xml } from '../../core/xml.js';

export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_MAM_EXT = 'urn:xmpp:mam:2#extended';
export const NS_RSM = 'http://jabber.org/protocol/rsm';
export const NS_DATA = 'jabber:x:data';

export interface MamRequest {
  queryid: string | undefined;
  with: { jid: string; full: boolean } | undefined;
  start: number | undefined;
  end: number | undefined;
  afterId: string | undefined;
  beforeId: string | undefined;
  ids: string[] | undefined;
  /** RSM: page size asked for (undefined: server default). */
  max: number | undefined;
  after: string | undefined;
  /** RSM <before>: '' asks for the last page. */
  before: string | undefined;
  index: number | undefined;
  flip: boolean;
}

export interface QueryError { condition: string; text: string }

const FIELDS = new Set(['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']);
// XEP-0082 DateTime: date, time, optional fraction, mandatory zone.
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const MAX_IDS = 1000;

export function parseDateTime(s: string): number | undefined {
  if (!DATETIME.test(s)) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

const bad = (text: string): QueryError => ({ condition: 'bad-request', text });

export function parseQuery(query: Element): MamRequest | QueryError {
  const req: MamRequest = {
    queryid: query.attrs.queryid, with: undefined, start: undefined, end: undefined, afterId: undefined,
    beforeId: undefined, ids: undefined, max: undefined, after: undefined, before: undefined, index: undefined,
    flip: query.getChild('flip-page', NS_MAM) !== undefined,
  };
  const form = query.getChild('x', NS_DATA);
  if (form) {
    if (form.attrs.type !== undefined && form.attrs.type !== 'submit') return bad(`the filter form must be of type 'submit', not '${form.attrs.type}'`);
    for (const field of form.getChildren('field')) {
      const name = field.attrs.var ?? '';
      const values = field.getChildren('value').map((v) => v.text().trim());
      const value = values[0] ?? '';
      if (!FIELDS.has(name)) return { condition: 'feature-not-implemented', text: `the field '${name}' is not supported; see the query form for those that are` };
      if (name === 'FORM_TYPE') {
        if (value !== NS_MAM) return bad(`FORM_TYPE must be ${NS_MAM}`);
        continue;
      }
      if (name === 'ids') {
        if (values.length > MAX_IDS) return bad(`at most ${MAX_IDS} ids per query`);
        req.ids = values;
        continue;
      }
      if (value === '') continue;
      switch (name) {
        case 'with': {
          const jid = parseJid(value);
          if (!jid) return bad(`'with' is not a valid JID: ${value}`);
          req.with = jid.resource ? { jid: jid.full, full: true } : { jid: jid.bare, full: false };
          break;
        }
        case 'start': case 'end': {
          const t = parseDateTime(value);
          if (t === undefined) return bad(`'${name}' is not a XEP-0082 date-time (like 2024-05-01T12:00:00Z): ${value}`);
          req[name] = t;
          break;
        }
        case 'after-id': req.afterId = value; break;
        case 'before-id': req.beforeId = value; break;
      }
    }
  }
  const set = query.getChild('set', NS_RSM);
  if (set) {
    const max = set.getChildText('max');
    if (max !== undefined) {
      if (!/^\d+$/.test(max.trim())) return bad(`RSM <max> must be a non-negative integer: ${max}`);
      req.max = Number(max.trim());
    }
    const after = set.getChild('after');
    if (after) {
      req.after = after.text().trim();
      if (req.after === '') return bad('RSM <after> must hold the UID of an archived message');
    }
    const before = set.getChild('before');
    if (before) req.before = before.text().trim();
    const index = set.getChildText('index');
    if (index !== undefined) {
      if (!/^\d+$/.test(index.trim())) return bad(`RSM <index> must be a non-negative integer: ${index}`);
      req.index = Number(index.trim());
    }
  }
  return req;
}

/** The form a client fetches to learn the supported fields (iq get). */
export function queryForm(): Element {
  return xml('query', { xmlns: NS_MAM },
    xml('x', { xmlns: NS_DATA, type: 'form' },
      xml('field', { type: 'hidden', var: 'FORM_TYPE' }, xml('value', {}, NS_MAM)),
      xml('field', { type: 'jid-single', var: 'with' }),
      xml('field', { type: 'text-single', var: 'start' }),
      xml('field', { type: 'text-single', var: 'end' }),
      xml('field', { type: 'text-single', var: 'before-id' }),
      xml('field', { type: 'text-single', var: 'after-id' }),
      xml('field', { type: 'list-multi', var: 'ids' },
        xml('validate', { xmlns: 'http://jabber.org/protocol/xdata-validate', datatype: 'xs:string' }, xml('open')))));
}
