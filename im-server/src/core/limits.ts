// Abuse limits shared by all connections: failed logins (per address, like ejabberd's
// mod_fail2ban, with a growing delay) and connections per address. Per-connection stanza rates
// live in the stream itself.
//
// Failed logins are held against the ADDRESS they came from, never against the account alone:
// nobody can lock a named user out by guessing wrong on purpose. Per address:
//   - after its n-th failure, that address's next attempt is evaluated only after delayMs(n):
//     0, 0, 1, 2, 4, 8 s ... capped at maxDelayMs (attempts from an address that failed are also
//     taken one at a time, so parallel connections do not multiply its guesses);
//   - after `perAddress` failures, each within `lockoutMs` of the previous one, the address is
//     banned for `lockoutMs`: its attempts get temporary-auth-failure without being evaluated.
// Per account: after `perAccount` failures against one account (from any addresses, each within
// `lockoutMs` of the previous), attempts on it from addresses that have not logged in to it
// before wait `accountDelayMs` (a small fixed delay that slows a distributed guess and never
// refuses anyone). Success never resets an address's failures (an attacker with an account of
// its own could otherwise interleave good logins). Memory: every map is swept and capped.

interface AddressState {
  failures: number;
  lastFailure: number;
  /** Attempts from this address are evaluated no earlier than this. */
  nextAt: number;
  bannedUntil: number;
  /** Evaluations in progress (PLAIN verification is asynchronous). */
  inflight: number;
  waiters: Array<() => void>;
}

interface AccountState { failures: number; lastFailure: number }

export interface AuthThrottleOptions {
  /** Cap of the growing delay (default 15 s, below the default login timeout of 30 s). */
  maxDelayMs?: number;
  /** Delay for attempts on an account under a distributed guess from addresses new to it (default 1 s). */
  accountDelayMs?: number;
  /** How long a successful (account, address) pair is remembered (default 30 days). */
  knownMs?: number;
  /** Most entries per map (addresses, accounts, known pairs); the oldest go first (default 100 000). */
  maxEntries?: number;
  now?: () => number;
  /** How a delay is waited (tests record them instead of waiting). */
  sleep?: (ms: number) => Promise<void>;
}

/** What a gate says: evaluate now (then call done() exactly once), or refuse (banned). */
export type Gate =
  | { ok: true; done(outcome: 'success' | 'failure' | 'none'): { banned: number } | undefined }
  | { ok: false; bannedFor: number };

/**
 * What failures are counted against: the IPv4 address (IPv4-mapped IPv6 included), or the /64
 * prefix of an IPv6 address (one home or subnet holds a whole /64, so single addresses would be
 * free to change at every attempt).
 */
export function throttleKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const halves = address.split('%')[0]!.toLowerCase().split('::');
  if (halves.length > 2) return address;
  const groups = (h: string | undefined): string[] => (h ? h.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const all = halves.length === 2 ? [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail] : head;
  const prefix = all.slice(0, 4).map((g) => parseInt(g, 16));
  if (all.length !== 8 || prefix.some((n) => !Number.isInteger(n) || n < 0 || n > 0xffff)) return address;
  return `${prefix.map((n) => n.toString(16)).join(':')}::/64`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class AuthThrottle {
  private readonly addresses = new Map<string, AddressState>();
  private readonly accounts = new Map<string, AccountState>();
  /** "username\0address" -> expiry: addresses that logged in to an account before. */
  private readonly known = new Map<string, number>();
  private readonly maxDelayMs: number;
  private readonly accountDelayMs: number;
  private readonly knownMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private lastSweep = 0;

  /**
   * @param perAccount failures against one account after which addresses new to it are slowed
   * @param perAddress failures from one address after which it is banned
   * @param lockoutMs the ban's length, and how long a failure is remembered after the next one
   */
  constructor(private readonly perAccount: number, private readonly perAddress: number, private readonly lockoutMs: number, o: AuthThrottleOptions = {}) {
    this.maxDelayMs = o.maxDelayMs ?? 15_000;
    this.accountDelayMs = o.accountDelayMs ?? 1000;
    this.knownMs = o.knownMs ?? 30 * 86_400_000;
    this.maxEntries = o.maxEntries ?? 100_000;
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? sleep;
  }

  /** The delay before the next attempt from an address with n failures: 0, 0, 1, 2, 4 ... s, capped. */
  delayMs(failures: number): number {
    return failures < 2 ? 0 : Math.min(this.maxDelayMs, 1000 * 2 ** (failures - 2));
  }

  /** Seconds the address stays banned; 0 when it is not. */
  bannedFor(address: string): number {
    return this.banned(throttleKey(address));
  }

  private banned(key: string): number {
    const a = this.addresses.get(key);
    const now = this.now();
    return a && a.bannedUntil > now ? Math.ceil((a.bannedUntil - now) / 1000) : 0;
  }

  /**
   * Waits until an attempt from `address` on `username` may be evaluated (timers: the event loop
   * is never blocked). `cancelled` is asked after every wait: a client that left is not evaluated.
   * Resolves undefined when cancelled.
   */
  async gate(from: string, username: string | undefined, cancelled: () => boolean): Promise<Gate | undefined> {
    const address = throttleKey(from);
    if (username && this.accountDelayMs > 0 && this.slowedAccount(username, address)) {
      await this.sleep(this.accountDelayMs);
      if (cancelled()) return undefined;
    }
    for (;;) {
      const banned = this.banned(address);
      if (banned) return { ok: false, bannedFor: banned };
      const a = this.addresses.get(address);
      const now = this.now();
      if (!a) return this.enter(this.address(address), address, username);
      this.expire(a, now);
      // An address that failed is taken one attempt at a time; none may have more attempts in
      // progress than it has failures left before the ban.
      if (a.inflight > 0 && (a.failures > 0 || a.failures + a.inflight >= this.perAddress)) {
        await this.turn(a);
      } else if (a.nextAt > now) {
        await this.sleep(a.nextAt - now);
      } else {
        return this.enter(a, address, username);
      }
      if (cancelled()) return undefined;
    }
  }

  /** Resolves when an attempt in progress ends (a 1 s timer is only a safety net). */
  private turn(a: AddressState): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => { clearTimeout(timer); resolve(); };
      const timer = setTimeout(() => {
        const i = a.waiters.indexOf(wake);
        if (i >= 0) a.waiters.splice(i, 1);
        resolve();
      }, 1000);
      a.waiters.push(wake);
    });
  }

  private enter(a: AddressState, address: string, username: string | undefined): Gate {
    a.inflight++;
    let done = false;
    return {
      ok: true,
      done: (outcome) => {
        if (done) return undefined;
        done = true;
        a.inflight--;
        let result: { banned: number } | undefined;
        if (outcome === 'failure') result = this.failKey(username, address);
        else if (outcome === 'success' && username) this.succeedKey(username, address);
        const w = a.waiters.splice(0);
        for (const wake of w) wake();
        return result;
      },
    };
  }

  /** Records a failed login; returns the ban's length in seconds when this failure started one. */
  fail(username: string | undefined, from: string): { banned: number } | undefined {
    return this.failKey(username, throttleKey(from));
  }

  private failKey(username: string | undefined, address: string): { banned: number } | undefined {
    const now = this.now();
    if (username) {
      let acc = this.accounts.get(username);
      if (!acc || now - acc.lastFailure > this.lockoutMs) {
        acc = { failures: 0, lastFailure: now };
        this.insert(this.accounts, username, acc);
      }
      acc.failures++;
      acc.lastFailure = now;
    }
    const a = this.address(address);
    this.expire(a, now);
    a.failures++;
    a.lastFailure = now;
    a.nextAt = Math.max(a.nextAt, now + this.delayMs(a.failures));
    if (a.failures >= this.perAddress) {
      a.bannedUntil = now + this.lockoutMs;
      a.failures = 0;
      a.nextAt = 0;
      for (const wake of a.waiters.splice(0)) wake();
      return { banned: Math.ceil(this.lockoutMs / 1000) };
    }
    return undefined;
  }

  /** Records a successful login: the address is then known for that account. */
  succeed(username: string, from: string): void {
    this.succeedKey(username, throttleKey(from));
  }

  private succeedKey(username: string, address: string): void {
    this.insert(this.known, `${username}\0${address}`, this.now() + this.knownMs);
  }

  /** Under a distributed guess (many failures on the account) and not a known address of it. */
  private slowedAccount(username: string, address: string): boolean {
    const acc = this.accounts.get(username);
    if (!acc || acc.failures < this.perAccount || this.now() - acc.lastFailure > this.lockoutMs) return false;
    return (this.known.get(`${username}\0${address}`) ?? 0) <= this.now();
  }

  /** Failures are forgotten once lockoutMs passed since the last one (and a ban ended). */
  private expire(a: AddressState, now: number): void {
    if (a.bannedUntil && a.bannedUntil <= now) { a.bannedUntil = 0; a.failures = 0; }
    if (a.failures && now - a.lastFailure > this.lockoutMs) a.failures = 0;
  }

  private address(address: string): AddressState {
    let a = this.addresses.get(address);
    if (!a) {
      a = { failures: 0, lastFailure: 0, nextAt: 0, bannedUntil: 0, inflight: 0, waiters: [] };
      this.insert(this.addresses, address, a);
    }
    return a;
  }

  private insert<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key); // re-inserted: the Map's order is then the order of last change
    if (map.size >= this.maxEntries) this.sweep(this.now());
    // Still full: the oldest go. An evicted address still in use keeps working through the
    // gate that holds it; it is only forgotten.
    while (map.size >= this.maxEntries) map.delete(map.keys().next().value as string);
    map.set(key, value);
  }

  /** Forgets what no longer matters; cheap to call often (runs at most every 10 s). */
  sweep(now = this.now()): void {
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [k, a] of this.addresses) {
      this.expire(a, now);
      if (!a.failures && !a.bannedUntil && !a.inflight && !a.waiters.length && a.nextAt <= now) this.addresses.delete(k);
    }
    for (const [k, acc] of this.accounts) if (now - acc.lastFailure > this.lockoutMs) this.accounts.delete(k);
    for (const [k, until] of this.known) if (until <= now) this.known.delete(k);
  }

  /** Entries held (tests and metrics). */
  get size(): { addresses: number; accounts: number; known: number } {
    return { addresses: this.addresses.size, accounts: this.accounts.size, known: this.known.size };
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
