#!/usr/bin/env bash
# Every test: unit, integration against the real lab, drills, sanity, lint, build.
#
#   scripts/test.sh            the whole suite, in lanes (below), one closing line
#   scripts/test.sh ARGS...    one pytest run with these arguments (say, a folder)
#
# Each lab component a test starts is stopped by its fixture; the trap below also stops, even
# when pytest is killed, every component that was not already running before (a developer's
# own running lab is left alone).
# bash reads a script while it runs it: the body is one { ... } group, read whole before it
# starts, so editing this file during a run does not break that run.
{
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
scripts/bootstrap.sh || exit 1

# Everything a run writes to the temp dir (pytest's tmp_path folders, the Kubernetes client's
# discovery cache, mktemp files of the lab scripts) goes under one folder, removed at exit.
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/sre-runbooks-test.XXXXXX")"
export TMPDIR="$run_tmp"

components=(obs docker hosts k8s redis pgrepl pg kafka)
was_down=()
for c in "${components[@]}"; do
  [[ -x "lab/$c/status" ]] && ! "lab/$c/status" >/dev/null 2>&1 && was_down+=("$c")
done
background=()
# Each background job below runs in a session of its own (setsid, so the trap can end its whole
# process group). Linux shares the CPU between sessions first (autogroups) and applies `nice`
# only inside one, so a job's priority is set on its session: the autogroup's nice value.
#   in_session NICE COMMAND... &   COMMAND in a new session whose autogroup has that nice value;
#   only as a background job: it execs, so $! is the session's (and process group's) leader.
in_session() {
  exec setsid bash -c 'echo "$0" >/proc/self/autogroup 2>/dev/null || true; exec "$@"' "$@"
}
cleanup() {
  # A build or quality gate still running (tests stopped early) is stopped with its process
  # group: a build removes its partial tree itself.
  local pid
  for pid in "${background[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  # A kept lab's processes inherited TMPDIR: their folder stays with them.
  [[ "${LAB_KEEP:-0}" == 1 ]] && return
  for c in "${was_down[@]}"; do
    # down is idempotent and also clears what a crashed run left (pidfiles, veths, cgroups).
    "lab/$c/down" >/dev/null 2>&1 || echo "test.sh: lab/$c/down failed" >&2
  done
  # What a killed lane's fixtures could not stop (a test server started in a session of its own,
  # say the Stripe lab): every process still running with its TMPDIR in this run's folder.
  local proc env
  for proc in /proc/[0-9]*; do
    [[ "${proc#/proc/}" == "$$" ]] && continue
    env="$({ tr '\0' '\n' <"$proc/environ"; } 2>/dev/null | grep -m1 '^TMPDIR=')" || continue
    [[ "$env" == "TMPDIR=$run_tmp"* ]] && kill -KILL "${proc#/proc/}" 2>/dev/null
  done
  local state_dir
  state_dir="$(awk -F': *' '$1 == "lab_state_dir" { print $2 }' inventories/lab/group_vars/all/lab.yml)"
  if [[ -n "$state_dir" ]]; then
    rmdir "$state_dir" 2>/dev/null || true
    # the lock lab/hosts/exclusive takes; nobody else can hold it once our hosts are down
    [[ " ${was_down[*]} " == *" hosts "* ]] && rm -f "$state_dir.hosts.lock"
  fi
  rm -rf "$run_tmp"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export PYTHONDONTWRITEBYTECODE=1

# The whole suite (no arguments) starts in the background, each in its own process group, what
# shares nothing with the tests before them:
# - the systemd hosts' rootfs and the Kubernetes binaries, built on a machine that lacks them
#   (mostly downloads and a compile) while the unit tests run; lab/hosts/up and lab/k8s/up wait
#   for them on the builds' locks and report a failed build themselves. They run at a higher
#   priority than the lanes: the hosts, docker and k8s lanes wait for them;
# - the quality gates (ansible-test sanity, ansible-lint), at a lower priority, while the lab
#   tests mostly wait on services; tests/quality reads their results from $SRE_QUALITY_DIR
#   (a single test file run on its own runs them inline).
if [[ $# -eq 0 ]]; then
  if [[ " ${was_down[*]} " == *" hosts "* ]]; then
    in_session -10 lab/hosts/build >"$run_tmp/rootfs-build.log" 2>&1 &
    background+=($!)
  fi
  if [[ " ${was_down[*]} " == *" k8s "* ]]; then
    in_session -10 lab/k8s/build >"$run_tmp/k8s-build.log" 2>&1 &
    background+=($!)
  fi
  export SRE_QUALITY_DIR="$run_tmp/quality"
  mkdir -p "$SRE_QUALITY_DIR"
  for gate in sanity lint; do
    in_session 5 bash -c '"scripts/$1.sh" >"$2/$1.log" 2>&1; echo $? >"$2/$1.rc.tmp" && mv "$2/$1.rc.tmp" "$2/$1.rc"' \
      gate "$gate" "$SRE_QUALITY_DIR" &
    background+=($!)
    echo $! >"$SRE_QUALITY_DIR/$gate.pid"
  done
fi

if [[ $# -gt 0 ]]; then
  # --durations: where the time goes, printed with every run.
  .venv/bin/pytest -p no:cacheprovider --durations=25 "$@"
  exit $?
fi

# The whole suite runs as lanes (tests/conftest.py: LANES), one pytest process each, side by side:
# a lane owns the lab components its tests start, break and stop (pg, redis, the systemd hosts,
# docker, k8s, ...), so no two lanes touch one component at the same time, and most of a test's
# time is spent waiting on a service, not on the CPU. The `cross` lane (tests that need the
# components of several lanes) runs once the lanes that own lab components have ended. Lanes that run beside the hosts
# lane see the lab inventory without the hosts' generated files (a playbook run on the
# `postgresql` group must not reach a host another lane is breaking).
lanes_dir="$run_tmp/lanes"
view="$run_tmp/inventory-without-hosts"
mkdir -p "$lanes_dir" "$view"
ln -s "$repo/inventories/lab/hosts.yml" "$view/hosts.yml"
ln -s "$repo/inventories/lab/group_vars" "$view/group_vars"
# The machine has two cores and the lanes keep both busy: the lanes that take longest (and, on a
# new machine, the rootfs and Kubernetes builds they wait for) get the CPU first; the short
# lanes have time to spare and run at a lower priority.
declare -A lane_nice=([unit]=5 [redis]=5 [misc]=5)
start_lane() {
  local inventory="$view"
  [[ "$1" == hosts || "$1" == cross ]] && inventory=""
  in_session "${lane_nice[$1]:-0}" scripts/test-lane.sh "$1" "$lanes_dir" "$inventory" </dev/null &
  background+=($!)
  lane_pid[$1]=$!
}
declare -A lane_pid
# A lane ended once it wrote its .rc; one whose process died without writing it (killed) failed.
lane_ended() {
  [[ -f "$lanes_dir/$1.rc" ]] && return 0
  kill -0 "${lane_pid[$1]}" 2>/dev/null && return 1
  sleep 1
  [[ -f "$lanes_dir/$1.rc" ]] || echo "137 $SECONDS" >"$lanes_dir/$1.rc"
  touch "$lanes_dir/$1.log"
}
# pytest's closing line of a lane ("=== 3 passed, 1 failed in 12.3s ===").
lane_summary() { grep -E '^=+ .* in [0-9.]+s' "$lanes_dir/$1.log" | tail -1; }
report_lane() {
  local rc secs cpu
  read -r rc secs cpu <"$lanes_dir/$1.rc"
  printf '[test] lane %-6s exit %s after %dm%02ds (CPU %ss): %s\n' "$1" "$rc" $((secs / 60)) $((secs % 60)) \
    "${cpu:-?}" "$(lane_summary "$1" | tr -d '=' | sed 's/^ *//')" >&2
}
first=(unit pg redis hosts docker k8s misc)
for lane in "${first[@]}"; do start_lane "$lane"; done
# cross starts once the lanes that own lab components have ended (unit owns none: its quality
# tests may still be waiting for sanity and lint).
pending=("${first[@]}") cross_started=0
while ((${#pending[@]})) || ! ((cross_started)) || ! lane_ended cross; do
  sleep 2
  still=()
  for lane in "${pending[@]}"; do
    if lane_ended "$lane"; then report_lane "$lane"; else still+=("$lane"); fi
  done
  pending=("${still[@]}")
  if ! ((cross_started)) && { ((${#pending[@]} == 0)) || [[ "${pending[*]}" == unit ]]; }; then
    start_lane cross
    cross_started=1
  fi
done
report_lane cross

# Every lane's own output, then one closing line for the suite.
rc=0 total=""
for lane in "${first[@]}" cross; do
  echo
  echo "################ lane $lane ################"
  cat "$lanes_dir/$lane.log"
  read -r lane_rc _ <"$lanes_dir/$lane.rc"
  ((lane_rc == 0)) || rc=1
  total+=" $(lane_summary "$lane")"
done
summary="$(printf '%s\n' "$total" | grep -oE '[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed)' |
  awk '{ sub(/errors/, "error", $2); n[$2] += $1 } END { for (k in n) printf "%s%d %s", (i++ ? ", " : ""), n[k], k }')"
echo
grep -h -E '^(FAILED|ERROR) ' "$lanes_dir"/*.log || true
printf '================ suite: %s in %ds (%d lanes) ================\n' "${summary:-no result}" "$SECONDS" $((${#first[@]} + 1))
exit "$rc"
}
