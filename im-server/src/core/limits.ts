// Abuse limits shared by all connections: failed logins per account and per address,
// connections per address. Per-connection stanza rates live in the stream itself.

interface Failures { count: number; first: number; lockedUntil: number }

/** Counts failed logins; once a key has `max` failures it is locked for `lockoutMs`. */
export class AuthThrottle {
  private readonly accounts = new Map<string, Failures>();
  private readonly addresses = new Map<string, Failures>();

  constructor(private readonly perAccount: number, private readonly perAddress: number, private readonly lockoutMs: number) {}

  /** Seconds until the account or address may try again; 0 when allowed. */
  lockedFor(username: string | undefined, address: string, now = Date.now()): number {
    const a = username ? this.accounts.get(username) : undefined;
    const b = this.addresses.get(address);
    const until = Math.max(a?.lockedUntil ?? 0, b?.lockedUntil ?? 0);
    return until > now ? Math.ceil((until - now) / 1000) : 0;
  }

  fail(username: string | undefined, address: string, now = Date.now()): void {
    if (username) this.bump(this.accounts, username, this.perAccount, now);
    this.bump(this.addresses, address, this.perAddress, now);
  }

  succeed(username: string): void {
    this.accounts.delete(username);
  }

  private bump(map: Map<string, Failures>, key: string, max: number, now: number): void {
    let f = map.get(key);
    if (!f || now - f.first > this.lockoutMs) { f = { count: 0, first: now, lockedUntil: 0 }; map.set(key, f); }
    f.count++;
    if (f.count >= max) { f.lockedUntil = now + this.lockoutMs; f.count = 0; f.first = now; }
  }

  /** Forgets stale entries so memory stays bounded. */
  sweep(now = Date.now()): void {
    for (const map of [this.accounts, this.addresses]) {
      for (const [k, f] of map) if (f.lockedUntil < now && now - f.first > this.lockoutMs) map.delete(k);
    }
  }
}

export class ConnectionCounter {
  private readonly counts = new Map<string, number>();
  constructor(private readonly max: number, private readonly exempt: Set<string>) {}

  /** False when the address already holds the maximum. */
  acquire(address: string): boolean {
    if (this.exempt.has(address)) return true;
    const n = this.counts.get(address) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(address, n + 1);
    return true;
  }

  release(address: string): void {
    if (this.exempt.has(address)) return;
    const n = (this.counts.get(address) ?? 1) - 1;
    if (n <= 0) this.counts.delete(address); else this.counts.set(address, n);
  }
}
