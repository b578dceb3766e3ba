"""Fixtures for the systemd integration tests: a real lab host booted with systemd-nspawn
(lab/lab hosts up 1), and ways to run our modules and playbooks ON it over SSH."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import time
import typing as t
import uuid

import pytest
import yaml

import sre_testlib

INVENTORY_FILE = sre_testlib.REPO / "inventories" / "lab" / "hosts_systemd.yml"


class LabHost:
    """lab-host-1 of the lab: its inventory entry, a shell over SSH, and module calls."""

    def __init__(self) -> None:
        inventory = yaml.safe_load(INVENTORY_FILE.read_text())
        self.name = "lab-host-1"
        self.vars = {**inventory["systemd_hosts"]["vars"], **inventory["systemd_hosts"]["hosts"][self.name]}
        self.address = self.vars["ansible_host"]

    def sh(self, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["ssh", "-i", self.vars["ansible_ssh_private_key_file"], "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             f"root@{self.address}", command],
            capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"on {self.name}: {command!r} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def module(self, name: str, args: dict[str, t.Any], check: bool = False) -> dict[str, t.Any]:
        """Run sre.runbooks.NAME on the host (ansible ad hoc, JSON callback): the real module,
        shipped over SSH and executed by the host's own Python."""
        cmd = [str(sre_testlib.VENV_BIN / "ansible"), self.name, "-i", str(sre_testlib.LAB_INVENTORY),
               "-m", f"sre.runbooks.{name}", "-a", json.dumps(args)]
        if check:
            cmd.append("--check")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=sre_testlib.REPO,
                              env=sre_testlib.ansible_env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                                                           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}),
                              check=False)
        try:
            report = json.loads(proc.stdout)
            return report["plays"][0]["tasks"][0]["hosts"][self.name]
        except (ValueError, KeyError, IndexError) as exc:
            raise AssertionError(f"no result from {name} on {self.name}: {proc.stdout}\n{proc.stderr}") from exc

    def unit(self, unit: str, prop: str) -> str:
        return self.sh(f"systemctl show -P {prop} {unit}").stdout.strip()

    def wait_unit(self, unit: str, states: tuple[str, ...], timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.unit(unit, "ActiveState")
            if state in states or time.monotonic() > deadline:
                return state
            time.sleep(0.2)


@contextlib.contextmanager
def hosts_exclusive() -> t.Iterator[None]:
    """Hold the lab hosts like lab/hosts/exclusive does: a drill or benchmark running meanwhile
    would otherwise stop them under this session (and this session theirs)."""
    state_dir = os.environ.get("LAB_STATE_DIR") or sre_testlib.lab_var("lab_state_dir")
    lock = f"{state_dir.rstrip('/')}.hosts.lock"
    if os.environ.get("SRE_LAB_HOSTS_LOCKED") == lock:
        yield
        return
    with open(lock, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # waits for a running drill to finish
        os.environ["SRE_LAB_HOSTS_LOCKED"] = lock
        try:
            yield
        finally:
            os.environ.pop("SRE_LAB_HOSTS_LOCKED", None)
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def hosts_lock() -> t.Iterator[None]:
    with hosts_exclusive():
        yield


@pytest.fixture(scope="session")
def lab_host(hosts_lock) -> t.Iterator[LabHost]:
    """One lab host for the session, started unless already up (and then left running)."""
    with sre_testlib.lab_running("hosts", "1"):
        host = LabHost()
        # Fail loudly, not skip, when the host does not answer.
        host.sh("systemctl is-system-running --wait")
        yield host


@pytest.fixture
def transient_units(lab_host: LabHost) -> t.Iterator[t.Callable[..., str]]:
    """Start throwaway units with systemd-run; they are stopped and forgotten after the test,
    whatever it did."""
    created: list[str] = []

    def start(command: str, *properties: str) -> str:
        unit = f"sre-it-{uuid.uuid4().hex[:8]}.service"
        props = " ".join(f"-p {p}" for p in properties)
        lab_host.sh(f"systemd-run --unit={unit} {props} /bin/sh -c {shlex.quote(command)}")
        created.append(unit)
        return unit

    yield start
    for unit in created:
        lab_host.sh(f"systemctl stop {unit}; systemctl reset-failed {unit}", check=False)


@pytest.fixture
def lab_services_restored(lab_host: LabHost) -> t.Iterator[None]:
    """Whatever a test breaks among the lab host's units, they run again afterwards."""
    yield
    lab_host.sh("rm -f /etc/nginx/conf.d/sre-it-broken.conf; systemctl reset-failed; "
                "systemctl start postgresql@15-main.service pgbouncer.service redis-server.service nginx.service",
                check=False)
