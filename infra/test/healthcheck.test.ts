// The IM nodes' container health check as Docker runs it: taken from the rendered compose file
// through the real docker-compose (so its $ escaping is what Docker gets), then run by bash against
// small HTTP servers (200, 503, silence, nothing listening) and inside the pi-im/node image; and the
// deploy's wait for healthy containers, which on failure shows the health checks' output.
import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { ComposeOptions, HEALTHCHECK, healthProbe, nodePorts, renderCompose } from "../render/compose";
import { ADMIN_COMMAND, CLUSTER_DIR, COMPOSE_WRAPPER, renderClusterDeploy } from "../render/cluster";
import { HEALTH_TIMEOUT } from "../components/im-cluster";

const compose: ComposeOptions = {
  domain: "chat.office.lan", nodes: 2, serverImage: "pi-im/im-server:latest", nginxImage: "pi-im/nginx:latest",
  dataDir: "/mnt/storage/im_data", tlsDir: "/etc/pi-im/tls", nginxConfPath: "/etc/pi-im/cluster/nginx.conf", user: "1000:1000",
  registration: "invite", internalPortBase: 15000, nodeMemory: "768m", nodeCpus: 2, nginxMemory: "128m", httpPort: 80, httpsPort: 443,
};

interface Healthcheck { test: string[]; interval: string; timeout: string; retries: number; start_period: string }

let fromCompose: Record<string, Healthcheck> | undefined;

/** The services' health checks as docker-compose reads the rendered file. */
function healthchecksFromCompose(): Record<string, Healthcheck> {
  if (fromCompose) return fromCompose;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-health-"));
  fs.writeFileSync(`${dir}/docker-compose.yml`, renderCompose(compose));
  const r = spawnSync("docker-compose", ["--compatibility", "-f", "docker-compose.yml", "config"], { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`docker-compose config: ${r.stderr}`);
  const doc = parse(r.stdout) as { services: Record<string, { healthcheck: Healthcheck }> };
  // `config` prints a compose file again, so a literal $ comes out as $$, as it went in; Docker gets $.
  const unescape = (hc: Healthcheck): Healthcheck => ({ ...hc, test: hc.test.map((x) => x.replaceAll("$$", "$")) });
  return (fromCompose = Object.fromEntries(Object.entries(doc.services).map(([k, v]) => [k, unescape(v.healthcheck)])));
}

/** Compose durations ("15s", "3m", "1m30s") in seconds. */
const seconds = (d: string) => [...d.matchAll(/(\d+)(h|m|s)/g)].reduce((n, [, v, u]) => n + Number(v) * (u === "h" ? 3600 : u === "m" ? 60 : 1), 0);

function listen(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ port: number; urls: string[]; close(): void }> {
  const urls: string[] = [];
  const server = http.createServer((req, res) => { urls.push(req.url ?? ""); handler(req, res); });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, urls, close: () => server.close() })));
}

/** Runs the probe with bash (asynchronously: the servers answering it live in this process). */
function probe(script: string): Promise<{ code: number; out: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], { timeout: 30_000 });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code: code ?? -1, out, ms: Date.now() - t0 }));
  });
}

/** The probe of a node on `port`, with the script docker-compose produced for node1 (port swapped). */
function probeFor(port: number): string {
  const [node1] = nodePorts(2, compose.internalPortBase);
  const script = healthchecksFromCompose()["node1"]!.test[3]!;
  return script.replaceAll(String(node1!.httpPort), String(port));
}

test("the nodes' health check is a bash /dev/tcp probe of /health, not a Node.js start, with timing for a slow Pi", (t) => {
  const checks = healthchecksFromCompose();
  for (const [i, p] of nodePorts(2, compose.internalPortBase).entries()) {
    const hc = checks[`node${i + 1}`]!;
    t.deepEqual(hc.test.slice(0, 3), ["CMD", "bash", "-c"], JSON.stringify(hc.test));
    t.is(hc.test[3], healthProbe(p.httpPort), "docker-compose hands Docker exactly the rendered script ($ escaped for Compose)");
    t.regex(hc.test[3]!, new RegExp(`/dev/tcp/127\\.0\\.0\\.1/${p.httpPort}`));
    t.false(hc.test.join(" ").includes("node -e"), "no Node.js start per check");
    t.is(seconds(hc.interval), seconds(HEALTHCHECK.interval));
    t.is(seconds(hc.timeout), seconds(HEALTHCHECK.timeout));
    t.is(seconds(hc.start_period), seconds(HEALTHCHECK.startPeriod));
  }
  t.true(seconds(HEALTHCHECK.timeout) > HEALTHCHECK.readTimeoutSeconds, "the probe gives up before Docker kills it, so the log says why");
  t.true(seconds(HEALTHCHECK.timeout) >= 10 && seconds(HEALTHCHECK.startPeriod) >= 120, "room for a board where docker exec alone takes ~6 s");
});

test("the probe passes on 200 from /health and fails on 503, saying why", async (t) => {
  let status = 200;
  const node = await listen((_req, res) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(status === 200 ? { status: "ok" } : { status: "storage-failing", storage: "disk full: free space on /mnt/storage" }));
  });
  try {
    const script = probeFor(node.port);
    const ok = await probe(script);
    t.is(ok.code, 0, ok.out);
    t.deepEqual(node.urls, ["/health"], "it asks /health");
    status = 503;
    const failing = await probe(script);
    t.is(failing.code, 1, failing.out);
    t.regex(failing.out, /\/health: HTTP\/1\.[01] 503 Service Unavailable \{"status":"storage-failing","storage":"disk full: free space on \/mnt\/storage"\}/);
    status = 200;
    t.is((await probe(script)).code, 0, "healthy again");
  } finally {
    node.close();
  }
});

test("the probe fails when nothing listens, on any other status, and when the node does not answer in time", async (t) => {
  const closed = await listen(() => {});
  closed.close();
  const none = await probe(probeFor(closed.port));
  t.is(none.code, 1);
  t.regex(none.out, /nothing listens on 127\.0\.0\.1:\d+/);

  const redirect = await listen((_req, res) => { res.writeHead(301, { location: "/x" }); res.end(); });
  // Not HTTP/1.x 200 to a careless prefix match: written raw, as Node's server refuses such codes.
  const odd = net.createServer((s) => s.once("data", () => s.end("HTTP/1.1 2000 OK\r\n\r\n")));
  await new Promise<void>((r) => odd.listen(0, "127.0.0.1", r));
  try {
    t.is((await probe(probeFor(redirect.port))).code, 1, "301 is not healthy");
    t.is((await probe(probeFor((odd.address() as net.AddressInfo).port))).code, 1, "2000 is not 200");
  } finally {
    redirect.close();
    odd.close();
  }

  // A node that accepts but never answers: the probe stops after its read timeout.
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  try {
    const port = (silent.address() as net.AddressInfo).port;
    const r = await probe(healthProbe(port, 1));
    t.is(r.code, 1);
    t.regex(r.out, /no answer within 1s/);
    t.true(r.ms < 5000, `gave up after ${r.ms} ms`);
  } finally {
    sockets.forEach((s) => s.destroy());
    silent.close();
  }
});

test("the probe runs in the pi-im/node image the nodes are built on (bash and /dev/tcp are there)", (t) => {
  const docker = (...args: string[]) => spawnSync("docker", args, { encoding: "utf8" });
  if (docker("info").status !== 0) return t.fail("docker is not running: run `npm run setup` (testing/run.sh starts it)");
  const arch = process.arch === "arm64" ? "arm64" : "amd64";
  // The index tools/images writes next to the tarball (set-up builds the image for this machine too).
  const index = path.join(process.env["PI_IM_CACHE"] || path.join(os.homedir(), ".cache/pi-im"), "images", arch, "node.json");
  if (!fs.existsSync(index)) return t.fail(`${index} is missing: run \`npm run setup\` (or tools/images/build.sh --arch ${arch} --only node)`);
  const { file, tags } = JSON.parse(fs.readFileSync(index, "utf8")) as { file: string; tags: string[] };
  const src = { name: tags[0]!, tarball: file };
  if (docker("image", "inspect", src.name).status !== 0) {
    const load = spawnSync("sh", ["-c", `gzip -dc '${src.tarball}' | docker load`], { encoding: "utf8" });
    t.is(load.status, 0, load.stderr);
  }
  const port = 15280;
  // A stand-in node inside the container answering /health with the status given; then the probe.
  const inImage = (status: number) => {
    const server = `require('http').createServer((q,s)=>{s.writeHead(q.url==='/health'?${status}:404);s.end('{}')}).listen(${port},'127.0.0.1')`;
    const script = `node -e "${server}" & for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && break; sleep 0.1; done\n${healthProbe(port)}`;
    return docker("run", "--rm", "--network", "none", "--user", "1000:1000", "--entrypoint", "bash", src.name, "-c", script);
  };
  const ok = inImage(200);
  t.is(ok.status, 0, `${ok.stdout}${ok.stderr}`);
  const bad = inImage(503);
  t.is(bad.status, 1, `${bad.stdout}${bad.stderr}`);
  t.regex(bad.stdout, /\/health: HTTP\/1\.1 503 Service Unavailable \{\}/);
});

// docker as the deploy script sees it on a Pi whose node never turns healthy: compose answers,
// inspect says "unhealthy" and, asked for the health log, gives the probe's own output.
const FAKE_DOCKER = `#!/bin/bash
if [ "$1" = compose ]; then
  [ "$2" = version ] && exit 0
  shift 5 # compose -p pi-im -f docker-compose.yml
  case "$1" in ps) echo "cid-$3" ;; logs) echo "log line of $4" ;; esac
  exit 0
fi
if [ "$1" = inspect ]; then
  case "$3" in
    *range*) echo "2026-01-01T00:00:00Z exit 1: /health: HTTP/1.1 503 Service Unavailable {\\"status\\":\\"storage-failing\\"}" ;;
    *) echo unhealthy ;;
  esac
  exit 0
fi
exit 0
`;

test("a deploy whose node never turns healthy fails with the node's log and its health checks' output", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-deploy-wait-"));
  fs.mkdirSync(`${dir}/bin`);
  fs.writeFileSync(`${dir}/bin/docker`, FAKE_DOCKER, { mode: 0o755 });
  // The rendered deploy, with the Pi's paths moved into the temp folder (also inside the files it writes).
  const moves: Array<[string, string]> = [[COMPOSE_WRAPPER, `${dir}/pi-im-compose`], [ADMIN_COMMAND, `${dir}/pi-im-admin`], [CLUSTER_DIR, `${dir}/cluster`]];
  const move = (text: string) => moves.reduce((x, [from, to]) => x.replaceAll(from, to), text);
  const script = move(renderClusterDeploy({ compose: renderCompose(compose), nginxConf: "events {}\n", services: ["node1", "nginx"], healthTimeout: 0, domain: "chat.office.lan", adminService: "node1" }))
    .replace(/^(pi_im_write \S+ \S+ \S+ )([A-Za-z0-9+/=]+)$/gm, (_m, head: string, b64: string) => head + Buffer.from(move(Buffer.from(b64, "base64").toString()), "utf8").toString("base64"));
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, PATH: `${dir}/bin:${process.env["PATH"]}` } });
  t.not(r.status, 0);
  t.regex(r.stderr, /log line of node1/, "the node's log");
  t.regex(r.stderr, /node1 health checks \(docker inspect cid-node1, oldest first\):\n.*exit 1: \/health: HTTP\/1\.1 503 Service Unavailable \{"status":"storage-failing"\}/, r.stderr);
  t.regex(r.stderr, /ERROR: node1 is unhealthy after 0s/);
  t.true(HEALTH_TIMEOUT >= 900, "the real deploy waits long enough for a slow board");
});
