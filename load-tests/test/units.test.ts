import test from 'ava';
import { parseDuration, parseRange } from '../src/duration.js';
import { parseStages, stagesFromFlags, targetAt, totalDurationMs, maxTarget } from '../src/stages.js';
import { parseThreshold, parseThresholdList, evaluate } from '../src/thresholds.js';
import { Histogram, Metrics } from '../src/metrics.js';
import { assignScenarios, parseMix } from '../src/scenarios/index.js';
import { chatBody, sentAtOf } from '../src/scenarios/chat.js';
import { parseAddresses } from '../src/context.js';
import { createSasl } from '../src/xmpp/sasl.js';
import { StreamParser } from '../src/xmpp/parser.js';
import type { XmlElement } from '../src/xmpp/xml.js';
import { nextUsers, summarise } from '../src/search.js';

test('durations in k6 notation', (t) => {
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('10s'), 10_000);
  t.is(parseDuration('1m30s'), 90_000);
  t.is(parseDuration('2h'), 7_200_000);
  t.is(parseDuration('1.5'), 1500);
  t.throws(() => parseDuration('10x'), { message: /bad duration/ });
  t.throws(() => parseDuration('s10'), { message: /bad duration/ });
  const r = parseRange('1s-3s');
  for (let i = 0; i < 100; i++) {
    const v = r.sample();
    t.true(v >= 1000 && v <= 3000);
  }
});

test('stages: linear ramps, holds, ramp-down and jumps', (t) => {
  const s = parseStages('10s:100,20s:100,10s:0');
  t.is(totalDurationMs(s), 40_000);
  t.is(maxTarget(s), 100);
  t.is(targetAt(s, 0), 0);
  t.is(targetAt(s, 5_000), 50);
  t.is(targetAt(s, 9_999), 99);
  t.is(targetAt(s, 10_000), 100);
  t.is(targetAt(s, 29_000), 100);
  t.is(targetAt(s, 35_000), 50);
  t.is(targetAt(s, 40_000), 0);
  t.is(targetAt(parseStages('0s:20,5s:20'), 0), 20, 'a zero-length stage jumps');
  t.deepEqual(stagesFromFlags(50, 10_000, 60_000), [{ durationMs: 10_000, target: 50 }, { durationMs: 60_000, target: 50 }]);
  // No ramp: all 50 at once (a zero-length stage jumps), not a ramp stretched over the hold.
  const noRamp = stagesFromFlags(50, 0, 60_000);
  t.deepEqual(noRamp, [{ durationMs: 0, target: 50 }, { durationMs: 60_000, target: 50 }]);
  t.is(targetAt(noRamp, 0), 50);
  t.is(totalDurationMs(noRamp), 60_000);
  t.throws(() => parseStages('10s'), { message: /duration:target/ });
});

test('thresholds parse in our form and k6 form, with units', (t) => {
  t.like(parseThreshold('delivery_p95<500'), { metric: 'delivery', agg: 'p95', op: '<', value: 500 });
  t.like(parseThreshold('errors==0'), { metric: 'errors', agg: 'count', op: '==', value: 0 });
  t.like(parseThreshold('connect_p95 < 2s'), { metric: 'connect', agg: 'p95', op: '<', value: 2000 });
  t.like(parseThreshold('connect_tcp_p99.9<=3000ms'), { metric: 'connect_tcp', agg: 'p99.9', op: '<=', value: 3000 });
  t.like(parseThreshold('delivery: p(99) < 800'), { metric: 'delivery', agg: 'p99', value: 800 });
  t.like(parseThreshold('messages_received_rate>=10'), { metric: 'messages_received', agg: 'rate', op: '>=' });
  t.throws(() => parseThreshold('delivery_p95 about 500'), { message: /bad threshold/ });
  t.throws(() => parseThreshold('delivery_p0<5'), { message: /percentile/ });
  t.is(parseThresholdList('errors==0 # none; really\n\n# a comment; with a semicolon\ndelivery_p95<500; connect_p95<2s').length, 3);
});

test('threshold evaluation fails on breach, unknown metric and empty trend', (t) => {
  const m = new Metrics();
  const d = m.trend('delivery');
  for (let i = 1; i <= 100; i++) d.add(i);
  m.counter('errors').add(2);
  m.trend('presence_latency');
  const s = m.summary(10_000);
  const r = evaluate(
    [parseThreshold('delivery_p95<500'), parseThreshold('delivery_p95<50'), parseThreshold('errors==0'), parseThreshold('errors<=2'), parseThreshold('delivry_p95<5'), parseThreshold('presence_latency_p95<5'), parseThreshold('delivery_p75<80')],
    s,
    (name, p) => (name === 'delivery' ? d.all.percentile(p) : undefined),
  );
  t.deepEqual(r.map((x) => x.ok), [true, false, false, true, false, false, true]);
  t.regex(r[4]!.reason!, /no metric "delivry"/);
  t.regex(r[5]!.reason!, /no samples/);
});

test('histogram percentiles are within 1% and min/max exact', (t) => {
  const h = new Histogram();
  const values: number[] = [];
  for (let i = 0; i < 10_000; i++) values.push(0.05 + Math.random() * Math.random() * 900);
  for (const v of values) h.add(v);
  values.sort((a, b) => a - b);
  for (const p of [50, 90, 95, 99]) {
    const exact = values[Math.ceil((p / 100) * values.length) - 1]!;
    t.true(Math.abs(h.percentile(p) - exact) / exact < 0.01, `p${p}: ${h.percentile(p)} vs ${exact}`);
  }
  t.is(h.percentile(100), values[values.length - 1]!);
  t.is(h.percentile(0), values[0]!);
});

test('scenario mixes follow their weights for any prefix of VUs', (t) => {
  const mix = parseMix('chat:70,roster:20,connect:10');
  const names = assignScenarios(mix, 100).map((s) => s.name);
  t.is(names.filter((n) => n === 'chat').length, 70);
  t.is(names.filter((n) => n === 'roster').length, 20);
  const first10 = names.slice(0, 10);
  t.is(first10.filter((n) => n === 'chat').length, 7);
  t.throws(() => parseMix('nosuch'), { message: /unknown scenario "nosuch"; known: chat, roster/ });
  t.throws(() => parseMix('chat:-1'), { message: /bad weight/ });
});

test('chat bodies carry the send time and have the asked size', (t) => {
  const b = chatBody(300, 1234.5);
  t.is(b.length, 300);
  t.is(sentAtOf(b), 1234.5);
  t.is(sentAtOf('hello'), undefined);
});

test('address ranges for spreading source ports', (t) => {
  t.deepEqual(parseAddresses('127.0.0.1-127.0.0.3'), ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  t.deepEqual(parseAddresses('127.0.0.5-6,10.0.0.1'), ['127.0.0.5', '127.0.0.6', '10.0.0.1']);
});

async function scram(mech: 'SCRAM-SHA-1' | 'SCRAM-SHA-256', cnonce: string, serverFirst: string, serverFinal: string) {
  const s = createSasl(mech, 'user', 'pencil', cnonce);
  const first = Buffer.from(await s.start(), 'base64').toString();
  const final = Buffer.from(await s.step(Buffer.from(serverFirst).toString('base64')), 'base64').toString();
  s.finish(Buffer.from(serverFinal).toString('base64'));
  return { first, final, s };
}

test('SCRAM-SHA-1 matches RFC 5802 and checks the server signature', async (t) => {
  const { first, final, s } = await scram('SCRAM-SHA-1', 'fyko+d2lbbFgONRv9qkxdawL', 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096', 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
  t.is(first, 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
  t.is(final, 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
  t.throws(() => s.finish(Buffer.from('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=').toString('base64')), { message: /does not verify/ });
});

test('SCRAM-SHA-256 matches RFC 7677', async (t) => {
  const { final } = await scram('SCRAM-SHA-256', 'rOprNGfwEbeRWgbNEkqO', 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  t.is(final, 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
});

test('stream parser: stanzas split across chunks, restarts, and bad XML', (t) => {
  const got: XmlElement[] = [];
  const events: string[] = [];
  const p = new StreamParser({
    streamOpen: (a) => events.push(`open ${a.id}`),
    element: (el) => got.push(el),
    streamClose: () => events.push('close'),
    error: (e) => events.push(`error ${e.message.slice(0, 10)}`),
  });
  const xml = `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" id="s1"><stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/></stream:features> <message from="a@b"><body>h&amp;é</body></message></stream:stream>`;
  for (let i = 0; i < xml.length; i += 7) p.write(xml.slice(i, i + 7));
  t.deepEqual(events, ['open s1', 'close']);
  t.is(got.length, 2);
  t.is(got[0]!.local, 'features');
  t.truthy(got[0]!.child('starttls', 'urn:ietf:params:xml:ns:xmpp-tls'));
  t.is(got[1]!.child('body')!.text(), 'h&é');
  p.reset();
  p.write('<stream:stream id="s2"><a></b>');
  t.is(events[2], 'open s2');
  t.regex(events[3]!, /^error/);
});

test('capacity search doubles until a failure, then bisects to the resolution', (t) => {
  const limit = 37; // a server that serves up to 37 users
  const o = { start: 5, max: 1000, resolution: 0.1 };
  const steps: { users: number; passed: boolean }[] = [];
  for (let u = nextUsers(steps, o); u !== undefined; u = nextUsers(steps, o)) steps.push({ users: u, passed: u <= limit });
  t.deepEqual(steps.slice(0, 5).map((s) => s.users), [5, 10, 20, 40, 30]);
  const r = summarise(steps.map((s) => ({ ...s, failed: [], deliveryP95: undefined, messagesPerSecond: undefined, errors: 0 })));
  t.true(r.capacity <= limit && r.firstFailure! > limit, JSON.stringify(r));
  t.true(r.firstFailure! - r.capacity <= Math.max(1, Math.floor(r.capacity * 0.1)), 'within 10 %');
  // A server that serves the ceiling: stop there. One that fails at the start: capacity 0.
  t.deepEqual(run([], { start: 8, max: 20, resolution: 0.1 }, () => true), [8, 16, 20]);
  t.deepEqual(run([], { start: 1, max: 20, resolution: 0.1 }, () => false), [1]);
});

function run(steps: { users: number; passed: boolean }[], o: { start: number; max: number; resolution: number }, ok: (u: number) => boolean): number[] {
  for (let u = nextUsers(steps, o); u !== undefined; u = nextUsers(steps, o)) steps.push({ users: u, passed: ok(u) });
  return steps.map((s) => s.users);
}
