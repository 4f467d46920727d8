// XEP-0163 Personal Eventing Protocol: a XEP-0060 pubsub service on every account's bare JID.
// Publish (auto-create, publish-options as preconditions), retract, items, create, configure,
// delete, purge; notifications as headline messages to the owner's and to subscribed contacts'
// sessions whose XEP-0115 caps say <node>+notify; the last item to such a session when it comes
// online. Explicit XEP-0060 subscriptions are not offered: contacts with a presence subscription are
// auto-subscribed, filtered by +notify (XEP-0163 auto-subscribe, filtered-notifications).
import { randomUUID } from 'node:crypto';
import type { Host, StanzaEvent } from '../../core/host.js';
import { parseElement } from '../../core/parser.js';
import type { Session } from '../../core/session.js';
import { NS, errorReply, iqResult } from '../../core/stanza.js';
import { Element, xml } from '../../core/xml.js';
import type { RosterItem } from '../../storage/types.js';
import { rosterStore } from '../roster-store.js';
import { startCaps } from './caps.js';
import { DEFAULT_CONFIG, NODE_CONFIG, NS_DATA, PUBLISH_OPTIONS, applyFields, configForm, formFields, formType, keepCount,
  preconditionsMet, type NodeConfig } from './config.js';
import { PepStore, type StoredItem } from './store.js';

export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_OWNER = `${NS_PUBSUB}#owner`;
const NS_EVENT = `${NS_PUBSUB}#event`;
const NS_ERRORS = `${NS_PUBSUB}#errors`;

/** What the account JID advertises (in host.accountFeatures, read by disco.ts); only what works. */
export const PEP_FEATURES = ['access-open', 'access-presence', 'access-roster', 'access-whitelist', 'auto-create', 'auto-subscribe',
  'config-node', 'create-nodes', 'delete-items', 'delete-nodes', 'filtered-notifications', 'last-published',
  'multi-items', 'persistent-items', 'presence-notifications', 'publish', 'publish-options', 'purge-nodes',
  'retract-items', 'retrieve-default', 'retrieve-items'].map((f) => `${NS_PUBSUB}#${f}`);

interface Denied { condition: string; app?: string; text: string }

export default async function pep(host: Host): Promise<void> {
  const limits = host.config.pep;
  const store = await PepStore.open(host.db);
  const roster = rosterStore(host);
  const log = host.log.child({ module: 'pep' });
  const caps = startCaps(host, store);
  const bare = (username: string): string => `${username}@${host.domain}`;
  const keep = (c: NodeConfig): number => keepCount(c, limits.maxItems);

  host.features.add(NS_PUBSUB);
  for (const f of PEP_FEATURES) host.features.add(f);

  function fail(e: StanzaEvent, condition: string, text: string, app?: string, appAttrs?: Record<string, string>): true {
    const r = errorReply(e.stanza, condition, text);
    if (app) r.getChild('error')!.append(xml(app, { xmlns: NS_ERRORS, ...appAttrs }));
    host.reply(e, r);
    return true;
  }

  /** Whether a node's access model needs the owner's roster item of the requester. */
  const needsRoster = (owner: string, who: string, c: NodeConfig): boolean => who !== bare(owner) && c.accessModel !== 'open';

  /** May `who` (a bare JID) see the items of `owner`'s node? (XEP-0060 §6.1.3 / §6.5.9 access models.)
   * Reads the owner's roster item of `who` only when the access model needs it. */
  async function denied(owner: string, who: string, c: NodeConfig): Promise<Denied | undefined> {
    if (!needsRoster(owner, who, c)) return undefined;
    return deniedBy(owner, who, c, await roster.getItem(owner, who));
  }

  /** denied(), given the owner's roster item of `who` (undefined: none). */
  function deniedBy(owner: string, who: string, c: NodeConfig, it: RosterItem | undefined): Denied | undefined {
    if (!needsRoster(owner, who, c)) return undefined;
    switch (c.accessModel) {
      case 'presence':
        if (it && (it.subscription === 'from' || it.subscription === 'both')) return undefined;
        return { condition: 'not-authorized', app: 'presence-subscription-required', text: 'only contacts subscribed to the owner\'s presence may see this node' };
      case 'roster':
        if (it && it.groups.some((g) => c.rosterGroups.includes(g))) return undefined;
        return { condition: 'not-authorized', app: 'not-in-roster-group', text: 'only some of the owner\'s roster groups may see this node' };
      default:
        return { condition: 'not-allowed', app: 'closed-node', text: 'this node is private to its owner' };
    }
  }

  function itemElement(it: StoredItem): Element {
    const el = xml('item', { id: it.id });
    const payload = parseElement(it.payload);
    if (payload) el.append(payload);
    return el;
  }

  /** The sessions to notify about `owner`'s node: the owner's and subscribed contacts', filtered by +notify and access. */
  async function recipients(owner: string, node: string, c: NodeConfig): Promise<Session[]> {
    const want = `${node}+notify`;
    const out: Session[] = [];
    const add = (jid: string): void => {
      for (const s of host.router.sessionsOf(jid)) if (s.available && caps.features(s).has(want)) out.push(s);
    };
    add(bare(owner));
    for (const it of (await roster.getRoster(owner)).items) {
      if ((it.subscription === 'from' || it.subscription === 'both') && !deniedBy(owner, it.contact, c, it)) add(it.contact);
    }
    return out;
  }

  /** Waits for the writes of a request; when one failed, answers with an error and says false. */
  async function stored(e: StanzaEvent, ...writes: Promise<void>[]): Promise<boolean> {
    try {
      await Promise.all(writes);
      return true;
    } catch (err) {
      log.error({ err: (err as Error)?.message ?? String(err), user: e.to.local }, 'pep change not stored');
      host.reply(e, errorReply(e.stanza, 'internal-server-error', 'the change could not be stored; try again'));
      return false;
    }
  }

  function notify(owner: string, to: Session[], event: Element): void {
    for (const s of to) {
      host.deliver(s, xml('message', { xmlns: NS.client, type: 'headline', from: bare(owner), to: s.jid.full, id: randomUUID() },
        xml('event', { xmlns: NS_EVENT }, event.clone())), performance.now());
    }
  }

  // ---- publish, retract, create, items ----
  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_PUBSUB}:pubsub`, (e) => {
    if (!host.accountExists(e.to.local)) return false;
    const owner = e.to.local;
    const ps = e.stanza.firstElement()!;
    const op = ps.firstElement();
    if (!op) return fail(e, 'bad-request', 'empty pubsub request');
    if (op.name === 'subscribe' || op.name === 'unsubscribe') {
      return fail(e, 'feature-not-implemented', 'PEP here notifies by XEP-0115 +notify; explicit subscriptions are not offered', 'unsupported', { feature: 'subscribe' });
    }
    if (e.from.bare !== e.to.bare) return fail(e, 'forbidden', 'only the account owner may change its PEP nodes');
    const node = op.attrs.node;
    if (op.name === 'publish') return publish(e, owner, node, op, ps.getChild('publish-options'));
    if (op.name === 'retract') return retract(e, owner, node, op);
    if (op.name === 'create') return create(e, owner, node, ps.getChild('configure'));
    return fail(e, 'feature-not-implemented', `pubsub ${op.name} is not supported`, 'unsupported', { feature: op.name });
  });

  async function publish(e: StanzaEvent, owner: string, node: string | undefined, op: Element, options: Element | undefined): Promise<true> {
    if (!node) return fail(e, 'bad-request', 'publish needs a node', 'nodeid-required');
    const items = op.getChildren('item');
    if (items.length === 0) return fail(e, 'bad-request', 'publish needs an item', 'item-required');
    if (items.length > 1) return fail(e, 'bad-request', 'publish one item at a time', 'invalid-payload');
    const payloads = items[0]!.elements();
    if (payloads.length === 0) return fail(e, 'bad-request', 'the item needs a payload', 'payload-required');
    if (payloads.length > 1) return fail(e, 'bad-request', 'an item holds exactly one payload element', 'invalid-payload');
    const payload = payloads[0]!.clone();
    if (!payload.attrs.xmlns) payload.attrs.xmlns = payloads[0]!.ns;
    const text = payload.toString();
    if (Buffer.byteLength(text) > limits.maxPayloadBytes) return fail(e, 'not-acceptable', `payload over ${limits.maxPayloadBytes} bytes`, 'payload-too-big');

    let fields = new Map<string, string[]>();
    const form = options?.getChild('x', NS_DATA);
    if (form) {
      if (formType(form) !== PUBLISH_OPTIONS) return fail(e, 'bad-request', `publish-options needs FORM_TYPE ${PUBLISH_OPTIONS}`, 'invalid-options');
      fields = formFields(form);
    }
    let config = await store.getNode(owner, node);
    let created = false;
    if (config) {
      const unmet = preconditionsMet(config, fields, limits.maxItems);
      if (unmet) return fail(e, 'conflict', unmet, 'precondition-not-met');
    } else {
      const c = applyFields(DEFAULT_CONFIG, fields, limits.maxItems, true);
      if (typeof c === 'string') return fail(e, 'conflict', c, 'precondition-not-met');
      if (await store.countNodes(owner) >= limits.maxNodesPerUser) return fail(e, 'not-allowed', `at most ${limits.maxNodesPerUser} nodes per account`);
      config = c;
      created = true;
    }
    const id = items[0]!.attrs.id || randomUUID();
    // An auto-created node and its first item: one atomic write.
    if (!(await stored(e, store.publish(owner, node, id, text, keep(config), created ? config : undefined)))) return true;
    host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_PUBSUB }, xml('publish', { node }, xml('item', { id })))));
    const to = await recipients(owner, node, config);
    host.log.debug({ owner, node, id, to: to.map((s) => s.jid.full) }, 'pep publish');
    notify(owner, to, xml('items', { node }, xml('item', { id }, payload)));
    return true;
  }

  async function retract(e: StanzaEvent, owner: string, node: string | undefined, op: Element): Promise<true> {
    if (!node) return fail(e, 'bad-request', 'retract needs a node', 'nodeid-required');
    const config = await store.getNode(owner, node);
    if (!config) return fail(e, 'item-not-found', `no node ${node}`);
    const ids = op.getChildren('item').map((i) => i.attrs.id).filter((id): id is string => !!id);
    if (ids.length === 0) return fail(e, 'bad-request', 'retract needs an item id', 'item-required');
    for (const id of ids) if (!(await store.item(owner, node, id))) return fail(e, 'item-not-found', `no item ${id} in ${node}`);
    if (!(await stored(e, store.retract(owner, node, ids)))) return true;
    host.reply(e, iqResult(e.stanza));
    const n = op.attrs.notify;
    if (n === 'true' || n === '1' || (n === undefined && config.notifyRetract)) {
      notify(owner, await recipients(owner, node, config), xml('items', { node }, ...ids.map((id) => xml('retract', { id }))));
    }
    return true;
  }

  async function create(e: StanzaEvent, owner: string, node: string | undefined, configure: Element | undefined): Promise<true> {
    if (!node) return fail(e, 'not-acceptable', 'instant nodes are not supported: name the node', 'nodeid-required');
    if (await store.getNode(owner, node)) return fail(e, 'conflict', `node ${node} exists`);
    if (await store.countNodes(owner) >= limits.maxNodesPerUser) return fail(e, 'not-allowed', `at most ${limits.maxNodesPerUser} nodes per account`);
    const form = configure?.getChild('x', NS_DATA);
    const c = form ? applyFields(DEFAULT_CONFIG, formFields(form), limits.maxItems, false) : DEFAULT_CONFIG;
    if (typeof c === 'string') return fail(e, 'not-acceptable', c, 'invalid-options');
    if (!(await stored(e, store.putNode(owner, node, c, keep(c))))) return true;
    host.reply(e, iqResult(e.stanza));
    return true;
  }

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_PUBSUB}:pubsub`, async (e) => {
    if (!host.accountExists(e.to.local)) return false;
    const owner = e.to.local;
    const op = e.stanza.firstElement()!.firstElement();
    if (op?.name === 'items') {
      const node = op.attrs.node;
      if (!node) return fail(e, 'bad-request', 'items needs a node', 'nodeid-required');
      const config = await store.getNode(owner, node);
      if (!config) return fail(e, 'item-not-found', `no node ${node}`);
      const no = await denied(owner, e.from.bare, config);
      if (no) return fail(e, no.condition, no.text, no.app);
      const ids = op.getChildren('item').map((i) => i.attrs.id).filter((id): id is string => !!id);
      let found: StoredItem[];
      if (ids.length > 0) found = (await Promise.all(ids.map((id) => store.item(owner, node, id)))).filter((i): i is StoredItem => i !== undefined);
      else {
        const max = op.attrs.max_items === undefined ? keep(config) : Number(op.attrs.max_items);
        if (!Number.isInteger(max) || max < 0) return fail(e, 'bad-request', 'max_items must be a non-negative integer');
        found = await store.latest(owner, node, Math.min(max, keep(config)));
      }
      host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_PUBSUB }, xml('items', { node }, ...found.map(itemElement)))));
      return true;
    }
    if (op?.name === 'subscriptions') {
      host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscriptions', { node: op.attrs.node }))));
      return true;
    }
    if (op?.name === 'affiliations' && e.from.bare === e.to.bare) {
      const list = xml('affiliations', {});
      for (const { node } of await store.nodes(owner)) if (!op.attrs.node || op.attrs.node === node) list.append(xml('affiliation', { node, affiliation: 'owner' }));
      host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_PUBSUB }, list)));
      return true;
    }
    return fail(e, 'feature-not-implemented', `pubsub ${op?.name ?? ''} is not supported`, 'unsupported', { feature: op?.name ?? '' });
  });

  // ---- owner use cases: configure, default, delete, purge ----
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_OWNER}:pubsub`, (e) => owner(e));
  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_OWNER}:pubsub`, (e) => owner(e));

  async function owner(e: StanzaEvent): Promise<boolean> {
    if (!host.accountExists(e.to.local)) return false;
    if (e.from.bare !== e.to.bare) return fail(e, 'forbidden', 'only the account owner may manage its PEP nodes');
    const user = e.to.local;
    const set = e.stanza.attrs.type === 'set';
    const op = e.stanza.firstElement()!.firstElement();
    if (op?.name === 'default' && !set) {
      host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_OWNER }, xml('default', {}, configForm(DEFAULT_CONFIG)))));
      return true;
    }
    const node = op?.attrs.node;
    if (!op || !['configure', 'delete', 'purge'].includes(op.name)) return fail(e, 'feature-not-implemented', `pubsub#owner ${op?.name ?? ''} is not supported`, 'unsupported', { feature: op?.name ?? '' });
    if (!node) return fail(e, 'bad-request', `${op.name} needs a node`, 'nodeid-required');
    const config = await store.getNode(user, node);
    if (!config) return fail(e, 'item-not-found', `no node ${node}`);
    if (op.name === 'configure') {
      if (!set) {
        host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_OWNER }, xml('configure', { node }, configForm(config)))));
        return true;
      }
      const form = op.getChild('x', NS_DATA);
      if (!form || form.attrs.type === 'cancel') { host.reply(e, iqResult(e.stanza)); return true; }
      const ft = formType(form);
      if (ft !== undefined && ft !== NODE_CONFIG) return fail(e, 'bad-request', `the form must be ${NODE_CONFIG}`, 'invalid-options');
      const c = applyFields(config, formFields(form), limits.maxItems, false);
      if (typeof c === 'string') return fail(e, 'not-acceptable', c, 'invalid-options');
      if (!(await stored(e, store.putNode(user, node, c, keep(c))))) return true;
      host.reply(e, iqResult(e.stanza));
      return true;
    }
    if (!set) return fail(e, 'bad-request', `${op.name} is a set`);
    const to = await recipients(user, node, config);
    if (!(await stored(e, op.name === 'delete' ? store.deleteNode(user, node) : store.purge(user, node)))) return true;
    host.reply(e, iqResult(e.stanza));
    notify(user, to, op.name === 'delete' ? xml('delete', { node }) : xml('purge', { node }));
    return true;
  }

  // ---- disco: the account's identity, features and nodes ----
  host.accountIdentities.push({ category: 'pubsub', type: 'pep' });
  for (const f of [NS_PUBSUB, ...PEP_FEATURES]) host.accountFeatures.add(f);
  host.hooks.on<{ event: StanzaEvent; query: Element }>('disco/account-items', async ({ event, query }) => {
    const nodes = await store.nodes(event.to.local);
    // One roster read for all nodes, and only when an access model needs it.
    const it = nodes.some(({ config }) => needsRoster(event.to.local, event.from.bare, config)) ? await roster.getItem(event.to.local, event.from.bare) : undefined;
    for (const { node, config } of nodes) {
      if (!deniedBy(event.to.local, event.from.bare, config, it)) query.append(xml('item', { jid: event.to.bare, node, name: config.title || undefined }));
    }
  });
  // disco#info on a node (Smack's getLeafNode asks it): a leaf, or item-not-found.
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.discoInfo}:query`, async (e) => {
    const node = e.stanza.firstElement()!.attrs.node;
    if (!node || !host.accountExists(e.to.local)) return false;
    const config = await store.getNode(e.to.local, node);
    if (!config || await denied(e.to.local, e.from.bare, config)) return fail(e, 'item-not-found', `no node ${node}`);
    host.reply(e, iqResult(e.stanza, xml('query', { xmlns: NS.discoInfo, node },
      xml('identity', { category: 'pubsub', type: 'leaf' }), xml('feature', { var: NS_PUBSUB }),
      xml('x', { xmlns: NS_DATA, type: 'result' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#meta-data')),
        xml('field', { var: 'pubsub#access_model' }, xml('value', {}, config.accessModel))))));
    return true;
  });
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.discoItems}:query`, async (e) => {
    const node = e.stanza.firstElement()!.attrs.node;
    if (!node || !host.accountExists(e.to.local)) return false;
    const config = await store.getNode(e.to.local, node);
    if (!config || await denied(e.to.local, e.from.bare, config)) return fail(e, 'item-not-found', `no node ${node}`);
    const q = xml('query', { xmlns: NS.discoItems, node });
    for (const it of await store.latest(e.to.local, node, keep(config))) q.append(xml('item', { jid: e.to.bare, name: it.id }));
    host.reply(e, iqResult(e.stanza, q));
    return true;
  });

  // ---- the last item to a session that (newly) shows +notify interest ----
  caps.onFeatures((session, features) => {
    host.log.debug({ session: session.jid.full, notify: [...features].filter((f) => f.endsWith('+notify')) }, 'pep interest');
    sendLast(session, features).catch((err: unknown) => log.error({ err: (err as Error)?.message ?? String(err), session: session.jid.full }, 'pep last items not sent'));
  });
  async function sendLast(session: Session, features: ReadonlySet<string>): Promise<void> {
    const owners = [session.username];
    for (const it of (await roster.getRoster(session.username)).items) {
      if ((it.subscription === 'to' || it.subscription === 'both') && it.contact.endsWith(`@${host.domain}`)) owners.push(it.contact.slice(0, -host.domain.length - 1));
    }
    for (const owner of owners) {
      if (!host.accountExists(owner)) continue;
      for (const { node, config } of await store.nodes(owner)) {
        if (config.sendLast !== 'on_sub_and_presence' || !features.has(`${node}+notify`) || await denied(owner, session.jid.bare, config)) continue;
        const last = (await store.latest(owner, node, 1))[0];
        if (last) notify(owner, [session], xml('items', { node }, itemElement(last)));
      }
    }
  }

  // Queued before the account is deleted: a name registered again starts without nodes.
  host.hooks.on<{ username: string }>('account-removing', async ({ username }) => { await store.deleteUser(username); });
}
