#!/usr/bin/env bash
# Runs Smack's integration test framework (testing/smack/fetch.sh gets it) against a throw-away XMPP
# server started here: pi-im (default) or Debian's Prosody, to compare against a mature server.
#
#   testing/smack/run.sh [--server pi-im|prosody] [--specs FILE | --all | --only A,B] [--except A,B]
#                      [--reply-timeout MS] [--max-time SECONDS] [--fail-on-skip]
#                      [--results DIR] [--debug] [--keep]
#
#   --specs FILE       enable/disable list (default testing/smack/specs.conf; see its header)
#   --all              run every test class the framework ships (survey a server)
#   --only A,B         run just these classes or Class.method tests (debugging)
#   --except A,B       with --all or --only: leave out these classes
#   --reply-timeout MS how long Smack waits for each reply (default 5000)
#   --max-time S       hard limit for the whole Java run (default 900)
#   --fail-on-skip     an enabled test the framework could not run counts as failed
#   --results DIR      where smack.log, results.tsv and junit.xml go
#                      (default $PI_IM_CACHE/smack/results/<server>)
#   --debug            Smack's console debugger: every stanza in smack.log
#   --keep             keep the server's temp dir (config, data, log)
#
# Smack 4.5's framework has no port setting (sinttest.host only; the port is always 5222), so the
# server and Java run in a network namespace of their own (unshare --net) where 5222 is free and
# nothing but loopback exists. Without the rights for that, 5222 on the host must be free.
# Accounts come from in-band registration (XEP-0077): the framework does that when no account or
# admin credentials are configured, so the server is started with open registration.
# Prints "Smack: N passed, N failed, N skipped"; exits 1 when a test fails or the run breaks.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../../tools/setup/lib.sh
source "$here/../../tools/setup/lib.sh"

server=pi-im specs=$here/specs.conf mode=specs only="" except="" reply_timeout=5000 max_time=900
fail_on_skip=false results="" debug=false keep=false
args=("$@")
while (($#)); do
  case $1 in
    --server) server=${2:?--server needs pi-im or prosody}; shift 2 ;;
    --specs) specs=${2:?--specs needs a file}; shift 2 ;;
    --all) mode=all; shift ;;
    --only) mode=only only=${2:?--only needs a comma-separated list}; shift 2 ;;
    --except) except=${2:?--except needs a comma-separated list}; shift 2 ;;
    --reply-timeout) reply_timeout=${2:?}; shift 2 ;;
    --max-time) max_time=${2:?}; shift 2 ;;
    --fail-on-skip) fail_on_skip=true; shift ;;
    --results) results=${2:?}; shift 2 ;;
    --debug) debug=true; shift ;;
    --keep) keep=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1'" "see testing/smack/run.sh --help" ;;
  esac
done
case $server in pi-im|prosody) ;; *) die "unknown server '$server'" "use --server pi-im or --server prosody" ;; esac
[[ $reply_timeout =~ ^[0-9]+$ ]] || die "--reply-timeout must be milliseconds, got '$reply_timeout'"
[[ $max_time =~ ^[0-9]+$ ]] || die "--max-time must be seconds, got '$max_time'"
[ "$mode" != specs ] || [ -f "$specs" ] || die "no spec list at $specs" "restore testing/smack/specs.conf or pass --specs FILE"
results=${results:-$PI_IM_CACHE/smack/results/$server}

# Everything that needs the network (Maven Central) happens before entering the namespace.
if [ -z "${PI_IM_SMACK_LIB:-}" ]; then
  PI_IM_SMACK_LIB=$("$here/fetch.sh")
  export PI_IM_SMACK_LIB
fi
lib=$PI_IM_SMACK_LIB
jar=$(compgen -G "$lib/smack-integration-test-*.jar" | head -1) ||
  die "smack-integration-test jar missing in $lib" "run testing/smack/fetch.sh"

if [ -z "${PI_IM_SMACK_NETNS:-}" ]; then
  if unshare --net true 2>/dev/null; then
    exec unshare --net env PI_IM_SMACK_NETNS=1 bash "$0" "${args[@]}"
  fi
  warn "cannot make a network namespace (needs root or user namespaces); using the host's port 5222"
  if (exec 3<>/dev/tcp/127.0.0.1/5222) 2>/dev/null; then
    die "port 5222 is in use on this host, and Smack 4.5's test framework can only connect to 5222" \
      "stop what listens there (ss -ltnp 'sport = 5222'), or run as root so a private network namespace is used"
  fi
else
  ip link set lo up || die "cannot bring up loopback in the private network namespace" "is iproute2 installed? (npm run setup)"
fi

command -v java >/dev/null || die "java is not installed" "run: npm run setup"
command -v openssl >/dev/null || die "openssl is not installed" "run: npm run setup"

# ---------------------------------------------------------------------------------------------
# Which tests: specs.conf -> sinttest.enabledTests/disabledTests/enabledSpecifications/...

test_classes() { # every test class the framework jar ships, by simple name
  unzip -Z1 "$jar" | grep -E '^org/jivesoftware/.*Test\.class$' | grep -v -e '\$' -e '/Abstract' |
    sed 's:.*/::; s:\.class$::' | sort -u
}

declare -a en_tests=() dis_tests=() en_specs=() dis_specs=()
if [ "$mode" = specs ]; then
  declare -A listed=() class_enabled=() class_methods_disabled=()
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    read -r verb name reason <<<"$line" || true
    [ -n "${verb:-}" ] || continue
    where="$specs:$n"
    case $verb in enable|disable) ;; *) die "$where: '$verb' is neither enable nor disable" ;; esac
    [ -n "${name:-}" ] || die "$where: '$verb' needs a test class, Class.method or specification"
    [ "$verb" = enable ] || [ -n "${reason:-}" ] || die "$where: 'disable $name' needs a reason after the name"
    if [[ $name =~ ^(XEP-[0-9]{4}|RFC[0-9]+)$ ]]; then
      if [ "$verb" = enable ]; then en_specs+=("$name"); else dis_specs+=("$name"); fi
      continue
    fi
    [[ $name =~ ^[A-Za-z0-9_]+(\.[a-z][A-Za-z0-9_]*)?$ ]] ||
      die "$where: '$name' is not a test class (RosterIntegrationTest) or Class.method"
    class=${name%%.*}
    [ -z "${listed[$class.$verb.$name]:-}" ] || die "$where: '$name' is listed twice"
    listed[$class.$verb.$name]=1
    listed[$class]=1
    if [ "$verb" = enable ]; then
      en_tests+=("$name")
      [ "$name" != "$class" ] || class_enabled[$class]=1
    else
      if [ "$name" = "$class" ]; then dis_tests+=("$name"); else class_methods_disabled[$class]=1; fi
    fi
  done <"$specs"
  for class in "${!class_methods_disabled[@]}"; do
    [ -z "${class_enabled[$class]:-}" ] || die "$specs: $class is enabled whole but some of its methods are disabled" \
      "enable the wanted methods of $class one by one instead (Smack 4.5.0-beta5 disables the whole class when one method is)"
  done
  missing=()
  while read -r class; do [ -n "${listed[$class]:-}" ] || missing+=("$class"); done < <(test_classes)
  ((${#missing[@]} == 0)) || die "$specs does not say whether to run: ${missing[*]}" \
    "add an 'enable <Class>' or 'disable <Class> <reason>' line for each"
  known=" $(test_classes | tr '\n' ' ') "
  for class in "${!listed[@]}"; do
    [[ $class == *.* ]] && continue
    [[ $known == *" $class "* ]] || die "$specs names '$class', which this Smack version does not ship" "fix the name or drop the line"
  done
  ((${#en_tests[@]})) || die "$specs enables no test"
elif [ "$mode" = only ]; then
  IFS=, read -r -a en_tests <<<"$only"
fi
[ -z "$except" ] || { [ "$mode" != specs ] || die "--except goes with --all or --only; edit $specs instead"; IFS=, read -r -a dis_tests <<<"$except"; }

join() { local IFS=,; printf '%s' "$*"; }

# ---------------------------------------------------------------------------------------------
# The throw-away server

domain=smack.pi-im.test
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pi-im-smack.XXXXXX")
server_pid=""
# shellcheck disable=SC2317  # cleanup and the start_* functions are called indirectly
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null || kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
  if $keep; then printf 'kept the server files in %s\n' "$tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The namespace has no DNS, so upload URLs name the loopback address, not the test domain.
# shellcheck disable=SC2317
start_pi_im() {
  [ -f "$PI_IM_ROOT/im-server/package.json" ] || die "no im-server/ in $PI_IM_ROOT"
  (cd "$PI_IM_ROOT" && exec setsid npm start --silent -- --domain "$domain" --data-dir "$tmp/data" \
    --c2s-port 5222 --http-port 5280 --registration open \
    --upload-url http://127.0.0.1:5280/upload) >"$tmp/server.log" 2>&1 &
  server_pid=$!
}

# shellcheck disable=SC2317
start_prosody() {
  command -v prosody >/dev/null || die "prosody is not installed" "apt-get install prosody (npm run setup does it)"
  mkdir -p "$tmp/data" "$tmp/certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$domain" \
    -addext "subjectAltName=DNS:$domain,DNS:*.$domain" \
    -keyout "$tmp/certs/$domain.key" -out "$tmp/certs/$domain.crt" 2>"$tmp/openssl.log" ||
    die "openssl could not make a self-signed certificate: $(cat "$tmp/openssl.log")"
  sed -e "s|@TMP@|$tmp|g" -e "s|@DOMAIN@|$domain|g" "$here/prosody.cfg.lua.in" >"$tmp/prosody.cfg.lua"
  local as=()
  if [ "$(id -u)" = 0 ]; then
    # Prosody refuses to run as root; Debian's package makes the 'prosody' user.
    id prosody >/dev/null 2>&1 || die "no 'prosody' user to run Prosody as" "apt-get install --reinstall prosody"
    chown -R prosody: "$tmp"
    chmod 755 "$tmp"
    as=(runuser -u prosody --)
  fi
  (exec setsid "${as[@]}" prosody -F --config "$tmp/prosody.cfg.lua") >"$tmp/server.log" 2>&1 &
  server_pid=$!
}

step "smack: starting $server for $domain on 127.0.0.1:5222"
t0=$SECONDS
"start_${server//-/_}"
ready=false
for _ in $(seq 1 300); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  if (exec 3<>/dev/tcp/127.0.0.1/5222) 2>/dev/null; then ready=true; break; fi
  sleep 0.2
done
if ! $ready; then
  tail -n 40 "$tmp/server.log" "$tmp/prosody.log" 2>/dev/null >&2 || true
  if kill -0 "$server_pid" 2>/dev/null; then
    die "$server did not accept connections on 127.0.0.1:5222 within 60 s" "see its log above"
  fi
  die "$server exited before accepting connections" "see its log above; run with --keep to look at $tmp"
fi
ok "$server accepts connections after $((SECONDS - t0)) s"

props=(
  -Dsinttest.service="$domain"
  -Dsinttest.host=127.0.0.1
  -Dsinttest.replyTimeout="$reply_timeout"
  -Dsinttest.dnsResolver=javax
  # The websocket connection types need XEP-0156 discovery over HTTPS on the domain; TCP only.
  # The experimental "modular" connection types fail WaitForClosingStreamElementTest against
  # Prosody too (no closing tag seen over TLS): a Smack 4.5.0-beta5 limitation, so TCP only.
  -Dsinttest.enabledConnections=tcp
  -Dsinttest.testRunResultProcessors="org.igniterealtime.smack.inttest.SmackIntegrationTestFramework\$JulTestRunResultProcessor"
)
# STARTTLS always: Smack refuses in-band registration over an unencrypted stream.
# Trust exactly the certificate this server presents: fetched by STARTTLS, put in a throw-away
# Java trust store. (sinttest.serviceTlsPin would be simpler, but Smack 4.5.0-beta5 drops the
# pinning trust manager when it initialises the TLS context, so the default trust store decides.)
openssl s_client -starttls xmpp -xmpphost "$domain" -servername "$domain" -connect 127.0.0.1:5222 \
  </dev/null 2>"$tmp/s_client.log" | openssl x509 -out "$tmp/server.crt" 2>>"$tmp/s_client.log" ||
  die "could not get a certificate from $server by STARTTLS: $(tail -n 3 "$tmp/s_client.log")" \
    "the server must offer STARTTLS with a certificate"
keytool -importcert -noprompt -alias "$domain" -file "$tmp/server.crt" -keystore "$tmp/trust.p12" \
  -storetype PKCS12 -storepass sinttest >"$tmp/keytool.log" 2>&1 ||
  die "keytool could not make a trust store: $(cat "$tmp/keytool.log")"
props+=(-Dsinttest.securityMode=required -Djavax.net.ssl.trustStore="$tmp/trust.p12"
        -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=sinttest)
((${#en_tests[@]})) && props+=(-Dsinttest.enabledTests="$(join "${en_tests[@]}")")
((${#dis_tests[@]})) && props+=(-Dsinttest.disabledTests="$(join "${dis_tests[@]}")")
((${#en_specs[@]})) && props+=(-Dsinttest.enabledSpecifications="$(join "${en_specs[@]}")")
((${#dis_specs[@]})) && props+=(-Dsinttest.disabledSpecifications="$(join "${dis_specs[@]}")")
$debug && props+=(-Dsinttest.debugger=console)

mkdir -p "$results"
log=$results/smack.log
step "smack: running the integration tests (reply timeout ${reply_timeout} ms, log: $log)"
t1=$SECONDS
set +e
# JUL on one line per record: "LEVEL message[stack trace]".
# shellcheck disable=SC2016  # java.util.Formatter syntax, not shell
timeout --kill-after=10 "$max_time" java -Xss2m -Djava.util.logging.SimpleFormatter.format='%4$s %5$s%6$s%n' \
  -cp "$lib/*" "${props[@]}" org.igniterealtime.smack.inttest.SmackIntegrationTestFramework >"$log" 2>&1
rc=$?
set -e
elapsed=$((SECONDS - t1))
cp "$tmp/server.log" "$results/server.log" 2>/dev/null || true
[ -f "$tmp/prosody.log" ] && cp "$tmp/prosody.log" "$results/prosody.log"

# ---------------------------------------------------------------------------------------------
# Results: results.tsv (status, test, reason), junit.xml, a summary line

# Records of the framework's log this reads (one per line thanks to the format above):
#   INFO <Test> Success | SEVERE <Test> Failed | SEVERE <Test> failed: <cause>
#   INFO <Test> is not possible | INFO Could not run <Test or Class> because: <reason>
#   INFO SmackIntegrationTestFramework[<id>] finished: ...
awk -v tsv="$results/results.tsv" '
  function add(t, s) { if (!(t in st)) ord[++n] = t; st[t] = s }
  function strip(s, pre, post) { sub(pre, "", s); sub(post, "", s); return s }
  /^(FINE|CONFIG|INFO|WARNING|SEVERE) / { pending = "" }
  /^Caused by: / && pending != "" && why[pending] == "" { why[pending] = $0; next }
  /^INFO .* Success$/          { add(strip($0, "^INFO ", " Success$"), "passed"); next }
  /^SEVERE .* Failed$/         { t = strip($0, "^SEVERE ", " Failed$"); add(t, "failed"); pending = t; next }
  /^INFO .* is not possible$/  { add(strip($0, "^INFO ", " is not possible$"), "skipped"); next }
  /^SEVERE .* failed: /        { s = substr($0, 8); i = index(s, " failed: ")
                                 why[substr(s, 1, i - 1)] = substr(s, i + 9); next }
  /^INFO Could not run .* because: / {
                                 s = substr($0, 20); i = index(s, " because: ")
                                 t = substr(s, 1, i - 1); r = substr(s, i + 10)
                                 if (t !~ / /) sub(/.*\./, "", t)   # a whole class: its simple name
                                 if (!(t in st)) add(t, "skipped"); why[t] = r; next }
  /^INFO SmackIntegrationTestFramework\[.*\] finished: / { finished = 1 }
  END {
    for (k = 1; k <= n; k++) { t = ord[k]; r = why[t]; gsub(/\t/, " ", r); printf "%s\t%s\t%s\n", st[t], t, r > tsv }
    if (n == 0) printf "" > tsv
    print finished ? "finished" : "unfinished"
  }' "$log" >"$results/state"

count() { awk -F'\t' -v s="$1" '$1 == s' "$results/results.tsv" | wc -l; }
passed=$(count passed) failed=$(count failed) skipped=$(count skipped)

awk -F'\t' -v total="$((passed + failed + skipped))" -v failures="$failed" -v skips="$skipped" -v secs="$elapsed" -v server="$server" '
  function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); gsub(/"/, "\\&quot;", s); return s }
  BEGIN { print "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
          printf "<testsuite name=\"smack-integration-test (%s)\" tests=\"%d\" failures=\"%d\" skipped=\"%d\" errors=\"0\" time=\"%d\">\n", server, total, failures, skips, secs }
  { split($2, parts, " "); cls = parts[1]; sub(/\..*/, "", cls)
    printf "  <testcase classname=\"%s\" name=\"%s\">", esc(cls), esc($2)
    if ($1 == "failed") printf "<failure message=\"%s\"/>", esc($3)
    if ($1 == "skipped") printf "<skipped message=\"%s\"/>", esc($3)
    print "</testcase>" }
  END { print "</testsuite>" }' "$results/results.tsv" >"$results/junit.xml"

if ((skipped)); then
  printf '\nnot run by the framework (the server lacks what they need):\n'
  awk -F'\t' '$1 == "skipped" { printf "  - %s: %s\n", $2, $3 }' "$results/results.tsv"
fi
if ((failed)); then
  printf '\nFAILED:\n'
  awk -F'\t' '$1 == "failed" { printf "  - %s: %s\n", $2, $3 }' "$results/results.tsv"
fi
printf '\nresults: %s/{results.tsv,junit.xml,smack.log,server.log}; java ran %d s\n' "$results" "$elapsed"
printf 'Smack: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"

if [ "$(cat "$results/state")" != finished ]; then
  tail -n 30 "$log" >&2
  if ((rc == 124 || rc == 137)); then
    die "the Smack run did not finish within --max-time $max_time s" "see $log; raise --max-time or lower --reply-timeout"
  fi
  die "the Smack run broke off (java exit status $rc) before reporting" "see $log (last lines above)"
fi
((passed + failed)) || die "no Smack test ran" "check the enabled tests in $specs"
((failed == 0)) || exit 1
if $fail_on_skip && ((skipped)); then
  die "$skipped enabled test(s) could not run (--fail-on-skip)" "the server must offer what they need; see the list above"
fi
exit 0
