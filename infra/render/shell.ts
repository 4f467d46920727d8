// Shell helpers shared by the renderers: quoting, and a prelude with small functions the rendered
// scripts use to write files atomically and to log. Everything here returns text.
import { createHash } from "node:crypto";
import { shellQuote } from "../../tools/pulumi-plugins/src/shell-quote";

/** A value as one sh word (the quoter the command provider uses too). */
export const q = shellQuote;

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
# pi_im_write PATH MODE OWNER BASE64: write a file atomically. Sets PI_IM_WROTE=1 if it changed,
# 0 if not, and returns 0 either way; any failure ends the script. Every step is checked by hand:
# bash ignores set -e inside a function called from an if, && or || context, so errexit alone
# would let a failed write or chown carry on and log "wrote". (PI_IM_WROTE is read by the scripts that care.)
# shellcheck disable=SC2034
pi_im_write() {
  local path=$1 mode=$2 owner=$3 tmp
  PI_IM_WROTE=0
  mkdir -p "$(dirname "$path")" || die "cannot create the folder of $path"
  tmp=$(mktemp "$path.XXXXXX") || die "cannot create a temporary file next to $path"
  if ! { printf '%s' "$4" | base64 -d >"$tmp" && chmod "$mode" "$tmp" && chown "$owner" "$tmp"; }; then
    rm -f "$tmp"
    die "could not write $path (mode $mode, owner $owner)"
  fi
  if [ -f "$path" ] && cmp -s "$tmp" "$path" && [ "$(stat -c %a:%u:%g "$path")" = "$(stat -c %a:%u:%g "$tmp")" ]; then
    rm -f "$tmp" || die "could not remove $tmp"
    return 0
  fi
  mv -fT "$tmp" "$path" || { rm -f "$tmp"; die "could not move the new $path into place"; }
  PI_IM_WROTE=1
  log "wrote $path"
}
`;

/** A shell statement writing `content` to `path`; afterwards PI_IM_WROTE is 1 when it changed. A
 * statement of its own: it fails the script on any error, and needs no `|| true` (which would hide one). */
export function writeFile(path: string, content: string, mode = "0644", owner = "root:root"): string {
  return `pi_im_write ${q(path)} ${q(mode)} ${q(owner)} ${q(b64(content))}`;
}

/** A shell condition, true when the last writeFile changed its file. */
export const WROTE = `[ "$PI_IM_WROTE" = 1 ]`;
