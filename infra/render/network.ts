// Static (or DHCP) addressing for the Pi's wired interface, rendered for each network stack the OS
// may use; the script detects the active one on the Pi (NetworkManager on Bookworm Pi OS, dhcpcd
// on older Pi OS, systemd-networkd or ifupdown on plain Debian) unless config pins it.
// Guard: the script refuses to move off the address the SSH session came in on unless allowed.
import { netmaskOf, parseCidr } from "../net";
import { PRELUDE, q, WROTE, writeFile } from "./shell";

export type NetStack = "networkmanager" | "dhcpcd" | "networkd" | "ifupdown";

export interface NetworkOptions {
  interface: string;
  mode: "static" | "dhcp";
  /** address/prefix, e.g. 192.168.1.100/24 (static mode). */
  address?: string;
  gateway?: string;
  dns: string[];
  stack: "auto" | NetStack;
  allowAddressChange: boolean;
}

export const NM_FILE = (iface: string) => `/etc/NetworkManager/system-connections/pi-im-${iface}.nmconnection`;
export const NETWORKD_FILE = (iface: string) => `/etc/systemd/network/10-pi-im-${iface}.network`;
export const IFUPDOWN_FILE = (iface: string) => `/etc/network/interfaces.d/pi-im-${iface}`;

export function renderNmKeyfile(o: NetworkOptions): string {
  const ipv4 =
    o.mode === "dhcp"
      ? "method=auto\n"
      : `method=manual\naddress1=${o.address}${o.gateway ? `,${o.gateway}` : ""}\n${o.dns.length ? `dns=${o.dns.join(";")};\nignore-auto-dns=true\n` : ""}`;
  return `# Rendered by pi-im (infra/render/network.ts)
[connection]
id=pi-im-${o.interface}
type=ethernet
interface-name=${o.interface}
autoconnect=true
autoconnect-priority=100

[ethernet]

[ipv4]
${ipv4}
[ipv6]
method=auto
`;
}

export function renderDhcpcdBlock(o: NetworkOptions): string {
  if (o.mode === "dhcp") return `# pi-im: ${o.interface} uses DHCP\n`;
  return `# pi-im: static address for ${o.interface}
interface ${o.interface}
static ip_address=${o.address}
${o.gateway ? `static routers=${o.gateway}\n` : ""}${o.dns.length ? `static domain_name_servers=${o.dns.join(" ")}\n` : ""}`;
}

export function renderNetworkdUnit(o: NetworkOptions): string {
  const body =
    o.mode === "dhcp"
      ? "DHCP=yes\n"
      : `Address=${o.address}\n${o.gateway ? `Gateway=${o.gateway}\n` : ""}${o.dns.map((d) => `DNS=${d}\n`).join("")}`;
  return `# Rendered by pi-im (infra/render/network.ts)
[Match]
Name=${o.interface}

[Network]
${body}`;
}

export function renderIfupdownStanza(o: NetworkOptions): string {
  if (o.mode === "dhcp") return `# Rendered by pi-im\nauto ${o.interface}\niface ${o.interface} inet dhcp\n`;
  const c = parseCidr(o.address ?? "");
  if (!c) throw new Error(`renderIfupdownStanza: bad address ${o.address}`);
  return `# Rendered by pi-im (infra/render/network.ts)
auto ${o.interface}
iface ${o.interface} inet static
    address ${c.address}
    netmask ${netmaskOf(c.prefix)}
${o.gateway ? `    gateway ${o.gateway}\n` : ""}${o.dns.length ? `    dns-nameservers ${o.dns.join(" ")}\n` : ""}`;
}

const DETECT = `detect_stack() {
  if systemctl is-active --quiet NetworkManager 2>/dev/null; then echo networkmanager
  elif systemctl is-active --quiet dhcpcd 2>/dev/null; then echo dhcpcd
  elif systemctl is-active --quiet systemd-networkd 2>/dev/null; then echo networkd
  else echo ifupdown; fi
}`;

export function renderNetworkScript(o: NetworkOptions): string {
  const want = o.mode === "static" ? parseCidr(o.address ?? "")?.address ?? "" : "";
  const iface = o.interface;
  return `#!/bin/bash
# pi-im network setup for ${iface}, rendered by infra/render/network.ts.
${PRELUDE}
IFACE=${q(iface)}
WANT_ADDR=${q(want)}
ALLOW_CHANGE=${o.allowAddressChange ? 1 : 0}
STACK=${q(o.stack)}
${DETECT}

if ! ip link show "$IFACE" >/dev/null 2>&1; then
  die "interface $IFACE does not exist on $(hostname); present: $(ls /sys/class/net | tr '\\n' ' '). Fix pi-im:network.interface"
fi
# The address this SSH session arrived at: the one Pulumi connects through.
conn_addr=$(printf '%s' "\${SSH_CONNECTION:-}" | awk '{print $3}')
conn_iface=$(ip -o -4 addr show 2>/dev/null | awk -v a="$conn_addr" '{split($4, p, "/"); if (p[1] == a) print $2}')
if [ "$ALLOW_CHANGE" != 1 ] && [ -n "$conn_addr" ] && [ "$conn_iface" = "$IFACE" ]; then
  if [ -z "$WANT_ADDR" ]; then
    die "switching $IFACE to DHCP could move it off $conn_addr, the address pulumi connects through; set pi-im:network.allowAddressChange true to do it anyway"
  elif [ "$WANT_ADDR" != "$conn_addr" ]; then
    die "$WANT_ADDR would replace $conn_addr, the address pulumi connects through; set pi-im:network.allowAddressChange true to do it anyway"
  fi
fi
[ "$STACK" = auto ] && STACK=$(detect_stack)
log "network stack: $STACK"
changed=0
case "$STACK" in
  networkmanager)
    ${writeFile(NM_FILE(iface), renderNmKeyfile(o), "0600")}
    if ${WROTE}; then changed=1; fi
    if [ "$changed" = 1 ]; then nmcli connection reload; nmcli connection up ${q(`pi-im-${iface}`)} >/dev/null; fi ;;
  dhcpcd)
    block=${q(renderDhcpcdBlock(o))}
    current=$(sed -n '/^# BEGIN pi-im$/,/^# END pi-im$/p' /etc/dhcpcd.conf)
    if [ "$current" != "$(printf '# BEGIN pi-im\\n%s\\n# END pi-im' "$block")" ]; then
      sed -i '/^# BEGIN pi-im$/,/^# END pi-im$/d' /etc/dhcpcd.conf
      printf '# BEGIN pi-im\\n%s\\n# END pi-im\\n' "$block" >>/etc/dhcpcd.conf
      changed=1
      systemctl restart dhcpcd
    fi ;;
  networkd)
    ${writeFile(NETWORKD_FILE(iface), renderNetworkdUnit(o))}
    if ${WROTE}; then changed=1; networkctl reload; networkctl reconfigure "$IFACE"; fi ;;
  ifupdown)
    ${writeFile(IFUPDOWN_FILE(iface), renderIfupdownStanza(o))}
    if ${WROTE}; then
      changed=1
      grep -qE '^(source|source-directory) /etc/network/interfaces.d' /etc/network/interfaces || echo 'source /etc/network/interfaces.d/*' >>/etc/network/interfaces
      # The stanza may duplicate one in /etc/network/interfaces: comment that one out.
      sed -i -E "/^(auto|allow-hotplug) $IFACE\\$/s/^/# pi-im: /; /^iface $IFACE inet /,/^\\$/s/^([^#])/# pi-im: \\1/" /etc/network/interfaces
      ifdown "$IFACE" 2>/dev/null || true
      ifup "$IFACE"
    fi ;;
  *) die "unknown network stack $STACK" ;;
esac
log "network on $IFACE: \${WANT_ADDR:-dhcp} (changed=$changed)"
`;
}

/** Undo on destroy: remove our files; the change takes effect at the next reboot, never mid-SSH. */
export function renderNetworkUndo(iface: string): string {
  return `${PRELUDE}
rm -f ${q(NM_FILE(iface))} ${q(NETWORKD_FILE(iface))} ${q(IFUPDOWN_FILE(iface))}
if [ -f /etc/dhcpcd.conf ]; then sed -i '/^# BEGIN pi-im$/,/^# END pi-im$/d' /etc/dhcpcd.conf; fi
if [ -f /etc/network/interfaces ]; then sed -i 's/^# pi-im: //' /etc/network/interfaces; fi
log "removed pi-im network config for ${iface}; the OS default applies from the next reboot"
`;
}
