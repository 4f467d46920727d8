#!/usr/bin/env bash
# `pulumi preview` of every stack in stacks/ with the real engine: the program loads, the config
# validates and the plan is computed. Preview runs no command on any host, so the office stack's
# LAN addresses are never contacted. State, passphrase and the SSH key are throw-away; the
# project is copied into a temp folder (testing/lib/project.ts) so the stack files in the repo are
# never rewritten.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ssh-keygen -q -t ed25519 -N '' -f "$work/key"
export PI_IM_HOME="$work/home" PULUMI_CONFIG_PASSPHRASE=preview-test PI_IM_SSH_KEY_FILE="$work/key"
unset PULUMI_BACKEND_URL PULUMI_HOME

"$root/node_modules/.bin/tsx" "$root/testing/lib/copy-project.ts" "$work/project"
cd "$work/project"

passed=0 failed=0
for file in stacks/Pulumi.*.yaml; do
  stack=$(basename "$file" .yaml); stack=${stack#Pulumi.}
  "$root/bin/pulumi" stack init "$stack" --non-interactive >/dev/null 2>&1
  if "$root/bin/pulumi" preview --stack "$stack" --non-interactive --diff >"$work/$stack.log" 2>&1; then
    echo "    preview $stack: ok ($(grep -Eo '[0-9]+ to create' "$work/$stack.log" | head -1))"
    passed=$((passed + 1))
  else
    echo "    preview $stack: FAILED" >&2
    tail -40 "$work/$stack.log" >&2
    failed=$((failed + 1))
  fi
done
echo "stack previews: $passed passed, $failed failed"
((failed == 0))
