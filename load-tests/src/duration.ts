/** k6-style durations: `500ms`, `10s`, `1m30s`, `2h`; a bare number means seconds. Returns ms. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    end = re.lastIndex;
  }
  if (t === '' || end !== t.length) throw new Error(`bad duration "${s}": use e.g. 500ms, 30s, 1m30s, 2h`);
  return total;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
}

/** A fixed value or a uniform range: `1s`, `0.5s-2s`; returns a sampler in ms. */
export function parseRange(s: string, parse: (x: string) => number = parseDuration): { min: number; max: number; sample(): number } {
  const parts = s.split(/(?<=[^-e])-(?=\d)/);
  if (parts.length > 2) throw new Error(`bad range "${s}": use a value like 1s or a range like 0.5s-2s`);
  const min = parse(parts[0]!);
  const max = parts[1] === undefined ? min : parse(parts[1]);
  if (max < min) throw new Error(`bad range "${s}": the upper bound is below the lower one`);
  return { min, max, sample: () => (min === max ? min : min + Math.random() * (max - min)) };
}
