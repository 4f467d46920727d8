// Host OS setup: hostname, time zone, locale, admin user and keys, packages, unattended upgrades,
// and the sshd hardening drop-in. Works on Raspberry Pi OS Bookworm and plain Debian 12.
import { PRELUDE, q, WROTE, writeFile } from "./shell";

export interface HostOptions {
  hostname: string;
  timezone: string;
  locale: string;
  adminUser: string;
  authorizedKeys: string[];
  installPackages: boolean;
  packages: string[];
  unattendedUpgrades: boolean;
  sshHardening: boolean;
}

export const SSHD_DROPIN = "/etc/ssh/sshd_config.d/50-pi-im.conf";

export function renderSshdHardening(adminUser: string): string {
  return `# Rendered by pi-im (infra/render/host.ts): keys only, no root, few tries.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PubkeyAuthentication yes
PermitEmptyPasswords no
MaxAuthTries 4
LoginGraceTime 30
X11Forwarding no
AllowAgentForwarding no
ClientAliveInterval 60
ClientAliveCountMax 3
# Admin user: ${adminUser} (key login only).
`;
}

const UNATTENDED = `// Rendered by pi-im: security updates daily, reboot never (the admin chooses when).
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
`;

export function renderHostSetup(o: HostOptions): string {
  const pkgs = [...o.packages, ...(o.unattendedUpgrades ? ["unattended-upgrades"] : [])];
  const keys = o.authorizedKeys.join("\n");
  return `#!/bin/bash
# pi-im host setup, rendered by infra/render/host.ts. Idempotent: safe to run again.
${PRELUDE}
HOSTNAME_WANTED=${q(o.hostname)}
TZ_WANTED=${q(o.timezone)}
LOCALE_WANTED=${q(o.locale)}
ADMIN=${q(o.adminUser)}

# Hostname (also in /etc/hosts so sudo does not stall resolving it).
if [ "$(hostname)" != "$HOSTNAME_WANTED" ]; then
  hostnamectl set-hostname "$HOSTNAME_WANTED" 2>/dev/null || { echo "$HOSTNAME_WANTED" >/etc/hostname; hostname "$HOSTNAME_WANTED"; }
  log "hostname set to $HOSTNAME_WANTED"
fi
if ! grep -qE "^127\\.0\\.1\\.1[[:space:]]+$HOSTNAME_WANTED\\b" /etc/hosts; then
  sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts
  printf '127.0.1.1\\t%s\\n' "$HOSTNAME_WANTED" >>/etc/hosts
fi

# Time zone.
[ -e "/usr/share/zoneinfo/$TZ_WANTED" ] || die "time zone $TZ_WANTED is unknown on this host (pi-im:timezone)"
if [ "$(readlink -f /etc/localtime)" != "/usr/share/zoneinfo/$TZ_WANTED" ]; then
  ln -sf "/usr/share/zoneinfo/$TZ_WANTED" /etc/localtime
  echo "$TZ_WANTED" >/etc/timezone
  log "time zone set to $TZ_WANTED"
fi

# Locale: C.UTF-8 is always there; others are generated when the locales package is present.
if [ "$LOCALE_WANTED" != C.UTF-8 ] && [ -f /etc/locale.gen ]; then
  if ! locale -a 2>/dev/null | grep -qix "$(echo "$LOCALE_WANTED" | sed 's/UTF-8/utf8/I')"; then
    sed -i "s/^# *\\($LOCALE_WANTED\\)/\\1/" /etc/locale.gen
    grep -q "^$LOCALE_WANTED" /etc/locale.gen || echo "$LOCALE_WANTED UTF-8" >>/etc/locale.gen
    locale-gen >/dev/null
  fi
fi
printf 'LANG=%s\\n' "$LOCALE_WANTED" >/etc/default/locale.pi-im
if ! cmp -s /etc/default/locale.pi-im /etc/default/locale; then mv /etc/default/locale.pi-im /etc/default/locale; else rm -f /etc/default/locale.pi-im; fi

# Packages: only apt-get when something is missing, so an offline Pi with them all is fine.
${o.installPackages ? `PACKAGES=(${pkgs.map(q).join(" ")})
missing=()
for p in "\${PACKAGES[@]}"; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "\${#missing[@]}" -gt 0 ]; then
  log "installing \${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "\${missing[@]}"
fi
systemctl enable --now docker >/dev/null 2>&1 || true
systemctl enable --now cron >/dev/null 2>&1 || true` : `log "package installation disabled (pi-im:host.installPackages false)"`}

# Admin user: exists, in sudo and docker groups, with the configured keys in a managed block.
if ! id "$ADMIN" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$ADMIN"
  log "created user $ADMIN"
fi
for g in sudo docker; do getent group "$g" >/dev/null && usermod -aG "$g" "$ADMIN"; done
home=$(getent passwd "$ADMIN" | cut -d: -f6)
install -d -m 0700 -o "$ADMIN" -g "$(id -gn "$ADMIN")" "$home/.ssh"
ak="$home/.ssh/authorized_keys"
touch "$ak"
keys=${q(keys)}
begin='# BEGIN pi-im managed keys'
end='# END pi-im managed keys'
{
  sed "/^$begin\\$/,/^$end\\$/d" "$ak"
  if [ -n "$keys" ]; then printf '%s\\n%s\\n%s\\n' "$begin" "$keys" "$end"; fi
} >"$ak.new"
chown "$ADMIN:$(id -gn "$ADMIN")" "$ak.new"
chmod 0600 "$ak.new"
if cmp -s "$ak.new" "$ak"; then rm -f "$ak.new"; else mv "$ak.new" "$ak"; log "updated $ak"; fi
[ -s "$ak" ] || die "$ADMIN has no SSH keys; refusing to disable password login (set pi-im:admin.authorizedKeys)"

# sshd hardening, checked with sshd -t before it is used.
${o.sshHardening ? `${writeFile(SSHD_DROPIN, renderSshdHardening(o.adminUser))}
if ${WROTE}; then
  if ! sshd -t; then rm -f ${SSHD_DROPIN}; die "sshd rejected the hardening drop-in; removed it"; fi
  systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
fi` : `if [ -f ${SSHD_DROPIN} ]; then rm -f ${SSHD_DROPIN}; systemctl reload ssh 2>/dev/null || true; fi`}

# Unattended security upgrades.
${o.unattendedUpgrades ? writeFile("/etc/apt/apt.conf.d/20auto-upgrades", UNATTENDED) : "rm -f /etc/apt/apt.conf.d/20auto-upgrades"}

install -d -m 0755 /etc/pi-im /var/lib/pi-im
log "host ready: $HOSTNAME_WANTED"
`;
}

/** Undo on destroy: only what is ours and harmless to remove (users and packages stay). */
export function renderHostUndo(): string {
  return `${PRELUDE}
rm -f ${SSHD_DROPIN} /etc/apt/apt.conf.d/20auto-upgrades
systemctl reload ssh 2>/dev/null || true
rmdir /etc/pi-im/backup /etc/pi-im 2>/dev/null || true
log "removed pi-im sshd drop-in and auto-upgrade settings (users and packages are left)"
`;
}
