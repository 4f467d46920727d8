// What modules see of a client session, whatever its transport.
import type { Jid } from './jid.js';
import type { Element } from './xml.js';

/** Sees each stanza before it is written to a session; returns true when it holds it back
 * (XEP-0352 client state indication). The filter itself later re-sends what it held, after
 * making sure it passes. */
export type OutFilter = (el: Element) => boolean;

export interface Session {
  readonly id: string;
  /** The full JID, once a resource is bound. */
  readonly jid: Jid;
  readonly username: string;
  /** Sent initial presence and not yet unavailable. */
  available: boolean;
  priority: number;
  /** The last broadcast available presence. */
  presence: Element | undefined;
  /** Asked for the roster (RFC 6121 "interested resource"): gets roster pushes. */
  interested: boolean;
  /** Entities this session sent directed presence to (told when it goes offline). */
  directed: Set<string> | undefined;
  send(el: Element): void;
  /** Sends an already serialised stanza (e.g. from storage); `written` runs once the transport took it. */
  sendXml(xml: string, written?: () => void): void;
  /** XEP-0198 stream management is on: the client acknowledges what it received. */
  readonly smEnabled: boolean;
  /** With SM: asks the client for an ack and runs `fn` once its <a h/> covers every stanza sent so far.
   * Never runs if the session ends first. */
  whenAcked(fn: () => void): void;
  /** Sends after every storage write queued so far is durable (replies that acknowledge). */
  sendDurable(el: Element): void;
  close(condition?: string, text?: string): void;
  /** Set by at most one module (csi). */
  outFilter: OutFilter | undefined;
}
