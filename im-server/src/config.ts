// The one typed config: defaults < config file (--config, JSON) < environment (PI_IM_*) < flags.
// Validated once with zod; every message names the key, where it can be set, and the fix.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { prepDomain, prepLocal } from './core/jid.js';

const port = z.number().int().min(0).max(65535);
const LOOPBACK = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];

/** XEP-0157 address kinds (config keys under contact; form fields <kind>-addresses). */
export const CONTACT_KINDS = ['abuse', 'admin', 'feedback', 'sales', 'security', 'support'] as const;
/** XEP-0157 contact addresses: mailto:, xmpp: or https: URIs with something after the scheme. */
const contactUris = z.array(z.string().refine((u) => {
  try { const url = new URL(u); return ['mailto:', 'xmpp:', 'https:'].includes(url.protocol) && u.length > url.protocol.length; } catch { return false; }
}, 'expected a mailto:, xmpp: or https: URI, e.g. mailto:abuse@example.org')).default([]);

export const ConfigSchema = z.object({
  domain: z.string().refine((d) => prepDomain(d) !== undefined, 'not a valid domain name').transform((d) => prepDomain(d)!).default('localhost'),
  dataDir: z.string().min(1).default('./data'),
  c2sHost: z.string().default('0.0.0.0'),
  c2sPort: port.default(5222),
  /** XEP-0368 direct TLS listener (usually 5223); off unless set. */
  c2sDirectTlsPort: port.optional(),
  httpHost: z.string().default('0.0.0.0'),
  httpPort: port.default(5280),
  registration: z.enum(['closed', 'invite', 'open']).default('invite'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  tls: z.object({
    cert: z.string().optional(),
    key: z.string().optional(),
    /** Refuse authentication on TCP streams until STARTTLS is done. */
    required: z.boolean().default(true),
  }).strict().default({}),
  /** A reverse proxy in front (nginx on a site). */
  proxy: z.object({
    /** Peers trusted to name the client: X-Real-IP/X-Forwarded-For on WebSocket (which they may
     * also carry as plain ws, having terminated TLS), and the PROXY protocol header on TCP. */
    trusted: z.array(z.string()).default(LOOPBACK),
    /** Every TCP connection (c2s and direct TLS) starts with a PROXY protocol header (v1 or v2)
     * from a trusted peer; other peers are refused. nginx: `proxy_protocol on` in the stream server. */
    protocol: z.boolean().default(false),
  }).strict().default({}),
  disabledModules: z.array(z.enum(['version', 'vcard', 'ping', 'offline', 'register', 'disco',
    'muc', 'mam', 'carbons', 'csi', 'blocking', 'pep', 'upload', 'private', 'hostmeta', 'contact'])).default([]),
  resourceConflict: z.enum(['kick-old', 'reject-new']).default('kick-old'),
  scramIterations: z.number().int().min(4096).max(1_000_000).default(4096),
  limits: z.object({
    maxStanzaSize: z.number().int().min(1024).default(256 * 1024),
    maxDepth: z.number().int().min(4).max(1000).default(32),
    /** Attributes on one element, namespace declarations included. */
    maxAttributes: z.number().int().min(8).max(10_000).default(100),
    /** Whitespace keep-alive between stanzas, in bytes; a larger run of whitespace is a flood. */
    maxKeepaliveBytes: z.number().int().min(1).default(4096),
    stanzasPerSecond: z.number().positive().default(200),
    stanzaBurst: z.number().int().positive().default(1000),
    maxConnectionsPerAddress: z.number().int().positive().default(100),
    /** Addresses the per-address connection limit does not apply to. */
    connectionLimitExempt: z.array(z.string()).default(LOOPBACK),
    /** Failed logins against one account (from any addresses) after which addresses that never
     * logged in to it wait 1 s per attempt. Never a lockout: the right password always works. */
    authFailuresPerAccount: z.number().int().positive().default(5),
    /** Failed logins from one address (IPv6: one /64) after which it is banned for authLockoutSeconds;
     * before that, each failure delays its next attempt (0, 0, 1, 2, 4 ... 15 s). */
    authFailuresPerAddress: z.number().int().positive().default(20),
    /** How long an address is banned; also how long a failure counts after the address's last one. */
    authLockoutSeconds: z.number().positive().default(600),
    /** Before TLS a client has nothing to wait for: STARTTLS (or the direct TLS handshake) comes at once. */
    tlsTimeoutSeconds: z.number().positive().default(30),
    /** After TLS, until SASL success: long enough for a person to fill in a registration form
     * (Smack keeps such a connection), as Prosody's c2s_timeout (300 s). */
    authTimeoutSeconds: z.number().positive().default(300),
    idleSeconds: z.number().positive().default(300),
    pingTimeoutSeconds: z.number().positive().default(60),
    maxOfflinePerUser: z.number().int().positive().default(1000),
    /** Bytes (UTF-8 XML) of offline messages one account may have waiting; past it senders get resource-constraint. */
    maxOfflineBytesPerUser: z.number().int().min(65536).default(8 * 1024 * 1024),
    /** Items in one roster, and subscription requests waiting for one account's answer. */
    maxRosterItems: z.number().int().positive().default(1000),
    maxOutputBuffer: z.number().int().min(65536).default(2 * 1024 * 1024),
  }).strict().default({}),
  storage: z.object({
    /** PostgreSQL instead of SQLite in the data dir: postgres://USER[:PASSWORD]@HOST:PORT/DB.
     * Never logged with its password. */
    url: z.string().regex(/^postgres(ql)?:\/\/[^/]+\/[^/?#]+/, 'expected postgres://USER:PASSWORD@HOST:PORT/DB').optional(),
    /** A file holding the database password (overrides the URL's; e.g. a Docker secret). */
    passwordFile: z.string().optional(),
    /** Connections each node keeps to PostgreSQL. */
    poolSize: z.number().int().min(1).max(100).default(8),
    /** Group commit: writes wait at most this long to share one transaction (one fsync). */
    commitWindowMs: z.number().min(0).max(1000).default(5),
    maxBatch: z.number().int().min(1).default(512),
    /** Under steady writes the window stretches so that commits (fsyncs) stay under this rate; 0: no cap. */
    maxCommitsPerSecond: z.number().min(0).max(10_000).default(20),
    /** FULL: every commit is fsynced, so acknowledged stanzas survive power loss. */
    synchronous: z.enum(['full', 'normal']).default('full'),
  }).strict().default({}),
  /** XEP-0045 group chat on conference.<domain>. */
  muc: z.object({
    /** Who may create rooms: any local user, or only the admins listed. */
    roomCreation: z.enum(['users', 'admins']).default('users'),
    admins: z.array(z.string()).default([]),
    /** Messages sent to a new occupant on join unless it asks otherwise. */
    historyMessages: z.number().int().min(0).max(1000).default(20),
    maxRoomsPerUser: z.number().int().positive().default(100),
    maxOccupants: z.number().int().positive().default(500),
  }).strict().default({}),
  /** XEP-0313 message archives (1:1 and rooms). */
  mam: z.object({
    /** Archived messages older than this are deleted (0 keeps them forever). */
    retentionDays: z.number().int().min(0).default(365),
    /** The archiving default for users who have not set a preference. */
    defaultPolicy: z.enum(['always', 'roster', 'never']).default('always'),
    maxPageSize: z.number().int().positive().max(1000).default(100),
  }).strict().default({}),
  /** XEP-0363 HTTP file upload. */
  upload: z.object({
    /** Public base URL of the upload path as clients reach it (through nginx), e.g. https://chat.example/upload.
     * Default: http://<domain>:<httpPort>/upload. */
    publicUrl: z.string().url().optional(),
    maxFileSize: z.number().int().positive().default(100 * 1024 * 1024),
    quotaPerUser: z.number().int().positive().default(1024 * 1024 * 1024),
    /** Uploaded files are deleted this long after their upload (0 keeps them). */
    expiryDays: z.number().int().min(0).default(30),
    /** Overrides expiryDays with a finer unit (tests; 0 keeps files). */
    expirySeconds: z.number().int().min(0).optional(),
    /** How long a slot can be used for its PUT. */
    slotSeconds: z.number().int().min(1).default(300),
    /** Files are stored under <dataDir>/uploads unless this is set. */
    dir: z.string().optional(),
  }).strict().default({}),
  /** XEP-0049 private XML storage (bookmarks of older clients, client preferences). */
  privateStorage: z.object({
    /** Largest stored item (the elements of one namespace, serialised) in bytes. */
    maxItemSize: z.number().int().min(1024).default(64 * 1024),
    /** Namespaces one account may store. */
    maxItemsPerUser: z.number().int().positive().default(100),
  }).strict().default({}),
  /** What web clients are told (XEP-0156 /.well-known/host-meta). */
  web: z.object({
    /** The WebSocket URL as browsers reach it (through nginx), e.g. wss://chat.example/xmpp-websocket.
     * Default: from the request's Host and X-Forwarded-Proto, wss://<host>/xmpp-websocket. */
    publicWebsocketUrl: z.string().url().refine((u) => /^wss?:\/\//i.test(u), 'must be a ws:// or wss:// URL').optional(),
  }).strict().default({}),
  /** XEP-0157 contact addresses in the server's disco#info: lists of mailto:, xmpp: or https: URIs. */
  contact: z.object({
    abuse: contactUris, admin: contactUris, feedback: contactUris, sales: contactUris, security: contactUris, support: contactUris,
  }).strict().default({}),
  /** XEP-0163 PEP: per-account publish-subscribe nodes (avatars, OMEMO keys, bookmarks...). */
  pep: z.object({
    /** Most items a node keeps; a node configured with max_items 'max' keeps this many. */
    maxItems: z.number().int().positive().max(100_000).default(1000),
    /** Largest item payload, in bytes of XML (avatars should go in their own data node). */
    maxPayloadBytes: z.number().int().positive().default(128 * 1024),
    maxNodesPerUser: z.number().int().positive().default(200),
  }).strict().default({}),
  /** XEP-0198 stream resumption. */
  streamManagement: z.object({
    /** How long a dropped session waits to be resumed before it ends (and its unacked stanzas are handled). */
    resumeTimeoutSeconds: z.number().int().min(0).max(3600).default(300),
    /** Unacknowledged stanzas kept per session; a client that falls further behind is disconnected. */
    maxUnacked: z.number().int().min(10).default(5000),
  }).strict().default({}),
  accounts: z.array(z.object({
    username: z.string().refine((u) => prepLocal(u) !== undefined, 'not a valid username'),
    passwordFile: z.string().optional(),
    passwordEnv: z.string().optional(),
  }).strict().refine((a) => a.passwordFile || a.passwordEnv, 'needs passwordFile or passwordEnv')).default([]),
}).strict();

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

export class ConfigError extends Error {}

/** flag name -> [config key path, kind] */
const FLAGS = {
  'domain': ['domain', 'string'],
  'data-dir': ['dataDir', 'string'],
  'c2s-host': ['c2sHost', 'string'],
  'c2s-port': ['c2sPort', 'number'],
  'c2s-direct-tls-port': ['c2sDirectTlsPort', 'number'],
  'http-host': ['httpHost', 'string'],
  'http-port': ['httpPort', 'number'],
  'registration': ['registration', 'string'],
  'log-level': ['logLevel', 'string'],
  'tls-cert': ['tls.cert', 'string'],
  'tls-key': ['tls.key', 'string'],
  'max-connections-per-address': ['limits.maxConnectionsPerAddress', 'number'],
  'proxy-protocol': ['proxy.protocol', 'boolean'],
  'db': ['storage.url', 'string'],
  'db-password-file': ['storage.passwordFile', 'string'],
  'commit-window-ms': ['storage.commitWindowMs', 'number'],
  'max-commits-per-second': ['storage.maxCommitsPerSecond', 'number'],
  'upload-url': ['upload.publicUrl', 'string'],
  'upload-max-file-size': ['upload.maxFileSize', 'number'],
  'websocket-url': ['web.publicWebsocketUrl', 'string'],
} as const;

const envName = (flag: string): string => 'PI_IM_' + flag.toUpperCase().replace(/-/g, '_');

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
  o[parts[parts.length - 1]!] = value;
}

function convert(flag: string, kind: 'string' | 'number' | 'boolean', raw: string, source: string): unknown {
  if (kind === 'string') return raw;
  if (kind === 'boolean') {
    if (/^(true|on|yes|1)$/i.test(raw)) return true;
    if (/^(false|off|no|0)$/i.test(raw)) return false;
    throw new ConfigError(`${source}: expected true or false, got "${raw}". Fix: give --${flag} true or false.`);
  }
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${source}: expected a number, got "${raw}". Fix: give --${flag} a number.`);
  return n;
}

export const USAGE = `pi-im-server: an XMPP server
  --domain D              XMPP domain served (default localhost)           env PI_IM_DOMAIN
  --data-dir DIR          SQLite database, TLS certificate (default ./data) env PI_IM_DATA_DIR
  --c2s-port N            XMPP client port, STARTTLS (default 5222)        env PI_IM_C2S_PORT
  --http-port N           /xmpp-websocket, /health, /metrics (default 5280) env PI_IM_HTTP_PORT
  --registration P        in-band registration: closed|invite|open (default invite)
  --config FILE           JSON config file (every key; see README)          env PI_IM_CONFIG
  --c2s-direct-tls-port N XEP-0368 direct TLS port, e.g. 5223 (default off) env PI_IM_C2S_DIRECT_TLS_PORT
  --c2s-host/--http-host  listen addresses (default 0.0.0.0)
  --tls-cert/--tls-key    PEM files (default: self-signed, made in the data dir)
  --log-level L           fatal|error|warn|info|debug|trace|silent
  --proxy-protocol true   TCP connections start with a PROXY protocol header from a trusted proxy
                          (proxy.trusted, default loopback), e.g. nginx with proxy_protocol on
                                                                           env PI_IM_PROXY_PROTOCOL
  --db postgres://USER:PASSWORD@HOST:PORT/DB   keep the data in PostgreSQL instead of SQLite in
                          the data dir (many nodes, many Pis)                env PI_IM_DB
  --db-password-file F    the database password from a file (not in the URL) env PI_IM_DB_PASSWORD_FILE
  --max-connections-per-address N, --commit-window-ms N, --max-commits-per-second N
  --upload-url URL        public base URL of /upload (XEP-0363; default http://<domain>:<http-port>/upload)
  --upload-max-file-size N  largest upload in bytes (default 104857600)
  --websocket-url URL     public WebSocket URL in /.well-known/host-meta (XEP-0156; default wss://<Host>/xmpp-websocket)
  --help`;

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, help: { type: 'boolean' } };
  for (const f of Object.keys(FLAGS)) options[f] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}. Fix: see --help for the flags.\n${USAGE}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) throw new ConfigError(USAGE);

  let input: Record<string, unknown> = {};
  const configPath = (values.config as string | undefined) ?? env.PI_IM_CONFIG;
  if (configPath) {
    let text: string;
    try { text = readFileSync(resolve(configPath), 'utf8'); } catch (e) {
      throw new ConfigError(`config file ${configPath}: cannot read it (${(e as NodeJS.ErrnoException).code}). Fix: pass an existing JSON file to --config.`);
    }
    try { input = JSON.parse(text) as Record<string, unknown>; } catch (e) {
      throw new ConfigError(`config file ${configPath}: not valid JSON (${(e as Error).message}). Fix the syntax.`);
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ConfigError(`config file ${configPath}: must hold a JSON object.`);
  }
  for (const [flag, [path, kind]] of Object.entries(FLAGS)) {
    const e = env[envName(flag)];
    if (e !== undefined && e !== '') setPath(input, path, convert(flag, kind, e, `environment ${envName(flag)}`));
  }
  for (const [flag, [path, kind]] of Object.entries(FLAGS)) {
    const v = values[flag];
    if (typeof v === 'string') setPath(input, path, convert(flag, kind, v, `flag --${flag}`));
  }
  return validateConfig(input, configPath);
}

export function validateConfig(input: unknown, file?: string): Config {
  const r = ConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.join('.') || '(top level)';
    const flag = Object.entries(FLAGS).find(([, [p]]) => p === key)?.[0];
    const where = [flag && `--${flag}`, flag && envName(flag), file && `"${key}" in ${file}`].filter(Boolean).join(', ');
    let msg = i.message;
    if (i.code === 'unrecognized_keys') msg = `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}; remove them or fix the spelling`;
    if (i.code === 'invalid_enum_value') msg = `expected one of ${i.options.join('|')}, got ${JSON.stringify(i.received)}`;
    return `  ${key}: ${msg}${where ? ` (set by ${where})` : ''}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
