import { performance } from 'node:perf_hooks';
import { NS } from '../xmpp/client.js';
import type { Scenario } from '../scenario.js';

/** Each iteration is a whole session: connect, STARTTLS (TCP), SASL, bind, presence, close. */
export const connect: Scenario = {
  name: 'connect',
  description: 'connect + authenticate: every iteration opens a new session (TCP+STARTTLS or WebSocket, per --transport) and closes it',
  metrics: ['connect', 'connect_tcp', 'connect_ws', 'tcp_connect', 'tls_handshake', 'auth', 'bind', 'logins'],
  defaultThink: '1s',
  async start() {},
  async iteration(vu, ctx) {
    const c = await vu.login(ctx);
    c.sendPresence();
    await vu.logout(); // our own close is not counted as a disconnect
  },
  async stop() {},
};

/** Log in once and stay connected; each iteration is an XEP-0199 ping to the server. */
export const idle: Scenario = {
  name: 'idle',
  description: 'idle sessions: log in once, hold the connection, ping the server each iteration (default think 30s)',
  metrics: ['ping', 'connect', 'logins'],
  defaultThink: '30s',
  async start(vu, ctx) {
    const c = await vu.login(ctx);
    c.sendPresence();
  },
  async iteration(vu, ctx) {
    const t0 = performance.now();
    await vu.client!.iq('get', ctx.target.domain, `<ping xmlns="${NS.ping}"/>`);
    ctx.metrics.trend('ping', 'XEP-0199 ping round trip to the server, ms').add(performance.now() - t0);
  },
  async stop() {},
};
