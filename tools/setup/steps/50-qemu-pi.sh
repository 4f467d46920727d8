#!/usr/bin/env bash
# Set-up step: the emulated Raspberry Pi's disk image (testing/qemu-pi), cached by input hash in
# $PI_IM_CACHE/qemu-pi/<hash>. Cold: ~10 min (arm64 packages unpacked under qemu-user); warm: seconds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tools/setup/lib.sh

bash testing/qemu-pi/binfmt.sh
command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 is not installed" "run: npm run setup (package qemu-system-arm)"
bash testing/qemu-pi/build-image.sh || die "building the board image failed" "read the message above; re-run: npm run qemu:build"
ok "board image: $(bash testing/qemu-pi/build-image.sh --print-dir)"
