import type { BenchOptions, BenchResult as Result } from './phases.js';

type BenchResult = Result & { medians?: Map<string, number | undefined> };

type Row = [label: string, get: (r: BenchResult) => number | undefined, digits: number, lowerIsBetter: boolean];

const ROWS: Row[] = [
  ['connections held', (r) => r.connectionsHeld, 0, false],
  ['connect+login p50 (ms)', (r) => r.connect?.p50, 1, true],
  ['connect+login p99 (ms)', (r) => r.connect?.p99, 1, true],
  ['registrations/s (IBR)', (r) => r.registrationsPerSec, 0, false],
  ['RSS with no connections (MiB)', (r) => (r.rssBaseKiB === undefined ? undefined : r.rssBaseKiB / 1024), 1, true],
  ['RSS per idle connection (KiB)', (r) => r.rssPerIdleConnKiB, 1, true],
  ['delivered msgs/s at saturation', (r) => r.saturation?.msgsPerSec, 0, false],
  ['delivery p50 at saturation (ms)', (r) => r.saturation?.p50, 2, true],
  ['delivery p99 at saturation (ms)', (r) => r.saturation?.p99, 2, true],
  ['delivery p50 at fixed rate (ms)', (r) => r.fixedRate?.p50, 2, true],
  ['delivery p99 at fixed rate (ms)', (r) => r.fixedRate?.p99, 2, true],
  ['server CPU used at fixed rate (cores)', (r) => r.fixedRate?.serverCores, 2, true],
  ['messages lost at fixed rate', (r) => r.fixedRate?.lost, 0, true],
  ['server CPU s per 1,000 msgs', (r) => r.saturation?.serverCpuPer1000, 3, true],
  ['client CPU s per 1,000 msgs', (r) => r.saturation?.clientCpuPer1000, 3, true],
  ['server CPU s per 1,000 offline msgs', (r) => r.offline?.serverCpuPer1000, 3, true],
  ['fsyncs/s while storing offline msgs', (r) => r.fsyncsPerSec, 1, true],
];

const fmt = (v: number | undefined, d: number) => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}

/** One column per server: the median of its rounds for every row (rounds that failed are left out). */
export function medianResult(rounds: BenchResult[]): BenchResult {
  const ok = rounds.filter((r) => !r.error);
  const base: BenchResult = { ...(ok[0] ?? rounds[0]!), notes: rounds.flatMap((r, i) => r.notes.map((n) => (rounds.length > 1 ? `round ${i + 1}: ${n}` : n))) };
  if (ok.length <= 1) return base;
  const values = new Map<string, number | undefined>();
  for (const [label, get] of ROWS) values.set(label, median(ok.map(get).filter((v): v is number => v !== undefined)));
  return { ...base, medians: values };
}

/** Markdown table: one column per server, and pi-im/Prosody when both ran. */
export function renderBench(results: BenchResult[], o: BenchOptions, meta: { date: string; host: string; rounds: number }): string {
  const piim = results.find((r) => r.server === 'pi-im');
  const prosody = results.find((r) => r.server === 'prosody');
  const ratio = Boolean(piim && prosody && !piim.error && !prosody.error);
  const head = ['metric', ...results.map((r) => r.server), ...(ratio ? ['pi-im/Prosody'] : [])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const [label, rawGet, d] of ROWS) {
    const get = (r: BenchResult) => (r.medians ? r.medians.get(label) : rawGet(r));
    const vals = results.map((r) => get(r));
    const cells = [label, ...vals.map((v) => fmt(v, d))];
    if (ratio) {
      const a = get(piim!);
      const b = get(prosody!);
      // The load generator's own figures are not a property of the server: no ratio for them.
      const own = /^(load generator|client)/.test(label);
      cells.push(!own && a !== undefined && b !== undefined && b !== 0 ? `${(a / b).toFixed(2)}×` : own ? '' : 'n/a');
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const out = [
    `# pi-im vs Prosody: ${meta.date}`,
    '',
    `Host ${meta.host}. Load: ${o.connections} connections over ${o.transport === 'tcp' ? 'TCP+STARTTLS' : 'WebSocket'} (logins ${o.concurrency} at a time), held idle ${o.holdSeconds} s; ` +
      `messages of ${o.messageSize} B between ${o.senders} sender→receiver pairs: ${o.rate} msg/s for ${o.rateSeconds} s (fixed rate), then ${o.messages} messages closed-loop with ${o.window} in flight per sender (saturation), then ${o.offlineRate} msg/s for ${o.offlineSeconds} s to accounts that are offline (storage). ` +
      `Same client process for both servers; latency measured by the receiver from a timestamp in the body.` +
      (meta.rounds > 1 ? ` Each figure is the median of ${meta.rounds} rounds (servers alternating).` : ''),
    '',
    ...lines,
    '',
  ];
  for (const r of results) {
    if (r.error) out.push(`- **${r.server} failed**: ${r.error}`);
    for (const n of r.notes) out.push(`- ${r.server}: ${n}`);
    if (r.fsyncSource) out.push(`- ${r.server} fsyncs: ${r.fsyncSource}`);
  }
  out.push('- RSS per idle connection = (VmRSS after the logins − VmRSS before) / connections held, of the server process.');
  out.push('- CPU = utime+stime of the server process (all threads) during the saturation phase. When client CPU per message approaches 1 core-second per second, the load generator, not the server, is the limit.');
  return `${out.join('\n')}\n`;
}
