#!/usr/bin/env bash
# Run Molecule drills against real systemd lab hosts.
#
#   scripts/drill.sh SCENARIO [SCENARIO...]   one or more drills (molecule/<SCENARIO>/)
#   scripts/drill.sh all                      every drill, one after the other
#   scripts/drill.sh list                     the drills there are
#
# Each drill: destroy, syntax, create (lab/lab hosts up), prepare, side_effect (inject the fault),
# converge (the outage playbook), idempotence, verify, destroy (lab/lab hosts down).
# The lab hosts are stopped at the end even when a drill fails or is interrupted.
# Exit status: 0 when every drill passed.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

usage() { echo "usage: scripts/drill.sh SCENARIO... | all | list" >&2; exit 2; }
[[ $# -ge 1 ]] || usage

available() {
  local f
  for f in molecule/*/molecule.yml; do
    [[ -e "$f" ]] && basename "$(dirname "$f")"
  done
}
if [[ "$1" == list ]]; then available; exit 0; fi
if [[ "$1" == all ]]; then
  mapfile -t scenarios < <(available)
else
  scenarios=("$@")
  for s in "${scenarios[@]}"; do
    [[ -f "molecule/$s/molecule.yml" ]] || { echo "drill.sh: no drill '$s' (have: $(available | tr '\n' ' '))" >&2; exit 2; }
  done
fi

scripts/bootstrap.sh || exit 1
export PATH="$repo/.venv/bin:$PATH"
# The drills live in the top-level molecule/ folder (the design's layout); saying so keeps
# Molecule from looking for extensions/molecule/ and warning about a collection layout.
export MOLECULE_GLOB="molecule/*/molecule.yml"
export ANSIBLE_NOCOLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0

# Belt and braces for a killed molecule (each drill's destroy stops the hosts itself). Only
# when nobody else holds the hosts: a benchmark or test session may be using them right now.
# Drills with a create playbook of their own (say, on the Kubernetes lab) never touch the hosts.
own_create() { grep -Eq '^[[:space:]]+create:' "molecule/$1/molecule.yml"; }
uses_hosts=0
for s in "${scenarios[@]}"; do
  own_create "$s" || uses_hosts=1
done
cleanup() {
  if ((uses_hosts)); then
    LAB_HOSTS_LOCK_TIMEOUT=1 lab/hosts/exclusive lab/lab hosts down >/dev/null 2>&1 || true
  fi
  [[ -n "${override:-}" ]] && rm -f "$override"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# SRE_LAB_INVENTORY (scripts/test.sh sets it for the lanes that run beside the systemd hosts'
# lane): the drill's playbooks use that inventory instead of inventories/lab.
configs=(-c molecule/config.yml)
if [[ -n "${SRE_LAB_INVENTORY:-}" ]]; then
  [[ -d "$SRE_LAB_INVENTORY" ]] || { echo "drill.sh: SRE_LAB_INVENTORY=$SRE_LAB_INVENTORY is not a folder" >&2; exit 2; }
  override="$(mktemp "${TMPDIR:-/tmp}/sre-drill-inventory.XXXXXX.yml")"
  printf 'provisioner:\n  ansible_args:\n    - --inventory=%s\n' "$SRE_LAB_INVENTORY" >"$override"
  configs+=(-c "$override")
fi

declare -A result seconds
rc=0
for s in "${scenarios[@]}"; do
  echo "=== drill $s ===" >&2
  start=$SECONDS
  # One drill on the systemd hosts at a time per checkout: the hosts and their inventory are
  # shared (lab/hosts/exclusive). A scenario with a create playbook of its own (say, on the
  # Kubernetes lab) does not use them and does not wait for them.
  exclusive=(lab/hosts/exclusive)
  if own_create "$s"; then exclusive=(); fi
  if "${exclusive[@]}" molecule "${configs[@]}" test -s "$s" --destroy=always; then
    result[$s]=passed
  else
    result[$s]=FAILED
    rc=1
  fi
  seconds[$s]=$((SECONDS - start))
done

printf '\n%-24s %-8s %s\n' DRILL RESULT SECONDS
for s in "${scenarios[@]}"; do
  printf '%-24s %-8s %s\n' "$s" "${result[$s]}" "${seconds[$s]}"
done
exit $rc
