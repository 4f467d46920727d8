#!/usr/bin/env bash
# Set-up step: the container images, built with no registry (tools/images), for arm64 (the Pis)
# and amd64 (local tests): pi-im/debian, pi-im/node, pi-im/nginx, and pi-im/im-server from the
# built im-server. Cached by input hash in $PI_IM_CACHE/images: a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tools/setup/lib.sh

bash testing/qemu-pi/binfmt.sh
t0=$(date +%s)
echo "    base images for arm64 and amd64 (cold: ~10 min, most of it arm64 packages under qemu-user)"
bash tools/images/build.sh --arch arm64 || die "building the arm64 base images failed" "read the message above"
bash tools/images/build.sh --arch amd64 || die "building the amd64 base images failed" "read the message above"

echo "    im-server: npm run build -w im-server"
npm run --silent build -w im-server || die "building im-server failed" "fix the TypeScript errors above"
for arch in arm64 amd64; do
  bash tools/images/build-im-server.sh --arch "$arch" >/dev/null \
    || die "building the im-server image for $arch failed" "read the message above"
done
for arch in arm64 amd64; do
  for name in nginx im-server; do
    ok "$arch $name: $(sed -n 's/^  "file": "\(.*\)",$/\1/p' "$PI_IM_CACHE/images/$arch/$name.json")"
  done
done
ok "images ready in $(( $(date +%s) - t0 )) s"
