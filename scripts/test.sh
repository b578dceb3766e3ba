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

components=(docker hosts k8s redis pg kafka)
was_down=()
for c in "${components[@]}"; do
  [[ -x "lab/$c/status" ]] && ! "lab/$c/status" >/dev/null 2>&1 && was_down+=("$c")
done
prebuild_pid=""
cleanup() {
  # A build still running (tests stopped early) is stopped: it removes its partial tree itself.
  if [[ -n "$prebuild_pid" ]] && kill -0 "$prebuild_pid" 2>/dev/null; then
    kill -TERM -- "-$prebuild_pid" 2>/dev/null
    wait "$prebuild_pid" 2>/dev/null
  fi
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

# A machine without the systemd hosts' rootfs builds it (mostly downloads) in the background
# while the tests before the systemd ones run; lab/hosts/up waits for it on the build's lock and
# reports a failed build itself.
if [[ $# -eq 0 && " ${was_down[*]} " == *" hosts "* ]]; then
  # Its own process group, so stopping it also stops debootstrap or apt-get under it.
  setsid lab/hosts/build >"$run_tmp/rootfs-build.log" 2>&1 &
  prebuild_pid=$!
fi

# --durations: where the time goes, printed with every run (make test must stay well under 45 min cold).
.venv/bin/pytest -p no:cacheprovider --durations=25 "$@"
