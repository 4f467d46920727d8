#!/usr/bin/env bash
# Lets this amd64 machine run arm64 binaries (mmdebstrap's arm64 chroots, arm64 containers) through
# qemu-user-static and binfmt_misc. Idempotent; needs root the first time after each boot.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../tools/setup/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../tools/setup/lib.sh"

[ "$(dpkg --print-architecture)" = arm64 ] && { ok "native arm64: no emulation needed"; exit 0; }
entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
if [ -f "$entry" ] && grep -q '^enabled' "$entry"; then
  ok "binfmt qemu-aarch64 enabled ($(sed -n 's/^interpreter //p' "$entry"))"
  exit 0
fi
if ! command -v update-binfmts >/dev/null || [ ! -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then
  die "qemu-user-static / binfmt-support are not installed" "run: npm run setup (tools/setup/debian-packages.txt)"
fi
if [ ! -f /proc/sys/fs/binfmt_misc/register ]; then
  echo "    mounting binfmt_misc on /proc/sys/fs/binfmt_misc"
  as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
    || die "could not mount binfmt_misc" "this needs root and a kernel with binfmt_misc; in a container, run it privileged"
fi
echo "    update-binfmts --enable qemu-aarch64"
as_root update-binfmts --enable qemu-aarch64 \
  || die "update-binfmts could not enable qemu-aarch64" "reinstall qemu-user-static: apt-get install --reinstall qemu-user-static"
grep -q '^enabled' "$entry" 2>/dev/null || die "qemu-aarch64 is still not enabled in binfmt_misc" "see: update-binfmts --display qemu-aarch64"
ok "binfmt qemu-aarch64 enabled"
