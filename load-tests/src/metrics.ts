/**
 * Metrics in k6's kinds: Trend (latencies in ms), Counter (totals and rates), Gauge (current value).
 * A Trend is a log-bucketed histogram (1% relative precision, fixed 16 KiB), so a million samples
 * cost no more memory than ten and percentiles are cheap enough for a live progress line.
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Values below 1 µs land in bucket 0; the top bucket covers beyond ~ 2.8 hours in ms. */
const BUCKETS = 2200;
const SCALE = 1000; // bucket on µs so sub-millisecond loopback latencies keep their precision

function bucketOf(ms: number): number {
  const v = ms * SCALE;
  if (v < 1) return 0;
  return Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(v) / LOG_GROWTH));
}

/** Geometric middle of a bucket, in ms. */
function valueOf(b: number): number {
  if (b === 0) return 0;
  return Math.pow(GROWTH, b - 0.5) / SCALE;
}

export class Histogram {
  private buckets = new Uint32Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  add(ms: number): void {
    this.buckets[bucketOf(ms)]!++;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** p in 0..100. Exact min/max at the ends; otherwise within 1% of the true sample. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    if (p <= 0) return this.min;
    if (p >= 100) return this.max;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.buckets[b]!;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, valueOf(b)));
    }
    return this.max;
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = -Infinity;
  }
}

export type MetricKind = 'trend' | 'counter' | 'gauge';

export interface MetricSummary {
  kind: MetricKind;
  count: number;
  /** Counter: per second over the run. */
  rate?: number;
  avg?: number;
  min?: number;
  med?: number;
  p50?: number;
  p90?: number;
  p95?: number;
  p99?: number;
  max?: number;
  /** Gauge: last value. */
  value?: number;
  unit?: string;
  description: string;
}

export class Trend {
  readonly kind = 'trend';
  readonly all = new Histogram();
  /** Samples since the last progress tick, for the live p95. */
  readonly window = new Histogram();
  constructor(public description: string) {}
  add(ms: number): void {
    this.all.add(ms);
    this.window.add(ms);
  }
}

export class Counter {
  readonly kind = 'counter';
  count = 0;
  constructor(public description: string) {}
  add(n = 1): void {
    this.count += n;
  }
}

export class Gauge {
  readonly kind = 'gauge';
  value = 0;
  max = 0;
  constructor(public description: string) {}
  set(v: number): void {
    this.value = v;
    if (v > this.max) this.max = v;
  }
}

export type Metric = Trend | Counter | Gauge;

export class Metrics {
  readonly map = new Map<string, Metric>();

  trend(name: string, description = ''): Trend {
    return this.get(name, () => new Trend(description), 'trend') as Trend;
  }
  counter(name: string, description = ''): Counter {
    return this.get(name, () => new Counter(description), 'counter') as Counter;
  }
  gauge(name: string, description = ''): Gauge {
    return this.get(name, () => new Gauge(description), 'gauge') as Gauge;
  }

  private get(name: string, make: () => Metric, kind: MetricKind): Metric {
    let m = this.map.get(name);
    if (!m) this.map.set(name, (m = make()));
    else if (m.kind !== kind) throw new Error(`metric ${name} is a ${m.kind}, not a ${kind}`);
    return m;
  }

  summary(elapsedMs: number): Record<string, MetricSummary> {
    const out: Record<string, MetricSummary> = {};
    for (const [name, m] of [...this.map].sort(([a], [b]) => a.localeCompare(b))) out[name] = summarize(m, elapsedMs);
    return out;
  }
}

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x);

export function summarize(m: Metric, elapsedMs: number): MetricSummary {
  if (m instanceof Trend) {
    const h = m.all;
    if (h.count === 0) return { kind: 'trend', count: 0, unit: 'ms', description: m.description };
    const p50 = round(h.percentile(50));
    return {
      kind: 'trend', count: h.count, unit: 'ms', description: m.description,
      avg: round(h.sum / h.count), min: round(h.min), med: p50, p50,
      p90: round(h.percentile(90)), p95: round(h.percentile(95)), p99: round(h.percentile(99)), max: round(h.max),
    };
  }
  if (m instanceof Counter) return { kind: 'counter', count: m.count, rate: round(m.count / Math.max(elapsedMs / 1000, 1e-3)), description: m.description };
  return { kind: 'gauge', count: m.value, value: m.value, max: m.max, description: m.description };
}
