#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the base container images with no registry and no Dockerfile, as `docker save` archives
# (gzip) in $PI_IM_CACHE/images/<arch>/<name>-<inputs hash>.tar.gz, indexed by <name>.json:
#   base   pi-im/debian:bookworm   Debian 12 minbase + nginx + libnginx-mod-stream (mmdebstrap)
#   node   pi-im/node:20           base + Node.js from the npm package node-linux-<arch> + user node
#   nginx  pi-im/nginx:bookworm    the base layer itself, run as nginx
# Every image starts with the same base layer, so a Pi loads it once: `docker load` inside the
# emulated board manages about 1 MB/s, and nginx's ~15 MB in the shared layer cost far less than
# a second Debian layer would.
# Usage: build.sh [--arch arm64|amd64] [--only base|node|nginx] [--force] [--print NAME]
#   default: both arches, all three images; a warm run only checks hashes.
#   --print NAME   print the tarball path for NAME (with --arch, default arm64) and exit
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

arches="arm64 amd64" only="base node nginx" force=0 print=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arches=${2:?--arch needs arm64 or amd64}; shift ;;
    --only) only=${2:?--only needs base, node or nginx}; shift ;;
    --force) force=1 ;;
    --print) print=${2:?--print needs an image name}; shift ;;
    -h|--help) sed -n '3,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" "see: $0 --help" ;;
  esac
  shift
done
for a in $arches; do check_arch "$a"; done
for n in $only; do case "$n" in base|node|nginx) ;; *) die "unknown image: $n" "use base, node or nginx" ;; esac; done

if [ -n "$print" ]; then
  [ "$arches" = "arm64 amd64" ] && arches=arm64
  idx="$IMAGES_CACHE/$arches/$print.json"
  [ -f "$idx" ] || die "image $print ($arches) is not built" "run: bash tools/images/build.sh --arch $arches"
  sed -n 's/^  "file": "\(.*\)",$/\1/p' "$idx"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "building images needs root (mmdebstrap --mode=root)" "run as root, or: sudo $0"
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed" "run: npm run setup"
self="${BASH_SOURCE[0]}"

base_hash() { HASH_EXTRA="base $1 $DEBIAN_SUITE $DEBIAN_MIRROR" hash_inputs "$self" "$IMAGES_DIR/lib.sh"; }

# The base rootfs directory is needed by node (its /etc/passwd grows a user); kept per hash.
# Sets BASE_DIR.
ensure_base_rootfs() {
  local arch=$1 hash dir
  hash=$(base_hash "$arch")
  dir="$IMAGES_CACHE/$arch/.base-$hash"
  if [ ! -f "$dir.layer.tar" ]; then
    # Only the current base rootfs is kept.
    find "$IMAGES_CACHE/$arch" -maxdepth 1 -name '.base-*' -exec rm -rf {} +
    step "images: Debian $DEBIAN_SUITE minbase + nginx rootfs for $arch (mmdebstrap)"
    # nginx logs go to the container's stdout/stderr, as in the usual nginx images.
    # shellcheck disable=SC2016 # expanded by mmdebstrap's hook shell
    mmdebstrap_rootfs "$arch" "$dir" nginx,libnginx-mod-stream \
      --customize-hook='ln -sf /dev/stdout "$1/var/log/nginx/access.log"; ln -sf /dev/stderr "$1/var/log/nginx/error.log"' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
    layer_tar "$dir" "$dir.layer.tar.part" && mv "$dir.layer.tar.part" "$dir.layer.tar"
  fi
  BASE_DIR=$dir
}

build_base() {
  local arch=$1 hash dir out id tags="pi-im/debian:bookworm"
  hash=$(base_hash "$arch")
  out="$IMAGES_CACHE/$arch/base-$hash.tar.gz"
  if [ "$force" = 0 ] && cached base "$arch" "$hash"; then ok "base ($arch) cached: $out"; return; fi
  ensure_base_rootfs "$arch"
  dir=$BASE_DIR
  id=$(write_image "$out" "$arch" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/bash"]}' \
    "$tags" "$dir.layer.tar")
  record_image base "$arch" "$out" "$id" "$hash" "$tags"
  ok "base ($arch) $id: $out ($(du -h "$out" | cut -f1))"
}

build_node() {
  local arch=$1 hash dir out id pkg work tags
  tags="pi-im/node:20 pi-im/node:$NODE_VERSION"
  hash=$(HASH_EXTRA="node $NODE_VERSION $(base_hash "$arch")" hash_inputs "$self" "$IMAGES_DIR/lib.sh")
  out="$IMAGES_CACHE/$arch/node-$hash.tar.gz"
  if [ "$force" = 0 ] && cached node "$arch" "$hash"; then ok "node ($arch) cached: $out"; return; fi
  ensure_base_rootfs "$arch"
  dir=$BASE_DIR
  pkg=$(fetch_node "$arch")
  step "images: pi-im/node:$NODE_VERSION for $arch"
  work=$(mktemp -d "$IMAGES_CACHE/$arch/.node.XXXXXX")
  mkdir -p "$work/l/usr/local/bin" "$work/l/usr/local/share/doc/node" "$work/l/etc" "$work/l/home/node"
  tar -xzf "$pkg" -C "$work" package/bin/node package/LICENSE
  install -m 0755 "$work/package/bin/node" "$work/l/usr/local/bin/node"
  install -m 0644 "$work/package/LICENSE" "$work/l/usr/local/share/doc/node/LICENSE"
  # An unprivileged `node` user (uid/gid 1000) as in the usual Node images; apps run as it.
  for f in passwd group shadow gshadow; do cp -p "$dir/etc/$f" "$work/l/etc/$f"; done
  echo 'node:x:1000:1000::/home/node:/bin/bash' >> "$work/l/etc/passwd"
  echo 'node:x:1000:' >> "$work/l/etc/group"
  echo 'node:*:19000:0:99999:7:::' >> "$work/l/etc/shadow"
  echo 'node:!::' >> "$work/l/etc/gshadow"
  chown 1000:1000 "$work/l/home/node"
  layer_tar "$work/l" "$work/node.layer.tar"
  id=$(write_image "$out" "$arch" \
    "{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"NODE_VERSION=$NODE_VERSION\"],\"Cmd\":[\"node\"]}" \
    "$tags" "$dir.layer.tar" "$work/node.layer.tar")
  rm -rf "$work"
  record_image node "$arch" "$out" "$id" "$hash" "$tags"
  ok "node ($arch) $id: $out ($(du -h "$out" | cut -f1))"
}

build_nginx() {
  local arch=$1 hash dir out id tags="pi-im/nginx:bookworm"
  hash=$(HASH_EXTRA="nginx $(base_hash "$arch")" hash_inputs "$self" "$IMAGES_DIR/lib.sh")
  out="$IMAGES_CACHE/$arch/nginx-$hash.tar.gz"
  if [ "$force" = 0 ] && cached nginx "$arch" "$hash"; then ok "nginx ($arch) cached: $out"; return; fi
  ensure_base_rootfs "$arch"
  dir=$BASE_DIR
  id=$(write_image "$out" "$arch" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{},"443/tcp":{}},"StopSignal":"SIGQUIT"}' \
    "$tags" "$dir.layer.tar")
  record_image nginx "$arch" "$out" "$id" "$hash" "$tags"
  ok "nginx ($arch) $id: $out ($(du -h "$out" | cut -f1))"
}

for arch in $arches; do
  mkdir -p "$IMAGES_CACHE/$arch"
  exec 9>"$IMAGES_CACHE/$arch/.build.lock"
  flock 9
  for name in $only; do "build_$name" "$arch"; done
  exec 9>&-
done
