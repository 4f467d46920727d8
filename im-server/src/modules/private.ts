// XEP-0049 private XML storage (jabber:iq:private): a user keeps XML on the server, readable and
// writable only by the user's own resources. Older clients keep their XEP-0048 bookmarks here.
// One item per namespace: a set replaces, for each namespace it names, everything stored under
// it with the elements it carries (the XEP lets a set hold several of one namespace); a get
// answers with them, or with the empty element it asked for when nothing is stored.
import type { Host, StanzaEvent } from '../core/host.js';
import { parseElement } from '../core/parser.js';
import { errorReply, iqResult } from '../core/stanza.js';
import { xml, type Element } from '../core/xml.js';
import type { ModuleStore, Storage } from '../storage/types.js';

export const NS_PRIVATE = 'jabber:iq:private';

// account_created is the owning account's accounts.created_at when the row was written: an
// account deleted by `admin deluser` (which knows nothing of module tables) and registered again
// gets another created_at, so the new owner never sees the old one's data. Equality, not a
// timestamp comparison, so a Pi booting with a clock behind does not hide anything.
const MIGRATIONS = [
  `CREATE TABLE private_xml (username TEXT NOT NULL, ns TEXT NOT NULL, xml TEXT NOT NULL, account_created INTEGER NOT NULL,
     PRIMARY KEY (username, ns)) WITHOUT ROWID;`,
];
const OWNED = 'JOIN accounts a ON a.username = p.username AND a.created_at = p.account_created';

/** XEP-0049 §2.3: namespaces of the protocol itself (and vcard-temp) are not storage keys. */
const reserved = (ns: string): boolean => ns.startsWith('jabber:') || ns.startsWith('http://jabber.org/') || ns === 'vcard-temp';

/** An element with nothing in it: storing only such clears the namespace. */
const empty = (el: Element): boolean => el.children.length === 0 && Object.keys(el.attrs).every((k) => k === 'xmlns');

class PrivateStore {
  private readonly store: ModuleStore;
  private readonly s;

  constructor(storage: Storage) {
    this.store = storage.moduleStore('private', MIGRATIONS);
    const db = this.store.db;
    this.s = {
      get: db.prepare(`SELECT p.xml FROM private_xml p ${OWNED} WHERE p.username = ? AND p.ns = ?`).pluck(),
      namespaces: db.prepare(`SELECT p.ns FROM private_xml p ${OWNED} WHERE p.username = ?`).pluck(),
      // Writes nothing when the account is gone.
      put: db.prepare('INSERT OR REPLACE INTO private_xml SELECT username, ?, ?, created_at FROM accounts WHERE username = ?'),
      del: db.prepare('DELETE FROM private_xml WHERE username = ? AND ns = ?'),
      delUser: db.prepare('DELETE FROM private_xml WHERE username = ?'),
      orphans: db.prepare(`DELETE FROM private_xml WHERE NOT EXISTS
        (SELECT 1 FROM accounts a WHERE a.username = private_xml.username AND a.created_at = private_xml.account_created)`),
    };
  }

  /** The serialised elements stored under `ns`. */
  get(user: string, ns: string): string | undefined {
    this.store.sync();
    return this.s.get.get(user, ns) as string | undefined;
  }

  namespaces(user: string): Set<string> {
    this.store.sync();
    return new Set(this.s.namespaces.all(user) as string[]);
  }

  put(user: string, ns: string, text: string): Promise<void> {
    return this.store.write(() => this.s.put.run(ns, text, user));
  }

  /** Clears one namespace, or all of the user's. */
  remove(user: string, ns?: string): Promise<void> {
    return this.store.write(() => (ns === undefined ? this.s.delUser.run(user) : this.s.del.run(user, ns)));
  }

  /** Deletes rows whose account is gone or was made again. */
  sweep(): Promise<void> {
    return this.store.write(() => this.s.orphans.run());
  }
}

export default function privateStorage(host: Host): void {
  const cfg = host.config.privateStorage;
  const data = new PrivateStore(host.storage);
  const log = host.log.child({ module: 'private' });
  host.features.add(NS_PRIVATE);

  const fail = (e: StanzaEvent, condition: string, text: string): true => { host.reply(e, errorReply(e.stanza, condition, text)); return true; };

  /** The payload's elements by namespace, or the error to answer with. */
  function byNamespace(e: StanzaEvent): Map<string, Element[]> | string {
    const groups = new Map<string, Element[]>();
    for (const el of e.stanza.firstElement()!.elements()) {
      // An element without its own namespace is in jabber:iq:private, so reserved too.
      if (reserved(el.ns)) return `the namespace ${el.ns || '(none)'} is reserved: store your data under a namespace of your own`;
      groups.set(el.ns, [...(groups.get(el.ns) ?? []), el]);
    }
    return groups;
  }

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_PRIVATE}:query`, (e) => {
    if (e.from.bare !== e.to.bare) return fail(e, 'forbidden', 'private XML storage belongs to its account alone');
    const groups = byNamespace(e);
    if (typeof groups === 'string') return fail(e, 'not-acceptable', groups);
    if (groups.size === 0) return fail(e, 'bad-request', 'name what to get, e.g. <storage xmlns="storage:bookmarks"/>');
    const query = xml('query', { xmlns: NS_PRIVATE });
    for (const [ns, asked] of groups) {
      const text = data.get(e.to.local, ns);
      const stored = text === undefined ? undefined : parseElement(`<query xmlns="${NS_PRIVATE}">${text}</query>`);
      if (stored) for (const el of stored.elements()) query.append(el);
      else query.append(xml(asked[0]!.name, { xmlns: ns }));
    }
    host.reply(e, iqResult(e.stanza, query));
    return true;
  });

  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_PRIVATE}:query`, (e) => {
    if (e.from.bare !== e.to.bare) return fail(e, 'forbidden', 'private XML storage belongs to its account alone');
    const groups = byNamespace(e);
    if (typeof groups === 'string') return fail(e, 'not-acceptable', groups);
    if (groups.size === 0) return fail(e, 'not-acceptable', 'include the element to store, e.g. <storage xmlns="storage:bookmarks">...</storage>');
    const user = e.to.local;
    const writes: { ns: string; text: string | undefined }[] = [];
    for (const [ns, els] of groups) {
      const text = els.every(empty) ? undefined : els.map((el) => { el.attrs.xmlns = ns; return el.toString(); }).join('');
      if (text !== undefined && Buffer.byteLength(text) > cfg.maxItemSize) {
        return fail(e, 'policy-violation', `the data for ${ns} is ${Buffer.byteLength(text)} bytes; at most ${cfg.maxItemSize} can be stored per namespace`);
      }
      writes.push({ ns, text });
    }
    const have = data.namespaces(user);
    const added = writes.filter((w) => w.text !== undefined && !have.has(w.ns)).length;
    if (added > 0 && have.size + added > cfg.maxItemsPerUser) {
      return fail(e, 'policy-violation', `at most ${cfg.maxItemsPerUser} namespaces can be stored per account; clear one by storing its empty element`);
    }
    for (const w of writes) {
      const done = w.text === undefined ? data.remove(user, w.ns) : data.put(user, w.ns, w.text);
      done.catch((err: Error) => log.error({ err: err.message, user }, 'private XML not stored'));
    }
    // host.reply sends the result once these writes are durable.
    host.reply(e, iqResult(e.stanza));
    return true;
  });

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => {
    data.remove(username).catch((err: Error) => log.error({ err: err.message, user: username }, 'private XML of a removed account not deleted'));
    return false;
  });
  // Rows of accounts removed while the server was down or by `admin deluser` (unreadable already, see above).
  data.sweep().catch((err: Error) => log.error({ err: err.message }, 'private XML sweep failed'));
}
