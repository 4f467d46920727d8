// Shell helpers shared by the renderers: quoting, and a prelude with small functions the rendered
// scripts use to write files atomically and to log. Everything here returns text.
import { createHash } from "node:crypto";

/** Single-quote a value for POSIX sh. */
export function q(value: string | number): string {
  const s = String(value);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'"'"'`)}'`;
}

export function sha256(...parts: string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex");
}

export function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/** Functions every rendered remote script starts with. */
export const PRELUDE = `set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive
log() { printf '[pi-im] %s\\n' "$*" >&2; }
die() { printf '[pi-im] ERROR: %s\\n' "$*" >&2; exit 1; }
# pi_im_write PATH MODE OWNER BASE64: write a file atomically; status 0 if it changed, 1 if not.
pi_im_write() {
  local path=$1 mode=$2 owner=$3 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s' "$4" | base64 -d > "$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path" && [ "$(stat -c %a:%u:%g "$path")" = "$(stat -c %a:%u:%g "$tmp")" ]; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$path"
  log "wrote $path"
  return 0
}
`;

/** A shell line writing `content` to `path` (true when changed); `|| true` keeps set -e happy. */
export function writeFile(path: string, content: string, mode = "0644", owner = "root:root"): string {
  return `pi_im_write ${q(path)} ${q(mode)} ${q(owner)} ${q(b64(content))}`;
}
