import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ErrorLog, connectAndLogin, newClient, pool, sleep, type Target, type Transport } from './context.js';
import { Metrics, type MetricSummary } from './metrics.js';
import { OnlineSet, Vu, type FeatureOptions, type Range, type RunContext, type Scenario } from './scenario.js';
import { assignScenarios, type MixEntry } from './scenarios/index.js';
import { maxTarget, targetAt, totalDurationMs, type Stage } from './stages.js';
import { evaluate, type Threshold, type ThresholdResult } from './thresholds.js';
import { Progress } from './progress.js';

export interface RunOptions {
  target: Target;
  transport: Transport | 'both';
  executor: 'ramping-vus' | 'constant-arrival-rate';
  /** ramping-vus: the VU curve. */
  stages: Stage[];
  /** constant-arrival-rate: VUs held (logged in) and iterations started per second for durationMs. */
  users: number;
  rate: number;
  rampMs: number;
  durationMs: number;
  mix: MixEntry[];
  /** Think time between iterations; undefined: each scenario's default. */
  think: Range | undefined;
  messageSize: Range;
  features: FeatureOptions;
  thresholds: Threshold[];
  /** Register accounts by XEP-0077 before the run and remove them after. */
  register: boolean;
  keepAccounts: boolean;
  userPrefix: string;
  password: string;
  provisionConcurrency: number;
  /** Grace for in-flight messages at the end. */
  drainMs: number;
  progress: boolean;
  /** Aborting ends the load phase early (Ctrl-C); accounts are still removed and the summary printed. */
  signal?: AbortSignal;
}

export interface RunResult {
  options: Record<string, unknown>;
  startedAt: string;
  elapsedMs: number;
  metrics: Record<string, MetricSummary>;
  thresholds: ThresholdResult[];
  errors: Array<[string, number]>;
  passed: boolean;
}

/** Resolved think-time sampler per scenario. */
type ThinkOf = (s: Scenario) => number;

export async function run(o: RunOptions, parseThink: (s: string) => Range): Promise<RunResult> {
  const metrics = new Metrics();
  for (const name of ['errors', 'iterations', 'dropped_iterations']) metrics.counter(name);
  metrics.gauge('vus', 'VUs running');
  const ctx: RunContext = {
    target: o.target,
    metrics,
    errors: new ErrorLog(metrics),
    online: new OnlineSet(),
    messageSize: o.messageSize,
    features: o.features,
    vus: [],
  };
  // Declare every metric the scenarios report, so thresholds on them are valid even at zero.
  for (const m of o.mix) for (const name of m.scenario.metrics) declare(metrics, name);
  declare(metrics, 'connect');

  const count = o.executor === 'ramping-vus' ? maxTarget(o.stages) : o.users;
  const scenarios = assignScenarios(o.mix, count);
  // With both transports, alternate within each scenario so every scenario uses both.
  const perScenario = new Map<Scenario, number>();
  const transportOf = (s: Scenario): Transport => {
    const k = perScenario.get(s) ?? 0;
    perScenario.set(s, k + 1);
    return o.transport === 'both' ? (k % 2 ? 'ws' : 'tcp') : o.transport;
  };
  for (let i = 0; i < count; i++) ctx.vus.push(new Vu(i, `${o.userPrefix}${i}`, o.password, transportOf(scenarios[i]!), scenarios[i]!, o.target.domain));
  const thinkCache = new Map<Scenario, Range>();
  const thinkOf: ThinkOf = (s) => {
    if (o.think) return o.think.sample();
    let r = thinkCache.get(s);
    if (!r) thinkCache.set(s, (r = parseThink(s.defaultThink)));
    return r.sample();
  };

  if (o.register) await provision(ctx, o, count);

  const progress = new Progress(metrics, o.progress);
  const started = new Date();
  const t0 = performance.now();
  const total = o.executor === 'ramping-vus' ? totalDurationMs(o.stages) : o.rampMs + o.durationMs;
  progress.start(total);
  const running = new Set<Promise<void>>();
  try {
    if (o.executor === 'ramping-vus') await rampingVus(ctx, o, thinkOf, running);
    else await constantArrivalRate(ctx, o, running);
  } finally {
    for (const vu of ctx.vus) vu?.requestStop();
    await Promise.all(running);
    await drain(ctx, o.drainMs);
    progress.stop();
  }
  const elapsedMs = performance.now() - t0;
  if (!o.keepAccounts && o.register) await removeAccounts(ctx, o);
  for (const vu of ctx.vus) if (vu?.client) await vu.logout();

  const summaries = metrics.summary(elapsedMs);
  const results = evaluate(o.thresholds, summaries, (name, p) => {
    const m = metrics.map.get(name);
    return m && m.kind === 'trend' ? m.all.percentile(p) : undefined;
  });
  return {
    options: describeOptions(o),
    startedAt: started.toISOString(),
    elapsedMs,
    metrics: summaries,
    thresholds: results,
    errors: ctx.errors.top(10),
    passed: results.every((r) => r.ok),
  };
}

function declare(metrics: Metrics, name: string): void {
  if (metrics.map.has(name)) return;
  const counters = /^(messages_|muc_messages_|presence_sent|presence_received|logins|errors|files_)|_bytes$/;
  if (name === 'roster_items') metrics.gauge(name);
  else if (counters.test(name)) metrics.counter(name);
  else metrics.trend(name);
}

/** One VU's life: start a session, iterate with think time, restart after errors, stop gracefully. */
async function vuLoop(vu: Vu, ctx: RunContext, thinkOf: ThinkOf): Promise<void> {
  const s = vu.scenario;
  while (!vu.stopping) {
    try {
      if (!vu.started) {
        await s.start(vu, ctx);
        vu.started = true;
      }
      if (vu.stopping) break;
      await s.iteration(vu, ctx);
      ctx.metrics.counter('iterations').add();
    } catch (e) {
      if (!vu.stopping) ctx.errors.add(vu.started ? 'iteration' : 'session', e);
      vu.started = false;
      await vu.logout().catch(() => {});
    }
    await vu.sleep(thinkOf(s));
  }
  await finish(vu, ctx);
}

async function finish(vu: Vu, ctx: RunContext): Promise<void> {
  try {
    if (vu.started) await vu.scenario.stop(vu, ctx);
  } catch (e) {
    ctx.errors.add('stop', e);
  }
  ctx.online.delete(vu);
  await vu.logout().catch(() => {});
}

async function rampingVus(ctx: RunContext, o: RunOptions, thinkOf: ThinkOf, running: Set<Promise<void>>): Promise<void> {
  const total = totalDurationMs(o.stages);
  const active: Vu[] = [];
  const free: Vu[] = ctx.vus.slice().reverse() as Vu[]; // VU 0 first
  const gauge = ctx.metrics.gauge('vus');
  const t0 = performance.now();
  for (;;) {
    const t = performance.now() - t0;
    if (t >= total || o.signal?.aborted) break;
    const want = targetAt(o.stages, t);
    while (active.length < want && free.length > 0) {
      const vu = free.pop()!;
      active.push(vu);
      vu.stopping = false;
      const p: Promise<void> = vuLoop(vu, ctx, thinkOf).finally(() => {
        free.push(vu); // a stopped VU may be started again by a later stage
        running.delete(p);
      });
      running.add(p);
    }
    while (active.length > want) active.pop()!.requestStop(); // newest first, like k6
    gauge.set(active.length);
    await sleep(Math.min(100, total - t));
  }
  gauge.set(0);
}

/**
 * k6's constant-arrival-rate: `users` VUs log in (spread over --ramp), then iterations start at
 * `rate` per second on whichever VU is idle; with none idle the iteration is dropped and counted.
 */
async function constantArrivalRate(ctx: RunContext, o: RunOptions, running: Set<Promise<void>>): Promise<void> {
  const gauge = ctx.metrics.gauge('vus');
  const idle: Vu[] = [];
  const startT = performance.now();
  const starts = ctx.vus.map((vu, i) => {
    const p: Promise<void> = (async () => {
      if (o.rampMs > 0) await sleep((o.rampMs * i) / ctx.vus.length);
      try {
        await vu!.scenario.start(vu!, ctx);
        vu!.started = true;
        idle.push(vu!);
        gauge.set(gauge.value + 1);
      } catch (e) {
        ctx.errors.add('session', e);
      }
    })();
    return p;
  });
  while (performance.now() - startT < o.rampMs && !o.signal?.aborted) await sleep(50);
  const t0 = performance.now();
  let launched = 0;
  for (;;) {
    const t = performance.now() - t0;
    if (t >= o.durationMs || o.signal?.aborted) break;
    const due = Math.floor((t / 1000) * o.rate);
    for (; launched < due; launched++) {
      const vu = idle.pop();
      if (!vu) {
        ctx.metrics.counter('dropped_iterations', 'iterations not started: no idle VU').add();
        continue;
      }
      const p: Promise<void> = (async () => {
        try {
          if (!vu.started) {
            await vu.scenario.start(vu, ctx);
            vu.started = true;
          }
          await vu.scenario.iteration(vu, ctx);
          ctx.metrics.counter('iterations').add();
        } catch (e) {
          ctx.errors.add('iteration', e);
          vu.started = false;
          await vu.logout().catch(() => {});
        }
        if (!vu.stopping) idle.unshift(vu);
      })().finally(() => running.delete(p));
      running.add(p);
    }
    await sleep(5);
  }
  await Promise.all(starts);
  await Promise.all(ctx.vus.map((vu) => vu && finish(vu, ctx)));
  gauge.set(0);
}

/** After the run: wait for in-flight chat messages, then count the missing ones as lost. */
async function drain(ctx: RunContext, maxMs: number): Promise<void> {
  const m = ctx.metrics;
  const sent = m.counter('messages_sent');
  const received = m.counter('messages_received');
  const bounced = m.counter('messages_bounced');
  const end = Date.now() + maxMs;
  while (received.count + bounced.count < sent.count && Date.now() < end) await sleep(20);
  const lost = sent.count - received.count - bounced.count;
  m.counter('messages_lost', 'chat messages sent but neither delivered nor bounced').add(Math.max(0, lost));
  if (lost > 0) ctx.errors.add('message', new Error('message lost (not delivered before the end of the run)'), lost);
}

async function provision(ctx: RunContext, o: RunOptions, count: number): Promise<void> {
  const reg = ctx.metrics.trend('register', 'XEP-0077 registration (connect + TLS + register), ms');
  let failure: Error | undefined;
  await pool(count, o.provisionConcurrency, async (i) => {
    if (failure) return;
    const vu = ctx.vus[i]!;
    const c = newClient(ctx.target, vu.transport, i);
    const t0 = performance.now();
    try {
      await c.connect();
      await c.register(vu.username, vu.password);
      reg.add(performance.now() - t0);
    } catch (e) {
      const cond = (e as { condition?: string }).condition;
      const hint =
        cond === 'not-allowed' || cond === 'forbidden' || cond === 'service-unavailable' || cond === 'feature-not-implemented'
          ? ' The server does not allow in-band registration: enable it for the test, or create accounts yourself and pass --no-register --user-prefix P --password W.'
          : cond === 'conflict'
            ? ` Account ${vu.username} already exists: choose another --user-prefix.`
            : '';
      failure ??= new Error(`registering ${vu.username} failed: ${(e as Error).message}.${hint}`);
    } finally {
      c.destroy();
    }
  });
  if (failure) throw failure;
}

/** Remove every test account (XEP-0077 <remove/>), reusing no session: each logs in afresh. */
async function removeAccounts(ctx: RunContext, o: RunOptions): Promise<void> {
  const m = new Metrics(); // login timings of the cleanup are not part of the results
  await pool(ctx.vus.length, o.provisionConcurrency, async (i) => {
    const vu = ctx.vus[i]!;
    await vu.logout().catch(() => {});
    let c;
    try {
      c = await connectAndLogin(ctx.target, m, vu.transport, i, vu.username, vu.password, 'cleanup');
      await c.unregister();
    } catch (e) {
      if (!(c && (e as { condition?: string }).condition === 'closed')) {
        ctx.metrics.counter('cleanup_failures', 'test accounts that could not be removed').add();
        ctx.errors.add('cleanup', e);
      }
    } finally {
      c?.destroy();
    }
  });
}

function describeOptions(o: RunOptions): Record<string, unknown> {
  const { target } = o;
  return {
    host: target.host, port: target.port, domain: target.domain, ws: target.wsUrl, transport: o.transport,
    executor: o.executor, stages: o.stages, users: o.users, rate: o.rate, rampMs: o.rampMs, durationMs: o.durationMs,
    scenarios: o.mix.map((m) => ({ name: m.scenario.name, weight: m.weight })),
    thinkMs: o.think ? [o.think.min, o.think.max] : 'scenario default', messageSize: [o.messageSize.min, o.messageSize.max],
    thresholds: o.thresholds.map((t) => t.source), register: o.register, keepAccounts: o.keepAccounts,
  };
}

export const randomPrefix = () => `lt${randomBytes(3).toString('hex')}_`;
export const randomPassword = () => randomBytes(12).toString('base64url');
