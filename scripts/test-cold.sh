#!/usr/bin/env bash
# The README's test command as a NEW machine runs it: a fresh clone of a commit (HEAD by
# default), with `../shared` beside it, HOME pointing at an empty folder (so no cached rootfs,
# Kubernetes binaries, pip wheels or ansible-test files), run as CI runs it (`bash .ci/run`,
# CI=true, no standard input). Caches under ~/.cache only speed things up; this proves it.
#
#   scripts/test-cold.sh [REF]      (make test-cold)
#
# Only committed work is tested (CI clones main). Debian packages the machine already has stay
# installed: apt state cannot be emptied. Everything the run makes, the empty HOME included, is
# removed at the end, even when it fails. Do not run it beside another test run: the lab's
# ports and state directory are the same for both.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
ref="${1:-HEAD}"
commit="$(git -C "$repo" rev-parse --verify "$ref^{commit}")" || exit 2
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
  echo "[test-cold] note: uncommitted changes in $repo are NOT part of this run" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sre-runbooks-cold.XXXXXX")"
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

git clone -q --no-hardlinks "$repo" "$work/main" && git -C "$work/main" checkout -q "$commit" || exit 2
[[ -d "$repo/../shared" ]] && cp -r "$repo/../shared" "$work/shared"
mkdir -m 0700 "$work/home"

# The interpreter this machine uses, resolved now: a pyenv shim looks for its versions under
# $HOME, which is about to be empty.
PYTHON="${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"
export PYTHON
if command -v pyenv >/dev/null 2>&1; then PYENV_ROOT="$(pyenv root)" && export PYENV_ROOT; fi

echo "[test-cold] $commit in $work/main, HOME=$work/home" >&2
t0=$SECONDS
(
  cd "$work/main" &&
    exec env -u XDG_CACHE_HOME -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u PIP_CACHE_DIR \
      HOME="$work/home" CI=true bash .ci/run </dev/null
)
rc=$?
elapsed=$((SECONDS - t0))
printf '[test-cold] %s: exit %d after %dm%02ds (cold: fresh clone, empty HOME)\n' \
  "$commit" "$rc" $((elapsed / 60)) $((elapsed % 60)) >&2
exit "$rc"
