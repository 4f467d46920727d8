import { performance } from 'node:perf_hooks';
import { NS } from '../xmpp/client.js';
import { escape } from '../xmpp/xml.js';
import { nowMs } from '../context.js';
import type { RunContext, Scenario, Vu } from '../scenario.js';

/** Members pair up (0-1, 2-3, ...); the last one of an odd count pairs with its predecessor. */
export function partnerIndex(i: number, n: number): number {
  const p = i ^ 1;
  return p < n ? p : i - 1;
}

/** The roster VUs of a run in id order, so that pairs form among them even in a mix. */
const members = new WeakMap<RunContext, Vu[]>();
function partnerOf(vu: Vu, ctx: RunContext): Vu | undefined {
  let list = members.get(ctx);
  if (!list) members.set(ctx, (list = ctx.vus.filter((v): v is Vu => v?.scenario === roster)));
  const i = list.indexOf(vu);
  return list[partnerIndex(i, list.length)];
}

const STATUS = 'lt1 ';

async function rosterGet(vu: Vu, ctx: RunContext): Promise<number> {
  const t0 = performance.now();
  const r = await vu.client!.iq('get', undefined, `<query xmlns="${NS.roster}"/>`);
  ctx.metrics.trend('roster_get', 'roster get round trip, ms').add(performance.now() - t0);
  return r.child('query', NS.roster)?.elements().length ?? 0;
}

function announce(vu: Vu): void {
  vu.client!.sendPresence({}, `<status>${escape(`${STATUS}${nowMs().toFixed(3)}`)}</status>`);
}

export const roster: Scenario = {
  name: 'roster',
  description: 'roster and presence: pairs subscribe to each other, fetch the roster, and update presence; the partner measures presence latency',
  metrics: ['roster_get', 'presence_sent', 'presence_received', 'presence_latency', 'roster_items'],
  defaultThink: '5s',
  async start(vu, ctx) {
    const c = await vu.login(ctx);
    const p = partnerOf(vu, ctx);
    if (!p || p === vu) throw new Error('the roster scenario needs at least two VUs (they subscribe to each other in pairs)');
    const partner = p.bare;
    // Presence sent before we could see it live (before our subscription was approved, or before
    // this login) reaches us later as current state, not as a broadcast: it is not latency.
    let liveSince = Infinity;
    const fromPartner = (from: string) => from === partner || from.startsWith(`${partner}/`);
    c.onPresence = (el) => {
      const type = el.attrs.type;
      const from = el.attrs.from ?? '';
      if (type === 'subscribe') c.sendPresence({ to: from, type: 'subscribed' });
      else if (type === 'subscribed' && fromPartner(from)) liveSince = Math.min(liveSince, nowMs());
      else if (type === undefined && fromPartner(from)) {
        const status = el.child('status')?.text() ?? '';
        if (!status.startsWith(STATUS)) return;
        const t = Number(status.slice(STATUS.length));
        ctx.metrics.counter('presence_received', 'presence updates received from the partner').add();
        if (Number.isFinite(t) && t >= liveSince) ctx.metrics.trend('presence_latency', 'partner presence broadcast latency, ms').add(nowMs() - t);
      }
    };
    const items = await rosterGet(vu, ctx);
    if (items > 0) liveSince = nowMs(); // subscribed in an earlier session
    ctx.metrics.gauge('roster_items', 'roster size seen at login').set(items);
    if (items === 0) {
      c.sendPresence({ to: partner, type: 'subscribe' });
      c.sendPresence({ to: partner, type: 'subscribed' }); // pre-approve (RFC 6121 3.4)
    }
    announce(vu);
    ctx.metrics.counter('presence_sent', 'presence updates sent').add();
  },
  async iteration(vu, ctx) {
    await rosterGet(vu, ctx);
    announce(vu);
    ctx.metrics.counter('presence_sent', 'presence updates sent').add();
  },
  async stop() {},
};
