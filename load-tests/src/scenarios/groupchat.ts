// Group chat fan-out (XEP-0045): VUs join rooms of --room-size occupants on the MUC service and
// post timestamped messages; every other occupant measures the sender → occupant latency. The
// first occupant creates the room as an instant room (owner submits the default config).
import { nowMs } from '../context.js';
import { attrs } from '../xmpp/xml.js';
import type { XmlElement } from '../xmpp/xml.js';
import type { RunContext, Scenario, Vu } from '../scenario.js';
import { chatBody, sentAtOf } from './chat.js';

const MUC = 'http://jabber.org/protocol/muc';
const MUC_USER = `${MUC}#user`;
const MUC_OWNER = `${MUC}#owner`;

/** Position of each groupchat VU among the groupchat VUs of its run (a mix spreads them out). */
const ranks = new WeakMap<RunContext, Map<Vu, number>>();
function rankOf(vu: Vu, ctx: RunContext): number {
  let m = ranks.get(ctx);
  if (!m) {
    m = new Map();
    for (const v of ctx.vus) if (v && v.scenario === vu.scenario) m.set(v, m.size);
    ranks.set(ctx, m);
  }
  return m.get(vu) ?? 0;
}

/** Room of a VU: every --room-size groupchat VUs share one; the account prefix keeps runs apart. */
export function roomOf(vu: Vu, ctx: RunContext): string {
  const prefix = vu.username.replace(/\d+$/, '');
  return `${prefix}room${Math.floor(rankOf(vu, ctx) / ctx.features.roomSize)}@${ctx.features.mucService}`.toLowerCase();
}

const nickOf = (vu: Vu) => `u${vu.id}`;
const joined = new WeakMap<Vu, string>();

function statusCodes(p: XmlElement): Set<string> {
  const x = p.child('x', MUC_USER);
  return new Set((x?.elements() ?? []).filter((e) => e.name === 'status').map((e) => e.attrs.code ?? ''));
}

/** Joins (creating the room if needed); resolves with the self-presence, rejects on a join error. */
function join(vu: Vu, ctx: RunContext, room: string): Promise<XmlElement> {
  const c = vu.client!;
  const full = `${room}/${nickOf(vu)}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { c.onPresence = undefined; reject(new Error(`groupchat: no answer to joining ${room} within ${ctx.target.timeoutMs} ms`)); }, ctx.target.timeoutMs);
    c.onPresence = (p) => {
      if (p.attrs.from !== full) return;
      clearTimeout(timer);
      c.onPresence = undefined;
      if (p.attrs.type === 'error') {
        const cond = p.child('error')?.elements().find((e) => e.name !== 'text')?.name ?? 'undefined-condition';
        reject(Object.assign(new Error(`groupchat: joining ${room} failed: ${cond}`), { condition: cond }));
      } else resolve(p);
    };
    c.sendPresence({ to: full }, `<x xmlns="${MUC}"><history maxstanzas="0"/></x>`);
  });
}

export function onGroupMessage(vu: Vu, ctx: RunContext, el: XmlElement): void {
  if (el.attrs.type === 'error') {
    const cond = el.child('error')?.elements().find((c) => c.name !== 'text')?.name ?? 'undefined-condition';
    ctx.errors.add('groupchat', new Error(`groupchat message bounced: ${cond}`));
    return;
  }
  if (el.attrs.type !== 'groupchat') return;
  const sentAt = sentAtOf(el.child('body')?.text() ?? '');
  if (sentAt === undefined || el.child('delay', 'urn:xmpp:delay')) return; // subject, history
  if (el.attrs.from?.endsWith(`/${nickOf(vu)}`)) return; // our own message reflected back
  ctx.metrics.counter('muc_messages_received', 'group messages delivered to an occupant').add();
  ctx.metrics.trend('muc_delivery', 'sender → each other occupant latency of group messages, ms').add(nowMs() - sentAt);
}

export const groupchat: Scenario = {
  name: 'groupchat',
  description: 'group chat: join a room of --room-size occupants, post messages; every other occupant measures fan-out latency',
  metrics: ['muc_join', 'muc_messages_sent', 'muc_messages_received', 'muc_delivery'],
  defaultThink: '5s',
  async start(vu, ctx) {
    const c = await vu.login(ctx);
    c.sendPresence();
    const room = roomOf(vu, ctx);
    const t0 = nowMs();
    // A room another VU is creating is locked until its owner configures it: try again shortly.
    for (let attempt = 0; ; attempt++) {
      try {
        const self = await join(vu, ctx, room);
        if (statusCodes(self).has('201')) {
          await c.iq('set', room, `<query xmlns="${MUC_OWNER}"><x xmlns="jabber:x:data" type="submit"/></query>`);
        }
        break;
      } catch (e) {
        const cond = (e as { condition?: string }).condition;
        if (attempt >= 20 || (cond !== 'item-not-found' && cond !== 'conflict')) throw e;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
    ctx.metrics.trend('muc_join', 'join (and create) a room until the self-presence, ms').add(nowMs() - t0);
    joined.set(vu, room);
    c.onMessage = (el) => onGroupMessage(vu, ctx, el);
  },
  async iteration(vu, ctx) {
    const room = joined.get(vu);
    if (!room || !vu.client) return;
    vu.client.send(`<message${attrs({ xmlns: 'jabber:client', to: room, type: 'groupchat' })}><body>${chatBody(ctx.messageSize.sample())}</body></message>`);
    ctx.metrics.counter('muc_messages_sent', 'group messages posted').add();
  },
  async stop(vu) {
    const room = joined.get(vu);
    joined.delete(vu);
    if (room && vu.client) vu.client.sendPresence({ to: `${room}/${nickOf(vu)}`, type: 'unavailable' });
    // Messages already posted by others reach us while we leave; give them a moment.
    await new Promise((r) => setTimeout(r, 200));
  },
};
