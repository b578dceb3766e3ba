#!/usr/bin/env bash
# ansible-lint, production profile, offline (no Galaxy on this network).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export ANSIBLE_COLLECTIONS_PATH="$repo/build/collections"
export PATH="${PATH//$repo\/.venv\/bin:/}"
exec .venv/bin/ansible-lint --offline --profile production --nocolor "$@"
