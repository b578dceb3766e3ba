#!/usr/bin/env bash
# Every test: unit, integration against the real lab, drills, sanity, lint, build.
# One pytest run, so one closing line. Each lab component a test starts is stopped by its
# fixture; the trap below also stops, even when pytest is killed, every component that was
# not already running before (a developer's own running lab is left alone).
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
#   for them on the builds' locks and report a failed build themselves;
# - the quality gates (ansible-test sanity, ansible-lint), at a lower priority, while the lab
#   tests mostly wait on services; tests/quality reads their results from $SRE_QUALITY_DIR
#   (a single test file run on its own runs them inline).
if [[ $# -eq 0 ]]; then
  if [[ " ${was_down[*]} " == *" hosts "* ]]; then
    setsid lab/hosts/build >"$run_tmp/rootfs-build.log" 2>&1 &
    background+=($!)
  fi
  if [[ " ${was_down[*]} " == *" k8s "* ]]; then
    setsid lab/k8s/build >"$run_tmp/k8s-build.log" 2>&1 &
    background+=($!)
  fi
  export SRE_QUALITY_DIR="$run_tmp/quality"
  mkdir -p "$SRE_QUALITY_DIR"
  for gate in sanity lint; do
    setsid bash -c 'nice -n 10 "scripts/$1.sh" >"$2/$1.log" 2>&1; echo $? >"$2/$1.rc.tmp" && mv "$2/$1.rc.tmp" "$2/$1.rc"' \
      gate "$gate" "$SRE_QUALITY_DIR" &
    background+=($!)
    echo $! >"$SRE_QUALITY_DIR/$gate.pid"
  done
fi

# --durations: where the time goes, printed with every run (make test must stay well under 45 min cold).
.venv/bin/pytest -p no:cacheprovider --durations=25 "$@"
