// The site's front as deployed: the rendered nginx.conf in the real nginx, in front of the real
// IM server started as the compose file starts it (--proxy-protocol true). Clients come from
// different loopback addresses (127.0.0.2, .3): the node's per-address limits must see each
// client, not nginx, on the TCP passthrough (PROXY protocol) and on WebSocket (X-Real-IP), and a
// client cannot choose its address by sending X-Real-IP itself.
import test from "ava";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { WebSocket } from "ws";
import { renderNginxConf } from "../render/nginx";
import { freePort, waitPort } from "./net";

const SERVER_DIR = path.join(__dirname, "..", "..", "im-server");
const HEADER = `<?xml version='1.0'?><stream:stream to='chat.test' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

/** A c2s connection through nginx from `from`; resolves with the server's answer to the stream header. */
function xmppFrom(port: number, from: string): Promise<{ data: string; socket: net.Socket }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress: from });
    let data = "";
    const timer = setTimeout(() => resolve({ data, socket }), 10_000);
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      data += d;
      if (data.includes("</stream:features>") || data.includes("</stream:error>")) { clearTimeout(timer); resolve({ data, socket }); }
    });
    socket.on("error", () => {});
    socket.on("close", () => { clearTimeout(timer); resolve({ data, socket }); });
    socket.write(HEADER);
  });
}

/** A WebSocket connection through nginx's HTTPS port from `from`, with a spoofed X-Real-IP. */
function wsFrom(port: number, from: string): Promise<{ ok: boolean; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/xmpp-websocket`, "xmpp", {
      localAddress: from, rejectUnauthorized: false, headers: { Host: "chat.test", "X-Real-IP": "192.0.2.77", "X-Forwarded-For": "192.0.2.77" },
    });
    ws.on("error", () => {});
    ws.once("open", () => {
      ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="chat.test" version="1.0"/>`);
      ws.on("message", (d) => { if (String(d).includes("stream:features")) resolve({ ok: true, ws }); });
    });
    ws.once("close", () => resolve({ ok: false, ws }));
  });
}

test("through the real nginx, the real node's per-address limits count each client (PROXY protocol, X-Real-IP), not nginx", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-nginx-node-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=chat.test", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`], { stdio: "ignore" });
  const [nodeHttp, nodeC2s, pHttp, pHttps, pXmpp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  fs.writeFileSync(`${dir}/node.json`, JSON.stringify({ limits: { maxConnectionsPerAddress: 2, connectionLimitExempt: [] } }));
  const node = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--domain", "chat.test", "--data-dir", `${dir}/data`,
    "--c2s-host", "127.0.0.1", "--c2s-port", String(nodeC2s), "--http-host", "127.0.0.1", "--http-port", String(nodeHttp),
    "--tls-cert", `${dir}/cert.pem`, "--tls-key", `${dir}/key.pem`, "--proxy-protocol", "true", "--config", `${dir}/node.json`, "--log-level", "warn"],
  { cwd: SERVER_DIR, stdio: ["ignore", "ignore", "pipe"] });
  let nodeLog = "";
  node.stderr!.on("data", (d) => (nodeLog += d));
  fs.writeFileSync(`${dir}/nginx.conf`, renderNginxConf({
    domain: "chat.test", ports: { http: pHttp, https: pHttps, xmpp: pXmpp }, tlsDir: dir, pidFile: `${dir}/nginx.pid`, ipv6: false,
    upstreams: [{ host: "127.0.0.1", httpPort: nodeHttp, c2sPort: nodeC2s }],
  }));
  const nginx = spawn("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", "stderr", "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let nginxLog = "";
  nginx.stderr!.on("data", (d) => (nginxLog += d));
  const open: { destroy(): void }[] = [];
  try {
    await Promise.all([waitPort(nodeC2s), waitPort(nodeHttp), waitPort(pXmpp), waitPort(pHttps)]);

    const a = [await xmppFrom(pXmpp, "127.0.0.2"), await xmppFrom(pXmpp, "127.0.0.2")];
    open.push(...a.map((c) => c.socket));
    for (const c of a) t.regex(c.data, /<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls">/, `${c.data}\n${nodeLog}\n${nginxLog}`);
    const third = await xmppFrom(pXmpp, "127.0.0.2");
    open.push(third.socket);
    t.regex(third.data, /too many connections from your address/, "127.0.0.2's third connection is refused");
    const other = await xmppFrom(pXmpp, "127.0.0.3");
    open.push(other.socket);
    t.regex(other.data, /<stream:features>/, "127.0.0.3, another client of the same nginx, is served");

    // WebSocket through HTTPS: nginx's X-Real-IP is the client's, whatever the client claimed.
    const w = [await wsFrom(pHttps, "127.0.0.4"), await wsFrom(pHttps, "127.0.0.4")];
    open.push(...w.map((c) => ({ destroy: () => c.ws.terminate() })));
    t.true(w.every((c) => c.ok), nodeLog + nginxLog);
    const w3 = await wsFrom(pHttps, "127.0.0.4");
    open.push({ destroy: () => w3.ws.terminate() });
    t.false(w3.ok, "127.0.0.4's third WebSocket is refused although it claimed to be 192.0.2.77");
    const w4 = await wsFrom(pHttps, "127.0.0.5");
    open.push({ destroy: () => w4.ws.terminate() });
    t.true(w4.ok, "another client claiming the same X-Real-IP is served: the claim counted for nothing");
  } finally {
    for (const c of open) c.destroy();
    nginx.kill("SIGTERM");
    node.kill("SIGTERM");
    await Promise.all([new Promise((r) => nginx.once("exit", r)), new Promise((r) => node.once("exit", r))]);
  }
});

