// Capacity search: the largest number of users for which a run still meets every threshold.
// Doubles the users from a start value until a run fails (or a ceiling is reached), then
// bisects between the last pass and the first fail down to a resolution. Each step is a whole
// run (its own accounts, ramp and hold), so a step measures a steady state, not a ramp.
import { randomPrefix, run, type RunOptions, type RunResult } from './runner.js';
import { stagesFromFlags } from './stages.js';
import type { Range } from './scenario.js';

export interface SearchOptions {
  start: number;
  max: number;
  /** Stop bisecting when (fail - pass) <= max(1, pass * resolution). */
  resolution: number;
}

export interface SearchStep {
  users: number;
  passed: boolean;
  /** Thresholds that failed (source text), empty when passed. */
  failed: string[];
  deliveryP95: number | undefined;
  messagesPerSecond: number | undefined;
  errors: number;
}

export interface SearchResult {
  steps: SearchStep[];
  /** Largest passing user count (0: even the start failed). */
  capacity: number;
  /** Smallest failing user count seen, undefined when max passed. */
  firstFailure: number | undefined;
}

/** The next user count to try after `steps`, or undefined when the search is done. Pure. */
export function nextUsers(steps: Pick<SearchStep, 'users' | 'passed'>[], o: SearchOptions): number | undefined {
  if (steps.length === 0) return Math.min(o.start, o.max);
  const pass = Math.max(0, ...steps.filter((s) => s.passed).map((s) => s.users));
  const fails = steps.filter((s) => !s.passed).map((s) => s.users);
  const fail = fails.length ? Math.min(...fails) : undefined;
  if (fail === undefined) {
    if (pass >= o.max) return undefined;
    return Math.min(pass * 2, o.max);
  }
  if (pass === 0 && fail <= 1) return undefined;
  if (fail - pass <= Math.max(1, Math.floor(pass * o.resolution))) return undefined;
  return Math.floor((pass + fail) / 2);
}

export function summarise(steps: SearchStep[]): SearchResult {
  const pass = Math.max(0, ...steps.filter((s) => s.passed).map((s) => s.users));
  const fails = steps.filter((s) => !s.passed).map((s) => s.users);
  return { steps, capacity: pass, firstFailure: fails.length ? Math.min(...fails) : undefined };
}

export function stepOf(users: number, r: RunResult): SearchStep {
  return {
    users,
    passed: r.passed,
    failed: r.thresholds.filter((t) => !t.ok).map((t) => t.source),
    deliveryP95: r.metrics['delivery']?.p95,
    messagesPerSecond: r.metrics['messages_received']?.rate,
    errors: r.metrics['errors']?.count ?? 0,
  };
}

/** Runs the search against a live target; `report` hears each step as it ends. */
export async function search(base: RunOptions, o: SearchOptions, parseThink: (s: string) => Range,
  report: (step: SearchStep, r: RunResult) => void): Promise<SearchResult> {
  if (base.thresholds.length === 0) throw new Error('a capacity search needs thresholds (--threshold or --thresholds-file): they define what "still serves" means');
  const steps: SearchStep[] = [];
  for (let users = nextUsers(steps, o); users !== undefined; users = nextUsers(steps, o)) {
    if (base.signal?.aborted) break;
    const opts: RunOptions = {
      ...base, users, userPrefix: randomPrefix(),
      stages: stagesFromFlags(users, base.rampMs, base.durationMs),
    };
    const r = await run(opts, parseThink);
    const step = stepOf(users, r);
    steps.push(step);
    report(step, r);
  }
  return summarise(steps);
}

export function renderSearch(r: SearchResult): string {
  const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
  const rows = [['users', 'result', 'delivery p95 ms', 'msgs/s', 'errors', 'failed thresholds']];
  for (const s of [...r.steps].sort((a, b) => a.users - b.users)) {
    rows.push([String(s.users), s.passed ? 'PASS' : 'FAIL', fmt(s.deliveryP95), fmt(s.messagesPerSecond), String(s.errors), s.failed.join(', ')]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  lines.push('');
  lines.push(r.capacity === 0
    ? `capacity: none — even ${Math.min(...r.steps.map((s) => s.users))} users failed the thresholds`
    : `capacity: ${r.capacity} users meet every threshold${r.firstFailure ? ` (${r.firstFailure} do not)` : ' (the ceiling; raise --search-max to look further)'}`);
  return lines.join('\n');
}
