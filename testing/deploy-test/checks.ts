// What an admin would check from outside a deployed Pi: ports as seen from the network, the
// site's HTTPS certificate, and chat between two users with a client no one here wrote.
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { repoRoot } from "../lib/project.ts";
import { run } from "../lib/run.ts";

/** What a host port forwarded to the guest says within `ms`: the first bytes, or nothing. */
export function probe(port: number, send: string, ms = 8000): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const s = net.connect(port, "127.0.0.1", () => s.write(send));
    const done = () => { s.destroy(); resolve(got); };
    s.setTimeout(ms, done);
    s.on("data", (d) => { got += d.toString(); if (got.length > 16) done(); });
    s.on("error", done);
    s.on("close", done);
  });
}

export interface HttpsResult { authorized: boolean; error?: string; subjectAltName?: string; status?: number; body?: string }

/** GET over TLS verified against the site CA, for the site's domain name. */
export function httpsGet(port: number, servername: string, ca: string, path: string): Promise<HttpsResult> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca, rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate();
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
      let raw = "";
      s.on("data", (d) => (raw += d.toString()));
      s.on("end", () => {
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1]);
        resolve({ authorized: s.authorized, error: s.authorizationError?.toString(), subjectAltName: cert.subjectaltname, status, body: raw.split("\r\n\r\n")[1] });
      });
    });
    s.setTimeout(30_000, () => { s.destroy(); resolve({ authorized: false, error: "timeout" }); });
    s.on("error", (e) => resolve({ authorized: false, error: e.message }));
  });
}

export interface ChatResult { alice: string; bob: string; password: string; gotByBob: { from: string; body: string }; gotByAlice: { from: string; body: string };
  /** What bob got from carol, who logged in over XEP-0368 direct TLS (when xmppsPort was given). */
  gotByBobFromDirectTls?: { from: string; body: string };
  upload?: { putStatus: number; getStatus: number; same: boolean; contentType: string; getUrl: string } }

/** Runs chat.ts with the site CA trusted through NODE_EXTRA_CA_CERTS (real verification). */
export async function chat(args: { domain: string; xmppPort: number; xmppsPort?: number; httpsPort: number; ca: string; prefix: string; loginOnly?: boolean; password?: string }): Promise<ChatResult> {
  const caFile = join(tmpdir(), `pi-im-site-ca-${process.pid}.pem`);
  writeFileSync(caFile, args.ca);
  const argv = [
    "--import=tsx", join(repoRoot, "testing/deploy-test/chat.ts"), args.domain,
    `xmpp://127.0.0.1:${args.xmppPort}`, `wss://127.0.0.1:${args.httpsPort}/xmpp-websocket`, args.prefix,
    ...(args.xmppsPort ? [`xmpps://127.0.0.1:${args.xmppsPort}`] : []),
  ];
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: caFile, CHAT_LOGIN_ONLY: args.loginOnly ? "1" : "0", ...(args.password ? { CHAT_PASSWORD: args.password } : {}) };
  const r = await run(process.execPath, argv, { env, cwd: repoRoot, timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`chat failed (exit ${r.signal ?? r.code}): ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as ChatResult;
}
