// Minimal HTTP(S) client for the upload scenario: one request, the site CA (or --insecure) as for
// XMPP, the original host name for SNI and certificate checks when --http-base redirects it.
import http from 'node:http';
import https from 'node:https';
import type { Target } from './context.js';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function httpRequest(t: Target, method: string, url: string, opts: { body?: Buffer; headers?: Record<string, string>; base?: string | undefined } = {}): Promise<HttpResult> {
  const original = new URL(url);
  const target = opts.base ? new URL(original.pathname + original.search, opts.base) : original;
  const secure = target.protocol === 'https:';
  const lib = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(target, {
      method,
      headers: { ...opts.headers, host: original.host, ...(opts.body ? { 'content-length': String(opts.body.length) } : {}) },
      ...(secure ? { ca: t.ca, rejectUnauthorized: !t.insecure, servername: original.hostname } : {}),
      timeout: t.timeoutMs,
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target.origin}${target.pathname.slice(0, 40)}…: no answer within ${t.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
