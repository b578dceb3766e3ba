# Shared helpers for the lab scripts. Source it: `. "$(dirname "$0")/../lib.sh"`.
# shellcheck shell=bash
set -euo pipefail

LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LAB_ROOT/.." && pwd)"
LAB_VARS_FILE="$REPO_ROOT/inventories/lab/group_vars/all/lab.yml"

# lab_var NAME: the value of NAME in the lab inventory (flat `key: value` lines).
lab_var() {
  local value
  value="$(awk -v k="$1" -F': *' '$1 == k { sub(/^[^:]*: */, ""); print; exit }' "$LAB_VARS_FILE")"
  if [[ -z "$value" ]]; then
    echo "lab: '$1' is not set in $LAB_VARS_FILE" >&2
    return 1
  fi
  printf '%s\n' "$value"
}

LAB_STATE_DIR="${LAB_STATE_DIR:-$(lab_var lab_state_dir)}"

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# ensure_pkgs PKG...: install the Debian packages that are missing (idempotent, no prompts).
ensure_pkgs() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || die "installing ${missing[*]} needs root"
  (
    # One installer at a time (two lab builds may start together): a second one would find
    # the policy-rc.d below already there and could see it removed by the first one mid-install.
    exec 9>/run/lock/sre-runbooks-apt.lock
    flock 9
    # Packages such as redis-server and pgbouncer would start their own daemons on the
    # standard ports; the lab runs its own processes, so forbid service starts meanwhile.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A stale package list makes install fail; update once, then retry.
    if ! apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
      apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
      apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
    fi
  )
}

# close_inherited_fds: close every descriptor of this (sub)shell but stdin, stdout and stderr.
# `flock /tmp/sre-lab.lock CMD` (and lab/hosts/exclusive) passes the lock's descriptor on to CMD
# and to everything it starts: a daemon that kept it would hold the machine-wide lab lock for as
# long as it runs. Call it only in the subshell that starts a daemon, never in a script's own shell.
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd="${fd##*/}"
    if ((fd > 2 && fd < 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

# lab_daemon CMD...: run CMD (a program, or a function such as as_pg) without any inherited
# descriptor beyond stdio (close_inherited_fds). Put it in front of every command that starts a
# long-lived process:
#   lab_daemon as_pg pg_ctl ... start      runs in a subshell; the script keeps its descriptors
#   lab_daemon setsid prog ... &           runs in the background job itself; a program is
#                                          exec'd in place, so $! is still its PID
# Inside a subshell (a `&` job, `( ... )`) it runs in place: use it there as the last command.
lab_daemon() {
  if [[ $BASHPID == "$$" ]]; then
    (lab_daemon "$@")
    return
  fi
  close_inherited_fds
  if [[ "$(type -t "$1")" == file ]]; then exec "$@"; fi
  "$@"
}

# pid_alive PIDFILE: true when the PID in PIDFILE is a running process.
pid_alive() {
  [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pidfile PIDFILE [TIMEOUT_S]: SIGTERM the process in PIDFILE, SIGKILL after TIMEOUT_S.
stop_pidfile() {
  local pidfile="$1" timeout="${2:-10}" pid i
  [[ -s "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# wait_port HOST PORT [TIMEOUT_S]: wait until a TCP port accepts connections.
wait_port() {
  local host="$1" port="$2" timeout="${3:-30}" i
  for ((i = 0; i < timeout * 10; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}
