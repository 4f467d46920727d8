// Validation of 5-field cron schedules as Debian's cron (vixie) accepts them in /etc/cron.d.
// Returns undefined when valid, else a sentence saying what is wrong.

const FIELDS: Array<{ name: string; min: number; max: number; names?: string[] }> = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"] },
  { name: "day of week", min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

const MACROS = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];

export function cronError(schedule: string): string | undefined {
  const text = schedule.trim();
  if (text.startsWith("@")) {
    return MACROS.includes(text) ? undefined : `unknown macro '${text}' (one of ${MACROS.join(", ")})`;
  }
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    return `expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`;
  }
  for (let i = 0; i < 5; i++) {
    const err = fieldError(parts[i]!, FIELDS[i]!);
    if (err) return err;
  }
  return undefined;
}

function fieldError(field: string, spec: (typeof FIELDS)[number]): string | undefined {
  for (const item of field.split(",")) {
    const [range, step, extra] = item.split("/");
    if (extra !== undefined || range === undefined || range === "") return `bad ${spec.name} '${field}'`;
    if (step !== undefined && !/^\d+$/.test(step)) return `bad step '${step}' in ${spec.name} '${field}'`;
    if (step !== undefined && Number(step) === 0) return `step 0 in ${spec.name} '${field}'`;
    if (range === "*") continue;
    const bounds = range.split("-");
    if (bounds.length > 2) return `bad range '${range}' in ${spec.name}`;
    const values: number[] = [];
    for (const b of bounds) {
      const v = valueOf(b, spec);
      if (v === undefined) return `'${b}' is not a valid ${spec.name} (${spec.min}-${spec.max})`;
      values.push(v);
    }
    if (values.length === 2 && values[0]! > values[1]!) return `range '${range}' in ${spec.name} runs backwards`;
  }
  return undefined;
}

function valueOf(token: string, spec: (typeof FIELDS)[number]): number | undefined {
  if (/^\d+$/.test(token)) {
    const v = Number(token);
    return v >= spec.min && v <= spec.max ? v : undefined;
  }
  const idx = spec.names?.indexOf(token.toLowerCase()) ?? -1;
  if (idx < 0) return undefined;
  return spec.name === "month" ? idx + 1 : idx;
}
