// Rendered files checked by the real tools: nginx -t, docker-compose config, shellcheck, openssl,
// and the stamp logic of remote steps run by bash.
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderNginxConf } from "../render/nginx";
import { nodePorts, renderCompose, srvRecords, ComposeOptions, toYaml } from "../render/compose";
import { renderBackupCron, renderBackupScript, renderRestoreScript, BackupOptions } from "../render/backup";
import { renderHostSetup, renderHostUndo, renderSshdHardening } from "../render/host";
import { renderNetworkScript, renderNetworkUndo, renderNmKeyfile, renderIfupdownStanza, renderNetworkdUnit, renderDhcpcdBlock, NetworkOptions } from "../render/network";
import { renderFirewallScript, renderFirewallUndo, firewallRules, FirewallOptions } from "../render/firewall";
import { renderFstabLine, renderStorageScript, renderStorageUndo } from "../render/storage";
import {
  renderAdminCommand, renderClusterDeploy, renderClusterUndo, renderComposeWrapper, renderImageLoad, renderImagePull, renderImageRemove, renderTlsInstall, renderTlsUndo,
} from "../render/cluster";
import { pemBlocks, renderCaScript, renderLeafScript } from "../render/tls";
import { asRoot, stampedScripts } from "../components/step";

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), `pi-im-${p}-`));

function run(cmd: string, args: string[], opts: { input?: string; cwd?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", input: opts.input, cwd: opts.cwd });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const compose: ComposeOptions = {
  domain: "chat.office.lan", nodes: 2, serverImage: "pi-im/im-server:latest", nginxImage: "pi-im/nginx:latest",
  dataDir: "/mnt/storage/im_data", tlsDir: "/etc/pi-im/tls", nginxConfPath: "/etc/pi-im/cluster/nginx.conf", user: "1000:1000",
  registration: "invite", internalPortBase: 15000, nodeMemory: "768m", nodeCpus: 2, nginxMemory: "128m", httpPort: 80, httpsPort: 443,
};

export function makeCert(dir: string): void {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=chat.office.lan", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`], { stdio: "ignore" });
}

test("nginx.conf passes nginx -t with the stream module, for 1 and 3 nodes", (t) => {
  const dir = tmp("nginx");
  makeCert(dir);
  for (const nodes of [1, 3]) {
    const conf = renderNginxConf({
      domain: "chat.office.lan", ports: { http: 80, https: 443, xmpp: 5222 }, tlsDir: dir, pidFile: `${dir}/nginx.pid`,
      upstreams: Array.from({ length: nodes }, (_, i) => ({ host: "127.0.0.1", httpPort: 15280 + i, c2sPort: 15222 + i })),
    });
    t.regex(conf, /load_module \/usr\/lib\/nginx\/modules\/ngx_stream_module\.so;/);
    fs.writeFileSync(`${dir}/nginx.conf`, conf);
    const r = run("nginx", ["-t", "-q", "-e", "stderr", "-p", dir, "-c", `${dir}/nginx.conf`]);
    t.is(r.code, 0, r.out);
    t.is((conf.match(/server 127\.0\.0\.1:152\d\d max_fails/g) ?? []).length, nodes * 2);
  }
  // Direct TLS (XEP-0368): a second stream server passing the port through to the nodes.
  const withTls = renderNginxConf({
    domain: "chat.office.lan", ports: { http: 80, https: 443, xmpp: 5222, xmppDirectTls: 5223 }, tlsDir: dir, pidFile: `${dir}/nginx.pid`,
    upstreams: nodePorts(2, 15000).map((p) => ({ host: "127.0.0.1", httpPort: p.httpPort, c2sPort: p.c2sPort, c2sDirectTlsPort: p.c2sDirectTlsPort })),
  });
  fs.writeFileSync(`${dir}/nginx.conf`, withTls);
  t.is(run("nginx", ["-t", "-q", "-e", "stderr", "-p", dir, "-c", `${dir}/nginx.conf`]).code, 0);
  t.regex(withTls, /upstream im_c2s_tls \{\n    least_conn;\n    server 127\.0\.0\.1:15323 [^\n]*\n    server 127\.0\.0\.1:15324 /);
  t.regex(withTls, /listen 5223;/);
  // The tool really checks: a missing certificate fails.
  fs.writeFileSync(`${dir}/bad.conf`, renderNginxConf({ domain: "x", ports: { http: 80, https: 443, xmpp: 5222 }, tlsDir: `${dir}/none`, pidFile: `${dir}/p`, upstreams: [{ host: "127.0.0.1", httpPort: 1, c2sPort: 2 }] }));
  t.not(run("nginx", ["-t", "-q", "-e", "stderr", "-p", dir, "-c", `${dir}/bad.conf`]).code, 0);
});

test("compose file is accepted by docker-compose 1.29 (and docker compose v2 where present)", (t) => {
  const dir = tmp("compose");
  fs.writeFileSync(`${dir}/docker-compose.yml`, renderCompose(compose));
  const tools: Array<[string, string[]]> = [["docker-compose", ["--compatibility", "-f", "docker-compose.yml", "config"]]];
  if (run("docker", ["compose", "version"]).code === 0) tools.push(["docker", ["compose", "-f", "docker-compose.yml", "config"]]);
  for (const [cmd, args] of tools) {
    const r = run(cmd, args, { cwd: dir });
    t.is(r.code, 0, `${cmd}: ${r.out}`);
    t.regex(r.out, /node2:/);
    t.regex(r.out, /network_mode: host/);
    t.regex(r.out, /127\.0\.0\.1/);
    t.regex(r.out, /memory: 768M/);
  }
  fs.writeFileSync(`${dir}/docker-compose.yml`, renderCompose(compose).replace("services:", "servces:"));
  t.not(run("docker-compose", ["-f", "docker-compose.yml", "config", "-q"], { cwd: dir }).code, 0, "the tool rejects a broken file");
});

test("direct TLS: nodes get their own port, the firewall opens the public one, DNS gets an SRV record for it", (t) => {
  t.false(renderCompose(compose).includes("--c2s-direct-tls-port"), "off unless asked");
  const doc = renderCompose({ ...compose, directTls: true });
  t.regex(doc, /--c2s-direct-tls-port[\s\S]*?15323/);
  t.regex(doc, /--c2s-direct-tls-port[\s\S]*?15324/);
  const rules = firewallRules({ ...fw, ports: { ...fw.ports, xmppDirectTls: 5223 } }).map((r) => r.rule);
  t.true(rules.includes("allow 5223/tcp"));
  t.false(firewallRules(fw).some((r) => r.rule.includes("5223")));
  t.deepEqual(srvRecords("chat.office.lan", { xmpp: 5222, xmppDirectTls: 5223 }), [
    "_xmpps-client._tcp.chat.office.lan. 3600 IN SRV 0 0 5223 chat.office.lan.",
    "_xmpp-client._tcp.chat.office.lan. 3600 IN SRV 5 0 5222 chat.office.lan.",
  ]);
  t.deepEqual(srvRecords("chat.office.lan", { xmpp: 5222 }), ["_xmpp-client._tcp.chat.office.lan. 3600 IN SRV 5 0 5222 chat.office.lan."]);
});

test("PROXY protocol: every node is told to expect it, and both of nginx's passthroughs (c2s, direct TLS) send it", (t) => {
  const doc = renderCompose({ ...compose, nodes: 3, directTls: true });
  const commands = [...doc.matchAll(/^    command: \[(.*)\]$/gm)].map((m) => m[1]!);
  t.is(commands.length, 4, "three nodes and nginx");
  for (const c of commands.filter((x) => x.includes("--domain"))) t.regex(c, /"--proxy-protocol", "true"/);
  t.false(doc.includes("--max-connections-per-address"), "the server's own default unless the stack sets one");
  t.regex(renderCompose({ ...compose, maxConnectionsPerAddress: 5000 }), /"--max-connections-per-address", "5000"/);
  const conf = renderNginxConf({
    domain: "chat.office.lan", ports: { http: 80, https: 443, xmpp: 5222, xmppDirectTls: 5223 }, tlsDir: "/tls",
    upstreams: nodePorts(3, 15000).map((p) => ({ host: "127.0.0.1", httpPort: p.httpPort, c2sPort: p.c2sPort, c2sDirectTlsPort: p.c2sDirectTlsPort })),
  });
  const stream = conf.slice(conf.indexOf("\nstream {"));
  const servers = stream.split("server {").slice(1);
  t.is(servers.length, 2);
  for (const block of servers) t.regex(block, /^\s*proxy_protocol on;$/m, block);
  t.false(conf.slice(0, conf.indexOf("\nstream {")).includes("proxy_protocol"), "HTTP carries X-Real-IP instead");
});

test("compose values with $ are escaped for Compose interpolation", (t) => {
  t.is(toYaml({ a: "x$y" }), 'a: "x$$y"\n');
});

const backupOpts = (d: string, target: BackupOptions["target"] = { type: "local", path: `${d}/target` }): BackupOptions => ({
  dataDir: `${d}/data`, configDirs: [`${d}/conf`], target, keep: 2, maxAgeDays: 30, includeUploads: true,
  stagingDir: `${d}/staging`, statusFile: `${d}/status.json`, logFile: `${d}/backup.log`, lockFile: `${d}/lock`, dataOwner: "0:0",
});

const net: NetworkOptions = { interface: "eth0", mode: "static", address: "192.168.1.100/24", gateway: "192.168.1.1", dns: ["192.168.1.1"], stack: "auto", allowAddressChange: false };
const fw: FirewallOptions = { sshPort: 22, sshRateLimit: true, sshAllowFrom: ["192.168.1.0/24"], trusted: ["10.0.2.2/32"], ports: { http: 80, https: 443, xmpp: 5222 }, extra: [{ port: 9100, proto: "tcp", from: "192.168.1.0/24", comment: "metrics" }], logging: "low" };

test("every rendered script passes shellcheck", (t) => {
  const d = "/srv/x";
  const stamped = stampedScripts("pi1-firewall", renderFirewallScript(fw), renderFirewallUndo(), "abc123");
  const scripts: Record<string, string> = {
    backup: renderBackupScript(backupOpts(d)),
    "backup-ssh": renderBackupScript(backupOpts(d, { type: "ssh", host: "nas", port: 22, user: "b", path: "/b", keyFile: "/k", knownHostsFile: "/kh" })),
    restore: renderRestoreScript({ ...backupOpts(d), stopCommand: "pi-im-compose stop", startCommand: "pi-im-compose up -d" }),
    host: renderHostSetup({ hostname: "pi-im-1", timezone: "Europe/Berlin", locale: "en_GB.UTF-8", adminUser: "pi", authorizedKeys: ["ssh-ed25519 AAAA x"], installPackages: true, packages: ["docker.io"], unattendedUpgrades: true, sshHardening: true }),
    "host-minimal": renderHostSetup({ hostname: "h", timezone: "Etc/UTC", locale: "C.UTF-8", adminUser: "pi", authorizedKeys: [], installPackages: false, packages: [], unattendedUpgrades: false, sshHardening: false }),
    "host-undo": renderHostUndo(),
    network: renderNetworkScript(net),
    "network-dhcp": renderNetworkScript({ ...net, mode: "dhcp", address: undefined, stack: "networkmanager" }),
    "network-undo": renderNetworkUndo("eth0"),
    firewall: renderFirewallScript(fw),
    "firewall-undo": renderFirewallUndo(),
    storage: renderStorageScript({ disk: { label: "pi-im-data" }, mountPoint: "/mnt/storage", fsType: "ext4", format: true, formatLabel: "pi-im-data", dirs: [{ path: "im_data", owner: "1000:1000", mode: "0750" }] }),
    "storage-undo": renderStorageUndo("/mnt/storage"),
    "cluster-deploy": renderClusterDeploy({ compose: renderCompose(compose), nginxConf: "x", services: ["node1", "nginx"], healthTimeout: 60, domain: "chat.office.lan", adminService: "node1" }),
    "admin-command": renderAdminCommand("chat.office.lan", "node1"),
    "cluster-undo": renderClusterUndo(),
    "compose-wrapper": renderComposeWrapper(),
    "image-load": renderImageLoad("/var/lib/pi-im/incoming/server.tar.gz", "pi-im/im-server:latest"),
    "image-pull": renderImagePull("registry.lan/pi-im/im-server:1"),
    "image-remove": renderImageRemove("pi-im/im-server:latest"),
    "tls-install": renderTlsInstall({ cert: "C", key: "K", ca: "A", group: "1000" }),
    "tls-undo": renderTlsUndo(),
    "stamp-create": stamped.create,
    "stamp-delete": stamped.del,
    "as-root": asRoot("echo hi", "label"),
  };
  const dir = tmp("shellcheck");
  for (const [name, text] of Object.entries(scripts)) {
    const file = `${dir}/${name}.sh`;
    fs.writeFileSync(file, text);
    const r = run("shellcheck", ["-s", "bash", "-S", "warning", file]);
    t.is(r.code, 0, `${name}:\n${r.out}`);
  }
  for (const [name, text] of Object.entries({ ca: renderCaScript("office"), leaf: renderLeafScript("chat.office.lan", ["chat.office.lan", "192.168.1.100"], 825) })) {
    fs.writeFileSync(`${dir}/${name}.sh`, text);
    const r = run("shellcheck", ["-s", "sh", "-S", "warning", `${dir}/${name}.sh`]);
    t.is(r.code, 0, `${name}:\n${r.out}`);
  }
  t.is(run("bash", ["-n", `${dir}/backup.sh`]).code, 0);
});

test("TLS scripts make a CA once and a server certificate it signs, with every name", (t) => {
  const ca = execFileSync("sh", ["-c", renderCaScript("office")], { encoding: "utf8" });
  const caPem = pemBlocks(ca);
  t.is(caPem.certs.length, 1);
  t.regex(caPem.key ?? "", /PRIVATE KEY/);
  const leaf = execFileSync("sh", ["-c", renderLeafScript("chat.office.lan", ["chat.office.lan", "pi-im-1.local", "192.168.1.100"], 825)], { input: ca, encoding: "utf8" });
  const leafPem = pemBlocks(leaf);
  t.is(leafPem.certs.length, 2, "chain: server cert then CA");
  const dir = tmp("tls");
  fs.writeFileSync(`${dir}/ca.pem`, caPem.certs[0]!);
  fs.writeFileSync(`${dir}/leaf.pem`, leafPem.certs[0]!);
  t.is(run("openssl", ["verify", "-CAfile", `${dir}/ca.pem`, `${dir}/leaf.pem`]).code, 0);
  const text = run("openssl", ["x509", "-in", `${dir}/leaf.pem`, "-noout", "-text"]).out;
  t.regex(text, /DNS:chat\.office\.lan/);
  t.regex(text, /DNS:pi-im-1\.local/);
  t.regex(text, /IP Address:192\.168\.1\.100/);
  t.not(leafPem.key, caPem.key);
});

test("stamps: a replaced step's old delete leaves the new version alone; destroy undoes", (t) => {
  const dir = tmp("stamp");
  const file = `${dir}/installed`;
  const v1 = stampedScripts("s", `echo v1 > ${file}`, `rm -f ${file}`, "h1", `${dir}/stamps`);
  const v2 = stampedScripts("s", `echo v2 > ${file}`, `rm -f ${file}`, "h2", `${dir}/stamps`);
  execFileSync("bash", ["-c", asRoot(v1.create, "s")]);
  execFileSync("bash", ["-c", asRoot(v2.create, "s")]); // replacement: create the new one first...
  execFileSync("bash", ["-c", asRoot(v1.del, "s")], { stdio: "ignore" }); // ...then delete the old one
  t.is(fs.readFileSync(file, "utf8"), "v2\n", "the old version's delete must not undo the new one");
  execFileSync("bash", ["-c", asRoot(v2.del, "s")]); // destroy
  t.false(fs.existsSync(file));
  t.false(fs.existsSync(`${dir}/stamps/s`));
});

test("network files per stack carry the seed's static address", (t) => {
  t.regex(renderNmKeyfile(net), /address1=192\.168\.1\.100\/24,192\.168\.1\.1/);
  t.regex(renderNmKeyfile(net), /dns=192\.168\.1\.1;/);
  t.regex(renderDhcpcdBlock(net), /static ip_address=192\.168\.1\.100\/24\nstatic routers=192\.168\.1\.1/);
  t.regex(renderNetworkdUnit(net), /Address=192\.168\.1\.100\/24\nGateway=192\.168\.1\.1\nDNS=192\.168\.1\.1/);
  t.regex(renderIfupdownStanza(net), /address 192\.168\.1\.100\n\s+netmask 255\.255\.255\.0\n\s+gateway 192\.168\.1\.1/);
  t.regex(renderNetworkScript(net), /WANT_ADDR=192\.168\.1\.100/);
});

test("firewall: trusted rules come first, every rule is tagged, ssh is rate-limited", (t) => {
  const rules = firewallRules(fw);
  t.is(rules[0]!.rule, "allow from 10.0.2.2/32 to any port 22 proto tcp");
  t.true(rules[0]!.first);
  t.truthy(rules.find((r) => r.rule === "limit from 192.168.1.0/24 to any port 22 proto tcp"));
  t.truthy(rules.find((r) => r.rule === "allow from 192.168.1.0/24 to any port 9100 proto tcp"));
  const script = renderFirewallScript(fw);
  t.regex(script, /ufw default deny incoming/);
  t.regex(script, /ufw --force enable/);
  t.is((script.match(/\|pi-im:[\w-]+-[0-9a-f]{8}\|/g) ?? []).length, rules.length);
});

// ufw as a file-backed fake: `show added` and `status verbose` read the state, every other call
// is logged and changes it. Enough to see what the script asks of ufw on a first and a later run.
const FAKE_UFW = `#!/bin/bash
S=$UFW_STATE
touch "$S/rules" "$S/calls"
case "$*" in
  "show added") echo "Added user rules (see 'ufw status' for running firewall):"; sed 's/^/ufw /' "$S/rules"; exit 0;;
  "status verbose")
    if [ -f "$S/active" ]; then echo "Status: active"; cat "$S/logging" 2>/dev/null; cat "$S/defaults" 2>/dev/null; else echo "Status: inactive"; fi; exit 0;;
esac
echo "$*" >> "$S/calls"
case "$1" in
  default) echo "Default: deny (incoming), allow (outgoing), disabled (routed)" > "$S/defaults";;
  logging) echo "Logging: on ($2)" > "$S/logging";;
  --force) if [ "$2" = enable ]; then touch "$S/active"; else rm -f "$S/active"; fi;;
  insert) shift 2; echo "$*" | sed "s/ comment \\(.*\\)/ comment '\\1'/" >> "$S/rules";;
  delete) shift; grep -vF "$*" "$S/rules" > "$S/r2" || true; mv "$S/r2" "$S/rules";;
  *) echo "$*" | sed "s/ comment \\(.*\\)/ comment '\\1'/" >> "$S/rules";;
esac
`;

test("firewall script: the first run sets everything up; a later run with an added port calls ufw for that rule only", (t) => {
  const dir = tmp("ufw");
  fs.mkdirSync(`${dir}/bin`);
  fs.writeFileSync(`${dir}/bin/ufw`, FAKE_UFW, { mode: 0o755 });
  const env = { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, UFW_STATE: dir, SSH_CONNECTION: "" };
  const apply = (o: FirewallOptions) => {
    fs.writeFileSync(`${dir}/calls`, "");
    const r = spawnSync("bash", ["-c", renderFirewallScript(o)], { encoding: "utf8", env });
    t.is(r.status, 0, r.stderr);
    return fs.readFileSync(`${dir}/calls`, "utf8").trim().split("\n").filter(Boolean);
  };
  const first = apply(fw);
  t.is(first.filter((c) => /comment pi-im:/.test(c)).length, firewallRules(fw).length, first.join("\n"));
  t.true(first.includes("default deny incoming") && first.includes("--force enable") && first.includes("logging low"), first.join("\n"));
  t.deepEqual(apply(fw), [], "nothing changes when nothing was changed");
  const more = { ...fw, extra: [...fw.extra, { port: 8443, proto: "tcp" as const, comment: "alt https" }] };
  const second = apply(more);
  t.is(second.length, 1, second.join("\n"));
  t.regex(second[0]!, /^allow 8443\/tcp comment pi-im:x1-/);
  const third = apply(fw);
  t.is(third.length, 1, third.join("\n"));
  t.regex(third[0]!, /^delete allow 8443\/tcp$/, "the rule no longer declared is removed, nothing else");
  // Destroy removes every rule of ours and, with none of anyone else's left, disables ufw; a
  // second destroy (nothing of ours left) succeeds too.
  for (let i = 0; i < 2; i++) {
    const r = spawnSync("bash", ["-c", renderFirewallUndo()], { encoding: "utf8", env });
    t.is(r.status, 0, r.stderr);
    t.is(fs.readFileSync(`${dir}/rules`, "utf8").trim(), "");
    t.false(fs.existsSync(`${dir}/active`), "ufw is disabled");
  }
});

test("fstab line, sshd drop-in and cron line", (t) => {
  t.is(renderFstabLine({ label: "pi-im-data" }, "/mnt/storage"), "LABEL=pi-im-data /mnt/storage ext4 defaults,nofail,noatime,x-systemd.device-timeout=120s 0 2 # pi-im");
  t.regex(renderFstabLine({ uuid: "0a1b2c3d-1111-2222-3333-444455556666" }, "/mnt/storage"), /^UUID=0a1b/);
  const sshd = renderSshdHardening("pi");
  t.regex(sshd, /^PasswordAuthentication no$/m);
  t.regex(sshd, /^PermitRootLogin no$/m);
  const dir = tmp("sshd");
  fs.writeFileSync(`${dir}/sshd_config`, `${sshd}HostKey ${dir}/hostkey\n`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/hostkey`]);
  const r = run("/usr/sbin/sshd", ["-t", "-f", `${dir}/sshd_config`]);
  t.is(r.code, 0, r.out);
  t.is(renderBackupCron("0 2 * * *").split("\n").find((l) => l.startsWith("0 2")), "0 2 * * * root /usr/local/sbin/pi-im-backup --quiet");
});
