// Two users on a deployed site, with @xmpp/client (a client no one here wrote): register
// (in-band) or log in, over TCP 5222 with STARTTLS and over wss:// behind nginx, and exchange
// messages both ways; with a fifth argument, a third user over XEP-0368 direct TLS writes too. Run as a child process with NODE_EXTRA_CA_CERTS set to the site CA, so
// TLS is verified for real. Prints one JSON line with what happened.
import { client, xml } from "@xmpp/client";
import { WebSocket } from "ws";

// Node 20 has no global WebSocket (Node 22 has); @xmpp/websocket expects the browser API.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

const [domain, tcpService, wsService, prefix, tlsService] = process.argv.slice(2);
if (!domain || !tcpService || !wsService || !prefix) {
  console.error("usage: chat.ts DOMAIN xmpp://HOST:PORT wss://HOST:PORT/xmpp-websocket USER_PREFIX [xmpps://HOST:PORT]");
  process.exit(64);
}

type Client = ReturnType<typeof client>;

/** Logs in; with `register`, first creates the account in-band (XEP-0077) on the same stream. */
async function login(service: string, username: string, password: string, resource: string, register: boolean): Promise<Client> {
  const c = client({
    service, domain, resource,
    credentials: async (authenticate: (c: { username: string; password: string }, m: string) => Promise<void>, mechanisms: string[]) => {
      if (register) await c.iqCaller.set(xml("query", { xmlns: "jabber:iq:register" }, xml("username", {}, username), xml("password", {}, password)));
      await authenticate({ username, password }, mechanisms[0]!);
    },
  });
  c.reconnect.stop();
  c.on("error", () => {});
  await c.start();
  await c.send(xml("presence"));
  return c;
}

function nextMessage(c: Client, timeoutMs = 60_000): Promise<{ from: string; body: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no message within 60 s")), timeoutMs);
    const onStanza = (s: { is(n: string): boolean; attrs: Record<string, string>; getChildText(n: string): string | null }) => {
      if (s.is("message") && s.getChildText("body")) {
        clearTimeout(timer);
        c.off("stanza", onStanza);
        resolve({ from: s.attrs["from"] ?? "", body: s.getChildText("body") ?? "" });
      }
    };
    c.on("stanza", onStanza);
  });
}

const alice = `${prefix}-alice`;
const bob = `${prefix}-bob`;
const register = process.env["CHAT_LOGIN_ONLY"] !== "1";
const password = process.env["CHAT_PASSWORD"] ?? `pw-${prefix}`;
const a = await login(tcpService, alice, password, "laptop", register);
const b = await login(wsService, bob, password, "browser", register);
const toBob = nextMessage(b);
await a.send(xml("message", { to: `${bob}@${domain}`, type: "chat" }, xml("body", {}, "hello over STARTTLS")));
const gotByBob = await toBob;
const toAlice = nextMessage(a);
await b.send(xml("message", { to: `${alice}@${domain}`, type: "chat" }, xml("body", {}, "hello over wss")));
const gotByAlice = await toAlice;
let gotByBobFromDirectTls;
if (tlsService) {
  const c = await login(tlsService, `${prefix}-carol`, password, "phone", register);
  const fromCarol = nextMessage(b);
  await c.send(xml("message", { to: `${bob}@${domain}`, type: "chat" }, xml("body", {}, "hello over direct TLS")));
  gotByBobFromDirectTls = await fromCarol;
  await c.stop();
}
const upload = register ? await shareFile(a) : undefined;
await Promise.all([a.stop(), b.stop()]);
console.log(JSON.stringify({ alice, bob, password, gotByBob, gotByAlice, gotByBobFromDirectTls, upload }));

/** XEP-0363 through nginx: a slot from upload.<domain>, PUT, then GET as another party would. */
async function shareFile(c: Client): Promise<{ putStatus: number; getStatus: number; same: boolean; contentType: string; getUrl: string }> {
  const data = Buffer.from(`a photo from the deploy test ${Date.now()}\n`.repeat(200));
  const slot = await c.iqCaller.request(xml("iq", { type: "get", to: `upload.${domain}` },
    xml("request", { xmlns: "urn:xmpp:http:upload:0", filename: "photo.jpg", size: String(data.length), "content-type": "image/jpeg" })));
  const el = slot.getChild("slot");
  const putUrl = String(el?.getChild("put")?.attrs["url"]);
  const getUrl = String(el?.getChild("get")?.attrs["url"]);
  // The URLs name the site (https://pi-im.test/upload/...); the emulated board is reached on a forwarded port.
  const viaBoard = (u: string) => u.replace(/^https:\/\/[^/]+/, `https://127.0.0.1:${new URL(wsService!).port}`);
  const put = await fetch(viaBoard(putUrl), { method: "PUT", body: data, headers: { "content-type": "image/jpeg" } });
  const got = await fetch(viaBoard(getUrl));
  const body = Buffer.from(await got.arrayBuffer());
  return { putStatus: put.status, getStatus: got.status, same: body.equals(data), contentType: got.headers.get("content-type") ?? "", getUrl };
}
