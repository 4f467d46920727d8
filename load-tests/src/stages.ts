import { formatDuration, parseDuration } from './duration.js';

/** k6's `stages`: ramp linearly from the previous target to `target` VUs over `durationMs`. */
export interface Stage {
  durationMs: number;
  target: number;
}

/** `30s:50,1m:50,10s:0` -> stages. */
export function parseStages(s: string): Stage[] {
  const stages = s.split(',').map((part) => {
    const m = /^\s*([^:]+):\s*(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`bad stage "${part}": use duration:target, e.g. 30s:50`);
    return { durationMs: parseDuration(m[1]!), target: Number(m[2]) };
  });
  if (stages.length === 0) throw new Error('--stages needs at least one stage');
  return stages;
}

/** `--users N --ramp R --duration D`: ramp 0->N over R (R = 0: all N at once), then hold N for D. */
export function stagesFromFlags(users: number, rampMs: number, durationMs: number): Stage[] {
  return [{ durationMs: rampMs, target: users }, { durationMs, target: users }];
}

export function totalDurationMs(stages: Stage[]): number {
  return stages.reduce((a, s) => a + s.durationMs, 0);
}

export function maxTarget(stages: Stage[], start = 0): number {
  return stages.reduce((a, s) => Math.max(a, s.target), start);
}

/**
 * VUs wanted at `tMs` after the start: linear interpolation inside the current stage, rounded
 * down like k6 (a VU starts once the line has passed its number). A zero-length stage jumps.
 * After the last stage the last target holds.
 */
export function targetAt(stages: Stage[], tMs: number, start = 0): number {
  let from = start;
  let t0 = 0;
  for (const s of stages) {
    if (tMs < t0 + s.durationMs) {
      const f = (tMs - t0) / s.durationMs;
      return Math.floor(from + (s.target - from) * f + 1e-9);
    }
    t0 += s.durationMs;
    from = s.target;
  }
  return from;
}

export function describeStages(stages: Stage[]): string {
  return stages.map((s) => `${formatDuration(s.durationMs)}→${s.target}`).join(', ');
}
