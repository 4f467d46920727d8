// XEP-0054 vcard-temp: anyone may read an account's vCard, only its owner may set it.
import type { Host, StanzaEvent } from '../core/host.js';
import { parseElement } from '../core/parser.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { xml } from '../core/xml.js';

export default function vcard(host: Host): void {
  host.features.add(NS.vcard);
  host.hooks.on<StanzaEvent>(`iq-get/bare/${NS.vcard}:vCard`, (e) => {
    if (!host.accountExists(e.to.local)) return false;
    const stored = host.storage.getVcard(e.to.local);
    // The empty vCard stands for "none yet".
    const card = (stored && parseElement(stored)) || xml('vCard', { xmlns: NS.vcard });
    host.reply(e, iqResult(e.stanza, card));
    return true;
  });
  host.hooks.on<StanzaEvent>(`iq-set/bare/${NS.vcard}:vCard`, (e) => {
    if (e.from.bare !== e.to.bare) { host.reply(e, errorReply(e.stanza, 'forbidden', 'you can only set your own vCard')); return true; }
    const card = e.stanza.firstElement()!;
    card.attrs.xmlns = NS.vcard;
    void host.storage.setVcard(e.to.local, card.toString());
    host.reply(e, iqResult(e.stanza));
    return true;
  });
}

