// ufw rules: default deny incoming; SSH rate-limited (optionally only from admin networks, and
// unthrottled from trusted deploy networks so pulumi's many SSH sessions are not refused); the
// service ports; extra rules. Every rule carries a comment tag `pi-im:<id>-<hash>`: the script
// adds declared rules that are missing and deletes tagged rules no longer declared, so it is
// idempotent and never touches rules that are not ours.
import { PRELUDE, q, sha256 } from "./shell";

export interface FirewallRuleSpec {
  /** ufw rule text without the comment, e.g. "limit 22/tcp". */
  rule: string;
  /** Stable id: the tag is pi-im:<id>-<hash of rule>. */
  id: string;
  /** Must come before the SSH limit rule (ufw evaluates in order). */
  first?: boolean;
}

export interface FirewallOptions {
  sshPort: number;
  sshRateLimit: boolean;
  sshAllowFrom: string[];
  trusted: string[];
  ports: { http: number; https: number; xmpp: number; xmppDirectTls?: number };
  extra: Array<{ port: number; proto: "tcp" | "udp"; from?: string; comment: string }>;
  logging: "off" | "low" | "medium" | "high";
}

export function firewallRules(o: FirewallOptions): FirewallRuleSpec[] {
  const ssh = o.sshRateLimit ? "limit" : "allow";
  const rules: FirewallRuleSpec[] = [];
  o.trusted.forEach((c, i) => rules.push({ id: `trusted${i}`, rule: `allow from ${c} to any port ${o.sshPort} proto tcp`, first: true }));
  if (o.sshAllowFrom.length === 0) rules.push({ id: "ssh", rule: `${ssh} ${o.sshPort}/tcp` });
  else o.sshAllowFrom.forEach((c, i) => rules.push({ id: `ssh${i}`, rule: `${ssh} from ${c} to any port ${o.sshPort} proto tcp` }));
  rules.push({ id: "http", rule: `allow ${o.ports.http}/tcp` });
  rules.push({ id: "https", rule: `allow ${o.ports.https}/tcp` });
  rules.push({ id: "xmpp", rule: `allow ${o.ports.xmpp}/tcp` });
  if (o.ports.xmppDirectTls !== undefined) rules.push({ id: "xmpps", rule: `allow ${o.ports.xmppDirectTls}/tcp` });
  o.extra.forEach((r, i) => {
    const id = `x${i}-${r.comment.replace(/[^\w]/g, "").slice(0, 16)}`;
    rules.push({ id, rule: r.from ? `allow from ${r.from} to any port ${r.port} proto ${r.proto}` : `allow ${r.port}/${r.proto}` });
  });
  return rules;
}

export function ruleTag(r: FirewallRuleSpec): string {
  return `pi-im:${r.id}-${sha256(r.rule).slice(0, 8)}`;
}

export function renderFirewallScript(o: FirewallOptions): string {
  const rules = firewallRules(o);
  const lines = rules.map((r) => `  ${q(`${r.first ? 1 : 0}|${ruleTag(r)}|${r.rule}`)}`).join("\n");
  return `#!/bin/bash
# pi-im firewall, rendered by infra/render/firewall.ts. Idempotent.
${PRELUDE}
command -v ufw >/dev/null || die "ufw is not installed (the Host component installs it)"
ALLOW_FROM=(${o.sshAllowFrom.map(q).join(" ")} ${o.trusted.map(q).join(" ")})
# first|tag|rule
RULES=(
${lines}
)

# Refuse a rule set that would shut out the SSH session running this script.
client=$(printf '%s' "\${SSH_CONNECTION:-}" | awk '{print $1}')
if [ -n "$client" ] && [ "\${#ALLOW_FROM[@]}" -gt 0 ] && command -v python3 >/dev/null; then
  if ! python3 - "$client" "\${ALLOW_FROM[@]}" <<'PY'
import ipaddress, sys
c = ipaddress.ip_address(sys.argv[1])
sys.exit(0 if any(c in ipaddress.ip_network(n, strict=False) for n in sys.argv[2:]) else 1)
PY
  then die "SSH from $client is outside pi-im:firewall.sshAllowFrom/trusted; applying would lock pulumi out. Add $client's network."; fi
fi

# Each ufw run is a Python start (seconds on a Pi): list once, and change only what differs.
added=$(ufw show added 2>/dev/null || true)
existing=$(grep -o "comment 'pi-im:[^']*'" <<<"$added" | sed "s/comment '\\(.*\\)'/\\1/" || true)
have_any=$(grep -c '^ufw ' <<<"$added" || true)
declared=()
for entry in "\${RULES[@]}"; do
  first=\${entry%%|*}; rest=\${entry#*|}; tag=\${rest%%|*}; rule=\${rest#*|}
  declared+=("$tag")
  if ! grep -qxF "$tag" <<<"$existing"; then
    read -r -a words <<<"$rule"
    if [ "$first" = 1 ] && [ "$have_any" -gt 0 ]; then
      ufw insert 1 "\${words[@]}" comment "$tag" >/dev/null
    else
      ufw "\${words[@]}" comment "$tag" >/dev/null
    fi
    have_any=$((have_any + 1))
    log "firewall: added $rule ($tag)"
  fi
done

# Delete our rules that are no longer declared (rule text comes from ufw's own listing).
{ grep "comment 'pi-im:" <<<"$added" || true; } | while IFS= read -r line; do
  tag=$(printf '%s' "$line" | sed "s/.*comment '\\(pi-im:[^']*\\)'.*/\\1/")
  if ! printf '%s\\n' "\${declared[@]}" | grep -qxF "$tag"; then
    spec=\${line#ufw }
    spec=\${spec% comment *}
    read -r -a words <<<"$spec"
    ufw delete "\${words[@]}" >/dev/null
    log "firewall: removed $spec ($tag)"
  fi
done

status=$(ufw status verbose 2>/dev/null || true)
grep -q '^Default: deny (incoming)' <<<"$status" || ufw default deny incoming >/dev/null
grep -q '^Default: .*allow (outgoing)' <<<"$status" || ufw default allow outgoing >/dev/null
grep -qxF ${q(o.logging === "off" ? "Logging: off" : `Logging: on (${o.logging})`)} <<<"$status" || ufw logging ${o.logging} >/dev/null
grep -q '^Status: active' <<<"$status" || ufw --force enable >/dev/null
log "firewall active with \${#declared[@]} pi-im rules"
`;
}

/** Undo on destroy: delete every pi-im rule; disable ufw unless rules of someone else's remain. */
export function renderFirewallUndo(): string {
  return `${PRELUDE}
command -v ufw >/dev/null || exit 0
# Disabled first: deleting our SSH rules from an active default-deny firewall would lock the
# admin (and this very deploy) out until the last step ran.
ufw --force disable >/dev/null
{ ufw show added 2>/dev/null | grep "comment 'pi-im:" || true; } | while IFS= read -r line; do
  spec=\${line#ufw }
  spec=\${spec% comment *}
  read -r -a words <<<"$spec"
  ufw delete "\${words[@]}" >/dev/null || log "firewall: could not remove $spec"
  log "firewall: removed $spec"
done
others=$(ufw show added 2>/dev/null | grep '^ufw ' | grep -vc "comment 'pi-im:" || true)
if [ "$others" != 0 ]; then
  ufw --force enable >/dev/null
  log "firewall: $others rule(s) not made by pi-im remain; ufw left enabled with them"
else
  log "firewall: no rules left, ufw disabled (so a reboot cannot lock SSH out)"
fi
`;
}
