// The SASL exchange of one stream (RFC 6120 §6): PLAIN over TLS only, SCRAM-SHA-1/-256, with the
// per-account and per-address lockout of failed logins. The stream decides when SASL is allowed
// (after STARTTLS) and what success means (restart the stream as that user).
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
}

export class SaslNegotiation {
  private scram: ScramServer | undefined;
  private busy = false;

  constructor(private readonly host: Host, private readonly throttle: AuthThrottle, private readonly stream: AuthStream) {}

  element(el: Element): void {
    if (this.busy) return;
    const data = el.text() === '=' ? '' : Buffer.from(el.text(), 'base64').toString('utf8');
    if (el.name === 'abort') { this.scram = undefined; return this.failure('aborted'); }
    if (el.name === 'response' && this.scram) return this.step(this.scram.step(data));
    if (el.name !== 'auth') return this.failure('malformed-request', 'unexpected SASL element');

    const { address } = this.stream;
    const lockedAddr = this.throttle.lockedFor(undefined, address);
    if (lockedAddr) return this.failure('temporary-auth-failure', `too many failed logins from your address; try again in ${lockedAddr} s`);
    const mech = el.attrs.mechanism;
    if (mech === 'PLAIN') {
      if (!this.stream.secure) return this.failure('encryption-required', 'PLAIN is only offered over TLS');
      const locked = this.throttle.lockedFor(this.host.prepUsername(data.split('\0')[1] ?? ''), address);
      if (locked) return this.failure('temporary-auth-failure', `too many failed logins; try again in ${locked} s`);
      this.busy = true;
      plainAuth(data, this.context()).then(
        (step) => { this.busy = false; this.step(step); },
        () => { this.busy = false; this.failure('temporary-auth-failure'); });
      return;
    }
    if (mech !== 'SCRAM-SHA-256' && mech !== 'SCRAM-SHA-1') return this.failure('invalid-mechanism');
    this.scram = new ScramServer(mech === 'SCRAM-SHA-1' ? 'sha1' : 'sha256', this.context());
    const step = this.scram.step(data);
    if (step.kind === 'challenge') {
      const locked = this.throttle.lockedFor(this.host.prepUsername(/(?:^|,)n=([^,]*)/.exec(data)?.[1] ?? ''), address);
      if (locked) { this.scram = undefined; return this.failure('temporary-auth-failure', `too many failed logins; try again in ${locked} s`); }
    }
    this.step(step);
  }

  private context(): SaslContext {
    return { domain: this.host.domain, lookup: (u) => this.host.storage.getAccount(u), prep: (u) => this.host.prepUsername(u) };
  }

  private step(step: SaslStep): void {
    if (this.stream.closed) return;
    if (step.kind === 'challenge') { this.stream.raw(`<challenge xmlns="${NS.sasl}">${Buffer.from(step.data).toString('base64')}</challenge>`); return; }
    this.scram = undefined;
    if (step.kind === 'failure') {
      this.throttle.fail(step.username, this.stream.address);
      return this.failure(step.condition, step.condition === 'not-authorized' ? 'wrong username or password' : step.text);
    }
    this.throttle.succeed(step.username);
    this.stream.authenticated(step.username, `<success xmlns="${NS.sasl}">${step.data ? Buffer.from(step.data).toString('base64') : ''}</success>`);
  }

  private failure(condition: string, text?: string): void {
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
