// The SASL exchange of one stream (RFC 6120 §6): PLAIN over TLS only, SCRAM-SHA-1/-256, paced by
// the AuthThrottle (limits.ts): a growing delay for an address after each of its failures, a
// temporary ban of an address after too many, a small delay for addresses new to an account
// under a distributed guess. An account is never locked against its right password. The stream
// decides when SASL is allowed (after STARTTLS) and what success means (restart as that user).
import type { Host } from './host.js';
import type { AuthThrottle } from './limits.js';
import { ScramServer, plainAuth, type SaslContext, type SaslStep } from './sasl.js';
import { NS } from './stanza.js';
import { escapeText, type Element } from './xml.js';

export interface AuthStream {
  readonly closed: boolean;
  readonly secure: boolean;
  readonly address: string;
  raw(s: string): void;
  /** Called once the <success/> is due: the stream sends it and restarts. */
  authenticated(username: string, success: string): void;
  /** While a check is under way, what the client sends waits unparsed: after <success/> it is
   * the restarted stream's (a client that sends its new header early must not break), else ours. */
  hold(): void;
  release(): void;
}

/** A failure that was a guess (wrong password or unknown user), counted against the address. */
const isGuess = (s: SaslStep): boolean => s.kind === 'failure' && s.condition === 'not-authorized';

/** "9 min 58 s", "42 s", "1 h 5 min". */
export function humanSeconds(total: number): string {
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  if (m) return s ? `${m} min ${s} s` : `${m} min`;
  return `${s} s`;
}

/** The text of the failure a banned address gets: why, and when it may try again. */
export function bannedText(seconds: number, now = Date.now()): string {
  const at = new Date(now + seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  return `too many failed logins from your address: logins from it are refused for ${humanSeconds(seconds)}; try again after ${at}`;
}

export class SaslNegotiation {
  private scram: ScramServer | undefined;
  /** An attempt is waiting for its turn or being checked: further SASL elements are ignored. */
  private busy = false;

  constructor(private readonly host: Host, private readonly throttle: AuthThrottle, private readonly stream: AuthStream) {}

  element(el: Element): void {
    if (this.busy) return;
    const data = el.text() === '=' ? '' : Buffer.from(el.text(), 'base64').toString('utf8');
    if (el.name === 'abort') { this.scram = undefined; return this.failure('aborted'); }
    if (el.name === 'response' && this.scram) {
      const scram = this.scram;
      return this.evaluate(scram.user, () => scram.step(data));
    }
    if (el.name !== 'auth') return this.failure('malformed-request', 'unexpected SASL element');

    const banned = this.throttle.bannedFor(this.stream.address);
    if (banned) return this.failure('temporary-auth-failure', bannedText(banned));
    const mech = el.attrs.mechanism;
    if (mech === 'PLAIN') {
      if (!this.stream.secure) return this.failure('encryption-required', 'PLAIN is only offered over TLS');
      const ctx = this.context();
      return this.evaluate(this.host.prepUsername(data.split('\0')[1] ?? ''), () => plainAuth(data, ctx));
    }
    if (mech !== 'SCRAM-SHA-256' && mech !== 'SCRAM-SHA-1') return this.failure('invalid-mechanism');
    // The client-first message only names the user: the password is checked (and the attempt
    // paced) when the proof comes in the <response/>.
    const scram = new ScramServer(mech === 'SCRAM-SHA-1' ? 'sha1' : 'sha256', this.context());
    this.scram = scram;
    // The account's salt is read from the database: hold the input meanwhile, as for a check.
    this.busy = true;
    this.stream.hold();
    const address = this.stream.address;
    Promise.resolve(scram.step(data)).then((step) => {
      if (step.kind === 'failure' && isGuess(step)) this.recordFailure(this.throttle.fail(step.username, address));
      this.step(step);
    }).catch((err: unknown) => {
      this.scram = undefined;
      this.host.log.error({ err: (err as Error)?.stack ?? String(err), address }, 'error while starting a login');
      this.failure('temporary-auth-failure');
    }).finally(() => { this.busy = false; this.stream.release(); });
  }

  /** Waits for the throttle's turn, runs the check, and tells the throttle how it went. */
  private evaluate(username: string | undefined, check: () => SaslStep | Promise<SaslStep>): void {
    this.busy = true;
    const { address } = this.stream;
    const run = async (): Promise<void> => {
      const gate = await this.throttle.gate(address, username, () => this.stream.closed);
      if (!gate) return; // the client left while waiting
      if (!gate.ok) { this.scram = undefined; return this.failure('temporary-auth-failure', bannedText(gate.bannedFor)); }
      let step: SaslStep | undefined;
      try {
        step = await check();
      } finally {
        const outcome = !step ? 'none' : step.kind === 'success' ? 'success' : isGuess(step) ? 'failure' : 'none';
        this.recordFailure(gate.done(outcome), address);
      }
      this.step(step);
    };
    this.stream.hold();
    run().then(
      () => { this.busy = false; this.stream.release(); },
      (err: unknown) => {
        this.busy = false;
        this.stream.release();
        this.scram = undefined;
        this.host.log.error({ err: (err as Error)?.stack ?? String(err), address }, 'error while checking a login');
        if (!this.stream.closed) this.failure('temporary-auth-failure');
      });
  }

  private recordFailure(ban: { banned: number } | undefined, address = this.stream.address): void {
    if (ban) this.host.log.warn({ address, seconds: ban.banned }, 'address banned after repeated failed logins');
  }

  private context(): SaslContext {
    return { domain: this.host.domain, lookup: (u) => this.host.accounts.get(u), prep: (u) => this.host.prepUsername(u) };
  }

  private step(step: SaslStep): void {
    if (this.stream.closed) return;
    if (step.kind === 'challenge') { this.stream.raw(`<challenge xmlns="${NS.sasl}">${Buffer.from(step.data).toString('base64')}</challenge>`); return; }
    this.scram = undefined;
    if (step.kind === 'failure') return this.failure(step.condition, step.condition === 'not-authorized' ? 'wrong username or password' : step.text);
    this.stream.authenticated(step.username, `<success xmlns="${NS.sasl}">${step.data ? Buffer.from(step.data).toString('base64') : ''}</success>`);
  }

  private failure(condition: string, text?: string): void {
    if (this.stream.closed) return;
    if (condition !== 'aborted') this.host.metrics.authFailures.inc();
    const t = text ? `<text xml:lang="en">${escapeText(text)}</text>` : '';
    this.stream.raw(`<failure xmlns="${NS.sasl}"><${condition}/>${t}</failure>`);
  }
}

/** The <mechanisms/> stream feature: PLAIN only where the password cannot be read on the way. */
export function mechanisms(secure: boolean): string {
  const mechs = ['SCRAM-SHA-256', 'SCRAM-SHA-1'];
  if (secure) mechs.push('PLAIN');
  return `<mechanisms xmlns="${NS.sasl}">${mechs.map((m) => `<mechanism>${m}</mechanism>`).join('')}</mechanisms>`;
}
