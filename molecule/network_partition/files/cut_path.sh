#!/usr/bin/env bash
# Cut, restore or inspect one lab host's TCP path to ADDRESS:PORT, inside that host's own
# network namespace (never this machine's).
#
#   cut_path.sh add|del|show NSPAWN_PIDFILE ADDRESS PORT
#
# NSPAWN_PIDFILE is the host's <lab_state_dir>/hosts/lab-host-N/nspawn.pid; the container's init
# (its namespace leader) is nspawn's child. This machine has neither nft nor iptables, and
# downing the veth would cut SSH too, so the cut is a routing-policy rule: `ip rule ... to
# ADDRESS ipproto tcp dport PORT unreachable` in the host's namespace. Connects from the host to
# ADDRESS:PORT fail with "Network is unreachable"; everything else (SSH included) still flows.
# `del` removes every copy of the rule and succeeds when there is none (safe in cleanups).
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: $0 add|del|show NSPAWN_PIDFILE ADDRESS PORT" >&2; exit 2; }
action="$1" pidfile="$2" address="$3" port="$4"
priority=1000

[[ -s "$pidfile" ]] || { echo "$0: no $pidfile: is the lab host running?" >&2; exit 1; }
nspawn="$(cat "$pidfile")"
[[ "$(cat "/proc/$nspawn/comm" 2>/dev/null)" == systemd-nspawn ]] || { echo "$0: $nspawn is not systemd-nspawn" >&2; exit 1; }
if [[ -r "/proc/$nspawn/task/$nspawn/children" ]]; then
  leader="$(awk '{ print $1 }' "/proc/$nspawn/task/$nspawn/children")"
else
  leader="$(ps -o pid= --ppid "$nspawn" | awk 'NR == 1 { print $1 }')"
fi
[[ -n "$leader" ]] || { echo "$0: systemd-nspawn $nspawn has no child (container init)" >&2; exit 1; }
if [[ "$(readlink "/proc/$leader/ns/net")" == "$(readlink /proc/self/ns/net)" ]]; then
  echo "$0: PID $leader shares this machine's network namespace; refusing to add a rule here" >&2
  exit 1
fi
in_host() { nsenter -t "$leader" -n -- "$@"; }
rule=(priority "$priority" to "$address/32" ipproto tcp dport "$port" unreachable)

case "$action" in
  add)
    in_host ip rule del "${rule[@]}" 2>/dev/null || true
    in_host ip rule add "${rule[@]}"
    ;;
  del)
    while in_host ip rule del "${rule[@]}" 2>/dev/null; do :; done
    ;;
  show)
    in_host ip rule show priority "$priority"
    ;;
  *)
    echo "usage: $0 add|del|show NSPAWN_PIDFILE ADDRESS PORT" >&2
    exit 2
    ;;
esac
