"""The Docker lab for the integration tests: one session fixture starts the engine and the
compose project (lab_running), and every test starts from a healthy project (no trigger file,
every container running and healthy), so tests never depend on each other's order."""

from __future__ import annotations

import json
import os
import subprocess
import time
import typing as t
import uuid
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


LITTER_PREFIX = "sre-prune-test"


class Litter:
    """A stopped plain container (restart policy no, a writable layer of size_mib, an anonymous
    and a named volume), a dangling image committed from it, and a never-started container with
    restart policy unless-stopped."""

    def __init__(self, lab: t.Any, size_mib: int) -> None:
        self.lab = lab
        self.size_mib = size_mib
        tag = uuid.uuid4().hex[:6]
        self.plain = f"{LITTER_PREFIX}-plain-{tag}"
        self.service_like = f"{LITTER_PREFIX}-always-{tag}"
        self.volume = f"{LITTER_PREFIX}-vol-{tag}"
        self.image_id = ""
        self.anon_volume = ""

    def make(self) -> None:
        base = self.lab.inspect("api")["Config"]["Image"]
        self.lab.docker("volume", "create", self.volume)
        # Runs and exits at once: a plain stopped container (restart policy no) of no project.
        self.lab.docker("run", "--name", self.plain, "--network", "none", "-v", "/scratch", "-v", f"{self.volume}:/named",
                        base, "sh", "-c", f"head -c {self.size_mib << 20} /dev/urandom > /litter")
        self.image_id = self.lab.docker("commit", self.plain).stdout.strip()
        self.anon_volume = [m["Name"] for m in _docker_json(self.lab, "inspect", self.plain)[0]["Mounts"]
                            if m["Destination"] == "/scratch"][0]
        # Created, never started, restart policy unless-stopped: meant to run.
        self.lab.docker("create", "--name", self.service_like, "--network", "none", "--restart", "unless-stopped", base, "true")

    def cleanup(self) -> None:
        for name in (self.plain, self.service_like):
            self.lab.docker("rm", "-f", name, check=False)
        if self.image_id:
            self.lab.docker("rmi", "-f", self.image_id, check=False)
        for volume in (self.volume, self.anon_volume):
            if volume:
                self.lab.docker("volume", "rm", "-f", volume, check=False)

    def exists(self, kind: str, ref: str) -> bool:
        return self.lab.docker(kind, "inspect", ref, check=False).returncode == 0


def _docker_json(lab: t.Any, *args: str) -> t.Any:
    return json.loads(lab.docker(*args).stdout)


@pytest.fixture
def litter(compose: DockerLab) -> t.Iterator[t.Callable[..., Litter]]:
    """What a prune may remove, and what it must not, made by the test: litter(size_mib=4)."""
    made: list[Litter] = []

    def make(size_mib: int = 4) -> Litter:
        made.append(Litter(compose, size_mib))
        made[-1].make()
        return made[-1]
    try:
        yield make
    finally:
        for one in made:
            one.cleanup()
