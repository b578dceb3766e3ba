#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/sre/runbooks, so sync the
# files git would ship (tracked + untracked-not-ignored) into a cache folder and run it there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# Outside the checkout: inside it, ansible-test would ask git and find the copy ignored.
# One copy per checkout: two worktrees (or a checkout and a cold clone) syncing into one folder
# at once left each other's files there.
checkout_key="$(printf '%s' "$repo" | sha256sum | cut -c1-12)"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/sre-runbooks/sanity-$checkout_key/ansible_collections/sre/runbooks"
mkdir -p "$dest"
git ls-files -co --exclude-standard -z | rsync -a --delete --from0 --files-from=- ./ "$dest/" 2>/dev/null \
  || { rm -rf "$dest"; mkdir -p "$dest"; git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dest"; }
# rsync --delete with --files-from does not remove files that left the tree; prune them, and
# symlinks too (a stale one fails the symlinks test forever).
(cd "$dest" && find . \( -type f -o -type l \) -not -path './tests/output/*' -printf '%P\n') | while read -r f; do
  [[ -e "$repo/$f" || -L "$repo/$f" ]] || rm -f "$dest/$f"
done
cd "$dest"
exec "$repo/.venv/bin/ansible-test" sanity --requirements --python 3.11 --color no "$@"
