// The resource graph with Pulumi mocks: what each component creates, what waits for what, and
// that secrets stay secret. (The real engine against the QEMU board is the deploy suite's job.)
import test from "ava";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, isSecretValue, loadStackFile, Recorded, settle, unwrap, valueOf } from "./helpers";

const recorded = installMocks();

// Imported after the mocks are installed.
import { parseConfig, SiteConfig } from "../config";
import { buildSite } from "../site";
import { Network } from "../components/network";

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTESTKEYMATERIAL-do-not-leak\n-----END OPENSSH PRIVATE KEY-----\n";
const BACKUP_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nBACKUPKEY-do-not-leak\n-----END OPENSSH PRIVATE KEY-----\n";

const cache = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-infra-"));
// What tools/images leaves behind: <cache>/images/<arch>/<name>.json naming the tarball.
fs.mkdirSync(path.join(cache, "images", "arm64"), { recursive: true });
const tarball = (img: string) => path.join(cache, "images", "arm64", `${img}-0123456789abcdef.tar.gz`);
for (const [img, tag] of [["im-server", "pi-im/im-server:latest"], ["nginx", "pi-im/nginx:bookworm"]] as const) {
  fs.writeFileSync(tarball(img), `fake ${img} image`);
  fs.writeFileSync(path.join(cache, "images", "arm64", `${img}.json`), JSON.stringify({ name: img, arch: "arm64", tags: [tag], file: tarball(img) }));
}
const env = { HOME: os.homedir(), PI_IM_CACHE: cache };

function site(stack: string, over: Record<string, unknown> = {}, secrets = ["sshPrivateKey"]): SiteConfig {
  const raw = { ...loadStackFile(path.join(__dirname, "../../stacks", `Pulumi.${stack}.yaml`)), ...over };
  return parseConfig(raw, { secrets: new Set(secrets), env, fileExists: () => true });
}

async function build(stack: string, prefix: string, over: Record<string, unknown> = {}, withBackupKey = false) {
  const start = recorded.length;
  const s = site(stack, over, withBackupKey ? ["sshPrivateKey", "backupSshKey"] : ["sshPrivateKey"]);
  s.pis.forEach((p) => (p.name = `${prefix}${p.name}`));
  const built = buildSite(s, { sshPrivateKey: pulumi.secret(SSH_KEY), backupSshKey: withBackupKey ? pulumi.secret(BACKUP_KEY) : undefined }, { stack: `${prefix}${stack}`, env });
  await valueOf(pulumi.output(built.pis));
  await settle();
  return { built, res: recorded.slice(start).filter((r) => r.name.startsWith(prefix) || r.name.startsWith(`tls-${prefix}`)) };
}

const find = (res: Recorded[], name: string) => {
  const r = res.find((x) => x.name === name);
  if (!r) throw new Error(`no resource ${name}; have ${res.map((x) => x.name).join(", ")}`);
  return r;
};
const dependsOn = (res: Recorded[], a: string, b: string) => find(res, a).dependencies.includes(find(res, b).urn);

test.serial("office: every concern is a component with the remote steps it needs", async (t) => {
  const { res } = await build("office", "o1-");
  const types = new Set(res.map((r) => r.type));
  for (const c of ["Host", "Network", "Firewall", "Storage", "Backups", "Tls", "ImCluster"]) t.true(types.has(`pi-im:infra:${c}`), c);
  for (const step of ["host", "network", "storage", "firewall", "tls", "incoming", "server-image", "nginx-image", "cluster", "backups"]) {
    t.is(find(res, `o1-pi1-${step}`).type, "command:remote:Command", step);
  }
  t.is(find(res, "o1-pi1-server-image-copy").type, "command:remote:CopyToRemote");
  t.is(find(res, "tls-o1-office-ca").type, "command:local:Command");
  const network = unwrap(find(res, "o1-pi1-network").raw["create"]) as string;
  t.true(network.length > 100);
  t.regex(Buffer.from(network.match(/'([A-Za-z0-9+/=]+)'/)![1]!, "base64").toString(), /192\.168\.1\.100\/24/);
});

test.serial("office: steps wait for what they need", async (t) => {
  const { res } = await build("office", "o2-");
  t.true(dependsOn(res, "o2-pi1-network", "o2-pi1-host"));
  t.true(dependsOn(res, "o2-pi1-storage", "o2-pi1-host"));
  t.true(dependsOn(res, "o2-pi1-firewall", "o2-pi1-network"));
  t.true(dependsOn(res, "o2-pi1-tls", "o2-pi1-host"));
  t.true(dependsOn(res, "o2-pi1-server-image-copy", "o2-pi1-incoming"));
  t.true(dependsOn(res, "o2-pi1-server-image", "o2-pi1-server-image-copy"));
  for (const dep of ["o2-pi1-storage", "o2-pi1-firewall", "o2-pi1-tls", "o2-pi1-server-image", "o2-pi1-nginx-image"]) {
    t.true(dependsOn(res, "o2-pi1-cluster", dep), `cluster after ${dep}`);
  }
  t.true(dependsOn(res, "o2-pi1-backups", "o2-pi1-cluster"));
  t.true(dependsOn(res, "o2-pi1-backups", "o2-pi1-storage"));
});

test.serial("secrets: the SSH key, CA key and backup key are secret inputs and absent from every plain value and output", async (t) => {
  const { res } = await build("office", "o3-", { backups: { target: { type: "ssh", host: "nas.lan", user: "backup", path: "/srv/pi-im" } } }, true);
  for (const r of res.filter((x) => x.type.startsWith("command:remote"))) {
    t.true(isSecretValue(r.raw["connection"]), `${r.name}: connection (holds the key) must be secret`);
  }
  // Steps whose script holds a key get it on stdin (a failed command's error message quotes the
  // command, never its stdin) and show none of their output in the progress display.
  for (const [step, what] of [["o3-pi1-backups", "the backup key"], ["o3-pi1-tls", "the server key"]] as const) {
    const r = find(res, step);
    t.true(isSecretValue(r.raw["stdin"]), `${step}: ${what} travels on stdin, as a secret`);
    t.regex(unwrap(r.raw["stdin"]), /pi_im_write/, `${step}: stdin is the script`);
    t.regex(unwrap(r.raw["create"]), /^S="\$\(cat\)"/, `${step}: the command reads the script from stdin`);
    t.is(r.raw["logging"], "none", `${step}: its output is not shown`);
  }
  t.true(isSecretValue(find(res, "tls-o3-office-cert").raw["stdin"]), "the CA key reaches openssl as a secret");
  for (const name of ["tls-o3-office-ca", "tls-o3-office-cert"]) t.is(find(res, name).raw["logging"], "none", `${name} prints keys: not shown`);
  // Steps with nothing secret keep upstream's default: their progress is shown.
  for (const step of ["o3-pi1-host", "o3-pi1-cluster", "o3-pi1-firewall"]) t.is(find(res, step).raw["logging"], undefined, step);
  const plain = (v: any): string => JSON.stringify(v, (_k, x) => (isSecretValue(x) ? "<secret>" : x));
  for (const r of res) {
    const text = plain(r.raw) + plain(r.outputs ?? {});
    for (const needle of ["TESTKEYMATERIAL", "BACKUPKEY", "CAKEY", "LEAFKEY", btoa("TESTKEY").slice(0, 6)]) {
      t.false(text.includes(needle), `${r.name} leaks ${needle}`);
    }
  }
  const tls = res.find((r) => r.type === "pi-im:infra:Tls")!;
  t.regex(JSON.stringify(tls.outputs), /BEGIN CERTIFICATE/, "the public CA certificate is a plain output");
});

test.serial("component outputs say what was made", async (t) => {
  const { res } = await build("office", "o4-");
  const out = (type: string) => res.find((r) => r.type === `pi-im:infra:${type}`)!.outputs!;
  t.deepEqual(out("Storage")["directories"], ["/mnt/storage/im_data", "/mnt/storage/backups", "/mnt/storage/.pi-im-staging"]);
  t.is(out("Storage")["disk"], "LABEL=pi-im-data");
  t.deepEqual(out("Firewall")["rules"], ["limit from 192.168.1.0/24 to any port 22 proto tcp", "allow 80/tcp", "allow 443/tcp", "allow 5222/tcp"]);
  t.is(out("Backups")["schedule"], "0 2 * * *");
  t.is(out("Network")["address"], "192.168.1.100/24");
  t.deepEqual(out("ImCluster")["services"], ["node1", "nginx"]);
  t.is(out("ImCluster")["endpoints"]["websocket"], "wss://chat.office.lan/xmpp-websocket");
});

test.serial("the same config gives the same triggers and commands (a second up has 0 changes); a changed file replaces only its step", async (t) => {
  const a = await build("office", "d-");
  const b = await build("office", "d-");
  const c = await build("office", "d-", { firewall: { sshAllowFrom: ["10.0.0.0/8"] } });
  const steps = a.res.filter((r) => r.type === "command:remote:Command");
  t.true(steps.length >= 10);
  const changed: string[] = [];
  for (const s of steps) {
    const twin = b.res.find((r) => r.name === s.name && r.type === s.type)!;
    t.deepEqual(unwrap(twin.raw["triggers"]), unwrap(s.raw["triggers"]), s.name);
    t.is(unwrap(twin.raw["create"]), unwrap(s.raw["create"]), s.name);
    const other = c.res.find((r) => r.name === s.name && r.type === s.type)!;
    if (JSON.stringify(unwrap(other.raw["triggers"])) !== JSON.stringify(unwrap(s.raw["triggers"]))) changed.push(s.name);
  }
  t.deepEqual(changed, ["d-pi1-firewall"]);
});

test.serial("qemu: the NIC is left alone, the USB disk is formatted only if empty, images are shipped tarballs", async (t) => {
  const { res } = await build("qemu", "q1-");
  t.false(res.some((r) => r.name === "q1-qemu-network"), "no network step");
  const net = res.find((r) => r.type === "pi-im:infra:Network")!;
  t.is(net.outputs!["managed"], false);
  const storage = Buffer.from((unwrap(find(res, "q1-qemu-storage").raw["create"]) as string).match(/'([A-Za-z0-9+/=]+)'/)![1]!, "base64").toString();
  t.regex(storage, /FORMAT=1/);
  t.regex(storage, /blkid -o value -s TYPE/);
  const copy = find(res, "q1-qemu-server-image-copy");
  t.regex(JSON.stringify(copy.raw["source"]), /im-server-0123456789abcdef\.tar\.gz/);
  const deploy = Buffer.from((unwrap(find(res, "q1-qemu-cluster").raw["create"]) as string).match(/'([A-Za-z0-9+/=]+)'/)![1]!, "base64").toString();
  t.regex(deploy, /pi_im_write \/etc\/pi-im\/cluster\/docker-compose\.yml/, "the compose file is installed");
  const composeB64 = deploy.match(/docker-compose\.yml 0644 root:root ([A-Za-z0-9+/=]+)/)![1]!;
  const composeText = Buffer.from(composeB64, "base64").toString();
  t.regex(composeText, /image: "pi-im\/im-server:latest"/, "the tag from the image index");
  t.regex(composeText, /image: "pi-im\/nginx:bookworm"/);
  t.regex(unwrap(copy.raw["remotePath"]), /^\/var\/lib\/pi-im\/incoming\/server-[0-9a-f]{16}\.tar\.gz$/);
  const conn = unwrap(copy.raw["connection"]);
  t.is(conn.host, "127.0.0.1");
  t.is(conn.user, "pi");
});

test.serial("a registry site pulls instead of shipping tarballs", async (t) => {
  const { res } = await build("office", "r1-", {
    cluster: { images: { server: { name: "pi-im/im-server:1", ref: "registry.lan/pi-im/im-server:1" }, nginx: { name: "pi-im/nginx:1", ref: "registry.lan/pi-im/nginx:1" } } },
  });
  t.false(res.some((r) => r.type === "command:remote:CopyToRemote"));
  const pull = Buffer.from((unwrap(find(res, "r1-pi1-server-image").raw["create"]) as string).match(/'([A-Za-z0-9+/=]+)'/)![1]!, "base64").toString();
  t.regex(pull, /docker pull registry\.lan\/pi-im\/im-server:1/);
});

test.serial("a new image tarball re-runs the image load and the cluster, nothing else", async (t) => {
  const a = await build("qemu", "i-");
  fs.writeFileSync(tarball("im-server"), "fake im-server image v2");
  const b = await build("qemu", "i-");
  fs.writeFileSync(tarball("im-server"), "fake im-server image");
  const changed = a.res
    .filter((r) => r.type.startsWith("command:remote"))
    .filter((r) => JSON.stringify(unwrap(r.raw["triggers"])) !== JSON.stringify(unwrap(b.res.find((x) => x.name === r.name)!.raw["triggers"])))
    .map((r) => r.name)
    .sort();
  t.deepEqual(changed, ["i-qemu-cluster", "i-qemu-server-image", "i-qemu-server-image-copy"]);
});

test.serial("an explicit tarball path is shipped as is", async (t) => {
  const { res } = await build("qemu", "tb-", { cluster: { images: { server: { name: "pi-im/im-server:9", tarball: tarball("im-server") }, nginx: { index: "${PI_IM_CACHE}/images/{arch}/nginx.json" } } } });
  t.regex(JSON.stringify(find(res, "tb-qemu-server-image-copy").raw["source"]), /im-server-0123456789abcdef/);
  t.regex(JSON.stringify(find(res, "tb-qemu-nginx-image-copy").raw["source"]), /nginx-0123456789abcdef/);
});

test.serial("Network refuses to cut off the address pulumi connects through", (t) => {
  const err = t.throws(() => new Network("guard", {
    pi: "g", connection: { host: "192.168.1.100" }, manage: true, connectHost: "192.168.1.100",
    interface: "eth0", mode: "static", address: "192.168.1.7/24", dns: [], stack: "auto", allowAddressChange: false,
  }));
  t.regex(err!.message, /allowAddressChange/);
});

test.serial("a fleet: every Pi gets its own components, one site certificate names them all", async (t) => {
  const { res } = await build("office", "f-", {
    pis: [
      { name: "a", host: "192.168.1.100", network: { address: "192.168.1.100/24" } },
      { name: "b", host: "192.168.1.101", network: { address: "192.168.1.101/24" } },
    ],
  });
  for (const pi of ["f-a", "f-b"]) for (const s of ["host", "cluster", "tls", "backups"]) t.truthy(find(res, `${pi}-${s}`));
  const cert = find(res, "tls-f-office-cert");
  const script = unwrap(cert.raw["create"]) as string;
  t.regex(script, /DNS:chat\.office\.lan/);
  t.regex(script, /IP:192\.168\.1\.101/);
});
