import type { MetricSummary } from './metrics.js';

export type Op = '<' | '<=' | '>' | '>=' | '==' | '!=';
export type Agg = 'p50' | 'p90' | 'p95' | 'p99' | 'avg' | 'min' | 'max' | 'med' | 'count' | 'rate' | 'value' | `p${number}`;

export interface Threshold {
  /** As written by the user. */
  source: string;
  metric: string;
  agg: Agg;
  op: Op;
  /** In the metric's unit: ms for trends. */
  value: number;
}

export interface ThresholdResult extends Threshold {
  ok: boolean;
  actual: number | undefined;
  reason?: string;
}

const AGG_SUFFIX = /^(.+?)_(p\d+(?:\.\d+)?|avg|min|max|med|count|rate|value)$/;
const K6_FORM = /^([a-z0-9_]+)\s*:\s*(p\((\d+(?:\.\d+)?)\)|avg|min|max|med|count|rate|value)$/i;

/**
 * Parses `delivery_p95<500`, `errors==0`, `connect_p95 < 2s`, `messages_sent_rate>=100`,
 * and k6's own form `delivery: p(95) < 500`. A bare counter name compares its count.
 * Durations may carry ms/s units; the result is in ms.
 */
export function parseThreshold(src: string): Threshold {
  const m = /^(.*?)\s*(<=|>=|==|!=|<|>)\s*([-+]?\d+(?:\.\d+)?)\s*(ms|s|%)?\s*$/.exec(src.trim());
  if (!m) throw new Error(`bad threshold "${src}": write metric_aggregate op number, e.g. delivery_p95<500, errors==0, connect_p95<2s`);
  const lhs = m[1]!.trim();
  let value = Number(m[3]);
  if (m[4] === 's') value *= 1000;
  if (m[4] === '%') value /= 100;
  let metric: string;
  let agg: Agg;
  const k6 = K6_FORM.exec(lhs);
  const suffixed = AGG_SUFFIX.exec(lhs);
  if (k6) {
    metric = k6[1]!;
    agg = (k6[3] ? `p${k6[3]}` : k6[2]!.toLowerCase()) as Agg;
  } else if (suffixed) {
    metric = suffixed[1]!;
    agg = suffixed[2] as Agg;
  } else if (/^[a-z0-9_]+$/i.test(lhs)) {
    metric = lhs;
    agg = 'count';
  } else throw new Error(`bad threshold "${src}": "${lhs}" is not a metric name`);
  if (/^p/.test(agg)) {
    const p = Number(agg.slice(1));
    if (!(p > 0 && p <= 100)) throw new Error(`bad threshold "${src}": percentile must be in (0, 100]`);
  }
  return { source: src.trim(), metric, agg, op: m[2] as Op, value };
}

/** Several thresholds separated by newlines or `;` (a thresholds file: one per line, # comments). */
export function parseThresholdList(text: string): Threshold[] {
  return text
    .split('\n')
    .flatMap((l) => l.replace(/#.*/, '').split(';'))
    .map((l) => l.trim())
    .filter(Boolean)
    .map(parseThreshold);
}

function aggregate(s: MetricSummary, agg: Agg): number | undefined {
  switch (agg) {
    case 'count':
      return s.count;
    case 'rate':
      return s.rate;
    case 'value':
      return s.value;
    case 'avg':
      return s.avg;
    case 'min':
      return s.min;
    case 'max':
      return s.max;
    case 'med':
    case 'p50':
      return s.p50;
    case 'p90':
      return s.p90;
    case 'p95':
      return s.p95;
    case 'p99':
      return s.p99;
    default:
      return undefined;
  }
}

export function compare(a: number, op: Op, b: number): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '==':
      return a === b;
    case '!=':
      return a !== b;
  }
}

/**
 * Evaluates thresholds against the run's metric summaries. A metric that does not exist is a
 * failure (a typo must not pass silently); so is a latency aggregate with no samples, because
 * `delivery_p95<500` with nothing delivered is not a pass. Arbitrary percentiles (p75, p99.9) are
 * computed by `percentile` when given.
 */
export function evaluate(
  thresholds: Threshold[],
  summaries: Record<string, MetricSummary>,
  percentile?: (metric: string, p: number) => number | undefined,
): ThresholdResult[] {
  return thresholds.map((t) => {
    const s = summaries[t.metric];
    if (!s) return { ...t, ok: false, actual: undefined, reason: `no metric "${t.metric}" in this run (known: ${Object.keys(summaries).join(', ')})` };
    let actual = aggregate(s, t.agg);
    if (actual === undefined && /^p/.test(t.agg) && s.count > 0) actual = percentile?.(t.metric, Number(t.agg.slice(1)));
    if (actual === undefined || Number.isNaN(actual)) {
      const reason = s.kind === 'trend' && s.count === 0 ? `no samples of ${t.metric}` : `${t.agg} is not defined for ${s.kind} ${t.metric}`;
      return { ...t, ok: false, actual: undefined, reason };
    }
    return { ...t, ok: compare(actual, t.op, t.value), actual };
  });
}
