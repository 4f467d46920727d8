// The USB data disk: found by UUID, label or device; formatted ext4 ONLY when config says so AND
// blkid finds no filesystem on it; mounted via a managed fstab line (nofail so a missing disk never
// stops boot, noatime to spare flash); data directories with the right owners.
import { PRELUDE, q } from "./shell";

export interface DiskRef {
  uuid?: string;
  label?: string;
  device?: string;
}

export interface StorageOptions {
  disk: DiskRef;
  mountPoint: string;
  fsType: "ext4";
  format: boolean;
  formatLabel: string;
  /** Directories under the mount point (relative) and their owners. */
  dirs: Array<{ path: string; owner: string; mode: string }>;
}

export function fstabSource(d: DiskRef): string {
  if (d.uuid) return `UUID=${d.uuid}`;
  if (d.label) return `LABEL=${d.label}`;
  if (d.device) return d.device;
  throw new Error("fstabSource: disk needs uuid, label or device");
}

export function renderFstabLine(d: DiskRef, mountPoint: string, fsType = "ext4"): string {
  return `${fstabSource(d)} ${mountPoint} ${fsType} defaults,nofail,noatime,x-systemd.device-timeout=120s 0 2 # pi-im`;
}

export function renderStorageScript(o: StorageOptions): string {
  const line = renderFstabLine(o.disk, o.mountPoint, o.fsType);
  const dirs = o.dirs.map((d) => `ensure_dir ${q(`${o.mountPoint}/${d.path}`)} ${q(d.owner)} ${q(d.mode)}`).join("\n");
  return `#!/bin/bash
# pi-im storage, rendered by infra/render/storage.ts. Idempotent; never formats a disk with data.
${PRELUDE}
SOURCE=${q(fstabSource(o.disk))}
MOUNT=${q(o.mountPoint)}
FSTYPE=${q(o.fsType)}
FORMAT=${o.format ? 1 : 0}
LABEL=${q(o.formatLabel)}
FSTAB_LINE=${q(line)}
ensure_dir() { install -d -m "$3" "$1"; chown "$2" "$1"; }

device=$(blkid -l -o device -t "$SOURCE" 2>/dev/null || true)
case "$SOURCE" in /dev/*) [ -b "$SOURCE" ] && device=$SOURCE ;; esac
if [ -z "$device" ]; then
  # Not found by UUID/label: only a device given for formatting can be found by path.
  die "disk $SOURCE not found; attached disks: $(lsblk -dno NAME,SIZE,MODEL 2>/dev/null | tr '\\n' ';'). Fix pi-im:storage.disk"
fi
fs=$(blkid -o value -s TYPE "$device" 2>/dev/null || true)
if [ -z "$fs" ]; then
  if [ "$FORMAT" = 1 ]; then
    log "formatting empty disk $device as $FSTYPE (label $LABEL)"
    mkfs.ext4 -q -L "$LABEL" "$device"
    fs=ext4
  else
    die "$device has no filesystem; set pi-im:storage.format true to format it as ext4 (it is empty: nothing is lost)"
  fi
elif [ "$fs" != "$FSTYPE" ]; then
  die "$device holds a $fs filesystem, not $FSTYPE; pi-im does not reformat disks that hold data. Convert it yourself or choose another disk"
fi

# fstab: one managed line, replaced when it differs.
if ! grep -qxF "$FSTAB_LINE" /etc/fstab; then
  sed -i '/ # pi-im$/d' /etc/fstab
  printf '%s\\n' "$FSTAB_LINE" >>/etc/fstab
  systemctl daemon-reload 2>/dev/null || true
  log "fstab: $FSTAB_LINE"
fi
mkdir -p "$MOUNT"
if ! mountpoint -q "$MOUNT"; then
  mount "$MOUNT"
  log "mounted $device at $MOUNT"
fi
mountpoint -q "$MOUNT" || die "$MOUNT is not a mount point after mount"
# Docker (and so the IM nodes) starts only once the disk is mounted: without the disk the
# service stays down rather than writing chat data to the SD card under the empty mount point.
DROPIN=/etc/systemd/system/docker.service.d/pi-im-storage.conf
want=$(printf '[Unit]\nRequiresMountsFor=%s\n' "$MOUNT")
if [ "$(cat "$DROPIN" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$(dirname "$DROPIN")"
  printf '%s\n' "$want" >"$DROPIN"
  systemctl daemon-reload 2>/dev/null || true
  log "docker.service now waits for $MOUNT"
fi
${dirs}
log "storage ready: $device ($fs) at $MOUNT"
`;
}

/** Undo on destroy: unmount and drop the fstab line. The data on the disk is left alone. */
export function renderStorageUndo(mountPoint: string): string {
  return `${PRELUDE}
sed -i '/ # pi-im$/d' /etc/fstab
rm -f /etc/systemd/system/docker.service.d/pi-im-storage.conf
if mountpoint -q ${q(mountPoint)}; then umount ${q(mountPoint)} || umount -l ${q(mountPoint)}; fi
systemctl daemon-reload 2>/dev/null || true
log "unmounted ${mountPoint} and removed its fstab line; the data on the disk is kept"
`;
}
