// The backup and restore commands installed on each Pi, and the cron file that runs the backup.
// Consistency: every SQLite database under the data directory is copied with `VACUUM INTO` (one
// read transaction: a consistent snapshot even while the server writes in WAL mode), never by
// copying the live file. Other files (uploads) are rsynced; the config directory rides along.
// A backup is written as <name>.partial and renamed when complete, so a restore never sees half a
// backup. Unchanged files are hard-linked to the previous backup (rsync --link-dest).
import { q } from "./shell";

export type BackupTarget =
  | { type: "local"; path: string }
  | { type: "ssh"; host: string; port: number; user: string; path: string; keyFile: string; knownHostsFile?: string };

export interface BackupOptions {
  dataDir: string;
  /** Extra directories saved under config/ (e.g. /etc/pi-im/cluster); missing ones are skipped. */
  configDirs: string[];
  target: BackupTarget;
  keep: number;
  maxAgeDays: number;
  includeUploads: boolean;
  /** Scratch space for snapshots; on the data disk so big databases fit. */
  stagingDir: string;
  statusFile: string;
  logFile: string;
  lockFile: string;
  /** uid:gid owning the data; sqlite3 runs as this user so it never leaves root-owned -wal/-shm files. */
  dataOwner: string;
}

export interface RestoreOptions extends BackupOptions {
  /** Commands that stop and start the IM nodes around a restore. */
  stopCommand: string;
  startCommand: string;
}

function header(o: BackupOptions): string {
  const t = o.target;
  const ssh = t.type === "ssh" ? t : undefined;
  return `DATA_DIR=${q(o.dataDir)}
CONFIG_DIRS=(${o.configDirs.map(q).join(" ")})
TARGET_TYPE=${q(t.type)}
TARGET_PATH=${q(t.path)}
SSH_HOST=${q(ssh?.host ?? "")}
SSH_PORT=${q(ssh?.port ?? 22)}
SSH_USER=${q(ssh?.user ?? "")}
SSH_KEY=${q(ssh?.keyFile ?? "")}
KNOWN_HOSTS=${q(ssh?.knownHostsFile ?? "")}
KEEP=${q(o.keep)}
MAX_AGE_DAYS=${q(o.maxAgeDays)}
INCLUDE_UPLOADS=${o.includeUploads ? 1 : 0}
STAGING=${q(o.stagingDir)}
STATUS_FILE=${q(o.statusFile)}
LOG_FILE=${q(o.logFile)}
LOCK_FILE=${q(o.lockFile)}
DATA_OWNER=${q(o.dataOwner)}
`;
}

// Functions both scripts share: running things on the target (local dir or NAS over SSH), running
// sqlite3 as the data owner, finding SQLite files.
const COMMON = `
ts() { date -u +%Y-%m-%dT%H:%M:%SZ; }
log() { printf '%s %s\\n' "$(ts)" "$*" >&2; }
SSH_CMD=(ssh -p "$SSH_PORT" -i "$SSH_KEY" -o BatchMode=yes -o ConnectTimeout=20)
if [ -n "$KNOWN_HOSTS" ]; then
  SSH_CMD+=(-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS")
else
  SSH_CMD+=(-o StrictHostKeyChecking=accept-new)
fi
# target_sh SNIPPET: run a shell snippet where the backups live.
target_sh() {
  if [ "$TARGET_TYPE" = ssh ]; then "\${SSH_CMD[@]}" "$SSH_USER@$SSH_HOST" "$1"; else sh -c "$1"; fi
}
# target_url PATH: the rsync address of a path on the target.
target_url() {
  if [ "$TARGET_TYPE" = ssh ]; then printf '%s@%s:%s' "$SSH_USER" "$SSH_HOST" "$1"; else printf '%s' "$1"; fi
}
rsync_target() {
  if [ "$TARGET_TYPE" = ssh ]; then rsync -e "\${SSH_CMD[*]}" "$@"; else rsync "$@"; fi
}
as_owner() {
  if [ "$(id -u):$(id -g)" = "$DATA_OWNER" ] || [ "$(id -u)" != 0 ]; then "$@"; else
    setpriv --reuid="\${DATA_OWNER%%:*}" --regid="\${DATA_OWNER##*:}" --clear-groups -- "$@"
  fi
}
is_sqlite() { [ "$(head -c 15 "$1" 2>/dev/null)" = "SQLite format 3" ]; }
# sqlite_files DIR: relative paths of SQLite databases under DIR, one per line.
sqlite_files() {
  local f
  find "$1" -type f ! -name '*-wal' ! -name '*-shm' ! -name '*-journal' -print 2>/dev/null | sort | while IFS= read -r f; do
    if is_sqlite "$f"; then printf '%s\\n' "\${f#"$1"/}"; fi
  done
}
sql_quote() { printf "'%s'" "$(printf %s "$1" | sed "s/'/''/g")"; }
list_backups() {
  target_sh "cd $(printf %q "$TARGET_PATH") 2>/dev/null && ls -1d [0-9]*Z 2>/dev/null || true" | sort
}
`;

export function renderBackupScript(o: BackupOptions): string {
  return `#!/bin/bash
# pi-im-backup: a consistent backup of the IM data (SQLite snapshots + uploads + config), shipped
# to the backup target with retention. Rendered by pi-im (infra/render/backup.ts).
# Exit status 0 = backup complete; the status file says the same for monitoring.
# Usage: pi-im-backup [--quiet]
set -Eeuo pipefail
umask 077
${header(o)}${COMMON}
QUIET=0
[ "\${1:-}" = --quiet ] && QUIET=1
mkdir -p "$(dirname "$LOG_FILE")" "$(dirname "$STATUS_FILE")" "$(dirname "$LOCK_FILE")"
if [ "$QUIET" = 1 ]; then exec >>"$LOG_FILE" 2>&1; else exec > >(tee -a "$LOG_FILE") 2>&1; fi

NAME=$(date -u +%Y%m%dT%H%M%SZ)
STARTED=$(ts)
PHASE=start
BYTES=0

write_status() {
  local status=$1 code=$2 message=$3 tmp
  tmp=$(mktemp "$STATUS_FILE.XXXXXX")
  printf '{"status":"%s","exitCode":%d,"backup":"%s","started":"%s","finished":"%s","bytes":%d,"target":"%s","message":"%s"}\\n' \\
    "$status" "$code" "$NAME" "$STARTED" "$(ts)" "$BYTES" "$TARGET_TYPE:$TARGET_PATH" "$message" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$STATUS_FILE"
}
on_exit() {
  local code=$?
  if [ "$code" != 0 ]; then
    log "backup $NAME FAILED during $PHASE (exit $code)"
    write_status failed "$code" "failed during $PHASE"
    logger -t pi-im-backup -p user.err "backup $NAME failed during $PHASE" 2>/dev/null || true
  fi
  rm -rf "\${STAGING:?}/$NAME"
}
trap on_exit EXIT

exec 9>"$LOCK_FILE"
flock -n 9 || { log "another backup is running"; exit 75; }
write_status running 0 "backup in progress"
log "backup $NAME started: $DATA_DIR -> $TARGET_TYPE:$TARGET_PATH"
[ -d "$DATA_DIR" ] || { log "data directory $DATA_DIR does not exist (is the disk mounted?)"; exit 66; }

PHASE=snapshot
work="$STAGING/$NAME"
rm -rf "$work"
mkdir -p "$work/db"
chmod 0711 "$work"
chown "$DATA_OWNER" "$work/db" 2>/dev/null || true
chmod 0700 "$work/db"
dbs=()
while IFS= read -r rel; do dbs+=("$rel"); done < <(sqlite_files "$DATA_DIR")
for rel in "\${dbs[@]}"; do
  mkdir -p "$work/db/$(dirname "$rel")"
  chown "$DATA_OWNER" "$work/db/$(dirname "$rel")" 2>/dev/null || true
  as_owner sqlite3 "$DATA_DIR/$rel" ".timeout 60000" "VACUUM INTO $(sql_quote "$work/db/$rel")"
  check=$(sqlite3 "$work/db/$rel" "PRAGMA integrity_check;")
  [ "$check" = ok ] || { log "snapshot of $rel failed integrity_check: $check"; exit 65; }
  log "snapshot $rel: $(stat -c %s "$work/db/$rel") bytes"
done
chown -R 0:0 "$work/db" 2>/dev/null || true
(cd "$work/db" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) >"$work/SHA256SUMS"
printf '{"name":"%s","created":"%s","host":"%s","dataDir":"%s","databases":%d}\\n' \\
  "$NAME" "$STARTED" "$(hostname)" "$DATA_DIR" "\${#dbs[@]}" >"$work/manifest.json"

PHASE=upload
excludes="$work/.excludes"
: >"$excludes"
for rel in "\${dbs[@]}"; do printf '/%s\\n/%s-wal\\n/%s-shm\\n/%s-journal\\n' "$rel" "$rel" "$rel" "$rel" >>"$excludes"; done
target_sh "mkdir -p $(printf %q "$TARGET_PATH") && rm -rf $(printf %q "$TARGET_PATH")/*.partial"
prev=$(list_backups | tail -n 1)
dest="$TARGET_PATH/$NAME.partial"
link=()
[ -n "$prev" ] && link=(--link-dest="../../$prev/files")
rsync_target -a --exclude=.excludes "$work/" "$(target_url "$dest/")"
if [ "$INCLUDE_UPLOADS" = 1 ]; then
  rsync_target -a --delete "\${link[@]}" --exclude-from="$excludes" "$DATA_DIR/" "$(target_url "$dest/files/")"
fi
for dir in "\${CONFIG_DIRS[@]}"; do
  [ -d "$dir" ] || continue
  rsync_target -a --relative --exclude='*.key' --exclude='key.pem' "$dir/" "$(target_url "$dest/config/")"
done
target_sh "mv $(printf %q "$dest") $(printf %q "$TARGET_PATH/$NAME")"
BYTES=$(du -sb "$work" | cut -f1)

PHASE=retention
mapfile -t all < <(list_backups)
count=\${#all[@]}
now=$(date -u +%s)
for i in "\${!all[@]}"; do
  b=\${all[$i]}
  [ "$b" = "$NAME" ] && continue
  reason=""
  if [ $((count - i)) -gt "$KEEP" ]; then reason="more than $KEEP backups"; fi
  if [ -z "$reason" ] && [ "$MAX_AGE_DAYS" -gt 0 ]; then
    when=$(date -u -d "\${b:0:4}-\${b:4:2}-\${b:6:2}T\${b:9:2}:\${b:11:2}:\${b:13:2}Z" +%s 2>/dev/null || echo "$now")
    if [ $(((now - when) / 86400)) -gt "$MAX_AGE_DAYS" ]; then reason="older than $MAX_AGE_DAYS days"; fi
  fi
  if [ -n "$reason" ]; then
    log "retention: removing $b ($reason)"
    target_sh "rm -rf $(printf %q "$TARGET_PATH/$b")"
  fi
done

PHASE=finished
write_status ok 0 "backup complete: \${#dbs[@]} database(s)"
log "backup $NAME complete"
logger -t pi-im-backup "backup $NAME complete" 2>/dev/null || true
`;
}

export function renderRestoreScript(o: RestoreOptions): string {
  return `#!/bin/bash
# pi-im-restore: restore the IM data from a backup made by pi-im-backup.
# Rendered by pi-im (infra/render/backup.ts).
# Usage: pi-im-restore --list
#        pi-im-restore [--yes] [NAME|latest]
# The current data directory is kept beside the restored one as <dir>.pre-restore-<time>.
set -Eeuo pipefail
umask 022
# The settings block is shared with pi-im-backup; restore uses only some of them.
# shellcheck disable=SC2034
{
${header(o)}}
STOP_CMD=${q(o.stopCommand)}
START_CMD=${q(o.startCommand)}
${COMMON}
YES=0
NAME=latest
for arg in "$@"; do
  case "$arg" in
    --list) list_backups; exit 0 ;;
    --yes|-y) YES=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    -*) log "unknown option $arg"; exit 64 ;;
    *) NAME=$arg ;;
  esac
done
if [ "$NAME" = latest ]; then NAME=$(list_backups | tail -n 1); fi
[ -n "$NAME" ] || { log "no backups found at $TARGET_TYPE:$TARGET_PATH"; exit 66; }
[[ "$NAME" =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || { log "'$NAME' is not a backup name (see --list)"; exit 64; }

work="$STAGING/restore-$NAME"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
log "fetching backup $NAME from $TARGET_TYPE:$TARGET_PATH"
rsync_target -a "$(target_url "$TARGET_PATH/$NAME/")" "$work/"
(cd "$work/db" && sha256sum --quiet -c ../SHA256SUMS) || { log "backup $NAME is corrupt: checksums differ"; exit 65; }
dbs=()
while IFS= read -r rel; do dbs+=("$rel"); done < <(sqlite_files "$work/db")
for rel in "\${dbs[@]}"; do
  check=$(sqlite3 "$work/db/$rel" "PRAGMA integrity_check;")
  [ "$check" = ok ] || { log "database $rel in backup $NAME fails integrity_check: $check"; exit 65; }
done
log "backup $NAME verified: \${#dbs[@]} database(s)"

if [ "$YES" != 1 ]; then
  if [ -t 0 ]; then
    read -r -p "Replace $DATA_DIR with backup $NAME? The IM service stops meanwhile. [y/N] " answer
    [ "$answer" = y ] || [ "$answer" = Y ] || { log "cancelled"; exit 1; }
  else
    log "refusing to restore without --yes when not interactive"; exit 64
  fi
fi

log "stopping the IM service"
bash -c "$STOP_CMD"
aside="$DATA_DIR.pre-restore-$(date -u +%Y%m%dT%H%M%SZ)"
new="$DATA_DIR.restoring"
rm -rf "$new"
mkdir -p "$new"
if [ -d "$work/files" ]; then rsync -a "$work/files/" "$new/"; fi
for rel in "\${dbs[@]}"; do
  mkdir -p "$new/$(dirname "$rel")"
  cp "$work/db/$rel" "$new/$rel"
  rm -f "$new/$rel-wal" "$new/$rel-shm" "$new/$rel-journal"
done
chown -R "$DATA_OWNER" "$new"
sync
if [ -e "$DATA_DIR" ]; then mv "$DATA_DIR" "$aside"; log "previous data kept in $aside"; fi
mv "$new" "$DATA_DIR"
sync
log "starting the IM service"
bash -c "$START_CMD"
log "restore of $NAME complete"
`;
}

/** /etc/cron.d entry: runs the backup as root at the schedule; output goes to the log file. */
export function renderBackupCron(schedule: string, command = "/usr/local/sbin/pi-im-backup"): string {
  return `# pi-im backup, rendered by pi-im (infra/render/backup.ts). Managed by pulumi: edits are overwritten.
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${schedule} root ${command} --quiet
`;
}
