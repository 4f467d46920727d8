#!/usr/bin/env bash
# The deploy test: `pulumi up` onto the emulated Pi (testing/qemu-pi), checked from outside, then
# 0 changes on a second up, a config change, and destroy. See testing/deploy-test/deploy.test.ts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The board runs the image of the server as it is in this checkout (cached by input hash).
npm run --silent build -w im-server
bash tools/images/build-im-server.sh --arch arm64 >/dev/null
exec npx ava --config testing/deploy-test/ava.config.mjs
