#!/usr/bin/env bash
# npm run setup: installs everything pi-im needs on a Debian 12 machine. Idempotent: every step
# checks what is already there, and caches live in $PI_IM_CACHE (default ~/.cache/pi-im), outside
# the repository, so a second run takes seconds. Re-run it after a failure: it goes on from there.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/setup/lib.sh

PULUMI_VERSION=v3.248.0
mkdir -p "$PI_IM_CACHE" .pi-im/bin
free_mb=$(df -Pm "$PI_IM_CACHE" | awk 'NR==2 {print $4}')
if [ "${free_mb:-0}" -lt 4096 ]; then
  die "only ${free_mb} MB free in $PI_IM_CACHE; set-up needs about 4 GB (Go build cache, images)" \
      "free some space, or point PI_IM_CACHE at a larger disk"
fi

step "Debian packages (tools/setup/debian-packages.txt)"
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^\s*$/d' tools/setup/debian-packages.txt | tr -d ' ')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "    installing: ${missing[*]}"
  as_root apt-get update -qq || die "apt-get update failed" "check the machine's Debian mirror in /etc/apt/sources.list(.d)"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get could not install: ${missing[*]}" "read apt's message above; 'apt-cache policy <package>' shows whether the mirror has it"
fi
ok "${#wanted[@]} packages present"

step "npm packages (npm ci)"
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/.pi-im-lock-hash ] && [ "$(cat node_modules/.pi-im-lock-hash)" = "$lock_hash" ]; then
  ok "node_modules matches package-lock.json"
else
  npm ci --no-audit --no-fund || die "npm ci failed" "read npm's message above; is the npm registry reachable (npm ping)?"
  echo "$lock_hash" > node_modules/.pi-im-lock-hash
  ok "installed"
fi

step "Pulumi CLI $PULUMI_VERSION, built from its Go module"
cli="$PI_IM_CACHE/pulumi/$PULUMI_VERSION/pulumi"
if [ -x "$cli" ] && "$cli" version 2>/dev/null | grep -qx "$PULUMI_VERSION"; then
  ok "cached at $cli"
else
  command -v go >/dev/null || die "Go is not installed" "install Go 1.25 or newer (Debian: golang-go from bookworm-backports)"
  build="$PI_IM_CACHE/pulumi/build"
  rm -rf "$build" && mkdir -p "$build" && cp tools/setup/pulumi-cli/* "$build/"
  echo "    go build (a cold build takes about 4 minutes on 2 cores)"
  (cd "$build" && GOFLAGS=-mod=mod go build -trimpath -o "$cli.tmp" \
     -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
     github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) \
    || die "building the Pulumi CLI failed" "read the Go error above; the Go module proxy must be reachable (go env GOPROXY)"
  mv "$cli.tmp" "$cli"
  ok "built $cli"
fi
ln -sf "$cli" .pi-im/bin/pulumi

step "Pulumi plugins: Node.js language host and command provider (tools/pulumi-plugins)"
npx tsc -p tools/pulumi-plugins/tsconfig.build.json || die "compiling tools/pulumi-plugins failed" "fix the TypeScript errors above"
echo '{"type": "commonjs"}' > .pi-im/plugins/package.json
for plugin in pulumi-language-nodejs:language-host pulumi-resource-command:command-provider; do
  name=${plugin%%:*} file=${plugin#*:}
  printf '#!/bin/sh\nexec node "%s/.pi-im/plugins/%s.js" "$@"\n' "$PWD" "$file" > ".pi-im/bin/$name"
  chmod +x ".pi-im/bin/$name"
done
ok "$(bin/pulumi version) with plugins in .pi-im/bin"

step "Docker engine"
ensure_docker_running
ok "$(docker version --format 'server {{.Server.Version}}')"

for s in tools/setup/steps/*.sh; do
  [ -e "$s" ] || continue
  step "$(basename "$s" .sh)"
  bash "$s" || die "set-up step $s failed" "read its message above, fix it, and run 'npm run setup' again"
done

printf '\nset-up complete. Run the tests with: npm test\n'
