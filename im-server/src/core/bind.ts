// Resource binding (RFC 6120 §7): a client-chosen or server-made resource; a conflict with a
// live session kicks the old one or refuses the new one, as configured.
import { randomBytes } from 'node:crypto';
import type { Host } from './host.js';
import { Jid, prepResource } from './jid.js';
import type { Session } from './session.js';
import { NS, errorReply, iqResult } from './stanza.js';
import { xml, type Element } from './xml.js';

/** The stream binding a resource: a session whose JID and bound state bind sets. */
export interface Binding extends Session {
  jid: Jid;
  bound: boolean;
}

export function bindResource(host: Host, stream: Binding, iq: Element, payload: Element): void {
  const requested = payload.getChildText('resource');
  const resource = requested ? prepResource(requested.trim()) : randomBytes(9).toString('base64url');
  if (!resource) return stream.send(errorReply(iq, 'bad-request', 'not a valid resource'));
  stream.jid = new Jid(stream.username, host.domain, resource);
  const r = host.router.bind(stream, host.config.resourceConflict);
  if (!r.ok) return stream.send(errorReply(iq, 'conflict', 'that resource is in use'));
  if (r.replaced) r.replaced.close('conflict', 'replaced by a new session with the same resource');
  stream.bound = true;
  host.metrics.sessions.inc();
  host.hooks.notify('session-bound', { session: stream });
  stream.send(iqResult(iq, xml('bind', { xmlns: NS.bind }, xml('jid', {}, stream.jid.full))));
}
