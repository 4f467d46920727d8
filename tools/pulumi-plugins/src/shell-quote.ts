// The one quoter for POSIX sh: the command provider's environment exported over SSH (remote.ts)
// and every script the Pulumi program renders (infra/render/shell.ts re-exports it as q).

/** `value` as a single sh word: safe words stay as they are, anything else is single-quoted. */
export function shellQuote(value: string | number): string {
  const s = String(value);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'"'"'`)}'`;
}
