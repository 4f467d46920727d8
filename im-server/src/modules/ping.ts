// XEP-0199: the server answers pings to itself and to accounts; it pings idle clients itself
// (core/c2s.ts, limits.idleSeconds) and drops those that do not answer.
import type { Host, StanzaEvent } from '../core/host.js';
import { NS, iqResult } from '../core/stanza.js';

export default function ping(host: Host): void {
  host.features.add(NS.ping);
  host.hooks.on<StanzaEvent>(`iq-get/host/${NS.ping}:ping`, (e) => { host.reply(e, iqResult(e.stanza)); return true; });
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.ping}:ping`, (e) => {
    if (!host.accountExists(e.to.local)) return false;
    host.reply(e, iqResult(e.stanza));
    return true;
  });
}
