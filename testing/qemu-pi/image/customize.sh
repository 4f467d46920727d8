#!/bin/sh
# mmdebstrap customize hook: turns the Debian root filesystem in $1 into the bare test board.
# Only what a freshly flashed Pi has: hostname, the `pi` user with passwordless sudo and the test
# SSH key, DHCP on eth0, fstab for the root filesystem. Nothing the Pulumi program is meant to do.
# Environment: PI_IM_PUBKEY_FILE (the public key to authorize for `pi`).
set -eu
root=$1
: "${PI_IM_PUBKEY_FILE:?PI_IM_PUBKEY_FILE must name the public key file}"

# Undo the update-initramfs diversion set by the essential hook (see build-image.sh).
rm -f "$root/usr/sbin/update-initramfs"
chroot "$root" dpkg-divert --local --rename --remove /usr/sbin/update-initramfs >/dev/null

echo raspberrypi > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1	raspberrypi
HOSTS

cat > "$root/etc/fstab" <<'FSTAB'
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
LABEL=piroot	/	ext4	defaults,noatime	0	1
FSTAB

# Debian-installer style networking: ifupdown + DHCP on the first NIC. The runner boots with
# net.ifnames=0 so the NIC is eth0, as on a Raspberry Pi.
cat > "$root/etc/network/interfaces" <<'IFACES'
# interfaces(5) file used by ifup(8) and ifdown(8)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
IFACES

# The `pi` user as Raspberry Pi Imager makes it, with a key instead of a password.
groups=
for g in adm dialout cdrom sudo audio video plugdev users input render netdev; do
  if chroot "$root" getent group "$g" >/dev/null; then groups="${groups:+$groups,}$g"; fi
done
chroot "$root" useradd --create-home --shell /bin/bash --groups "$groups" pi
chroot "$root" usermod --password '*' pi
install -d -m 0700 "$root/home/pi/.ssh"
install -m 0600 "$PI_IM_PUBKEY_FILE" "$root/home/pi/.ssh/authorized_keys"
chroot "$root" chown -R pi:pi /home/pi/.ssh
printf 'pi ALL=(ALL) NOPASSWD: ALL\n' > "$root/etc/sudoers.d/010_pi-nopasswd"
chmod 0440 "$root/etc/sudoers.d/010_pi-nopasswd"
