// XEP-0363 uploads through the cluster: the nodes hand out URLs on nginx's HTTPS port, and
// nginx accepts a request body as large as the largest file the nodes accept. The WebSocket URL
// the nodes name in /.well-known/host-meta (XEP-0156) is on that port too.
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { installMocks, settle } from "./helpers";

installMocks();
// Imported after the mocks are installed.
import { ImCluster } from "../components/im-cluster";

const args = (https: number) => ({
  pi: "up", connection: { host: "192.0.2.1", user: "pi" }, domain: "chat.office.lan", nodes: 2,
  ports: { http: 80, https, xmpp: 5222 },
  images: { server: { name: "s", ref: "pi-im/im-server:1" }, nginx: { name: "n", ref: "pi-im/nginx:1" } },
  dataDir: "/mnt/im", user: "1000:1000", registration: "invite" as const, internalPortBase: 15000,
  nodeMemory: "768m", nodeCpus: 2, nginxMemory: "128m",
});

/** The value following `flag` in every node's command line. */
const flagValues = (compose: string, flag: string): string[] =>
  [...compose.matchAll(new RegExp(`"${flag}", "([^"]*)"`, "g"))].map((m) => m[1]!);

test.serial("nodes get the upload and WebSocket URLs on nginx's HTTPS port, and the same size limit as nginx", async (t) => {
  const standard = new ImCluster("up443", args(443));
  const other = new ImCluster("up8443", { ...args(8443), pi: "up2" });
  await settle();
  t.deepEqual(flagValues(standard.composeFile, "--upload-url"), ["https://chat.office.lan/upload", "https://chat.office.lan/upload"]);
  t.deepEqual(flagValues(other.composeFile, "--upload-url"), ["https://chat.office.lan:8443/upload", "https://chat.office.lan:8443/upload"]);
  t.deepEqual(flagValues(standard.composeFile, "--websocket-url"), ["wss://chat.office.lan/xmpp-websocket", "wss://chat.office.lan/xmpp-websocket"]);
  t.deepEqual(flagValues(other.composeFile, "--websocket-url"), ["wss://chat.office.lan:8443/xmpp-websocket", "wss://chat.office.lan:8443/xmpp-websocket"]);
  const max = flagValues(standard.composeFile, "--upload-max-file-size");
  t.is(max.length, 2);
  const body = /client_max_body_size (\d+);/.exec(standard.nginxConf)?.[1];
  t.is(body, max[0], "nginx passes every upload a node accepts");
  t.is(Number(max[0]), 100 * 1024 * 1024, "the IM server's own default");

  // nginx itself accepts the rendered limit.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-upload-nginx-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=chat.office.lan", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`], { stdio: "ignore" });
  const conf = standard.nginxConf.replace(/\/tls\//g, `${dir}/`).replace(/^pid .*$/m, `pid ${dir}/nginx.pid;`);
  fs.writeFileSync(`${dir}/nginx.conf`, conf);
  const r = spawnSync("nginx", ["-t", "-q", "-e", "stderr", "-p", dir, "-c", `${dir}/nginx.conf`], { encoding: "utf8" });
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
});
