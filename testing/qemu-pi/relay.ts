// A TCP relay in front of the board's host forwards, so that bursts of connections reach it.
//
// QEMU's user-mode network (libslirp) listens for each `hostfwd` with a backlog of 1 (`ss -ltn`
// shows Send-Q 1). A burst of connects overflows that queue and the host kernel drops the SYNs
// (TcpExtListenOverflows counts them); clients resend a SYN only after 1, 3, 7, 15 and 31 s. Load
// tests saw that as registrations taking 15 s and as 30 s timeouts, which a real Pi (whose kernel
// queues 511 connections for pi-im and nginx) never shows. The relay accepts with a real backlog
// and dials the board a few at a time, dialling again after a short wait when a SYN went unanswered.
import net from "node:net";

export interface Relay {
  /** The host port clients use instead of the forward's. */
  port: number;
  /** Dials the board did not answer in time and that were made again. */
  redials(): number;
  close(): Promise<void>;
}

export interface RelayOptions {
  /** Dials to the board at once (measured with 50 connects at once: 8 lets them all in within 0.4 s). */
  parallel?: number;
  /** A SYN on loopback is answered in microseconds: no answer by then means it was dropped. */
  redialMs?: number;
  /** Give up on a client when the board accepted nothing for this long. */
  giveUpMs?: number;
}

export async function relay(targetPort: number, opts: RelayOptions = {}): Promise<Relay> {
  const parallel = opts.parallel ?? 8;
  const redialMs = opts.redialMs ?? 100;
  const giveUpMs = opts.giveUpMs ?? 60_000;
  let dialling = 0;
  let redials = 0;
  const waiting: Array<() => void> = [];
  const open = new Set<net.Socket>();

  const dial = (deadline: number): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const attempt = () => {
        const up = net.connect(targetPort, "127.0.0.1");
        const timer = setTimeout(() => {
          up.destroy();
          if (Date.now() > deadline) return reject(new Error(`the board accepted no connection on ${targetPort} for ${giveUpMs} ms`));
          redials++;
          attempt();
        }, redialMs);
        up.once("connect", () => { clearTimeout(timer); resolve(up); });
        up.once("error", (e) => { clearTimeout(timer); reject(e); });
      };
      attempt();
    });

  const admit = async (client: net.Socket) => {
    if (dialling >= parallel) await new Promise<void>((r) => waiting.push(r));
    dialling++;
    let up: net.Socket | undefined;
    try {
      up = await dial(Date.now() + giveUpMs);
    } catch {
      client.destroy();
    } finally {
      dialling--;
      waiting.shift()?.();
    }
    if (!up) return;
    if (client.destroyed) { up.destroy(); return; }
    open.add(up);
    client.pipe(up).pipe(client);
    const end = () => { client.destroy(); up.destroy(); open.delete(up); open.delete(client); };
    client.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
    client.resume();
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    open.add(client);
    client.on("error", () => client.destroy());
    void admit(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", backlog: 511 }, resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    redials: () => redials,
    close: () => new Promise<void>((resolve) => {
      for (const s of open) s.destroy();
      server.close(() => resolve());
    }),
  };
}

export interface ClientRelays { xmpp: number; xmpps: number; http: number; https: number; redials(): number; close(): Promise<void> }

/** Relays for the board's client-facing forwards (XMPP, direct TLS, HTTP, HTTPS); SSH stays direct. */
export async function relayClientPorts(board: { xmpp: number; xmpps: number; http: number; https: number }): Promise<ClientRelays> {
  const relays = await Promise.all([relay(board.xmpp), relay(board.xmpps), relay(board.http), relay(board.https)]);
  const [xmpp, xmpps, http, https] = relays;
  return {
    xmpp: xmpp!.port, xmpps: xmpps!.port, http: http!.port, https: https!.port,
    redials: () => relays.reduce((n, r) => n + r.redials(), 0),
    close: async () => { await Promise.all(relays.map((r) => r.close())); },
  };
}
