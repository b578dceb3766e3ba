"""Run the outage playbooks the way AWX does: `ansible-runner run` on a private data dir.

AWX syncs the project (a git checkout: no `build/`, no installed sre.runbooks), writes the
inventory into `inventory/`, the launch's variables into `env/extravars` and runs ansible-runner
there; job events land in `artifacts/<ident>/job_events/`. Here the project is a copy of the files
git would ship, so the playbooks must find sre.runbooks through their own playbook-adjacent
`collections/` links (docs/awx.md), and no ANSIBLE_CONFIG / ANSIBLE_COLLECTIONS_PATH points at
the checkout. Each test area runs its playbooks at once (one runner process each) and reads the
outcome from the job events, the way AWX shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import typing as t
from pathlib import Path

import yaml

from sre_testlib import REPO, VENV_BIN, ansible_env

# Which area's session lab runs which outage playbook under ansible-runner (tests/unit/awx checks
# that together they are every playbooks/outage/*.yml).
COVERED = {
    "postgres": ["db_exhaustion", "lock_contention", "slow_queries"],
    "redis": ["redis_unavailable"],
    "k8s": ["api_gateway_down", "crashloop", "memory_exhaustion", "node_failure"],
    "kafka": ["kafka_lag"],
    "pgrepl": ["db_down"],
    "stripe": ["stripe_webhooks"],
    "systemd": ["service_down", "disk_full", "network_partition", "assess"],
}
RECORD_TASK = "Record | structured result for the incident timeline"

_project: Path | None = None


def project(base: Path) -> Path:
    """The project as AWX checks it out: the files git ships (tracked and new, not ignored),
    symlinks kept as symlinks. Made once per test session."""
    global _project  # noqa: PLW0603 - one copy per session, shared by every area
    if _project is not None and _project.is_dir():
        return _project
    dest = base / "project"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src, dst = REPO / rel, dest / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree, not yet in git
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    assert not (dest / "build").exists()
    _project = dest
    return dest


def private_data_dir(tmp_path: Path, ident: str, inventory: Path, extravars: dict[str, t.Any]) -> Path:
    """project/ (the shared copy), inventory/ (the inventory file, or a directory's files),
    env/extravars."""
    pdd = tmp_path / f"runner-{ident}"
    (pdd / "env").mkdir(parents=True)
    (pdd / "project").symlink_to(project(tmp_path.parent))
    inv = pdd / "inventory"
    if inventory.is_dir():
        shutil.copytree(inventory, inv, symlinks=True)
    else:
        inv.mkdir()
        shutil.copy(inventory, inv / ("hosts" + (inventory.suffix or ".yml")))
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    return pdd


def runner_env() -> dict[str, str]:
    env = ansible_env({"ANSIBLE_NOCOLOR": "1"})
    # AWX has no checkout-wide config: the project's own files must be enough
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        env.pop(name, None)
    return env


class Job:
    """One `ansible-runner run` of playbooks/outage/<name>.yml."""

    def __init__(self, tmp_path: Path, name: str, inventory: Path, extravars: dict[str, t.Any] | None = None,
                 playbook: str | None = None) -> None:
        self.name = name
        self.ident = f"{name}-{int(time.time() * 1000) % 10**8}"
        self.pdd = private_data_dir(tmp_path, self.ident, inventory, extravars or {})
        self.playbook = playbook or f"playbooks/outage/{name}.yml"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.seconds = 0.0

    def start(self) -> Job:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "ansible-runner"), "run", str(self.pdd), "-p", self.playbook, "--ident", self.ident],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=runner_env(), start_new_session=True)
        return self

    def wait(self, timeout: float = 600) -> Job:
        assert self.proc is not None
        try:
            self.output = self.proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 15)
            self.output = self.proc.communicate()[0]
            raise AssertionError(f"{self.name}: ansible-runner still running after {timeout}s:\n{self.output[-3000:]}")
        self.seconds = time.monotonic() - self.started
        return self

    @property
    def artifacts(self) -> Path:
        return self.pdd / "artifacts" / self.ident

    @property
    def status(self) -> str:
        return (self.artifacts / "status").read_text().strip()

    @property
    def rc(self) -> int:
        return int((self.artifacts / "rc").read_text().strip())

    def events(self) -> list[dict[str, t.Any]]:
        files = sorted((self.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
        return [json.loads(p.read_text()) for p in files]

    def record(self, host: str) -> dict[str, t.Any]:
        """The role's <scenario>_result, from the job event of its record task on host."""
        fact = f"{self.name}_result"
        for event in self.events():
            data = event.get("event_data") or {}
            if event.get("event") == "runner_on_ok" and data.get("host") == host and data.get("task") == RECORD_TASK:
                facts = (data.get("res") or {}).get("ansible_facts") or {}
                if fact in facts:
                    return facts[fact]
        raise AssertionError(f"{self.name}: no {fact} event for {host}:\n{self.output[-3000:]}")

    def changed(self) -> list[str]:
        return [f"{(e['event_data'].get('role') or '')}: {e['event_data'].get('task')}" for e in self.events()
                if e.get("event") == "runner_on_ok" and (e["event_data"].get("res") or {}).get("changed")]

    def assert_successful_with_events(self) -> None:
        """rc 0, status successful, and the job events AWX would store: start, tasks, stats."""
        assert self.rc == 0 and self.status == "successful", f"{self.name}: {self.status}\n{self.output[-4000:]}"
        kinds = [e.get("event") for e in self.events()]
        assert "playbook_on_start" in kinds and kinds[-1] == "playbook_on_stats", kinds[:3] + kinds[-3:]
        assert "runner_on_ok" in kinds and "playbook_on_task_start" in kinds
        assert all(e.get("uuid") and e.get("counter") for e in self.events())
        stats = self.events()[-1]["event_data"]
        assert stats.get("changed", {}) == {} and stats.get("failures", {}) == {}, stats


def run_all(jobs: list[Job], timeout: float = 600) -> list[Job]:
    """Start every job, then wait for each (AWX runs jobs of different templates side by side)."""
    for job in jobs:
        job.start()
    for job in jobs:
        job.wait(timeout)
    return jobs


def assert_no_action_needed(job: Job, host: str) -> dict[str, t.Any]:
    """What the no-fault controls assert of a plain ansible-playbook run, read from the job events."""
    job.assert_successful_with_events()
    result = job.record(host)
    assert result["outcome"] == "no action needed", f"{job.name}: {result}"
    assert not result.get("actions"), f"{job.name} acted: {result.get('actions')}"
    assert job.changed() == [], f"{job.name} changed: {job.changed()}"
    return result
