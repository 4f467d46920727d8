#!/usr/bin/env bash
# Smack's XMPP integration test framework against a throw-away pi-im server, with the committed
# enable/disable list (testing/smack/specs.conf). An enabled test that fails, or that the framework
# cannot run because the server lacks something, fails the suite. Bounded: short reply timeout,
# and a hard limit on the whole run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/testing/smack/run.sh" --server pi-im --specs "$root/testing/smack/specs.conf" \
  --reply-timeout 5000 --max-time 420 --fail-on-skip
