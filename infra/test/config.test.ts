import test from "ava";
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, parseConfig, ParseContext, SiteConfig } from "../config";
import { cronError } from "../cron";
import { loadStackFile } from "./helpers";

const ctx = (over: Partial<ParseContext> = {}): ParseContext => ({
  secrets: new Set(["sshPrivateKey"]),
  env: { HOME: "/home/t" },
  fileExists: () => true,
  ...over,
});

const base = () => ({
  pis: [{ name: "pi1", host: "192.168.1.100", network: { address: "192.168.1.100/24", gateway: "192.168.1.1", dns: ["192.168.1.1"] }, storage: { disk: { label: "pi-im-data" } } }],
});

function problems(raw: Record<string, unknown>, c = ctx()): string[] {
  try {
    parseConfig(raw, c);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

function only(t: any, raw: Record<string, unknown>, key: string, ...words: string[]): void {
  const p = problems(raw);
  const hit = p.find((m) => m.startsWith(key));
  t.truthy(hit, `no problem for ${key}; got ${JSON.stringify(p)}`);
  for (const w of words) t.true(hit!.includes(w), `'${hit}' should mention '${w}'`);
}

test("a minimal office config gets the seed's defaults", (t) => {
  const site: SiteConfig = parseConfig(base(), ctx());
  t.is(site.backups.schedule, "0 2 * * *");
  t.is(site.pis[0]!.storage.mountPoint, "/mnt/storage");
  t.is(site.pis[0]!.network.interface, "eth0");
  t.deepEqual(site.ports, { http: 80, https: 443, xmpp: 5222, ssh: 22 });
  t.is(site.cluster.nodes, 1);
  t.is(site.cluster.maxConnectionsPerAddress, 100);
  t.true(site.host.packages.includes("docker.io") && site.host.packages.includes("sqlite3"));
  t.deepEqual(site.sshKey, { source: "config" });
});

test("site-wide network and storage apply to every Pi, per-Pi values win", (t) => {
  const raw = { network: { gateway: "10.0.0.1", interface: "end0" }, storage: { disk: { label: "x" } },
    pis: [{ name: "a", host: "10.0.0.5", network: { address: "10.0.0.5/24" } }, { name: "b", host: "10.0.0.6", network: { address: "10.0.0.6/24", interface: "eth1" } }] };
  const site = parseConfig(raw, ctx());
  t.is(site.pis[0]!.network.interface, "end0");
  t.is(site.pis[1]!.network.interface, "eth1");
  t.is(site.pis[1]!.network.gateway, "10.0.0.1");
});

test("bad CIDR names the key and shows a valid example", (t) => {
  const raw = base();
  raw.pis[0]!.network.address = "192.168.1.300/24";
  only(t, raw, "pi-im:pis[0].network.address", "192.168.1.300/24", "192.168.1.100/24");
});

test("gateway outside the subnet is refused", (t) => {
  const raw = base();
  raw.pis[0]!.network.gateway = "10.0.0.1";
  only(t, raw, "pi-im:pis[0].network.gateway", "outside");
});

test("a site-wide value is reported under the site-wide key", (t) => {
  const raw: any = { ...base(), network: { dns: ["not-an-ip"] } };
  delete raw.pis[0].network.dns;
  only(t, raw, "pi-im:network.dns[0]", "not an IP");
});

test("unknown interface names are refused with examples", (t) => {
  const raw = base();
  (raw.pis[0]!.network as any).interface = "eth 0/bad";
  only(t, raw, "pi-im:pis[0].network.interface", "eth0");
});

test("port clash names both keys", (t) => {
  only(t, { ...base(), ports: { https: 5222 } }, "pi-im:ports.xmpp", "5222", "pi-im:ports.https");
  only(t, { ...base(), firewall: { extra: [{ port: 443 }] } }, "pi-im:firewall.extra[0].port", "clashes");
});

test("direct TLS is off by default; its port is checked like the others", (t) => {
  t.is(parseConfig(base(), ctx()).ports.xmppDirectTls, undefined);
  t.is(parseConfig({ ...base(), ports: { xmppDirectTls: 5223 } }, ctx()).ports.xmppDirectTls, 5223);
  only(t, { ...base(), ports: { xmppDirectTls: 443 } }, "pi-im:ports.xmppDirectTls", "443", "pi-im:ports.https");
  only(t, { ...base(), ports: { xmppDirectTls: 15323 } }, "pi-im:ports.xmppDirectTls", "loopback ports", "internalPortBase");
});

test("missing SSH key tells how to set it as a secret or a file", (t) => {
  const p = problems(base(), ctx({ secrets: new Set() }));
  const hit = p.find((m) => m.startsWith("pi-im:sshPrivateKey"));
  t.truthy(hit);
  t.regex(hit!, /pulumi config set --secret pi-im:sshPrivateKey/);
  t.regex(hit!, /PI_IM_SSH_KEY_FILE/);
});

test("SSH key from PI_IM_SSH_KEY_FILE or ssh.privateKeyPath (with ${VAR:-default} expansion)", (t) => {
  const none = new Set<string>();
  const seen: string[] = [];
  const c = ctx({ secrets: none, env: { HOME: "/h", PI_IM_SSH_KEY_FILE: "~/k" }, fileExists: (p) => (seen.push(p), true) });
  t.deepEqual(parseConfig(base(), c).sshKey, { source: "file", path: "/h/k" });
  const c2 = ctx({ secrets: none, env: { HOME: "/h" }, fileExists: () => true });
  t.deepEqual(parseConfig({ ...base(), ssh: { privateKeyPath: "${PI_IM_CACHE:-~/.cache/pi-im}/id" } }, c2).sshKey, { source: "file", path: "/h/.cache/pi-im/id" });
  const missing = problems({ ...base(), ssh: { privateKeyPath: "/nope" } }, ctx({ secrets: none, fileExists: () => false }));
  t.true(missing.some((m) => m.startsWith("pi-im:ssh.privateKeyPath") && m.includes("/nope")));
});

test("a secret stored in plain text is refused", (t) => {
  const p = problems(base(), ctx({ plainSecrets: new Set(["sshPrivateKey"]) }));
  t.true(p.some((m) => m.includes("plain text") && m.includes("--secret")));
});

test("nodes < 1 is refused", (t) => {
  only(t, { ...base(), cluster: { nodes: 0 } }, "pi-im:cluster.nodes", "at least 1");
});

test("bad cron schedule says why and gives the seed's example", (t) => {
  only(t, { ...base(), backups: { schedule: "0 25 * * *" } }, "pi-im:backups.schedule", "hour", "0 2 * * *");
  only(t, { ...base(), backups: { schedule: "daily" } }, "pi-im:backups.schedule", "5 fields");
  t.is(cronError("*/15 1-5 * jan-mar mon,fri"), undefined);
  t.is(cronError("@daily"), undefined);
  t.truthy(cronError("0 2 * * 8"));
});

test("an address change that would cut pulumi off is refused unless allowed", (t) => {
  const raw = base();
  raw.pis[0]!.network.address = "192.168.1.50/24";
  only(t, raw, "pi-im:pis[0].network.address", "allowAddressChange", "192.168.1.100");
  (raw.pis[0]!.network as any).allowAddressChange = true;
  t.deepEqual(problems(raw), []);
});

test("unknown keys are named, with a suggestion", (t) => {
  only(t, { ...base(), firwall: {} }, "pi-im:firwall", "Did you mean 'firewall'");
  only(t, { ...base(), firewall: { sshPorts: 1 } }, "pi-im:firewall", "sshPorts");
});

test("wrong types say how to set numbers", (t) => {
  only(t, { ...base(), cluster: { nodes: "two" } }, "pi-im:cluster.nodes", "expected number", "--path");
});

test("storage needs exactly one disk reference; ssh backups need a key; provided TLS needs cert and key", (t) => {
  const raw = base();
  (raw.pis[0]!.storage as any).disk = { label: "a", device: "/dev/sda1" };
  only(t, raw, "pi-im:pis[0].storage.disk", "exactly one");
  only(t, { ...base(), backups: { target: { type: "ssh", host: "nas", user: "b", path: "/b" } } }, "pi-im:backupSshKey", "--secret");
  only(t, { ...base(), tls: { mode: "provided" } }, "pi-im:tlsCert", "--secret");
  only(t, { ...base(), cluster: { images: { server: { name: "x" } } } }, "pi-im:cluster.images.server", "exactly one");
});

test("every problem is reported at once", (t) => {
  const p = problems({ ...base(), cluster: { nodes: 0 }, backups: { schedule: "x" } });
  t.is(p.length, 1, "zod errors come first"); // nodes fails the schema
  const p2 = problems({ ...base(), ports: { http: 443 }, backups: { schedule: "x" } });
  t.true(p2.length >= 2);
});

test("pis must be listed, with unique names", (t) => {
  only(t, {}, "pi-im:pis", "missing");
  const raw = base();
  raw.pis.push({ ...raw.pis[0]!, host: "192.168.1.101", network: { ...raw.pis[0]!.network, address: "192.168.1.101/24" } });
  only(t, raw, "pi-im:pis[1].name", "twice");
});

for (const stack of ["qemu", "office"]) {
  test(`stacks/Pulumi.${stack}.yaml is valid`, (t) => {
    const raw = loadStackFile(path.join(__dirname, "../../stacks", `Pulumi.${stack}.yaml`));
    const site = parseConfig(raw, ctx());
    t.true(site.pis.length >= 1);
    if (stack === "qemu") {
      t.false(site.pis[0]!.network.manage, "the QEMU NIC must not be touched");
      t.is(site.pis[0]!.host, "127.0.0.1");
    } else {
      t.is(site.pis[0]!.network.address, "192.168.1.100/24");
      t.is(site.pis[0]!.network.gateway, "192.168.1.1");
      t.deepEqual(site.pis[0]!.network.dns, ["192.168.1.1"]);
    }
    t.true(fs.existsSync(path.join(__dirname, "../CONFIG.md")));
  });
}

test("cluster.maxConnectionsPerAddress must be a positive whole number", (t) => {
  only(t, { ...base(), cluster: { maxConnectionsPerAddress: 0 } }, "pi-im:cluster.maxConnectionsPerAddress", "at least 1");
  only(t, { ...base(), cluster: { maxConnectionsPerAddress: 2.5 } }, "pi-im:cluster.maxConnectionsPerAddress", "integer");
});
