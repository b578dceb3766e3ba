"""Helpers of the incident timeline tests: run the test playbooks (with the repository's
ansible.cfg, so the incident_timeline callback is on) and read the timeline they write.

These tests need no lab component: the playbooks run on localhost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest
from sre_testlib import REPO, VENV_BIN, ansible_env

HERE = Path(__file__).resolve().parent
DRILL = HERE / "playbooks" / "outage_drill.yml"
NO_INCIDENT = HERE / "playbooks" / "no_incident.yml"
REPORT = REPO / "playbooks" / "incident" / "report.yml"
SECRET = "Tl-Secret-9f3a71c2"


def playbook_cmd(playbook: Path, inventory: str | None = None, extra: dict[str, t.Any] | None = None,
                 check: bool = False, forks: int | None = None) -> list[str]:
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    cmd += ["-i", inventory or "localhost,"]
    # the module runs with the venv's Python, whatever `python3` is on PATH
    cmd += ["-e", json.dumps({"ansible_python_interpreter": str(VENV_BIN / "python"), **(extra or {})})]
    if check:
        cmd.append("--check")
    if forks:
        cmd += ["--forks", str(forks)]
    return cmd


def env() -> dict[str, str]:
    return ansible_env({"ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})


def run(playbook: Path, **kwargs: t.Any) -> subprocess.CompletedProcess:
    return subprocess.run(playbook_cmd(playbook, **kwargs), cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=300, check=False)


def start(playbook: Path, **kwargs: t.Any) -> subprocess.Popen:
    """A run in its own process group, so a test can kill it and its workers (and only them)."""
    return subprocess.Popen(playbook_cmd(playbook, **kwargs), cwd=REPO, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def timeline(incident_id: str) -> tuple[list[dict[str, t.Any]], list[str]]:
    """Every line of the incident's timeline, parsed; fails on any line that is not a whole JSON object."""
    path = Path(os.environ["SRE_RUNBOOKS_STATE_DIR"]) / f"{incident_id}.jsonl"
    raw = path.read_text()
    assert raw.endswith("\n"), "the last line is not complete"
    lines = raw.splitlines()
    return [json.loads(line) for line in lines], lines


@pytest.fixture
def fault_dir(tmp_path: Path) -> Path:
    path = tmp_path / "faults"
    path.mkdir()
    return path


@pytest.fixture
def hosts_inventory(tmp_path: Path) -> t.Callable[[int], str]:
    def make(count: int) -> str:
        path = tmp_path / "hosts.ini"
        names = "\n".join(f"h{n:02d} ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}"
                          for n in range(1, count + 1))
        path.write_text(f"[drill]\n{names}\n")
        return str(path)
    return make


# ---------------------------------------------------------------- a real browser for Mermaid
MERMAID_VERSION = "11.17.2"  # pinned; bump deliberately (the test proves our charts parse in it)
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sre-runbooks"


@pytest.fixture(scope="session")
def mermaid_js() -> Path:
    """mermaid's browser bundle, installed once with npm into ~/.cache/sre-runbooks/mermaid-VERSION."""
    target = CACHE / f"mermaid-{MERMAID_VERSION}"
    bundle = target / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
    if not bundle.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install mermaid for the Mermaid rendering test (Debian package npm)"
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".mermaid.", dir=CACHE))
        proc = subprocess.run([npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--ignore-scripts",
                               "--loglevel=error", f"mermaid@{MERMAID_VERSION}"],
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"npm install mermaid@{MERMAID_VERSION} failed: {proc.stderr[-2000:]}"
        if not bundle.exists():  # another session may have finished first
            staging.rename(target)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return bundle


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with the lab's ensure_pkgs when missing."""
    found = shutil.which("chromium")
    if not found:
        proc = subprocess.run(["bash", "-c", '. lab/lib.sh && ensure_pkgs chromium'], cwd=REPO, capture_output=True,
                              text=True, timeout=900, check=False)
        assert proc.returncode == 0, f"installing Debian's chromium failed: {proc.stderr[-2000:]}"
        found = shutil.which("chromium")
    assert found, "chromium is not on PATH"
    return found


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="{bundle}"></script></head>
<body><pre id="status">pending</pre><div id="chart"></div>
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict" }});
const source = {source};
mermaid.parse(source)
  .then(() => mermaid.render("incident", source))
  .then((out) => {{ document.getElementById("chart").innerHTML = out.svg;
                    document.getElementById("status").textContent = "rendered"; }})
  .catch((err) => {{ document.getElementById("status").textContent = "error: " + (err && err.message || err); }});
</script></body></html>
"""


def render_mermaid(chromium: str, bundle: Path, source: str, workdir: Path) -> str:
    """Load a local page that renders `source` with mermaid in headless chromium; return the DOM."""
    page = workdir / "chart.html"
    page.write_text(PAGE.format(bundle=bundle.as_uri(), source=json.dumps(source)))
    cmd = [chromium, "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--allow-file-access-from-files", f"--user-data-dir={workdir / 'profile'}",
           "--virtual-time-budget=20000", "--dump-dom", page.as_uri()]
    if os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")  # chromium refuses root without it
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"chromium failed: {proc.stderr[-2000:]}"
    return proc.stdout
