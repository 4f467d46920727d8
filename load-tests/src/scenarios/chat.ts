import type { XmlElement } from '../xmpp/xml.js';
import { nowMs } from '../context.js';
import type { RunContext, Scenario, Vu } from '../scenario.js';

/** Bodies carry `lt1 <send time in epoch ms> ` so that the receiver measures delivery latency. */
const PREFIX = 'lt1 ';
const padCache = new Map<number, string>();

export function chatBody(size: number, sentAt = nowMs()): string {
  const head = `${PREFIX}${sentAt.toFixed(3)} `;
  const n = Math.max(0, Math.round(size) - head.length);
  let pad = padCache.get(n);
  if (pad === undefined) {
    pad = 'x'.repeat(n);
    if (padCache.size < 1000) padCache.set(n, pad);
  }
  return head + pad;
}

/** Send time carried in a chat body, or undefined when the body is not ours. */
export function sentAtOf(body: string): number | undefined {
  if (!body.startsWith(PREFIX)) return undefined;
  const end = body.indexOf(' ', PREFIX.length);
  const t = Number(body.slice(PREFIX.length, end < 0 ? undefined : end));
  return Number.isFinite(t) ? t : undefined;
}

/** Finds the <body/> text without building more than the parser already did. */
function bodyOf(el: XmlElement): string | undefined {
  return el.child('body')?.text();
}

/** Receiver side: latency from the carried timestamp; bounces count as errors. */
export function onChatMessage(vu: Vu, ctx: RunContext, el: XmlElement): void {
  if (el.attrs.type === 'error') {
    const cond = el.child('error')?.elements().find((c) => c.name !== 'text')?.name ?? 'undefined-condition';
    ctx.metrics.counter('messages_bounced', 'chat messages returned with an error').add();
    ctx.errors.add('message', new Error(`message bounced: ${cond}`));
    return;
  }
  const body = bodyOf(el);
  if (body === undefined) return; // chat states, receipts: not ours
  const sentAt = sentAtOf(body);
  if (sentAt === undefined) return;
  if (vu.inflight > 0) vu.inflight--;
  ctx.metrics.counter('messages_received', 'chat messages delivered to a VU').add();
  ctx.metrics.trend('delivery', 'sender → receiver latency of chat messages, ms').add(nowMs() - sentAt);
}

/** Sends one chat message to a random online VU; returns false when no one else is online. */
export function sendChat(vu: Vu, ctx: RunContext): boolean {
  const peer = ctx.online.pick(vu);
  const c = vu.client;
  if (!peer || !c) return false;
  c.sendMessage(peer.bare, chatBody(ctx.messageSize.sample()));
  peer.inflight++;
  ctx.metrics.counter('messages_sent', 'chat messages sent').add();
  return true;
}

/** Waits (at most `maxMs`) until messages addressed to this VU have arrived. */
export async function drainInbound(vu: Vu, maxMs: number): Promise<void> {
  const end = Date.now() + maxMs;
  while (vu.inflight > 0 && vu.client?.isOpen && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

export const chat: Scenario = {
  name: 'chat',
  description: '1:1 chat: log in, available presence, send messages to random online users; the receiver measures delivery latency',
  metrics: ['messages_sent', 'messages_received', 'messages_lost', 'messages_bounced', 'delivery'],
  defaultThink: '1s',
  async start(vu, ctx) {
    const c = await vu.login(ctx);
    c.onMessage = (el) => onChatMessage(vu, ctx, el);
    c.sendPresence(); // bare-JID messages go to available resources only
    ctx.online.add(vu);
  },
  async iteration(vu, ctx) {
    sendChat(vu, ctx);
  },
  async stop(vu, ctx) {
    ctx.online.delete(vu);
    await drainInbound(vu, 5000);
  },
};
