"""lab/hosts: boot, recover from a crash, and leave nothing behind after down.

Runs before the other systemd tests (file order) and does not use the session's lab host; if a
developer's hosts were up, they are booted again at the end."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import yaml

import sre_testlib

INVENTORY_FILE = sre_testlib.REPO / "inventories" / "lab" / "hosts_systemd.yml"


def state_dir() -> str:
    return os.environ.get("LAB_STATE_DIR") or sre_testlib.lab_var("lab_state_dir")


def machine_prefix() -> str:
    return "sre" + hashlib.sha256(state_dir().encode()).hexdigest()[:4] + "h"


def leftovers() -> dict[str, list[str]]:
    prefix = machine_prefix()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    veths = [line.split(":")[1].strip() for line in links.splitlines() if f"ve-{prefix}" in line]
    cgroups = [str(p) for h in ("systemd", "unified", "memory", "pids")
               for p in Path(f"/sys/fs/cgroup/{h}/machines").glob(f"{prefix}*")]
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if (cmdline.startswith("systemd-nspawn") and f"-M {prefix}" in cmdline) \
                or f"{state_dir()}/hosts/cp/" in cmdline:  # an SSH control master of ours
            procs.append(f"{pid} {cmdline[:80]}")
    return {"veths": veths, "cgroups": cgroups, "processes": procs,
            "state": [d for d in [f"{state_dir()}/hosts"] if os.path.exists(d)],
            "inventory": [str(INVENTORY_FILE)] if INVENTORY_FILE.exists() else []}


def hosts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(sre_testlib.REPO / "lab" / "lab"), "hosts", *args], capture_output=True,
                          text=True, check=check, timeout=300)


def test_up_recovers_from_a_crashed_host_and_down_leaves_nothing(hosts_lock):
    running_before = yaml.safe_load(INVENTORY_FILE.read_text()) if INVENTORY_FILE.exists() else None
    try:
        hosts("up", "2")
        inventory = yaml.safe_load(INVENTORY_FILE.read_text())
        assert sorted(inventory["systemd_hosts"]["hosts"]) == ["lab-host-1", "lab-host-2"]
        assert inventory["systemd_hosts"]["vars"]["outage_platform"] == "systemd"
        assert sorted(inventory["postgresql"]["hosts"]) == ["lab-host-1", "lab-host-2"]
        assert Path(inventory["systemd_hosts"]["vars"]["ansible_ssh_private_key_file"]).is_file()

        # A crash: nspawn of host 2 dies without a clean shutdown.
        pidfile = Path(state_dir()) / "hosts" / "lab-host-2" / "nspawn.pid"
        old_pid = int(pidfile.read_text())
        os.kill(old_pid, 9)
        assert hosts("status", check=False).returncode != 0
        hosts("up", "2")
        assert int(pidfile.read_text()) != old_pid
        status = hosts("status")
        assert status.stdout.count(" running ") == 2, status.stdout
        # Ansible reaches both, through control masters kept in the lab's state dir.
        ping = subprocess.run([str(sre_testlib.VENV_BIN / "ansible"), "systemd_hosts", "-i", str(sre_testlib.LAB_INVENTORY),
                               "-m", "ansible.builtin.ping", "-o"], capture_output=True, text=True, cwd=sre_testlib.REPO,
                              env=sre_testlib.ansible_env(), timeout=120, check=False)
        assert ping.stdout.count("SUCCESS") == 2, ping.stdout + ping.stderr

        # Shrinking stops the hosts above N.
        hosts("up", "1")
        assert sorted(yaml.safe_load(INVENTORY_FILE.read_text())["systemd_hosts"]["hosts"]) == ["lab-host-1"]
        assert len(leftovers()["veths"]) == 1

        hosts("down")
        assert leftovers() == {"veths": [], "cgroups": [], "processes": [], "state": [], "inventory": []}
        hosts("down")  # idempotent
    finally:
        if running_before:
            hosts("up", str(len(running_before["systemd_hosts"]["hosts"])), check=False)
        elif os.environ.get("LAB_KEEP") != "1":
            hosts("down", check=False)
