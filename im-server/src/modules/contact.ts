// XEP-0157 contact addresses: the configured abuse/admin/... URIs as the serverinfo data form
// (XEP-0128) in the server's disco#info, so clients and other operators know whom to reach.
// Nothing is added when no address is configured.
import { CONTACT_KINDS } from '../config.js';
import type { Host } from '../core/host.js';
import { xml } from '../core/xml.js';

export const NS_SERVERINFO = 'http://jabber.org/network/serverinfo';

export default function contact(host: Host): void {
  const addresses = host.config.contact;
  const kinds = CONTACT_KINDS.filter((k) => addresses[k].length > 0);
  if (kinds.length === 0) return;
  host.discoExtensions.push(xml('x', { xmlns: 'jabber:x:data', type: 'result' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS_SERVERINFO)),
    ...kinds.map((k) => xml('field', { var: `${k}-addresses`, type: 'list-multi' }, ...addresses[k].map((uri) => xml('value', {}, uri))))));
}
