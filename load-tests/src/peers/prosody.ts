// A throw-away Prosody (Debian's package) for tests and the benchmark: own temp dir, own ports,
// 127.0.0.1 only, in-band registration open, self-signed certificate, stopped with SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCert } from './cert.js';
import { freePort, waitForPort } from './proc.js';

export interface ProsodyOptions {
  domain?: string;
  c2sPort?: number;
  httpPort?: number;
  /** Keep the temp dir after stop (for looking at logs). */
  keep?: boolean;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Lua appended to the global section, e.g. `network_settings = { nagle = false }`. */
  extraConfig?: string;
}

export interface Peer {
  name: string;
  pid: number;
  domain: string;
  host: string;
  c2sPort: number;
  httpPort: number;
  wsUrl: string;
  caFile: string;
  dir: string;
  stop(): Promise<void>;
}

export const PROSODY_BIN = '/usr/bin/prosody';

export function prosodyAvailable(): boolean {
  return existsSync(PROSODY_BIN);
}

/** Lua string literal. */
const lua = (s: string) => JSON.stringify(s);

/** The config, with every departure from Prosody's defaults explained. */
export function renderProsodyConfig(o: { dir: string; domain: string; c2sPort: number; httpPort: number; cert: string; key: string; logLevel: string; extraConfig?: string }): string {
  return `-- throw-away Prosody for pi-im load tests; generated, do not edit
-- Running as root inside CI containers: do not try to switch to the prosody user
-- (the temp dir is ours; prosodyctl's user switch would make it unreadable).
run_as_root = true
daemonize = false                 -- stay in the foreground so the bench owns the process
pidfile = ${lua(join(o.dir, 'prosody.pid'))}
data_path = ${lua(join(o.dir, 'data'))}
log = { { levels = { min = ${lua(o.logLevel)} }, to = "console" } }

interfaces = { "127.0.0.1" }      -- loopback only
local_interfaces = { "127.0.0.1" }
c2s_ports = { ${o.c2sPort} }
c2s_direct_tls_ports = { }
s2s_ports = { }                   -- no federation in a throw-away server
http_interfaces = { "127.0.0.1" }
http_ports = { ${o.httpPort} }
https_ports = { }
https_interfaces = { }

modules_enabled = {
  "roster"; "saslauth"; "tls"; "disco"; "ping"; "register"; "posix";
  "websocket";                    -- RFC 7395 at /xmpp-websocket on http_ports
}
-- mod_limits (per-connection read-rate limits) is deliberately not loaded: the bench lifts
-- pi-im's stanza rate limits too. Offline storage stays on (auto-loaded), as in pi-im.
modules_disabled = { "s2s"; "admin_shell" }

authentication = "internal_hashed" -- SCRAM hashes at rest, like pi-im
storage = "internal"              -- Debian's default file storage in data_path
c2s_require_encryption = true     -- STARTTLS before auth, like pi-im
allow_registration = true         -- XEP-0077 for provisioning test accounts
-- Registration throttling (mod_register_limits) is off unless min_seconds_between_registrations
-- or registration_throttle_max is set; the bench spreads connections over 127.0.0.x, so the
-- allowlist must cover all of loopback in case a throttle is ever configured.
registration_allowlist = { "127.0.0.0/8", "::1" }
consider_websocket_secure = true  -- plain ws on loopback counts as secure (nginx terminates TLS in production)
cross_domain_websocket = true
c2s_timeout = 600                 -- idle-connection tests hold sessions without traffic
ssl = { certificate = ${lua(o.cert)}; key = ${lua(o.key)}; }
${o.extraConfig ? `-- added by the caller\n${o.extraConfig}\n` : ''}
VirtualHost ${lua(o.domain)}
  ssl = { certificate = ${lua(o.cert)}; key = ${lua(o.key)}; }
`;
}

/** Starts Prosody and resolves once its c2s port accepts connections. */
export async function startProsody(opts: ProsodyOptions = {}): Promise<Peer> {
  if (!prosodyAvailable()) throw new Error(`${PROSODY_BIN} not found: apt-get install prosody`);
  const domain = opts.domain ?? 'prosody.bench.local';
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-prosody-'));
  chmodSync(dir, 0o755);
  const c2sPort = opts.c2sPort ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const { cert, key } = makeCert(dir, domain);
  const cfg = join(dir, 'prosody.cfg.lua');
  writeFileSync(cfg, renderProsodyConfig({ dir, domain, c2sPort, httpPort, cert, key, logLevel: opts.logLevel ?? 'warn', extraConfig: opts.extraConfig }));
  let output = '';
  const child: ChildProcess = spawn(PROSODY_BIN, ['--config', cfg, '-F'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const keepTail = (b: Buffer) => {
    output = (output + b.toString()).slice(-8000);
  };
  child.stdout!.on('data', keepTail);
  child.stderr!.on('data', keepTail);
  let exited: string | undefined;
  child.on('exit', (code, sig) => {
    exited = `prosody exited (code ${code}, signal ${sig}):\n${output}`;
  });
  try {
    await waitForPort('127.0.0.1', c2sPort, 20_000, () => exited);
    await waitForPort('127.0.0.1', httpPort, 5_000, () => exited);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${output}`);
  }
  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    }
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  };
  return { name: 'prosody', pid: child.pid!, domain, host: '127.0.0.1', c2sPort, httpPort, wsUrl: `ws://127.0.0.1:${httpPort}/xmpp-websocket`, caFile: cert, dir, stop };
}
