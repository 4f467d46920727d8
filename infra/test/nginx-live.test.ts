// The rendered nginx.conf served by the real nginx (Debian's, with the stream module) in front of a
// stand-in IM node: health on plain HTTP, redirect to HTTPS, HTTPS proxying, the WebSocket
// upgrade at /xmpp-websocket, 5222-style TCP passthrough, and XEP-0368 direct TLS passed through;
// the passthroughs open with a PROXY protocol header naming the client, and HTTP's client address
// headers are nginx's own (a client cannot set them).
import test from "ava";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { renderNginxConf } from "../render/nginx";
import { freePort, waitPort } from "./net";

test("nginx with the rendered config: health, redirect, HTTPS, WebSocket upgrade, TCP passthrough, direct TLS passthrough", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-nginx-live-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=chat.test", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`], { stdio: "ignore" });
  const [nodeHttp, nodeC2s, nodeTls, pHttp, pHttps, pXmpp, pXmpps] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);

  // Stand-in IM node.
  const seen: http.IncomingHttpHeaders[] = [];
  const web = http.createServer((req, res) => {
    seen.push(req.headers);
    if (req.url === "/health") return void res.end("healthy");
    res.end(`node saw ${req.url}`);
  });
  web.on("upgrade", (req, socket) => {
    seen.push(req.headers);
    socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n");
    socket.on("data", (d) => socket.write(`ws-echo:${d}`));
  });
  // The stand-in nodes' TCP listeners take the PROXY protocol (v1) line first, as the server does
  // with --proxy-protocol true, then see the client's bytes.
  const proxyLines: string[] = [];
  const afterProxyHeader = (s: net.Socket, then: (rest: Buffer) => void) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n");
      if (end < 0) return;
      s.off("data", onData);
      proxyLines.push(buf.subarray(0, end).toString());
      then(buf.subarray(end + 2));
    };
    s.on("data", onData);
  };
  const c2s = net.createServer((s) => afterProxyHeader(s, (rest) => {
    if (rest.length) s.write(`c2s-echo:${rest}`);
    s.on("data", (d) => s.write(`c2s-echo:${d}`));
  }));
  await new Promise<void>((r) => web.listen(nodeHttp, "127.0.0.1", r));
  await new Promise<void>((r) => c2s.listen(nodeC2s, "127.0.0.1", r));
  // The node's direct TLS listener does the handshake itself (nginx only passes bytes), after the PROXY line.
  const tlsOptions = { key: fs.readFileSync(`${dir}/key.pem`), cert: fs.readFileSync(`${dir}/cert.pem`), ALPNProtocols: ["xmpp-client"] };
  const direct = net.createServer((raw) => afterProxyHeader(raw, (rest) => {
    raw.pause(); // hand the bytes after the header to TLS, none lost in between
    if (rest.length) raw.unshift(rest);
    const s = new tls.TLSSocket(raw, { ...tlsOptions, isServer: true });
    s.on("data", (d) => s.write(`tls-echo:${d}`));
  }));
  await new Promise<void>((r) => direct.listen(nodeTls, "127.0.0.1", r));

  const conf = renderNginxConf({
    domain: "chat.test", ports: { http: pHttp, https: pHttps, xmpp: pXmpp, xmppDirectTls: pXmpps }, tlsDir: dir, pidFile: `${dir}/nginx.pid`, ipv6: false,
    upstreams: [{ host: "127.0.0.1", httpPort: nodeHttp, c2sPort: nodeC2s, c2sDirectTlsPort: nodeTls }],
  });
  fs.writeFileSync(`${dir}/nginx.conf`, conf);
  const nginx = spawn("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", "stderr", "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  nginx.stderr.on("data", (d) => (log += d));
  const exited = new Promise((r) => nginx.on("exit", r));
  try {
    await Promise.all([waitPort(pHttp), waitPort(pHttps), waitPort(pXmpp), waitPort(pXmpps)]);

    const get = (url: string, mod: typeof http | typeof https) =>
      new Promise<{ status: number; body: string; location?: string }>((resolve, reject) => {
        mod.get(url, { rejectUnauthorized: false, headers: { Host: "chat.test" } } as any, (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode!, body, location: res.headers.location }));
        }).on("error", reject);
      });

    const health = await get(`http://127.0.0.1:${pHttp}/health`, http);
    t.is(health.status, 200, log);
    t.is(health.body, "healthy");

    const redirect = await get(`http://127.0.0.1:${pHttp}/chat?x=1`, http);
    t.is(redirect.status, 301);
    t.is(redirect.location, `https://chat.test:${pHttps}/chat?x=1`);

    const page = await get(`https://127.0.0.1:${pHttps}/index.html`, https);
    t.is(page.status, 200);
    t.is(page.body, "node saw /index.html");
    t.is(seen.at(-1)!["x-forwarded-proto"], "https");

    // A client's own client-address headers never reach the node: nginx's replace them.
    const forged = { "X-Real-IP": "6.6.6.6", "x-real-ip": "7.7.7.7", "X-Forwarded-For": "6.6.6.6", Forwarded: "for=6.6.6.6" };
    for (const url of [`https://127.0.0.1:${pHttps}/index.html`, `http://127.0.0.1:${pHttp}/health`]) {
      await new Promise<void>((resolve, reject) => {
        (url.startsWith("https") ? https : http).get(url, { rejectUnauthorized: false, headers: { Host: "chat.test", ...forged } } as any, (res) => { res.resume(); res.on("end", resolve); }).on("error", reject);
      });
      const h = seen.at(-1)!;
      t.is(h["x-real-ip"], "127.0.0.1", `${url}: X-Real-IP is the peer nginx saw`);
      t.is(h["x-forwarded-for"], "127.0.0.1", `${url}: X-Forwarded-For too`);
      t.is(h["forwarded"], undefined, `${url}: no Forwarded header from the client`);
    }

    // WebSocket upgrade through TLS.
    const ws = tls.connect({ host: "127.0.0.1", port: pHttps, rejectUnauthorized: false, servername: "chat.test" });
    const wsText = await new Promise<string>((resolve, reject) => {
      let buf = "";
      ws.on("secureConnect", () => ws.write(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"));
      ws.on("data", (d) => {
        buf += d;
        if (buf.includes("\r\n\r\n") && !buf.includes("ws-echo")) ws.write("<open/>");
        if (buf.includes("ws-echo:<open/>")) resolve(buf);
      });
      ws.on("error", reject);
      setTimeout(() => reject(new Error(`no websocket echo; got ${buf}`)), 5000);
    });
    ws.destroy();
    t.regex(wsText, /^HTTP\/1\.1 101/);
    t.is(seen.at(-1)!["upgrade"], "websocket");
    t.is(seen.at(-1)!["x-real-ip"], "127.0.0.1", "the WebSocket's X-Real-IP is set by nginx, not by the client");
    t.is(seen.at(-1)!["x-forwarded-for"], "127.0.0.1");

    // XMPP c2s: raw TCP through the stream module, bytes untouched (STARTTLS stays end to end).
    const tcp = net.connect(pXmpp, "127.0.0.1");
    const echoed = await new Promise<string>((resolve, reject) => {
      tcp.on("connect", () => tcp.write("<stream:stream to='chat.test'>"));
      tcp.on("data", (d) => resolve(String(d)));
      tcp.on("error", reject);
      setTimeout(() => reject(new Error(`no c2s echo; PROXY lines so far: ${JSON.stringify(proxyLines)}; nginx: ${log}`)), 5000);
    });
    t.is(echoed, "c2s-echo:<stream:stream to='chat.test'>");
    // PROXY protocol v1: the client's address and port, then the address and port it connected to.
    t.is(proxyLines.at(-1), `PROXY TCP4 127.0.0.1 127.0.0.1 ${tcp.localPort} ${pXmpp}`);
    tcp.destroy();

    // XEP-0368: TLS from the first byte, negotiated with the node (ALPN xmpp-client), through nginx.
    const xmpps = tls.connect({ host: "127.0.0.1", port: pXmpps, servername: "chat.test", ca: fs.readFileSync(`${dir}/cert.pem`), ALPNProtocols: ["xmpp-client"] });
    const tlsEcho = await new Promise<string>((resolve, reject) => {
      xmpps.on("secureConnect", () => xmpps.write("<stream:stream to='chat.test'>"));
      xmpps.on("data", (d) => resolve(String(d)));
      xmpps.on("error", reject);
      setTimeout(() => reject(new Error("no direct TLS echo")), 5000);
    });
    t.is(xmpps.alpnProtocol, "xmpp-client");
    t.is(proxyLines.at(-1), `PROXY TCP4 127.0.0.1 127.0.0.1 ${xmpps.localPort} ${pXmpps}`, "direct TLS opens with a PROXY header too");
    xmpps.destroy();
    t.is(tlsEcho, "tls-echo:<stream:stream to='chat.test'>");
  } finally {
    nginx.kill("SIGTERM");
    await exited;
    web.close();
    c2s.close();
    direct.close();
  }
});
