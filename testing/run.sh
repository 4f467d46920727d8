#!/usr/bin/env bash
# The one test command (README, .ci/run): type-check, every workspace's ava suite, then the
# integration suites in testing/suites in name order. Fails when any of them fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup/lib.sh
ensure_docker_running

failed=()
suites=0
run() { local name=$1; shift; suites=$((suites + 1)); step "test: $name"; if "$@"; then ok "$name"; else failed+=("$name"); warn "$name FAILED"; fi; }

run typecheck npx tsc -b
for ws in tools/pulumi-plugins im-server infra load-tests; do
  if compgen -G "$ws/test/*.test.ts" >/dev/null; then run "$ws" npm test --silent -w "$ws"; fi
done
# The same im-server behaviour tests with every server on PostgreSQL (one started for the run).
run "im-server on PostgreSQL" npm run --silent -w im-server test:postgres
for suite in testing/suites/*.sh; do
  [ -e "$suite" ] || continue
  run "$(basename "$suite" .sh)" bash "$suite"
done

passed=$((suites - ${#failed[@]}))
if ((${#failed[@]})); then
  printf '\nfailed suites: %s\n' "${failed[*]}" >&2
fi
printf '\nsuites: %d passed, %d failed\n' "$passed" "${#failed[@]}"
((${#failed[@]} == 0))
