#!/usr/bin/env bash
# Resolves Smack's integration test framework and every jar it needs at run time (from Maven
# Central, as pinned in testing/smack/pom.xml) into
#   ${PI_IM_CACHE:-$HOME/.cache/pi-im}/smack/<version>/lib/*.jar
# with Maven's local repository beside it (…/<version>/m2). Idempotent: a warm cache whose stamp
# matches the pom returns at once without starting Maven. Prints the lib directory on stdout.
#   testing/smack/fetch.sh [--quiet]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../../tools/setup/lib.sh
source "$here/../../tools/setup/lib.sh"

quiet=false
[ "${1:-}" = --quiet ] && quiet=true
say() { $quiet || printf '%s\n' "$*" >&2; }

pom=$here/pom.xml
version=$(sed -n 's:.*<smack.version>\(.*\)</smack.version>.*:\1:p' "$pom" | head -1)
[ -n "$version" ] || die "no <smack.version> in $pom" "restore testing/smack/pom.xml from git"

dir=$PI_IM_CACHE/smack/$version
lib=$dir/lib
stamp=$dir/stamp
want=$(sha256sum "$pom" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && compgen -G "$lib/smack-integration-test-*.jar" >/dev/null; then
  say "smack $version: cached in $lib"
  printf '%s\n' "$lib"
  exit 0
fi

command -v java >/dev/null || die "java is not installed" "run: npm run setup (installs default-jre-headless)"
command -v mvn >/dev/null || die "mvn (Maven) is not installed" "run: npm run setup (installs maven)"

say "smack $version: resolving jars from Maven Central into $dir (first run takes a minute)"
mkdir -p "$dir"
log=$dir/fetch.log
tmp=$(mktemp -d "$dir/lib.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Maven itself runs from a scratch copy of the pom so that no target/ appears in the work tree.
cp "$pom" "$tmp/pom.xml"
if ! (cd "$tmp" && mvn -B -q -f pom.xml -Dmaven.repo.local="$dir/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/jars") >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "Maven could not resolve Smack $version (full log: $log)" \
    "check that Maven Central is reachable (mvn -v; a proxy in ~/.m2/settings.xml?) and retry testing/smack/fetch.sh"
fi
compgen -G "$tmp/jars/smack-integration-test-*.jar" >/dev/null ||
  die "Maven finished but smack-integration-test-$version.jar is missing (log: $log)" "delete $dir and retry"

rm -rf "$lib"
mv "$tmp/jars" "$lib"
printf '%s\n' "$want" >"$stamp"
say "smack $version: $(find "$lib" -name '*.jar' | wc -l) jars in $lib"
printf '%s\n' "$lib"
