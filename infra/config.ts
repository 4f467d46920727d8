// The stack configuration: one zod schema, parsed once at program start. Every problem is reported
// with the key (as `pi-im:<path>`) and how to fix it; all problems are reported at once.
// Secrets (SSH key, backup key, TLS key) are never part of this object: only whether they exist.
// Every key is documented in CONFIG.md.
import { z } from "zod";
import { cidrContains, isIpLiteral, parseCidr } from "./net";
import { cronError } from "./cron";
import { NODE_PORT_OFFSETS } from "./render/compose";

export const NS = "pi-im";
export const SECRET_KEYS = ["sshPrivateKey", "backupSshKey", "tlsCert", "tlsKey"] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];
export const SSH_KEY_ENV = "PI_IM_SSH_KEY_FILE";

export const DEFAULT_PACKAGES = ["docker.io", "docker-compose", "rsync", "ufw", "cron", "sqlite3", "apparmor"];

const port = z.number().int().min(1, "must be a port 1-65535").max(65535, "must be a port 1-65535");
const hostname = z
  .string()
  .regex(/^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/,
    "must be a DNS name such as pi-im-1 or chat.example.lan");
const ifname = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,14}$/, "is not a Linux interface name (e.g. eth0, end0, wlan0, enp1s0)");
const sizeText = z.string().regex(/^\d+(\.\d+)?[bkmg]?$/i, "must be a size such as 512m or 1g");

const networkSchema = z
  .object({
    manage: z.boolean().default(true),
    stack: z.enum(["auto", "networkmanager", "dhcpcd", "networkd", "ifupdown"]).default("auto"),
    interface: ifname.default("eth0"),
    mode: z.enum(["static", "dhcp"]).default("static"),
    address: z.string().optional(),
    gateway: z.string().optional(),
    dns: z.array(z.string()).default([]),
    allowAddressChange: z.boolean().default(false),
  })
  .strict();

const diskSchema = z
  .object({ uuid: z.string().optional(), label: z.string().optional(), device: z.string().optional() })
  .strict();

const storageSchema = z
  .object({
    manage: z.boolean().default(true),
    disk: diskSchema.optional(),
    fsType: z.literal("ext4").default("ext4"),
    mountPoint: z.string().regex(/^\/[\w./-]*$/, "must be an absolute path").default("/mnt/storage"),
    format: z.boolean().default(false),
    formatLabel: z.string().max(16, "ext4 labels are at most 16 characters").default("pi-im-data"),
    dataDir: z.string().regex(/^[\w.-]+$/, "must be a plain directory name").default("im_data"),
    owner: z.string().regex(/^\d+:\d+$/, "must be uid:gid in numbers, e.g. 1000:1000").default("1000:1000"),
  })
  .strict();

const imageSchema = z
  .object({
    name: z.string().min(1).optional(),
    index: z.string().optional(),
    tarball: z.string().optional(),
    ref: z.string().optional(),
  })
  .strict();

const IMAGES = "${PI_IM_CACHE:-~/.cache/pi-im}/images/{arch}";

const piSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, "must be a short lower-case name such as pi1"),
    host: z.string().min(1, "must be the address or DNS name Pulumi connects to"),
    port: port.default(22),
    user: z.string().optional(),
    hostname: hostname.optional(),
    arch: z.enum(["arm64", "amd64"]).default("arm64"),
    network: networkSchema,
    storage: storageSchema,
  })
  .strict();

const firewallRule = z
  .object({
    port: port,
    proto: z.enum(["tcp", "udp"]).default("tcp"),
    from: z.string().optional(),
    comment: z.string().regex(/^[\w .-]{0,40}$/, "letters, digits, space . _ - only").default("extra"),
  })
  .strict();

const backupTarget = z.discriminatedUnion("type", [
  z.object({ type: z.literal("local"), path: z.string().regex(/^\//, "must be an absolute path") }).strict(),
  z
    .object({
      type: z.literal("ssh"),
      host: z.string().min(1),
      port: port.default(22),
      user: z.string().min(1),
      path: z.string().min(1),
      knownHosts: z.string().optional(),
    })
    .strict(),
]);

export const siteSchema = z
  .object({
    domain: hostname.default("pi-im.local"),
    timezone: z.string().regex(/^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/, "must be a tz name such as Europe/Berlin").default("Etc/UTC"),
    locale: z.string().regex(/^[A-Za-z_]+(\.[A-Za-z0-9-]+)?$/, "must be a locale such as en_GB.UTF-8").default("C.UTF-8"),
    ssh: z
      .object({
        user: z.string().default("pi"),
        privateKeyPath: z.string().optional(),
        dialErrorLimit: z.number().int().min(-1).default(20),
        perDialTimeout: z.number().int().min(0).default(30),
      })
      .strict()
      .default({}),
    admin: z
      .object({ user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name").optional(), authorizedKeys: z.array(z.string()).default([]) })
      .strict()
      .default({}),
    host: z
      .object({
        installPackages: z.boolean().default(true),
        packages: z.array(z.string()).default(DEFAULT_PACKAGES),
        extraPackages: z.array(z.string()).default([]),
        unattendedUpgrades: z.boolean().default(true),
        sshHardening: z.boolean().default(true),
      })
      .strict()
      .default({}),
    ports: z
      .object({
        http: port.default(80), https: port.default(443), xmpp: port.default(5222), ssh: port.default(22),
        /** XEP-0368 direct TLS (usually 5223): TLS from the first byte, for networks that let only TLS through. Off unless set. */
        xmppDirectTls: port.optional(),
      })
      .strict()
      .default({}),
    firewall: z
      .object({
        manage: z.boolean().default(true),
        sshRateLimit: z.boolean().default(true),
        sshAllowFrom: z.array(z.string()).default([]),
        trusted: z.array(z.string()).default([]),
        extra: z.array(firewallRule).default([]),
        logging: z.enum(["off", "low", "medium", "high"]).default("low"),
      })
      .strict()
      .default({}),
    backups: z
      .object({
        enabled: z.boolean().default(true),
        schedule: z.string().default("0 2 * * *"),
        target: backupTarget.optional(),
        keep: z.number().int().min(1, "must keep at least 1 backup").default(7),
        maxAgeDays: z.number().int().min(0).default(30),
        includeUploads: z.boolean().default(true),
      })
      .strict()
      .default({}),
    tls: z
      .object({
        mode: z.enum(["self-signed", "provided"]).default("self-signed"),
        days: z.number().int().min(1).max(825, "browsers refuse leaf certificates valid over 825 days").default(825),
        extraNames: z.array(z.string()).default([]),
      })
      .strict()
      .default({}),
    cluster: z
      .object({
        nodes: z.number().int("must be a whole number").min(1, "must be at least 1 (one IM server node)").max(16).default(1),
        registration: z.enum(["invite", "open", "closed"]).default("invite"),
        /** Connections one client address may hold on a node (the nodes see each client's own
         * address through nginx). Raise it where many people share one address (a NAT). */
        maxConnectionsPerAddress: z.number().int("must be a whole number").min(1, "must be at least 1").max(100_000).default(100),
        images: z
          .object({
            server: imageSchema.default({ index: `${IMAGES}/im-server.json` }),
            nginx: imageSchema.default({ index: `${IMAGES}/nginx.json` }),
          })
          .strict()
          .default({}),
        nodeMemory: sizeText.default("768m"),
        nodeCpus: z.number().positive().default(2),
        nginxMemory: sizeText.default("128m"),
        internalPortBase: port.default(15000),
      })
      .strict()
      .default({}),
    pis: z.array(piSchema).min(1, "must list at least one Pi"),
  })
  .strict();

export type SiteConfig = z.infer<typeof siteSchema> & { sshKey: SshKeySource };
export type PiConfig = SiteConfig["pis"][number];
export type NetworkConfig = PiConfig["network"];
export type StorageConfig = PiConfig["storage"];
export type ImageConfig = z.infer<typeof imageSchema>;
export type SshKeySource = { source: "config" } | { source: "file"; path: string };

/** What the parser may know about the world besides the plain config values. */
export interface ParseContext {
  /** Secret keys set in the stack (without the `pi-im:` prefix). */
  secrets: ReadonlySet<string>;
  /** Secret keys set WITHOUT --secret (plain text in the stack file). */
  plainSecrets?: ReadonlySet<string>;
  env: Readonly<Record<string, string | undefined>>;
  fileExists: (path: string) => boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/** `${VAR}`, `${VAR:-default}` and a leading `~` expanded; `{arch}` substituted by callers. */
export function expandPath(text: string, env: Readonly<Record<string, string | undefined>>): string {
  const expanded = text.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_m, name: string, def?: string) => env[name] || def || "");
  return expanded.replace(/^~(?=\/|$)/, env["HOME"] ?? "~");
}

const KNOWN_KEYS = new Set<string>([...Object.keys(siteSchema.shape), "network", "storage", ...SECRET_KEYS]);

/** Parse raw config values (key without namespace -> parsed JSON/string) into a SiteConfig. */
export function parseConfig(raw: Record<string, unknown>, ctx: ParseContext): SiteConfig {
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) problems.push(`${NS}:${key}: unknown key. ${suggest(key)}See infra/CONFIG.md for every key.`);
  }
  const rawPis = Array.isArray(raw["pis"]) ? (raw["pis"] as unknown[]) : raw["pis"];
  const merged: Record<string, unknown> = {};
  for (const key of Object.keys(siteSchema.shape)) if (key in raw) merged[key] = raw[key];
  if (Array.isArray(rawPis)) {
    merged["pis"] = rawPis.map((p) => mergePi(p, raw));
  }
  const result = siteSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(zodProblem(issue, raw));
    throw new ConfigError(problems);
  }
  const site = result.data;
  const sshKey = checkSemantics(site, raw, ctx, problems);
  if (problems.length) throw new ConfigError(problems);
  return { ...site, sshKey: sshKey! };
}

function mergePi(pi: unknown, raw: Record<string, unknown>): unknown {
  if (!pi || typeof pi !== "object") return pi;
  const p = pi as Record<string, unknown>;
  return {
    ...p,
    network: { ...asObject(raw["network"]), ...asObject(p["network"]) },
    storage: { ...asObject(raw["storage"]), ...asObject(p["storage"]) },
  };
}

function asObject(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Name the key as the user wrote it: a per-Pi network/storage value or the site-wide default. */
function keyName(path: Array<string | number>, raw: Record<string, unknown>): string {
  if (path[0] === "pis" && typeof path[1] === "number" && (path[2] === "network" || path[2] === "storage") && path[3] !== undefined) {
    const pi = asObject((raw["pis"] as unknown[] | undefined)?.[path[1]]);
    if (!(String(path[3]) in asObject(pi[path[2]])) && String(path[3]) in asObject(raw[path[2]])) {
      path = path.slice(2);
    }
  }
  return `${NS}:` + path.map((p, i) => (typeof p === "number" ? `[${p}]` : (i ? "." : "") + p)).join("");
}

function zodProblem(issue: z.ZodIssue, raw: Record<string, unknown>): string {
  const key = keyName(issue.path, raw);
  if (issue.code === "unrecognized_keys") {
    return `${key}: unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(", ")}. ${suggest(issue.keys[0] ?? "")}See infra/CONFIG.md.`;
  }
  if (issue.code === "invalid_type" && issue.received === "undefined") {
    return `${key}: missing; it is required. Fix: pulumi config set --path '${key}' <value> (see infra/CONFIG.md).`;
  }
  if (issue.code === "invalid_type") {
    return `${key}: expected ${issue.expected}, got ${issue.received}. Fix: pulumi config set --path '${key}' <${issue.expected}>${issue.expected === "number" || issue.expected === "boolean" ? " (numbers and booleans need --path so they are not stored as strings)" : ""}.`;
  }
  if (issue.code === "invalid_union_discriminator") {
    return `${key}: must be one of ${issue.options.map((o) => `'${String(o)}'`).join(", ")}.`;
  }
  return `${key}: ${issue.message}. Fix the value in stacks/Pulumi.<site>.yaml (see infra/CONFIG.md).`;
}

const COMMON_TYPOS: Record<string, string> = { firwall: "firewall", backup: "backups", pi: "pis", nodes: "cluster.nodes", tz: "timezone" };
function suggest(key: string): string {
  const hit = COMMON_TYPOS[key] ?? [...KNOWN_KEYS].find((k) => k.toLowerCase() === key.toLowerCase());
  return hit ? `Did you mean '${hit}'? ` : "";
}

function checkSemantics(site: z.infer<typeof siteSchema>, raw: Record<string, unknown>, ctx: ParseContext, problems: string[]): SshKeySource | undefined {
  const k = (...path: Array<string | number>) => keyName(path, raw);

  // SSH key: secret config, then env var file, then a path in config.
  let sshKey: SshKeySource | undefined;
  const envFile = ctx.env[SSH_KEY_ENV];
  if (ctx.secrets.has("sshPrivateKey")) sshKey = { source: "config" };
  else if (envFile) {
    const path = expandPath(envFile, ctx.env);
    if (ctx.fileExists(path)) sshKey = { source: "file", path };
    else problems.push(`${SSH_KEY_ENV}=${envFile}: no such file. Point it at the SSH private key for the Pis, or unset it.`);
  } else if (site.ssh.privateKeyPath) {
    const path = expandPath(site.ssh.privateKeyPath, ctx.env);
    if (ctx.fileExists(path)) sshKey = { source: "file", path };
    else problems.push(`${NS}:ssh.privateKeyPath: '${path}' does not exist. Fix the path, or set the key itself: pulumi config set --secret ${NS}:sshPrivateKey < ~/.ssh/id_ed25519`);
  } else {
    problems.push(`${NS}:sshPrivateKey: missing SSH private key to reach the Pis. Fix: pulumi config set --secret ${NS}:sshPrivateKey -- "$(cat ~/.ssh/id_ed25519)", or export ${SSH_KEY_ENV}=/path/to/key, or set ${NS}:ssh.privateKeyPath.`);
  }
  for (const key of ctx.plainSecrets ?? []) {
    problems.push(`${NS}:${key}: stored in plain text in the stack file. Fix: pulumi config rm ${NS}:${key} && pulumi config set --secret ${NS}:${key} ...`);
  }

  // Ports: the services nginx publishes and sshd must not share a port.
  const ports: Array<[string, number]> = Object.entries(site.ports).flatMap(([name, p]) => (p === undefined ? [] : [[k("ports", name), p] as [string, number]]));
  site.firewall.extra.forEach((r, i) => { if (r.proto === "tcp") ports.push([k("firewall", "extra", i, "port"), r.port]); });
  const seen = new Map<number, string>();
  for (const [name, p] of ports) {
    const other = seen.get(p);
    if (other) problems.push(`${name}: port ${p} clashes with ${other}. Fix: give each service its own port.`);
    else seen.set(p, name);
  }
  const base = site.cluster.internalPortBase;
  for (const [name, p] of ports) {
    if (NODE_PORT_OFFSETS.some((o) => p >= base + o && p < base + o + site.cluster.nodes)) {
      problems.push(`${name}: port ${p} clashes with the IM nodes' loopback ports (${NS}:cluster.internalPortBase ${base} + ${NODE_PORT_OFFSETS.join("/")}). Fix: change ${NS}:cluster.internalPortBase.`);
    }
  }
  if (site.cluster.internalPortBase + Math.max(...NODE_PORT_OFFSETS) + site.cluster.nodes > 65535) problems.push(`${k("cluster", "internalPortBase")}: too high for ${site.cluster.nodes} nodes; use e.g. 15000.`);

  for (const [name, list] of [["sshAllowFrom", site.firewall.sshAllowFrom], ["trusted", site.firewall.trusted]] as const) {
    list.forEach((c, i) => { if (!parseCidr(c) && !isIpLiteral(c)) problems.push(`${k("firewall", name, i)}: '${c}' is not an address or CIDR (e.g. 192.168.1.0/24).`); });
  }
  site.firewall.extra.forEach((r, i) => {
    if (r.from && !parseCidr(r.from) && !isIpLiteral(r.from)) problems.push(`${k("firewall", "extra", i, "from")}: '${r.from}' is not an address or CIDR (e.g. 10.0.0.0/8).`);
  });

  const schedErr = cronError(site.backups.schedule);
  if (schedErr) problems.push(`${k("backups", "schedule")}: '${site.backups.schedule}' is not a valid cron schedule: ${schedErr}. Example: '0 2 * * *' (daily at 02:00).`);
  if (site.backups.enabled && site.backups.target?.type === "ssh" && !ctx.secrets.has("backupSshKey")) {
    problems.push(`${NS}:backupSshKey: missing; the ssh backup target needs a private key. Fix: pulumi config set --secret ${NS}:backupSshKey -- "$(cat backup_key)".`);
  }
  if (site.tls.mode === "provided") {
    for (const key of ["tlsCert", "tlsKey"]) {
      if (!ctx.secrets.has(key)) problems.push(`${NS}:${key}: missing; tls.mode is 'provided'. Fix: pulumi config set --secret ${NS}:${key} -- "$(cat file.pem)", or set ${NS}:tls.mode self-signed.`);
    }
  }
  for (const [name, img] of Object.entries(site.cluster.images)) {
    const given = [img.index, img.tarball, img.ref].filter((x) => x !== undefined).length;
    if (given !== 1) problems.push(`${k("cluster", "images", name)}: set exactly one of 'index' (a tools/images index .json), 'tarball' (a docker save .tar.gz shipped over SSH) or 'ref' (pulled by the Pi from a registry).`);
    if (img.tarball && !img.name) problems.push(`${k("cluster", "images", name, "name")}: missing; a tarball needs the image tag it holds, e.g. pi-im/im-server:latest.`);
  }

  const names = new Set<string>(), hostnames = new Set<string>(), endpoints = new Set<string>();
  site.pis.forEach((pi, i) => {
    if (names.has(pi.name)) problems.push(`${k("pis", i, "name")}: '${pi.name}' is used twice; every Pi needs its own name.`);
    names.add(pi.name);
    const hn = pi.hostname ?? pi.name;
    if (hostnames.has(hn)) problems.push(`${k("pis", i, "hostname")}: '${hn}' is used twice.`);
    hostnames.add(hn);
    const ep = `${pi.host}:${pi.port}`;
    if (endpoints.has(ep)) problems.push(`${k("pis", i, "host")}: ${ep} is used by two Pis.`);
    endpoints.add(ep);
    checkNetwork(pi, i, k, problems);
    checkStorage(pi, i, k, problems);
  });
  return sshKey;
}

type KeyFn = (...path: Array<string | number>) => string;

function checkNetwork(pi: PiConfig, i: number, k: KeyFn, problems: string[]): void {
  const n = pi.network;
  if (!n.manage || n.mode === "dhcp") return;
  if (!n.address) {
    problems.push(`${k("pis", i, "network", "address")}: missing; a static network needs address/prefix, e.g. 192.168.1.100/24. Or set network.mode dhcp, or network.manage false.`);
    return;
  }
  const cidr = parseCidr(n.address);
  if (!cidr || cidr.family !== 4) {
    problems.push(`${k("pis", i, "network", "address")}: '${n.address}' is not an IPv4 address/prefix such as 192.168.1.100/24.`);
    return;
  }
  if (cidr.prefix < 8 || cidr.prefix > 30) problems.push(`${k("pis", i, "network", "address")}: prefix /${cidr.prefix} is not usable for a host on a LAN (use /8 to /30, usually /24).`);
  if (n.gateway !== undefined) {
    if (isIpLiteral(n.gateway) && n.gateway.includes(".")) {
      if (!cidrContains(cidr, n.gateway)) problems.push(`${k("pis", i, "network", "gateway")}: ${n.gateway} is outside ${n.address}; the router must be on the Pi's subnet.`);
      if (n.gateway === cidr.address) problems.push(`${k("pis", i, "network", "gateway")}: ${n.gateway} is the Pi's own address.`);
    } else problems.push(`${k("pis", i, "network", "gateway")}: '${n.gateway}' is not an IPv4 address such as 192.168.1.1.`);
  }
  n.dns.forEach((d, j) => { if (!isIpLiteral(d)) problems.push(`${k("pis", i, "network", "dns", j)}: '${d}' is not an IP address (e.g. 192.168.1.1).`); });
  if (isIpLiteral(pi.host) && pi.host !== cidr.address && !n.allowAddressChange) {
    problems.push(`${k("pis", i, "network", "address")}: ${n.address} would move the Pi away from ${pi.host}, the address Pulumi connects through (${k("pis", i, "host")}); the deploy would cut itself off. Fix: set network.allowAddressChange true for this one change (then set host to ${cidr.address}), or make the address match the host.`);
  }
}

function checkStorage(pi: PiConfig, i: number, k: KeyFn, problems: string[]): void {
  const s = pi.storage;
  if (!s.manage) return;
  const d = s.disk ?? {};
  const given = [d.uuid, d.label, d.device].filter((x) => x !== undefined).length;
  if (given !== 1) {
    problems.push(`${k("pis", i, "storage", "disk")}: set exactly one of uuid, label or device (e.g. {label: pi-im-data} or {device: /dev/sda1}); got ${given}. Or set storage.manage false to use the SD card.`);
  }
  if (d.device !== undefined && !/^\/dev\/[\w/.:-]+$/.test(d.device)) problems.push(`${k("pis", i, "storage", "disk", "device")}: '${d.device}' is not a /dev path such as /dev/sda1.`);
  if (d.uuid !== undefined && !/^[0-9a-fA-F-]{8,36}$/.test(d.uuid)) problems.push(`${k("pis", i, "storage", "disk", "uuid")}: '${d.uuid}' is not a filesystem UUID (see: sudo blkid).`);
  if (s.format && d.uuid !== undefined) problems.push(`${k("pis", i, "storage", "format")}: a disk named by UUID already has a filesystem; format only applies to a device or label.`);
}
