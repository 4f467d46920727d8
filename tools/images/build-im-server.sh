#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the IM server image for one arch with no registry: pi-im/node:20 + the built im-server
# (dist/, bin/, package.json) + its production node_modules for that arch. Native addons
# (better-sqlite3) are compiled from source for the target: cross-compiled with Debian's
# aarch64-linux-gnu toolchain for arm64 (native speed), then loaded once under qemu-user to prove
# they work; cached per addon version, Node version and arch. No prebuilt binaries are fetched
# (prebuild-install would try GitHub, which is neither reachable nor allowed here).
# Output: $PI_IM_CACHE/images/<arch>/im-server-<inputs hash>.tar.gz, indexed by im-server.json;
# tags pi-im/im-server:latest, pi-im/im-server:<version>, pi-im/im-server:<inputs hash>.
# Usage: build-im-server.sh [--arch arm64|amd64] [--src DIR] [--name NAME] [--force]
#   --src DIR   the im-server package (default: <repo>/im-server, after `npm run build -w im-server`)
#   --name      index/tag name (default im-server); lets tests build a stand-in without clobbering
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

arch=arm64 src="$PI_IM_ROOT/im-server" name=im-server force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?--arch needs arm64 or amd64}; shift ;;
    --src) src=${2:?--src needs a directory}; shift ;;
    --name) name=${2:?--name needs a name}; shift ;;
    --force) force=1 ;;
    -h|--help) sed -n '3,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" "see: $0 --help" ;;
  esac
  shift
done
check_arch "$arch"
src=$(cd "$src" && pwd)
[ -f "$src/package.json" ] || die "$src/package.json not found" "pass --src <im-server package dir>"
if [ ! -d "$src/dist" ] || [ ! -f "$src/bin/pi-im-server.js" ]; then die "im-server is not built ($src/dist or $src/bin/pi-im-server.js missing)" "run: npm run build -w im-server"; fi

# Build the node base image first (cached).
bash "$IMAGES_DIR/build.sh" --arch "$arch" --only node >&2
node_idx="$IMAGES_CACHE/$arch/node.json"
node_tar=$(sed -n 's/^  "file": "\(.*\)",$/\1/p' "$node_idx")

# Inputs: every file of dist/ and bin/, package.json, the lock file, the node image, these scripts.
lock="$PI_IM_ROOT/package-lock.json"
[ -f "$src/package-lock.json" ] && lock="$src/package-lock.json"
filelist=$(mktemp)
trap 'rm -f "$filelist"' EXIT
(cd "$src" && find dist bin package.json -type f | LC_ALL=C sort) > "$filelist"
hash=$(HASH_EXTRA="$name $arch $(sha256sum < "$node_tar") $(cd "$src" && xargs -d '\n' sha256sum < "$filelist" | sha256sum)" \
  hash_inputs "${BASH_SOURCE[0]}" "$IMAGES_DIR/lib.sh" "$lock")
out="$IMAGES_CACHE/$arch/$name-$hash.tar.gz"
if [ "$force" = 0 ] && cached "$name" "$arch" "$hash"; then ok "$name ($arch) cached: $out"; echo "$out"; exit 0; fi

step "images: $name for $arch" >&2
work=$(mktemp -d "$IMAGES_CACHE/$arch/.$name.XXXXXX")
trap 'rm -rf "$work" "$filelist"' EXIT
app="$work/l/app"
mkdir -p "$app"
(cd "$src" && cp -r --parents dist bin package.json "$app/")

# Production dependencies, pinned to the versions the lock file resolved (pure JS is arch-free).
node - "$app/package.json" "$lock" <<'JS'
const fs = require("fs");
const [pkgFile, lockFile] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
const lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
const deps = {};
for (const [dep, range] of Object.entries(pkg.dependencies ?? {})) {
  const hit = lock.packages?.[`node_modules/${dep}`] ?? lock.packages?.[`im-server/node_modules/${dep}`];
  deps[dep] = hit?.version ?? range;
}
const out = { name: pkg.name, version: pkg.version, private: true, type: pkg.type, bin: pkg.bin, main: pkg.main, dependencies: deps };
fs.writeFileSync(pkgFile, JSON.stringify(out, null, 2) + "\n");
JS
# --ignore-scripts: no install script may fetch a prebuilt binary; native addons are built below.
(cd "$app" && flock /tmp/pi-im-npm.lock npm install --omit=dev --ignore-scripts --no-audit --no-fund \
  --no-package-lock --loglevel=error >&2) || die "npm install of $name's production dependencies failed"

# Native addons: every package with a binding.gyp, compiled for the target (cached).
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
gyp="$npm_dir/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || die "node-gyp (bundled with npm) not found at $gyp"
node_pkg=$(fetch_node "$arch")
nodedir="$PI_IM_CACHE/npm-node/node-linux-$(node_pkg_arch "$arch")-$NODE_VERSION"
if [ ! -f "$nodedir/include/node/common.gypi" ]; then
  mkdir -p "$nodedir" && tar -xzf "$node_pkg" -C "$nodedir" --strip-components=1
fi
ensure_base_for_test() { bash "$IMAGES_DIR/build.sh" --arch "$arch" --only base >&2; }
while IFS= read -r gypfile; do
  pdir=${gypfile%/binding.gyp}
  pname=$(node -p "require('$pdir/package.json').name")
  pver=$(node -p "require('$pdir/package.json').version")
  ncache="$IMAGES_CACHE/native/$arch/${pname//\//+}-$pver-node$NODE_VERSION"
  if [ ! -d "$ncache/build/Release" ]; then
    step "images: compiling $pname@$pver for $arch (node-gyp, Node $NODE_VERSION headers)" >&2
    if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
      command -v aarch64-linux-gnu-g++ >/dev/null || die "the arm64 cross compiler is missing" \
        "apt-get install g++-aarch64-linux-gnu (or: npm run setup)"
      export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
    fi
    (cd "$pdir" && node "$gyp" rebuild --release --arch="$(node_pkg_arch "$arch")" --nodedir="$nodedir" \
      --devdir="$work/gyp" >"$work/gyp-$pver.log" 2>&1) || {
        tail -n 30 "$work/gyp-$pver.log" >&2; die "compiling $pname for $arch failed (log above)"; }
    unset CC CXX LINK AR
    mkdir -p "$ncache/build/Release"
    find "$pdir/build/Release" -maxdepth 1 -name '*.node' -exec cp {} "$ncache/build/Release/" \;
  fi
  rm -rf "$pdir/build" "$pdir/src" "$pdir/deps"
  mkdir -p "$pdir/build"
  cp -r "$ncache/build/Release" "$pdir/build/"
done < <(find "$app/node_modules" -name binding.gyp -not -path '*/node_modules/*/node_modules/*/test/*')

# Prove the app's modules load on the target arch (arm64: under qemu-user, in the base rootfs).
ensure_base_for_test
base_dir="$IMAGES_CACHE/$arch/.base-$(sed -n 's/^  "inputsHash": "\(.*\)",$/\1/p' "$IMAGES_CACHE/$arch/base.json")"
[ -d "$base_dir" ] || die "the base rootfs $base_dir is missing" "run: bash tools/images/build.sh --arch $arch --only base --force"
mkdir -p "$work/bin" && tar -xzf "$node_pkg" -C "$work/bin" --strip-components=2 package/bin/node
probe='const m=require("module").createRequire("/app/package.json");for(const d of Object.keys(require("/app/package.json").dependencies||{})){try{m(d)}catch(e){if(e.code!=="ERR_REQUIRE_ESM")throw e}}try{const D=m("better-sqlite3");console.log("sqlite "+new D(":memory:").prepare("select sqlite_version() v").get().v)}catch(e){if(e.code!=="MODULE_NOT_FOUND")throw e}console.log(process.arch+" ok")'
ln -sfn "$app" "/tmp/.pi-im-probe-app.$$"
probe=${probe//\/app/\/tmp\/.pi-im-probe-app.$$}
if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
  result=$(qemu-aarch64-static -L "$base_dir" "$work/bin/node" -e "$probe" 2>&1) || true
else
  result=$("$work/bin/node" -e "$probe" 2>&1) || true
fi
rm -f "/tmp/.pi-im-probe-app.$$"
case "$result" in
  *"ok") ok "modules load on $arch: $(echo "$result" | paste -sd' ')" >&2 ;;
  *) die "the $name modules do not load on $arch: $result" ;;
esac

layer_tar "$work/l" "$work/app.layer.tar"
version=$(node -p "require('$src/package.json').version")
tags="pi-im/$name:latest pi-im/$name:$version pi-im/$name:$hash"
# The node image's layers, then ours.
mkdir -p "$work/node" && tar -xzf "$node_tar" -C "$work/node"
mapfile -t base_layers < <(node -p "require('$work/node/manifest.json')[0].Layers.map(l => '$work/node/' + l).join('\n')")
id=$(write_image "$out" "$arch" \
  "{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"NODE_VERSION=$NODE_VERSION\",\"NODE_ENV=production\"],\"Cmd\":[\"node\",\"/app/bin/pi-im-server.js\"],\"WorkingDir\":\"/app\",\"User\":\"node\"}" \
  "$tags" "${base_layers[@]}" "$work/app.layer.tar")
record_image "$name" "$arch" "$out" "$id" "$hash" "$tags"
ok "$name ($arch) $id: $out ($(du -h "$out" | cut -f1))" >&2
echo "$out"
