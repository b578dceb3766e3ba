#!/usr/bin/env bash
# One lane of the test suite (tests/conftest.py: LANES): the pytest process scripts/test.sh runs
# for it, beside the other lanes. Its output goes to OUTDIR/NAME.log, its exit status and
# seconds to OUTDIR/NAME.rc once it ended; scripts/test.sh prints the log afterwards.
#
#   scripts/test-lane.sh NAME OUTDIR [INVENTORY]
#
# INVENTORY: the lab inventory this lane's playbooks use (SRE_LAB_INVENTORY), when it must not
# see the systemd hosts another lane has up. Each lane has a temp folder of its own, so two
# pytest processes never share (or clean up) each other's tmp_path folders.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
[[ $# -ge 2 ]] || { echo "usage: scripts/test-lane.sh NAME OUTDIR [INVENTORY]" >&2; exit 2; }
name="$1" out="$2" inventory="${3:-}"
mkdir -p "$out/tmp-$name"
export TMPDIR="$out/tmp-$name" SRE_TEST_LANE="$name"
if [[ -n "$inventory" ]]; then export SRE_LAB_INVENTORY="$inventory"; else unset SRE_LAB_INVENTORY; fi
start=$SECONDS
.venv/bin/pytest -p no:cacheprovider --durations=10 >"$out/$name.log" 2>&1
rc=$?
# CPU seconds (user + system) of everything the lane ran: where the machine's time went.
# `times` in this shell (in a pipe or $(...) it would report the subshell's children: none).
times >"$out/$name.times"
cpu="$(tail -1 "$out/$name.times" | awk '{ for (i = 1; i <= NF; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } } END { printf "%d", t }')"
echo "$rc $((SECONDS - start)) $cpu" >"$out/$name.rc.tmp" && mv "$out/$name.rc.tmp" "$out/$name.rc"
exit "$rc"
