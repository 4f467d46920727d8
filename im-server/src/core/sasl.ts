// SASL server side: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802/7677) against stored salted keys,
// and PLAIN (offered only on encrypted streams). Passwords are never stored.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Account, ScramCredentials } from '../storage/types.js';

const pbkdf2Async = promisify(pbkdf2);
type Hash = 'sha1' | 'sha256';
const KEYLEN: Record<Hash, number> = { sha1: 20, sha256: 32 };

export async function scramCredentials(password: string, hash: Hash, iterations: number, salt: Buffer = randomBytes(16)): Promise<ScramCredentials> {
  const salted = await pbkdf2Async(password.normalize('NFKC'), salt, iterations, KEYLEN[hash], hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  return {
    salt, iterations,
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update('Server Key').digest(),
  };
}

export async function makeAccount(username: string, password: string, iterations: number): Promise<Account> {
  return { username, sha1: await scramCredentials(password, 'sha1', iterations), sha256: await scramCredentials(password, 'sha256', iterations) };
}

/** Checks a plaintext password (PLAIN) against the stored SCRAM-SHA-256 keys. */
export async function verifyPassword(account: Account, password: string): Promise<boolean> {
  const c = account.sha256;
  const again = await scramCredentials(password, 'sha256', c.iterations, c.salt);
  return timingSafeEqual(again.storedKey, c.storedKey);
}

export type SaslStep =
  | { kind: 'challenge'; data: string }
  | { kind: 'success'; username: string; data?: string }
  | { kind: 'failure'; condition: 'not-authorized' | 'malformed-request' | 'invalid-authzid' | 'encryption-required'; text?: string; username?: string };

export interface SaslContext {
  domain: string;
  lookup(username: string): Promise<Account | undefined>;
  prep(username: string): string | undefined;
}

function parseAttrs(s: string): Map<string, string> | undefined {
  const m = new Map<string, string>();
  for (const part of s.split(',')) {
    if (part.length < 2 || part[1] !== '=') return undefined;
    m.set(part[0]!, part.slice(2));
  }
  return m;
}

const unescapeName = (s: string): string => s.replace(/=2C/g, ',').replace(/=3D/g, '=');

/** One SCRAM exchange; fed the client's messages in order. */
export class ScramServer {
  private state: 'first' | 'final' | 'done' = 'first';
  private username = '';
  private creds: ScramCredentials | undefined;
  private authMessagePrefix = '';
  private nonce = '';
  private gs2 = '';

  constructor(private readonly hash: Hash, private readonly ctx: SaslContext) {}

  /** The (prepared) username of the client-first message, once it was read. */
  get user(): string | undefined {
    return this.username || undefined;
  }

  step(message: string): SaslStep | Promise<SaslStep> {
    if (this.state === 'first') return this.first(message);
    if (this.state === 'final') return this.final(message);
    return { kind: 'failure', condition: 'malformed-request' };
  }

  private async first(msg: string): Promise<SaslStep> {
    // gs2-header: "n,," or "y,," (no channel binding offered); "p=" means the client wants binding we do not offer.
    const m = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(msg);
    if (!m) return { kind: 'failure', condition: 'malformed-request', text: 'bad gs2 header (channel binding is not supported)' };
    const authzid = m[2] ? unescapeName(m[2].slice(2)) : '';
    const bare = m[3]!;
    const attrs = parseAttrs(bare);
    const n = attrs?.get('n');
    const r = attrs?.get('r');
    if (!attrs || n === undefined || !r || attrs.has('m')) return { kind: 'failure', condition: 'malformed-request' };
    const username = this.ctx.prep(unescapeName(n));
    if (!username) return { kind: 'failure', condition: 'not-authorized' };
    if (authzid && authzid !== `${username}@${this.ctx.domain}`) return { kind: 'failure', condition: 'invalid-authzid' };
    this.username = username;
    this.gs2 = msg.slice(0, msg.length - bare.length);
    const account = await this.ctx.lookup(username);
    // Unknown users get a made-up but stable salt, so the exchange does not reveal who exists.
    this.creds = account?.[this.hash];
    const salt = this.creds?.salt ?? createHmac('sha256', 'pi-im-fake-salt').update(username).digest().subarray(0, 16);
    const iterations = this.creds?.iterations ?? 4096;
    this.nonce = r + randomBytes(18).toString('base64');
    const serverFirst = `r=${this.nonce},s=${salt.toString('base64')},i=${iterations}`;
    this.authMessagePrefix = `${bare},${serverFirst}`;
    this.state = 'final';
    return { kind: 'challenge', data: serverFirst };
  }

  private final(msg: string): SaslStep {
    this.state = 'done';
    const pIdx = msg.lastIndexOf(',p=');
    if (pIdx < 0) return { kind: 'failure', condition: 'malformed-request' };
    const withoutProof = msg.slice(0, pIdx);
    const attrs = parseAttrs(withoutProof);
    if (!attrs || attrs.get('r') !== this.nonce || attrs.get('c') !== Buffer.from(this.gs2).toString('base64')) {
      return { kind: 'failure', condition: 'malformed-request', username: this.username };
    }
    const proof = Buffer.from(msg.slice(pIdx + 3), 'base64');
    const creds = this.creds;
    if (!creds || proof.length !== creds.storedKey.length) return { kind: 'failure', condition: 'not-authorized', username: this.username };
    const authMessage = `${this.authMessagePrefix},${withoutProof}`;
    const clientSignature = createHmac(this.hash, creds.storedKey).update(authMessage).digest();
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    const stored = createHash(this.hash).update(clientKey).digest();
    if (!timingSafeEqual(stored, creds.storedKey)) return { kind: 'failure', condition: 'not-authorized', username: this.username };
    const serverSignature = createHmac(this.hash, creds.serverKey).update(authMessage).digest('base64');
    return { kind: 'success', username: this.username, data: `v=${serverSignature}` };
  }
}

/** PLAIN: authzid NUL authcid NUL password. Resolves asynchronously (PBKDF2 off the main thread). */
export async function plainAuth(message: string, ctx: SaslContext): Promise<SaslStep> {
  const parts = message.split('\0');
  if (parts.length !== 3) return { kind: 'failure', condition: 'malformed-request' };
  const [authzid, authcid, password] = parts as [string, string, string];
  const username = ctx.prep(authcid);
  if (!username) return { kind: 'failure', condition: 'not-authorized' };
  if (authzid && authzid !== `${username}@${ctx.domain}`) return { kind: 'failure', condition: 'invalid-authzid' };
  const account = await ctx.lookup(username);
  if (!account || !(await verifyPassword(account, password))) return { kind: 'failure', condition: 'not-authorized', username };
  return { kind: 'success', username };
}
