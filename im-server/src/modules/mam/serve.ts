// Answering a MAM query on one archive (a user's or a room's): result messages to the
// requesting full JID, then the IQ result with <fin/> and the RSM set (XEP-0313 §4.2-4.3).
import type { Host, StanzaEvent } from '../../core/host.js';
import { parseElement } from '../../core/parser.js';
import { NS, errorReply, iqResult } from '../../core/stanza.js';
import { escapeAttr, xml } from '../../core/xml.js';
import { NS_MAM, NS_RSM, parseQuery } from './query.js';
import { type ArchiveStore, type Filter, newId } from './store.js';

const NS_FORWARD = 'urn:xmpp:forward:0';

export async function serveQuery(host: Host, store: ArchiveStore, e: StanzaEvent, archive: string): Promise<void> {
  const req = parseQuery(e.stanza.firstElement()!);
  if ('condition' in req) { host.reply(e, errorReply(e.stanza, req.condition, req.text)); return; }
  // The ordering key of every UID the query names; a UID the archive does not hold is
  // item-not-found (XEP-0313 §4.1.3 and §4.3.2).
  const named: [string | undefined, string][] = [[req.afterId, 'after-id'], [req.beforeId, 'before-id'], [req.after, 'RSM <after>'], [req.before || undefined, 'RSM <before>'], ...(req.ids ?? []).map((id): [string, string] => [id, 'ids'])];
  const seqs = await store.seqsOf(archive, named.flatMap(([id]) => (id === undefined ? [] : [id])));
  const missing = named.find(([id]) => id !== undefined && !seqs.has(id));
  if (missing) { host.reply(e, errorReply(e.stanza, 'item-not-found', `${missing[1]}: no message ${missing[0]} in this archive`)); return; }
  const seq = (id: string | undefined): number | undefined => (id ? seqs.get(id) : undefined);
  const filter: Filter = { with: req.with, start: req.start, end: req.end, ids: req.ids };
  const bounds = (a: number | undefined, b: number | undefined, pick: (x: number, y: number) => number): number | undefined =>
    a === undefined ? b : b === undefined ? a : pick(a, b);
  filter.afterSeq = bounds(seq(req.afterId), seq(req.after), Math.max);
  filter.beforeSeq = bounds(seq(req.beforeId), seq(req.before), Math.min);
  const limit = host.config.mam.maxPageSize;
  const max = Math.min(req.max ?? limit, limit);
  const backward = req.before !== undefined;
  const page = await store.page(archive, filter, max, backward, req.index ?? 0);

  const items = req.flip ? [...page.items].reverse() : page.items;
  const to = e.from.full;
  const qid = req.queryid === undefined ? '' : ` queryid="${escapeAttr(req.queryid)}"`;
  for (const it of items) {
    // Stored stanzas are our own serialisation: wrapped as text, not re-parsed, when we can.
    const inner = `<forwarded xmlns="${NS_FORWARD}"><delay xmlns="${NS.delay}" stamp="${new Date(it.stamp).toISOString()}"/>${it.stanza}</forwarded>`;
    const msg = `<message xmlns="${NS.client}" from="${escapeAttr(archive)}" to="${escapeAttr(to)}" id="${newId()}"><result xmlns="${NS_MAM}"${qid} id="${escapeAttr(it.id)}">${inner}</result></message>`;
    if (e.origin) e.origin.sendXml(msg);
    else { const el = parseElement(msg); if (el) host.route(el); }
  }
  const set = xml('set', { xmlns: NS_RSM });
  if (page.items.length > 0) {
    set.append(xml('first', { index: String(page.firstIndex) }, page.items[0]!.id));
    set.append(xml('last', {}, page.items[page.items.length - 1]!.id));
  }
  set.append(xml('count', {}, String(page.count)));
  const fin = xml('fin', { xmlns: NS_MAM, complete: page.complete ? 'true' : 'false' }, set);
  const result = iqResult(e.stanza, fin);
  result.attrs.from = archive;
  result.attrs.to = to;
  host.reply(e, result);
}

/** XEP-0313 §5 archive metadata: the first and last item. */
export async function serveMetadata(host: Host, store: ArchiveStore, e: StanzaEvent, archive: string): Promise<void> {
  const ends = await store.ends(archive);
  const md = xml('metadata', { xmlns: NS_MAM });
  if (ends) {
    md.append(xml('start', { id: ends.start.id, timestamp: new Date(ends.start.stamp).toISOString() }));
    md.append(xml('end', { id: ends.end.id, timestamp: new Date(ends.end.stamp).toISOString() }));
  }
  host.reply(e, iqResult(e.stanza, md));
}
