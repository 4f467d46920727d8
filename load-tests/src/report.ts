import type { RunResult } from './runner.js';

const fmt = (v: number | undefined, unit = '') => (v === undefined || Number.isNaN(v) ? '-' : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

/** The human summary printed at the end of a run. */
export function renderSummary(r: RunResult): string {
  const out: string[] = [];
  out.push(`pi-im load test: ${(r.options.scenarios as Array<{ name: string; weight: number }>).map((s) => `${s.name}×${s.weight}`).join(', ')} against ${r.options.domain} (${r.options.host}:${r.options.port}${r.options.ws ? `, ${r.options.ws}` : ''}), ${(r.elapsedMs / 1000).toFixed(1)} s`);
  out.push('');
  const trends = [['trend (ms)', 'count', 'avg', 'p50', 'p90', 'p95', 'p99', 'max']];
  const counters = [['counter', 'count', 'per s']];
  for (const [name, s] of Object.entries(r.metrics)) {
    if (s.kind === 'trend') trends.push([name, String(s.count), fmt(s.avg), fmt(s.p50), fmt(s.p90), fmt(s.p95), fmt(s.p99), fmt(s.max)]);
    else if (s.kind === 'counter') counters.push([name, String(s.count), fmt(s.rate)]);
    else counters.push([`${name} (gauge, max)`, String(s.value), String(s.max ?? '')]);
  }
  out.push(table(trends), '', table(counters));
  if (r.errors.length) {
    out.push('', 'most frequent errors:');
    for (const [msg, n] of r.errors) out.push(`  ${String(n).padStart(6)}  ${msg}`);
  }
  if (r.thresholds.length) {
    out.push('', 'thresholds:');
    for (const t of r.thresholds) {
      const actual = t.actual === undefined ? t.reason : `actual ${fmt(t.actual)}`;
      out.push(`  ${t.ok ? 'PASS' : 'FAIL'}  ${t.source.padEnd(28)} ${actual}`);
    }
    const failed = r.thresholds.filter((t) => !t.ok);
    out.push('', failed.length ? `FAILED: ${failed.length} threshold(s) not met: ${failed.map((t) => t.source).join(', ')}` : 'all thresholds met');
  }
  return out.join('\n');
}
