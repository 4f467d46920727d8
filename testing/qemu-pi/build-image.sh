#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the emulated Raspberry Pi's disk image: Debian 12 (bookworm) arm64 made by mmdebstrap under
# qemu-user, Debian's arm64 kernel, a tiny busybox initramfs, a `pi` user with passwordless sudo and
# the test SSH key. Output, keyed by a hash of every input, in
#   $PI_IM_CACHE/qemu-pi/<hash>/{root.qcow2,vmlinuz,initrd.img,image.json}
# A warm run only computes the hash. Needs root (mmdebstrap --mode=root, chroot).
#
# Usage: build-image.sh [--bare] [--print-dir] [--force]
#   --bare       leave out packages-preinstalled.txt (the program must apt-get them in the guest)
#   --print-dir  print the image directory for these inputs and exit (status 1 if not built yet)
#   --force      rebuild even if cached
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../setup/lib.sh
source "$here/../setup/lib.sh"

bare=0 print_dir=0 force=0
for arg in "$@"; do
  case "$arg" in
    --bare) bare=1 ;;
    --print-dir) print_dir=1 ;;
    --force) force=1 ;;
    -h|--help) sed -n '3,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg" "see: $0 --help" ;;
  esac
done
[ "${PI_IM_QEMU_BARE:-0}" = 1 ] && bare=1

suite=bookworm
mirror=${PI_IM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${PI_IM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
disk_size=${PI_IM_QEMU_ROOT_SIZE:-8G}
cache="$PI_IM_CACHE/qemu-pi"
keydir="$cache/ssh"
key="$keydir/id_ed25519"

# The test key pair: made once, kept in the cache, part of the image hash (its public half is
# baked into the image).
ensure_key() {
  if [ ! -f "$key" ] || [ ! -f "$key.pub" ]; then
    mkdir -p "$keydir" && chmod 700 "$keydir"
    rm -f "$key" "$key.pub"
    ssh-keygen -q -t ed25519 -N '' -C pi-im-qemu-test -f "$key"
  fi
}

pkg_list() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$'; }

packages() {
  pkg_list "$here/packages.txt"
  if [ "$bare" = 0 ]; then pkg_list "$here/packages-preinstalled.txt"; fi
}

inputs_hash() {
  {
    printf 'suite=%s mirror=%s security=%s size=%s bare=%s\n' \
      "$suite" "$mirror" "$security_mirror" "$disk_size" "$bare"
    for f in "$here/build-image.sh" "$here/packages.txt" "$here/packages-preinstalled.txt" \
             "$here/image/init" "$here/image/customize.sh" "$key.pub"; do
      printf '%s ' "${f##*/}"; sha256sum < "$f"
    done
  } | sha256sum | cut -c1-16
}

ensure_key
hash=$(inputs_hash)
out="$cache/$hash"

if [ "$print_dir" = 1 ]; then
  if [ -f "$out/image.json" ]; then echo "$out"; exit 0; fi
  echo "no board image for the current inputs ($out); run: npm run qemu:build" >&2
  exit 1
fi

if [ "$force" = 0 ] && [ -f "$out/image.json" ]; then
  ok "board image cached: $out"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "building the board image needs root (mmdebstrap --mode=root, chroot)" \
  "run as root, or: sudo $0"
for tool in mmdebstrap mke2fs qemu-img cpio gzip; do
  command -v "$tool" >/dev/null || die "$tool is not installed" "run: npm run setup"
done
[ -e /usr/bin/qemu-aarch64-static ] || die "qemu-user-static is not installed" "run: npm run setup"
if [ ! -f /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || \
   ! grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  die "arm64 binaries cannot run here: binfmt_misc has no enabled qemu-aarch64 entry" \
    "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64 (or: npm run setup)"
fi

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ "$force" = 0 ] && [ -f "$out/image.json" ]; then ok "board image cached: $out"; exit 0; fi

work=$(mktemp -d "$cache/.build-$hash.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"
started=$(date +%s)

step "qemu-pi: building the board root filesystem (mmdebstrap, arm64, $suite; cold: ~10 min)"
pkgs=$(packages | paste -sd, -)
echo "    packages: $pkgs"
# update-initramfs is diverted to a no-op while packages install: its output would be unused (the
# runner boots the kernel with our own initramfs) and it costs minutes under qemu-user.
# shellcheck disable=SC2016 # the hooks are expanded by mmdebstrap's sh, with $1 = the rootfs
PI_IM_PUBKEY_FILE="$key.pub" mmdebstrap \
  --mode=root --arch=arm64 --variant=apt --format=directory \
  --include="$pkgs" \
  --aptopt='Acquire::Retries "3"' \
  --essential-hook='chroot "$1" dpkg-divert --local --rename --add /usr/sbin/update-initramfs' \
  --essential-hook='printf "#!/bin/sh\nexit 0\n" > "$1/usr/sbin/update-initramfs"; chmod 755 "$1/usr/sbin/update-initramfs"' \
  --customize-hook="$(printf '%q' "$here/image/customize.sh") \"\$1\"" \
  "$suite" "$rootfs" \
  "deb $mirror $suite main" \
  "deb $mirror $suite-updates main" \
  "deb $security_mirror $suite-security main" \
  > "$work/mmdebstrap.log" 2>&1 || {
    tail -n 40 "$work/mmdebstrap.log" >&2
    die "mmdebstrap failed (full log above, last 40 lines)" \
      "check that $mirror is reachable and binfmt qemu-aarch64 is enabled"
  }
ok "root filesystem in $(( $(date +%s) - started )) s"

step "qemu-pi: kernel and initramfs"
stage="$work/out"
mkdir -p "$stage"
kver=$(find "$rootfs/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
if [ -z "$kver" ] || [ ! -f "$rootfs/boot/vmlinuz-$kver" ]; then die "no arm64 kernel found in the rootfs"; fi
cp "$rootfs/boot/vmlinuz-$kver" "$stage/vmlinuz"

# busybox-static (arm64) for the initramfs only; it is not installed in the board.
mmdebstrap --mode=root --arch=arm64 --variant=extract --include=busybox-static \
  "$suite" "$work/busybox" "deb $mirror $suite main" > "$work/busybox.log" 2>&1 || {
    tail -n 20 "$work/busybox.log" >&2; die "could not fetch busybox-static for arm64"; }

ird="$work/initramfs"
mkdir -p "$ird/bin" "$ird/lib/modules"
cp "$work/busybox/bin/busybox" "$ird/bin/busybox"
install -m 0755 "$here/image/init" "$ird/init"
moddir="$rootfs/lib/modules/$kver"
# Load order: every module's dependencies (from modules.dep) before the module itself.
declare -A seen=()
order=()
add_module() {
  local path=$1 dep line
  [ -n "${seen[$path]:-}" ] && return 0
  seen[$path]=1
  line=$(grep -m1 "^$path:" "$moddir/modules.dep") || die "module $path is not in modules.dep"
  for dep in ${line#*:}; do add_module "$dep"; done
  order+=("$path")
}
# crc32c is requested by ext4 through the crypto API (modprobe, absent here): load it up front.
# The USB stack is loaded here too so the "USB drive" is there before systemd starts, as on a Pi
# (udev would otherwise load xhci late under emulation, after sshd already answers).
for name in crc32c_generic virtio_pci virtio_blk ext4 xhci-pci usb-storage sd_mod; do
  path=$(grep -m1 -oE "^[^:]*/$name\.ko" "$moddir/modules.dep") || die "kernel module $name not found"
  add_module "$path"
done
for path in "${order[@]}"; do
  cp "$moddir/$path" "$ird/lib/modules/"
  basename "$path" >> "$ird/lib/modules/load-order"
done
(cd "$ird" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible) | gzip -9 > "$stage/initrd.img"
ok "kernel $kver, initramfs with: $(paste -sd' ' "$ird/lib/modules/load-order")"

step "qemu-pi: disk image (ext4, label piroot, $disk_size)"
mke2fs -q -t ext4 -L piroot -d "$rootfs" "$work/root.raw" "$disk_size" >/dev/null \
  || die "mke2fs could not make the root filesystem image"
qemu-img convert -O qcow2 "$work/root.raw" "$stage/root.qcow2"
rm -f "$work/root.raw"
cat > "$stage/image.json" <<JSON
{
  "hash": "$hash",
  "suite": "$suite",
  "arch": "arm64",
  "kernel": "$kver",
  "rootLabel": "piroot",
  "user": "pi",
  "key": "$key",
  "bare": $([ "$bare" = 1 ] && echo true || echo false),
  "packages": [$(packages | sed 's/.*/"&"/' | paste -sd, -)],
  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "buildSeconds": $(( $(date +%s) - started ))
}
JSON
cp "$work/mmdebstrap.log" "$stage/build.log"
rm -rf "$out"
mv "$stage" "$out"
ok "board image built in $(( $(date +%s) - started )) s: $out"
