# Shared shell helpers for set-up and test scripts. Source it; it defines functions only.
# shellcheck shell=bash
: "${PI_IM_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/pi-im}"
export PI_IM_CACHE
PI_IM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PI_IM_ROOT

step() { printf '\n==> %s\n' "$*"; }
ok()   { printf '    ok: %s\n' "$*"; }
warn() { printf '    warning: %s\n' "$*" >&2; }
die()  { printf '\nerror: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'fix: %s\n' "$2" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Docker: Debian's dockerd. Without systemd (containers, CI sandboxes) it is started by hand.
ensure_docker_running() {
  if docker info >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null || die "dockerd is not installed" "run: npm run setup"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl start docker || true
  else
    mkdir -p "$PI_IM_CACHE/logs"
    as_root sh -c "nohup dockerd >'$PI_IM_CACHE/logs/dockerd.log' 2>&1 &"
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "the Docker engine did not start within 30 s" "see $PI_IM_CACHE/logs/dockerd.log"
}
