// TLS material: the configured PEM files, or a self-signed certificate for the domain made
// on first start and kept in the data directory.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import selfsigned from 'selfsigned';

export interface TlsFiles { cert: string; key: string; generated: boolean }

export function ensureCertificate(dataDir: string, domain: string, cert?: string, key?: string): TlsFiles {
  if (cert || key) {
    if (!cert || !key) throw new Error('tls.cert and tls.key go together: set both (--tls-cert and --tls-key) or neither');
    for (const f of [cert, key]) if (!existsSync(f)) throw new Error(`TLS file ${f} does not exist: fix --tls-cert/--tls-key`);
    return { cert, key, generated: false };
  }
  const dir = join(dataDir, 'tls');
  const files = { cert: join(dir, `${domain}.crt`), key: join(dir, `${domain}.key`) };
  if (existsSync(files.cert) && existsSync(files.key)) return { ...files, generated: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pems = selfsigned.generate([{ name: 'commonName', value: domain }], {
    keySize: 2048, days: 3650, algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: domain }, { type: 2, value: `*.${domain}` }] },
    ],
  });
  writeFileSync(files.key, pems.private, { mode: 0o600 });
  writeFileSync(files.cert, pems.cert);
  return { ...files, generated: true };
}

export function tlsOptions(files: TlsFiles): SecureContextOptions {
  return { cert: readFileSync(files.cert), key: readFileSync(files.key), minVersion: 'TLSv1.2' };
}
