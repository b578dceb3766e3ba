# Helpers shared by lab/hosts/{up,down,status}. Sourced, never executed.
# shellcheck shell=bash
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HOSTS_STATE="$LAB_STATE_DIR/hosts"
HOSTS_PREFIX="$(lab_var lab_hosts_subnet_prefix)"
HOSTS_INVENTORY="$REPO_ROOT/inventories/lab/hosts_systemd.yml"
HOSTS_KEY="$HOSTS_STATE/id_ed25519"
HOSTS_MAX=32
# Machine, veth and cgroup names are global on this machine; a short tag derived from the state
# dir keeps two labs with different LAB_STATE_DIRs from touching each other's hosts.
# ("ve-" + name must fit the 15-character interface name limit.)
HOSTS_TAG="$(printf '%s' "$LAB_STATE_DIR" | sha256sum | cut -c1-4)"
CGROUP_HIERARCHIES=(systemd unified memory pids)

host_name() { printf 'lab-host-%s' "$1"; }        # inventory name and hostname inside
machine_name() { printf 'sre%sh%s' "$HOSTS_TAG" "$1"; } # nspawn machine name (veth ve-<this>)
host_dir() { printf '%s/%s' "$HOSTS_STATE" "$(host_name "$1")"; }
host_ip() { printf '%s.%s.2' "$HOSTS_PREFIX" "$1"; }
gateway_ip() { printf '%s.%s.1' "$HOSTS_PREFIX" "$1"; }
veth_name() { printf 've-%s' "$(machine_name "$1")"; }

host_ssh() {
  local i="$1"
  shift
  ssh -i "$HOSTS_KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=3 "root@$(host_ip "$i")" "$@"
}

# The host indexes that have a directory in the state dir, running or not.
known_hosts() {
  local d
  for d in "$HOSTS_STATE"/lab-host-*; do
    if [[ -d "$d" ]]; then printf '%s\n' "${d##*/lab-host-}"; fi
  done | sort -n
}

# kill_cgroup_procs DIR: SIGKILL whatever still runs in a machine's cgroup (all of it was
# started by this lab: the container's init and its services).
kill_cgroup_procs() {
  local dir="$1" pid
  [[ -d "$dir" ]] || return 0
  while read -r pid; do
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  done < <(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null)
}

remove_cgroup_dirs() {
  local machine="$1" h dir i
  for h in "${CGROUP_HIERARCHIES[@]}"; do
    dir="/sys/fs/cgroup/$h/machines/$machine"
    [[ -d "$dir" ]] || continue
    for ((i = 0; i < 50; i++)); do
      kill_cgroup_procs "$dir"
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d "$dir" ]] || break
      sleep 0.1
    done
    [[ -d "$dir" ]] && log "warning: could not remove cgroup $dir"
  done
  return 0
}

# stop_host I: stop host I if it runs and remove everything it left behind (also after a crash).
stop_host() {
  local i="$1" dir machine veth
  dir="$(host_dir "$i")"
  machine="$(machine_name "$i")"
  veth="$(veth_name "$i")"
  # SIGTERM makes nspawn ask the container's systemd for a clean shutdown.
  if host_running "$i"; then stop_pidfile "$dir/nspawn.pid" 10; fi
  remove_cgroup_dirs "$machine"
  if ip link show "$veth" >/dev/null 2>&1; then ip link del "$veth" 2>/dev/null || true; fi
  rm -rf "$dir"
}

# host_running I: nspawn of host I is alive (a zombie or a recycled PID does not count).
host_running() {
  local pidfile pid
  pidfile="$(host_dir "$1")/nspawn.pid"
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == systemd-nspawn ]] || return 1
  [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}
