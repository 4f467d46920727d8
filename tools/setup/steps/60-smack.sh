#!/usr/bin/env bash
# Smack's XMPP integration test framework (Java; used only to test im-server): its jars from Maven
# Central into $PI_IM_CACHE/smack/<version>/, as pinned in testing/smack/pom.xml. Warm: instant.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"
command -v java >/dev/null || die "java is not installed" "add default-jre-headless to tools/setup/debian-packages.txt and re-run npm run setup"
command -v mvn >/dev/null || die "mvn is not installed" "add maven to tools/setup/debian-packages.txt and re-run npm run setup"
lib=$("$PI_IM_ROOT/testing/smack/fetch.sh")
ok "$(find "$lib" -name '*.jar' | wc -l) jars in $lib"
