#!/usr/bin/env bash
# Every test: unit, integration against the real lab, drills, sanity, lint, build.
# One pytest run, so one closing line; every lab component a test started is stopped by
# its fixture, and the trap below stops anything left over even when pytest is killed.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
scripts/bootstrap.sh || exit 1
cleanup() { [[ "${LAB_KEEP:-0}" == 1 ]] || lab/lab down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export PYTHONDONTWRITEBYTECODE=1
.venv/bin/pytest "$@" -p no:cacheprovider
