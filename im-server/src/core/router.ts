// Session lookup and binding: the seam a multi-node setup puts Redis behind. Modules only use
// this interface; LocalRouter keeps the sessions of this process.
import type { Session } from './session.js';

export interface SessionRouter {
  /** Binds a full JID. With kick-old the previous holder is returned for the caller to close. */
  bind(session: Session, policy: 'kick-old' | 'reject-new'): { ok: true; replaced?: Session } | { ok: false };
  unbind(session: Session): void;
  get(fullJid: string): Session | undefined;
  sessionsOf(bareJid: string): readonly Session[];
  count(): number;
}

const NONE: readonly Session[] = [];

export class LocalRouter implements SessionRouter {
  private readonly full = new Map<string, Session>();
  private readonly bare = new Map<string, Session[]>();

  bind(session: Session, policy: 'kick-old' | 'reject-new'): { ok: true; replaced?: Session } | { ok: false } {
    const existing = this.full.get(session.jid.full);
    if (existing && policy === 'reject-new') return { ok: false };
    if (existing) this.unbind(existing);
    this.full.set(session.jid.full, session);
    const list = this.bare.get(session.jid.bare);
    if (list) list.push(session); else this.bare.set(session.jid.bare, [session]);
    return existing ? { ok: true, replaced: existing } : { ok: true };
  }

  unbind(session: Session): void {
    if (this.full.get(session.jid.full) !== session) return;
    this.full.delete(session.jid.full);
    const list = this.bare.get(session.jid.bare);
    if (!list) return;
    const i = list.indexOf(session);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.bare.delete(session.jid.bare);
  }

  get(fullJid: string): Session | undefined {
    return this.full.get(fullJid);
  }

  sessionsOf(bareJid: string): readonly Session[] {
    return this.bare.get(bareJid) ?? NONE;
  }

  count(): number {
    return this.full.size;
  }
}
