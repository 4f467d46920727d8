# shellcheck shell=bash disable=SC2034 source-path=SCRIPTDIR
# Helpers shared by build.sh and build-im-server.sh. Source it; it defines functions only.
# Images are written straight in the `docker save` archive format (manifest.json, one config
# JSON, one layer.tar per layer): no registry, no daemon and no Dockerfile are needed to build
# them, the tags are exactly ours whatever the arch, and `docker load` reads them anywhere.
# shellcheck source=../setup/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../setup/lib.sh"

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES_CACHE="$PI_IM_CACHE/images"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${PI_IM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${PI_IM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Node for the images: the same major as the machine's (see .nvmrc), from the npm registry.
NODE_VERSION=${PI_IM_NODE_VERSION:-20.20.2}

# docker/OCI arch name -> npm package suffix
node_pkg_arch() { case "$1" in arm64) echo arm64 ;; amd64) echo x64 ;; *) die "unsupported arch $1" "use arm64 or amd64" ;; esac; }

check_arch() {
  case "$1" in
    amd64) ;;
    arm64)
      if [ "$(dpkg --print-architecture)" != arm64 ] && \
         ! grep -qs enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
        die "arm64 binaries cannot run here: binfmt_misc has no enabled qemu-aarch64 entry" \
          "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64 (or: npm run setup)"
      fi ;;
    *) die "unsupported arch: $1" "use --arch arm64 or --arch amd64" ;;
  esac
}

# hash_inputs FILE... : a short sha256 over the named files' contents and the extra words in $HASH_EXTRA
hash_inputs() {
  { printf '%s\n' "${HASH_EXTRA:-}"; for f in "$@"; do printf '%s ' "${f##*/}"; sha256sum < "$f"; done; } \
    | sha256sum | cut -c1-16
}

# mmdebstrap_rootfs ARCH DIR PACKAGES(comma list, may be empty) [extra mmdebstrap args...]
mmdebstrap_rootfs() {
  local arch=$1 dir=$2 pkgs=$3 log
  shift 3
  log="$dir.log"
  mmdebstrap --mode=root --arch="$arch" --variant=minbase --format=directory \
    ${pkgs:+--include="$pkgs"} --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$@" "$DEBIAN_SUITE" "$dir" \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE main" \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main" \
    "deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main" > "$log" 2>&1 || {
      tail -n 30 "$log" >&2
      die "mmdebstrap ($arch: ${pkgs:-minbase}) failed; log: $log" "check that $DEBIAN_MIRROR is reachable"
    }
}

# layer_tar DIR OUT.tar : a reproducible layer tarball of DIR (device nodes and /proc, /sys left out)
layer_tar() {
  tar --sort=name --numeric-owner --mtime='@0' --clamp-mtime --xattrs \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' \
    --exclude='./tmp/*' -C "$1" -cf "$2" .
}

# write_image OUT.tar.gz ARCH CONFIG_JSON_FRAGMENT TAGS(space list) LAYER.tar...
#   CONFIG_JSON_FRAGMENT: the "config" object, e.g. {"Cmd":["/bin/bash"],"Env":[...]}
#   Prints the image ID (sha256 of the config), which `docker image inspect` shows after load.
write_image() {
  local out=$1 arch=$2 cfg=$3 tags=$4 stage diff_ids="" layers="" tag_json="" l d id now variant=""
  shift 4
  stage=$(mktemp -d "${out%/*}/.stage.XXXXXX")
  for l in "$@"; do
    d=$(sha256sum < "$l" | cut -d' ' -f1)
    mkdir -p "$stage/$d"
    cp "$l" "$stage/$d/layer.tar"
    diff_ids="${diff_ids:+$diff_ids,}\"sha256:$d\""
    layers="${layers:+$layers,}\"$d/layer.tar\""
  done
  for t in $tags; do tag_json="${tag_json:+$tag_json,}\"$t\""; done
  [ "$arch" = arm64 ] && variant=',"variant":"v8"'
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  printf '{"architecture":"%s"%s,"os":"linux","created":"%s","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created":"%s","created_by":"pi-im tools/images (no registry, no Dockerfile)"}]}' \
    "$arch" "$variant" "$now" "$cfg" "$diff_ids" "$now" > "$stage/config.json"
  id=$(sha256sum < "$stage/config.json" | cut -d' ' -f1)
  mv "$stage/config.json" "$stage/$id.json"
  printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":[%s]}]\n' "$id" "$tag_json" "$layers" > "$stage/manifest.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' -C "$stage" -cf - . | gzip -6 > "$out.part"
  mv "$out.part" "$out"
  rm -rf "$stage"
  echo "sha256:$id"
}

# record_image NAME ARCH FILE IMAGE_ID HASH TAGS : the index others read ($IMAGES_CACHE/<arch>/<name>.json)
record_image() {
  local name=$1 arch=$2 file=$3 id=$4 hash=$5 tags=$6 tag_json="" t old
  # Older builds of this image are of no further use: keep the cache from growing.
  for old in "$IMAGES_CACHE/$arch/$name"-*.tar.gz; do
    [ "$old" = "$file" ] || rm -f "$old"
  done
  for t in $tags; do tag_json="${tag_json:+$tag_json, }\"$t\""; done
  cat > "$IMAGES_CACHE/$arch/$name.json" <<JSON
{
  "name": "$name",
  "arch": "$arch",
  "tags": [$tag_json],
  "imageId": "$id",
  "file": "$file",
  "inputsHash": "$hash",
  "bytes": $(stat -c %s "$file")
}
JSON
}

# cached NAME ARCH HASH : true when the image for these inputs is already built and indexed
cached() {
  local f="$IMAGES_CACHE/$2/$1-$3.tar.gz"
  [ -f "$f" ] && [ -f "$IMAGES_CACHE/$2/$1.json" ] && grep -q "\"inputsHash\": \"$3\"" "$IMAGES_CACHE/$2/$1.json"
}

# fetch_node ARCH : path of the cached npm tarball node-linux-<arch>@$NODE_VERSION (from the npm registry)
fetch_node() {
  local npmarch dir f
  npmarch=$(node_pkg_arch "$1")
  dir="$PI_IM_CACHE/npm-node"
  f="$dir/node-linux-$npmarch-$NODE_VERSION.tgz"
  if [ ! -f "$f" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-$npmarch@$NODE_VERSION" >/dev/null) \
      || die "could not fetch node-linux-$npmarch@$NODE_VERSION from the npm registry" \
             "check npm's registry access, or set PI_IM_NODE_VERSION to a published version (npm view node-linux-$npmarch versions)"
  fi
  echo "$f"
}
