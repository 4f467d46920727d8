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

export default function pep(host: Host): void {
  const limits = host.config.pep;
  const store = new PepStore(host.storage);
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

  /** May `who` (a bare JID) see the items of `owner`'s node? (XEP-0060 §6.1.3 / §6.5.9 access models.) */
  function denied(owner: string, who: string, c: NodeConfig): Denied | undefined {
    if (who === bare(owner) || c.accessModel === 'open') return undefined;
    const it = host.storage.getRosterItem(owner, who);
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
  function recipients(owner: string, node: string, c: NodeConfig): Session[] {
    const want = `${node}+notify`;
    const out: Session[] = [];
    const add = (jid: string): void => {
      for (const s of host.router.sessionsOf(jid)) if (s.available && caps.features(s).has(want)) out.push(s);
    };
    add(bare(owner));
    for (const it of host.storage.getRoster(owner).items) {
      if ((it.subscription === 'from' || it.subscription === 'both') && !denied(owner, it.contact, c)) add(it.contact);
    }
    return out;
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

  function publish(e: StanzaEvent, owner: string, node: string | undefined, op: Element, options: Element | undefined): true {
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
    let config = store.getNode(owner, node);
    let created = false;
    if (config) {
      const unmet = preconditionsMet(config, fields, limits.maxItems);
      if (unmet) return fail(e, 'conflict', unmet, 'precondition-not-met');
    } else {
      const c = applyFields(DEFAULT_CONFIG, fields, limits.maxItems, true);
      if (typeof c === 'string') return fail(e, 'conflict', c, 'precondition-not-met');
      if (store.countNodes(owner) >= limits.maxNodesPerUser) return fail(e, 'not-allowed', `at most ${limits.maxNodesPerUser} nodes per account`);
      config = c;
      created = true;
    }
    const id = items[0]!.attrs.id || randomUUID();
    if (created) void store.putNode(owner, node, config, keep(config));
    void store.publish(owner, node, id, text, keep(config));
    host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_PUBSUB }, xml('publish', { node }, xml('item', { id })))));
    const to = recipients(owner, node, config);
    host.log.debug({ owner, node, id, to: to.map((s) => s.jid.full) }, 'pep publish');
    notify(owner, to, xml('items', { node }, xml('item', { id }, payload)));
    return true;
  }

  function retract(e: StanzaEvent, owner: string, node: string | undefined, op: Element): true {
    if (!node) return fail(e, 'bad-request', 'retract needs a node', 'nodeid-required');
    const config = store.getNode(owner, node);
    if (!config) return fail(e, 'item-not-found', `no node ${node}`);
    const ids = op.getChildren('item').map((i) => i.attrs.id).filter((id): id is string => !!id);
    if (ids.length === 0) return fail(e, 'bad-request', 'retract needs an item id', 'item-required');
    for (const id of ids) if (!store.item(owner, node, id)) return fail(e, 'item-not-found', `no item ${id} in ${node}`);
    for (const id of ids) void store.retract(owner, node, id);
    host.reply(e, iqResult(e.stanza));
    const n = op.attrs.notify;
    if (n === 'true' || n === '1' || (n === undefined && config.notifyRetract)) {
      notify(owner, recipients(owner, node, config), xml('items', { node }, ...ids.map((id) => xml('retract', { id }))));
    }
    return true;
  }

  function create(e: StanzaEvent, owner: string, node: string | undefined, configure: Element | undefined): true {
    if (!node) return fail(e, 'not-acceptable', 'instant nodes are not supported: name the node', 'nodeid-required');
    if (store.getNode(owner, node)) return fail(e, 'conflict', `node ${node} exists`);
    if (store.countNodes(owner) >= limits.maxNodesPerUser) return fail(e, 'not-allowed', `at most ${limits.maxNodesPerUser} nodes per account`);
    const form = configure?.getChild('x', NS_DATA);
    const c = form ? applyFields(DEFAULT_CONFIG, formFields(form), limits.maxItems, false) : DEFAULT_CONFIG;
    if (typeof c === 'string') return fail(e, 'not-acceptable', c, 'invalid-options');
    void store.putNode(owner, node, c, keep(c));
    host.reply(e, iqResult(e.stanza));
    return true;
  }

  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_PUBSUB}:pubsub`, (e) => {
    if (!host.accountExists(e.to.local)) return false;
    const owner = e.to.local;
    const op = e.stanza.firstElement()!.firstElement();
    if (op?.name === 'items') {
      const node = op.attrs.node;
      if (!node) return fail(e, 'bad-request', 'items needs a node', 'nodeid-required');
      const config = store.getNode(owner, node);
      if (!config) return fail(e, 'item-not-found', `no node ${node}`);
      const no = denied(owner, e.from.bare, config);
      if (no) return fail(e, no.condition, no.text, no.app);
      const ids = op.getChildren('item').map((i) => i.attrs.id).filter((id): id is string => !!id);
      let found: StoredItem[];
      if (ids.length > 0) found = ids.map((id) => store.item(owner, node, id)).filter((i): i is StoredItem => i !== undefined);
      else {
        const max = op.attrs.max_items === undefined ? keep(config) : Number(op.attrs.max_items);
        if (!Number.isInteger(max) || max < 0) return fail(e, 'bad-request', 'max_items must be a non-negative integer');
        found = store.latest(owner, node, Math.min(max, keep(config)));
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
      for (const { node } of store.nodes(owner)) if (!op.attrs.node || op.attrs.node === node) list.append(xml('affiliation', { node, affiliation: 'owner' }));
      host.reply(e, iqResult(e.stanza, xml('pubsub', { xmlns: NS_PUBSUB }, list)));
      return true;
    }
    return fail(e, 'feature-not-implemented', `pubsub ${op?.name ?? ''} is not supported`, 'unsupported', { feature: op?.name ?? '' });
  });

  // ---- owner use cases: configure, default, delete, purge ----
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS_OWNER}:pubsub`, (e) => owner(e));
  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS_OWNER}:pubsub`, (e) => owner(e));

  function owner(e: StanzaEvent): boolean {
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
    const config = store.getNode(user, node);
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
      void store.putNode(user, node, c, keep(c));
      host.reply(e, iqResult(e.stanza));
      return true;
    }
    if (!set) return fail(e, 'bad-request', `${op.name} is a set`);
    const to = recipients(user, node, config);
    if (op.name === 'delete') void store.deleteNode(user, node); else void store.purge(user, node);
    host.reply(e, iqResult(e.stanza));
    notify(user, to, op.name === 'delete' ? xml('delete', { node }) : xml('purge', { node }));
    return true;
  }

  // ---- disco: the account's identity, features and nodes ----
  host.accountIdentities.push({ category: 'pubsub', type: 'pep' });
  for (const f of [NS_PUBSUB, ...PEP_FEATURES]) host.accountFeatures.add(f);
  host.hooks.on<{ event: StanzaEvent; query: Element }>('disco/account-items', ({ event, query }) => {
    for (const { node, config } of store.nodes(event.to.local)) {
      if (!denied(event.to.local, event.from.bare, config)) query.append(xml('item', { jid: event.to.bare, node, name: config.title || undefined }));
    }
  });
  // disco#info on a node (Smack's getLeafNode asks it): a leaf, or item-not-found.
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.discoInfo}:query`, (e) => {
    const node = e.stanza.firstElement()!.attrs.node;
    if (!node || !host.accountExists(e.to.local)) return false;
    const config = store.getNode(e.to.local, node);
    if (!config || denied(e.to.local, e.from.bare, config)) return fail(e, 'item-not-found', `no node ${node}`);
    host.reply(e, iqResult(e.stanza, xml('query', { xmlns: NS.discoInfo, node },
      xml('identity', { category: 'pubsub', type: 'leaf' }), xml('feature', { var: NS_PUBSUB }),
      xml('x', { xmlns: NS_DATA, type: 'result' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#meta-data')),
        xml('field', { var: 'pubsub#access_model' }, xml('value', {}, config.accessModel))))));
    return true;
  });
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.discoItems}:query`, (e) => {
    const node = e.stanza.firstElement()!.attrs.node;
    if (!node || !host.accountExists(e.to.local)) return false;
    const config = store.getNode(e.to.local, node);
    if (!config || denied(e.to.local, e.from.bare, config)) return fail(e, 'item-not-found', `no node ${node}`);
    const q = xml('query', { xmlns: NS.discoItems, node });
    for (const it of store.latest(e.to.local, node, keep(config))) q.append(xml('item', { jid: e.to.bare, name: it.id }));
    host.reply(e, iqResult(e.stanza, q));
    return true;
  });

  // ---- the last item to a session that (newly) shows +notify interest ----
  caps.onFeatures((session, features) => {
    host.log.debug({ session: session.jid.full, notify: [...features].filter((f) => f.endsWith('+notify')) }, 'pep interest');
    const owners = [session.username];
    for (const it of host.storage.getRoster(session.username).items) {
      if ((it.subscription === 'to' || it.subscription === 'both') && it.contact.endsWith(`@${host.domain}`)) owners.push(it.contact.slice(0, -host.domain.length - 1));
    }
    for (const owner of owners) {
      if (!host.accountExists(owner)) continue;
      for (const { node, config } of store.nodes(owner)) {
        if (config.sendLast !== 'on_sub_and_presence' || !features.has(`${node}+notify`) || denied(owner, session.jid.bare, config)) continue;
        const last = store.latest(owner, node, 1)[0];
        if (last) notify(owner, [session], xml('items', { node }, itemElement(last)));
      }
    }
  });

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => { void store.deleteUser(username); });
}
