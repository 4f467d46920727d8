// XEP-0115 entity capabilities: which features each local session has, from the caps hash in its
// presence. Unknown hashes are asked once (disco#info node='node#ver' to the session), verified
// (§5.4) and cached; only verified results are trusted.
import { createHash } from 'node:crypto';
import type { Host, StanzaEvent } from '../../core/host.js';
import type { Session } from '../../core/session.js';
import { NS } from '../../core/stanza.js';
import { Element, xml } from '../../core/xml.js';
import type { PepStore } from './store.js';

export const NS_CAPS = 'http://jabber.org/protocol/caps';
const HASHES: Record<string, string> = { 'sha-1': 'sha1', 'sha-224': 'sha224', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' };

/** The XEP-0115 §5.1 verification string of a disco#info result, or undefined when it is ill-formed (§5.4). */
export function verificationString(query: Element): string | undefined {
  const ids = query.getChildren('identity').map((i) =>
    `${i.attrs.category ?? ''}/${i.attrs.type ?? ''}/${i.attrs['xml:lang'] ?? ''}/${i.attrs.name ?? ''}`);
  const feats = query.getChildren('feature').map((f) => f.attrs.var ?? '');
  if (new Set(ids).size !== ids.length || new Set(feats).size !== feats.length) return undefined;
  let s = ids.sort(cmp).map((i) => i + '<').join('') + feats.sort(cmp).map((f) => f + '<').join('');
  const forms: { type: string; text: string }[] = [];
  for (const x of query.getChildren('x', 'jabber:x:data')) {
    const fields = x.getChildren('field');
    const ft = fields.filter((f) => f.attrs.var === 'FORM_TYPE');
    if (ft.length === 0) continue; // forms without FORM_TYPE are ignored
    if (ft.length > 1 || ft[0]!.attrs.type !== 'hidden' || ft[0]!.getChildren('value').length !== 1) return undefined;
    const type = ft[0]!.getChildText('value')!;
    let text = type + '<';
    const rest = fields.filter((f) => f.attrs.var !== 'FORM_TYPE').sort((a, b) => cmp(a.attrs.var ?? '', b.attrs.var ?? ''));
    for (const f of rest) text += (f.attrs.var ?? '') + '<' + f.getChildren('value').map((v) => v.text()).sort(cmp).map((v) => v + '<').join('');
    forms.push({ type, text });
  }
  if (new Set(forms.map((f) => f.type)).size !== forms.length) return undefined;
  return s + forms.sort((a, b) => cmp(a.type, b.type)).map((f) => f.text).join('');
}

// "i;octet" collation: compare by bytes (code points suffice for the BMP names clients use).
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function capsHash(algo: string, query: Element): string | undefined {
  const h = HASHES[algo.toLowerCase()];
  const s = verificationString(query);
  if (!h || s === undefined) return undefined;
  return createHash(h).update(s, 'utf8').digest('base64');
}

export interface Caps {
  /** Called when a session's feature set becomes known or changes. */
  onFeatures(fn: (session: Session, features: ReadonlySet<string>) => void): void;
  features(session: Session): ReadonlySet<string>;
}

export function startCaps(host: Host, store: PepStore): Caps {
  const bySession = new WeakMap<Session, { key: string; features: ReadonlySet<string> }>();
  /** The caps key each session announced last: a late answer for an older one must not win. */
  const announced = new WeakMap<Session, string>();
  /** key (algo + ' ' + ver) -> sessions waiting for it; a query is out while the key is here. */
  const pending = new Map<string, Set<Session>>();
  const queries = new Map<string, { key: string; algo: string; ver: string; session: Session }>();
  const listeners: ((s: Session, f: ReadonlySet<string>) => void)[] = [];
  const EMPTY: ReadonlySet<string> = new Set();
  let nextId = 0;
  /** Verified hashes seen lately (the table keeps them all): most clients share a few. */
  const verified = new Map<string, string[]>();
  const remember = (key: string, features: string[]): void => {
    verified.delete(key);
    verified.set(key, features);
    if (verified.size > 1000) verified.delete(verified.keys().next().value!);
  };

  const resolved = (session: Session, key: string, features: string[]): void => {
    if (announced.get(session) !== key) return;
    const set = new Set(features);
    bySession.set(session, { key, features: set });
    for (const fn of listeners) fn(session, set);
  };

  function ask(key: string, session: Session, node: string, algo: string, ver: string): void {
    const id = `caps${++nextId}`;
    const q = { key, algo, ver, session };
    queries.set(id, q);
    // A client that never answers must not leave the others with this hash waiting forever.
    setTimeout(() => { if (queries.get(id) === q) { queries.delete(id); askNext(q); } }, 30_000).unref();
    host.route(xml('iq', { xmlns: NS.client, type: 'get', id, from: host.domain, to: session.jid.full },
      xml('query', { xmlns: NS.discoInfo, node: `${node}#${ver}` })));
  }

  // Observe broadcast presence (the presence module handles it after us).
  host.hooks.on<StanzaEvent>('out/presence', (e) => {
    const session = e.origin!;
    if (e.stanza.attrs.to !== undefined || e.stanza.attrs.type !== undefined) return false;
    const c = e.stanza.getChild('c', NS_CAPS);
    if (!c || !c.attrs.ver || !c.attrs.node) {
      // Legacy or no caps: no +notify interest known.
      announced.set(session, '');
      if (bySession.get(session)?.key !== '') resolved(session, '', []);
      return false;
    }
    const algo = (c.attrs.hash ?? '').toLowerCase();
    const key = `${algo} ${c.attrs.ver}`;
    announced.set(session, key);
    if (bySession.get(session)?.key === key) return false;
    const known = verified.get(key);
    if (known) { resolved(session, key, known); return false; }
    const waiting = pending.get(key);
    if (waiting) { waiting.add(session); return false; }
    pending.set(key, new Set([session]));
    // The cache table is read beside the presence (an observer does not hold it up): the
    // sessions announcing this hash meanwhile wait with this one; asked only when not cached.
    const node = c.attrs.node;
    const ver = c.attrs.ver;
    // Asks this session, or (gone meanwhile) another one that announced the same hash.
    const askOne = (): void => {
      if (pending.get(key)?.has(session) && host.router.get(session.jid.full) === session) ask(key, session, node, algo, ver);
      else askNext({ key, algo, ver, session });
    };
    store.caps(key).then((features) => {
      if (!features) { askOne(); return; }
      remember(key, features);
      const all = pending.get(key) ?? new Set<Session>();
      pending.delete(key);
      for (const s of all) resolved(s, key, features);
    }, (err: unknown) => {
      host.log.warn({ err: (err as Error)?.message ?? String(err), key }, 'caps cache not read; asking the client');
      askOne();
    });
    return false;
  }, 'observe');

  host.hooks.on<StanzaEvent>('iq/host', (e) => {
    const id = e.stanza.attrs.id ?? '';
    const q = queries.get(id);
    if (!q || e.from.full !== q.session.jid.full) return false;
    queries.delete(id);
    const waiting = pending.get(q.key) ?? new Set<Session>();
    const query = e.stanza.attrs.type === 'result' ? e.stanza.getChild('query', NS.discoInfo) : undefined;
    if (query && capsHash(q.algo, query) === q.ver) {
      pending.delete(q.key);
      const features = query.getChildren('feature').map((f) => f.attrs.var ?? '');
      remember(q.key, features);
      store.putCaps(q.key, features).catch((err: unknown) => host.log.warn({ err: (err as Error)?.message ?? String(err), key: q.key }, 'caps not cached'));
      for (const s of waiting) resolved(s, q.key, features);
      return true;
    }
    // Wrong or no answer: do not trust it; ask another session that announced the same hash.
    askNext(q);
    return true;
  });

  function askNext(q: { key: string; algo: string; ver: string; session: Session }): void {
    const waiting = pending.get(q.key);
    waiting?.delete(q.session);
    for (const next of waiting ?? []) {
      const c = next.presence?.getChild('c', NS_CAPS);
      if (host.router.get(next.jid.full) === next && c?.attrs.node && announced.get(next) === q.key) { ask(q.key, next, c.attrs.node, q.algo, q.ver); return; }
    }
    pending.delete(q.key);
  }

  host.hooks.on<{ session: Session }>('session-closed', ({ session }) => {
    bySession.delete(session);
    // A query out to this session will never be answered: ask another one waiting for that hash.
    for (const [id, q] of queries) if (q.session === session) { queries.delete(id); askNext(q); }
    for (const w of pending.values()) w.delete(session);
  });

  return {
    onFeatures: (fn) => { listeners.push(fn); },
    features: (s) => bySession.get(s)?.features ?? EMPTY,
  };
}
