"""The Docker lab for the integration tests: one session fixture starts the engine and the
compose project (lab_running), and every test starts from a healthy project (no trigger file,
every container running and healthy), so tests never depend on each other's order."""

from __future__ import annotations

import json
import os
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from sre_testlib import lab_running, lab_var


class DockerLab:
    """The engine's address, the docker CLI and fault injection for the lab project."""

    def __init__(self) -> None:
        self.dir = Path(lab_var("lab_state_dir")) / "docker"
        self.host = f"unix://{self.dir}/docker.sock"
        self.project = lab_var("lab_docker_project")
        self.trigger = self.dir / "trigger"
        self.services = ("api", "redis", "worker", "postgres", "pgbouncer")

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["/usr/bin/docker", *args], env={**os.environ, "DOCKER_HOST": self.host},
                              text=True, capture_output=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr}")
        return proc

    def name(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def inspect(self, service: str) -> dict[str, t.Any]:
        return json.loads(self.docker("inspect", self.name(service)).stdout)[0]

    def restart_events(self, since: float, service: str) -> int:
        out = self.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                          "--filter", "event=restart", "--filter", f"container={self.name(service)}",
                          "--format", "{{.Action}}").stdout
        return len(out.split())

    def wait_for(self, service: str, predicate: t.Callable[[dict[str, t.Any]], bool], what: str,
                 timeout: float = 90) -> dict[str, t.Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.inspect(service)
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} not {what} after {timeout} s: {json.dumps(state['State'])}")
            time.sleep(0.5)

    def healthy(self, service: str) -> dict[str, t.Any]:
        return self.wait_for(service, lambda s: s["State"]["Running"] and s["State"]["Status"] == "running"
                             and (s["State"].get("Health") or {}).get("Status", "healthy") == "healthy", "healthy")

    def reset(self) -> None:
        for f in self.trigger.iterdir():
            f.unlink()
        for service in self.services:
            inspected = self.inspect(service)
            if inspected["State"]["Status"] in ("exited", "created", "dead"):
                self.docker("start", self.name(service))
            elif inspected["RestartCount"] > 0:
                # A container that crash-looped in an earlier test counts as crash-looping for
                # stable_seconds after it recovered; a restart through the API resets the count,
                # so every test starts from a settled project.
                self.docker("restart", "-t", "2", self.name(service))
        for service in self.services:
            self.healthy(service)
            assert self.inspect(service)["RestartCount"] == 0


@pytest.fixture(scope="session")
def docker_lab() -> t.Iterator[DockerLab]:
    with lab_running("docker"):
        yield DockerLab()


@pytest.fixture
def compose(docker_lab: DockerLab) -> t.Iterator[DockerLab]:
    docker_lab.reset()
    yield docker_lab
    for f in docker_lab.trigger.iterdir():
        f.unlink()
