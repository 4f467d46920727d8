// XEP-0030 service discovery: the server's identity and exactly the features its loaded
// modules registered, and the components (MUC, upload...) as items; an account's identity for
// itself and its subscribers, with what modules serving the bare JID add ('disco/account-info',
// 'disco/account-items' events: { event, query } to append to).
import type { Host, StanzaEvent } from '../core/host.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { xml } from '../core/xml.js';
import { rosterStore } from './roster-store.js';

export default function disco(host: Host): void {
  host.features.add(NS.discoInfo);
  host.features.add(NS.discoItems);

  host.hooks.on<StanzaEvent>(`iq-get/host/${NS.discoInfo}:query`, (e) => {
    if (e.stanza.firstElement()!.attrs.node) { host.reply(e, errorReply(e.stanza, 'item-not-found')); return true; }
    const q = xml('query', { xmlns: NS.discoInfo }, xml('identity', { category: 'server', type: 'im', name: 'pi-im' }));
    for (const f of [...host.features].sort()) q.append(xml('feature', { var: f }));
    for (const x of host.discoExtensions) q.append(x.clone());
    host.reply(e, iqResult(e.stanza, q));
    return true;
  });
  host.hooks.on<StanzaEvent>(`iq-get/host/${NS.discoItems}:query`, (e) => {
    if (e.stanza.firstElement()!.attrs.node) { host.reply(e, errorReply(e.stanza, 'item-not-found')); return true; }
    const q = xml('query', { xmlns: NS.discoItems });
    for (const [jid, c] of [...host.components].sort(([a], [b]) => a.localeCompare(b))) q.append(xml('item', { jid, name: c.name }));
    host.reply(e, iqResult(e.stanza, q));
    return true;
  });

  /** The account itself, or a contact subscribed to its presence (reads the roster only then). */
  const mayKnow = async (e: StanzaEvent): Promise<boolean> => {
    if (e.from.bare === e.to.bare) return true;
    const it = await rosterStore(host).getItem(e.to.local, e.from.bare);
    return it !== undefined && (it.subscription === 'from' || it.subscription === 'both');
  };
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.discoInfo}:query`, async (e) => {
    // A node's info: its module's (PEP).
    if (e.stanza.firstElement()!.attrs.node || !host.accountExists(e.to.local) || !(await mayKnow(e))) return false;
    const owner = e.from.bare === e.to.bare;
    const features = new Set([NS.discoInfo, NS.discoItems, ...host.accountFeatures, ...(owner ? host.ownerFeatures : [])]);
    host.reply(e, iqResult(e.stanza, xml('query', { xmlns: NS.discoInfo },
      ...host.accountIdentities.map((i) => xml('identity', i)),
      ...[...features].sort().map((f) => xml('feature', { var: f })))));
    return true;
  });
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.discoItems}:query`, async (e) => {
    // A node's items: its module's (PEP).
    if (e.stanza.firstElement()!.attrs.node || !host.accountExists(e.to.local) || !(await mayKnow(e))) return false;
    const query = xml('query', { xmlns: NS.discoItems });
    // e.g. the PEP nodes this requester may see
    await host.hooks.fire('disco/account-items', { event: e, query });
    host.reply(e, iqResult(e.stanza, query));
    return true;
  });
}
