import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * A self-signed RSA-2048 certificate for `domain` made with openssl. Both servers in the bench get
 * the same kind of key, so TLS handshake cost is not what differs between them.
 */
export function makeCert(dir: string, domain: string): { cert: string; key: string } {
  const cert = join(dir, `${domain}.crt`);
  const key = join(dir, `${domain}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', key, '-out', cert, '-subj', `/CN=${domain}`,
    '-addext', `subjectAltName=DNS:${domain}`,
  ], { stdio: 'pipe' });
  return { cert, key };
}
