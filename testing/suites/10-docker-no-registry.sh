#!/usr/bin/env bash
# An image made here with no registry at all (a root filesystem imported, then a Dockerfile on
# top of it) runs in the Docker engine. Pulling anything would fail on this machine, so this
# proves the path every pi-im image takes.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../tools/setup/lib.sh
source "$(dirname "$0")/../../tools/setup/lib.sh"
ensure_docker_running

work=$(mktemp -d)
tag="pi-im-test/no-registry:$$"
cleanup() { docker rmi -f "$tag" "$tag-base" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sh"
tar -C "$work/rootfs" -c . | docker import - "$tag-base" >/dev/null
printf 'FROM %s\nRUN ["/bin/busybox", "sh", "-c", "echo built-without-a-registry > /proof"]\nCMD ["/bin/busybox", "cat", "/proof"]\n' "$tag-base" > "$work/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$work" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
out=$(docker run --rm --network none "$tag")
if [ "$out" != "built-without-a-registry" ]; then
  echo "expected the image to print built-without-a-registry, got: $out" >&2
  exit 1
fi
echo "docker: an image built with no registry runs"
