"""Helpers of the incident timeline tests: run the test playbooks (with the repository's
ansible.cfg, so the incident_timeline callback is on) and read the timeline they write.

These tests need no lab component: the playbooks run on localhost."""

from __future__ import annotations

import json
import os
import subprocess
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
