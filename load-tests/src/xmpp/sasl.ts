import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

export type Mechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-1' | 'PLAIN';
export const MECHANISMS_BY_PREFERENCE: Mechanism[] = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'];

/** A SASL exchange driven by the client: `start` gives the initial response, `step` answers challenges. */
export interface SaslSession {
  mechanism: Mechanism;
  start(): Promise<string>;
  step(challenge: string): Promise<string>;
  /** Checks the server's final message (SCRAM's server signature); throws if it does not verify. */
  finish(additional: string): void;
}

/**
 * PBKDF2 dominates client CPU at login; every VU logs in at least once. Salted passwords are cached
 * per (password, salt, iterations) so repeated logins (reconnect scenarios, cleanup) cost nothing.
 */
const saltedCache = new Map<string, Buffer>();

function salted(hash: 'sha1' | 'sha256', password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  const key = `${hash}\0${iterations}\0${salt.toString('base64')}\0${password}`;
  const hit = saltedCache.get(key);
  if (hit) return Promise.resolve(hit);
  const len = hash === 'sha1' ? 20 : 32;
  return new Promise((resolve, reject) =>
    pbkdf2(password, salt, iterations, len, hash, (err, out) => {
      if (err) return reject(err);
      if (saltedCache.size > 50_000) saltedCache.clear();
      saltedCache.set(key, out);
      resolve(out);
    }),
  );
}

const b64 = (s: string | Buffer) => Buffer.from(s as string).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
const saslname = (s: string) => s.replace(/=/g, '=3D').replace(/,/g, '=2C');

function parseAttrs(msg: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of msg.split(',')) {
    const i = part.indexOf('=');
    if (i > 0) m.set(part.slice(0, i), part.slice(i + 1));
  }
  return m;
}

/** `cnonce` is for test vectors only; by default 18 random bytes. */
export function createSasl(mechanism: Mechanism, username: string, password: string, cnonce = randomBytes(18).toString('base64')): SaslSession {
  if (mechanism === 'PLAIN') {
    return {
      mechanism,
      start: async () => b64(`\0${username}\0${password}`),
      step: async () => {
        throw new Error('PLAIN got an unexpected challenge');
      },
      finish: () => {},
    };
  }
  const hash = mechanism === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
  const clientFirstBare = `n=${saslname(username)},r=${cnonce}`;
  let serverSignature: Buffer | undefined;
  const H = (b: Buffer) => createHash(hash).update(b).digest();
  const HMAC = (k: Buffer, s: string) => createHmac(hash, k).update(s).digest();
  return {
    mechanism,
    start: async () => b64(`n,,${clientFirstBare}`),
    async step(challenge) {
      const serverFirst = unb64(challenge);
      const a = parseAttrs(serverFirst);
      const nonce = a.get('r');
      const salt = a.get('s');
      const iterations = Number(a.get('i'));
      if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) throw new Error(`bad SCRAM server-first-message: ${serverFirst}`);
      if (!nonce.startsWith(cnonce)) throw new Error('SCRAM server nonce does not extend the client nonce');
      const sp = await salted(hash, password, Buffer.from(salt, 'base64'), iterations);
      const clientKey = HMAC(sp, 'Client Key');
      const withoutProof = `c=biws,r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const signature = HMAC(H(clientKey), authMessage);
      const proof = Buffer.alloc(clientKey.length);
      for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
      serverSignature = HMAC(HMAC(sp, 'Server Key'), authMessage);
      return b64(`${withoutProof},p=${proof.toString('base64')}`);
    },
    finish(additional) {
      if (!serverSignature) throw new Error('SCRAM finished before the challenge');
      const v = parseAttrs(unb64(additional)).get('v');
      const got = Buffer.from(v ?? '', 'base64');
      if (got.length !== serverSignature.length || !timingSafeEqual(got, serverSignature)) {
        throw new Error('SCRAM server signature does not verify: the server does not know the password');
      }
    },
  };
}

export function chooseMechanism(offered: string[], wanted: Mechanism | 'auto'): Mechanism {
  if (wanted !== 'auto') {
    if (!offered.includes(wanted)) throw new Error(`server does not offer SASL ${wanted} (offers: ${offered.join(', ') || 'none'})`);
    return wanted;
  }
  const m = MECHANISMS_BY_PREFERENCE.find((x) => offered.includes(x));
  if (!m) throw new Error(`no supported SASL mechanism offered (offers: ${offered.join(', ') || 'none'})`);
  return m;
}
