#!/usr/bin/env bash
# Idempotent set-up of the controller side: the pinned venv (.venv) and the collection
# link that ansible.cfg points at. Debian packages for the lab are installed by the lab
# scripts themselves (lab/*/up), only when missing.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

python="${PYTHON:-python3}"
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "[bootstrap] creating .venv from requirements.txt" >&2
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" >"$stamp"
fi

# ansible.cfg: collections_path = ./build/collections
mkdir -p build/collections/ansible_collections/sre
ln -sfn "$repo" build/collections/ansible_collections/sre/runbooks

# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from a host
# this network cannot reach. This stand-in does the same job with the standard library's
# ensurepip and then installs what ansible-test asked for from the package index.
pip_version="$(.venv/bin/python -c '
from ansible_test._internal.python_requirements import get_venv_packages
class Py: version = "3.11"
print(get_venv_packages(Py())["pip"])')"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -s "$get_pip" ]] || ! grep -q 'sre.runbooks stand-in' "$get_pip"; then
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip" <<'PY'
"""sre.runbooks stand-in for get-pip.py: ensurepip, then pip install what was asked."""
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade",
                          "--cert", "/etc/ssl/certs/ca-certificates.crt", *args]))
PY
fi
echo "[bootstrap] ready: .venv, build/collections/ansible_collections/sre/runbooks" >&2
