"""db_down on the systemd lab hosts (issue 15): lab-host-1 runs the primary, lab-host-2 a standby
streaming from it over the veths (lab/lab hosts pgpair), each PostgreSQL 15 a real unit.

- healthy pair: nothing changes (no-fault control);
- the primary's postmaster SIGKILLed with its host up: --check restarts nothing, a run restarts the
  unit through systemd, writes work and reach the standby, a second run changes nothing;
- the primary's host gone (machine powered off): without a declared fencing nothing is promoted;
  with the inventory's fencing the standby is promoted and the record says the old host must not
  come back as a primary; when it comes back as one anyway, db_down refuses (split brain).

Shares the session's lab host (host 1); host 2 is booted for this module and stopped after it, and
host 1 is left a standalone lab primary again (it is booted afresh after the power cut)."""

from __future__ import annotations

import json
import subprocess
import time
import typing as t

import pytest
import yaml

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_down.yml"
RECORD_TASK = "sre.runbooks.db_down : Record | structured result for the incident timeline"
HOST = "lab-hosts-pg-pair"
UNIT = "postgresql@15-main.service"
FAST = {"target": HOST, "db_down_min_primary_down_seconds": 2}


def lab_hosts(*args: str) -> str:
    proc = subprocess.run([str(sre_testlib.REPO / "lab" / "lab"), "hosts", *args], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"lab/lab hosts {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout


def ssh(address: str, key: str, command: str, check: bool = True) -> str:
    proc = subprocess.run(["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
                           f"root@{address}", command], capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert proc.returncode == 0, f"{address}: {command!r}: {proc.stderr}"
    return proc.stdout.strip()


class Pair:
    def __init__(self, lab_host) -> None:
        self.key = lab_host.vars["ansible_ssh_private_key_file"]
        hosts = yaml.safe_load((sre_testlib.REPO / "inventories" / "lab" / "hosts_systemd.yml").read_text())
        self.ip = {i: hosts["systemd_hosts"]["hosts"][f"lab-host-{i}"]["ansible_host"] for i in (1, 2)}
        self.node = {i: f"{ip}:5432" for i, ip in self.ip.items()}
        self.secrets = [sre_testlib.lab_var("lab_pg_password")]

    def sql(self, i: int, query: str) -> str:
        return ssh(self.ip[i], self.key, f"cd / && runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -c \"{query}\"")

    def unit(self, i: int, prop: str) -> str:
        return ssh(self.ip[i], self.key, f"systemctl show -P {prop} --timestamp=unix {UNIT}")

    def streaming(self) -> bool:
        return self.sql(2, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == "1"


def wait_for(condition: t.Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def pair(lab_host) -> t.Iterator[Pair]:
    lab_hosts("up", "2")
    try:
        lab_hosts("pgpair", "1", "2")
        yield Pair(lab_host)
    finally:
        subprocess.run([str(sre_testlib.REPO / "lab" / "lab"), "hosts", "pgpair", "--undo", "1", "2"],
                       capture_output=True, timeout=120, check=False)
        lab_hosts("up", "1")  # host 2 stopped; host 1 booted again if the power cut left it off


def run(pair: Pair, extra: dict[str, t.Any] | None = None, **kwargs) -> tuple[dict, dict]:
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars={**FAST, **(extra or {})}, **kwargs)
    text = json.dumps(report) + stderr
    for secret in pair.secrets:
        assert secret not in text, "a lab password appears in the playbook output"
    assert rc == 0, f"ansible-playbook failed (rc={rc}): {stderr[-2000:]}\n{text[-3000:]}"
    record = sre_testlib.task_results(report, RECORD_TASK)[HOST]
    return report, record["ansible_facts"]["db_down_result"]


def changed(report: dict) -> int:
    return sum(stats["changed"] for stats in report["stats"].values())


def test_healthy_pair_no_fault_control(pair):
    report, result = run(pair)
    assert result["outcome"] == "no action needed", result
    assert result["state"] == "healthy" and result["actions"] == [] and changed(report) == 0
    assert result["primary_host"] is None  # a healthy group does not even look at the hosts


def test_killed_primary_unit_is_restarted_once_then_nothing(pair):
    ssh(pair.ip[1], pair.key, f"systemctl kill -s KILL --kill-who=main {UNIT}")
    wait_for(lambda: pair.unit(1, "ActiveState") == "failed", 30, f"{UNIT} to fail")
    entered = pair.unit(1, "ActiveEnterTimestamp")

    report, planned = run(pair, check=True)
    assert planned["outcome"] == "check mode: would restart_unit", planned
    assert planned["primary_host"]["name"] == "lab-host-1" and planned["primary_host"]["unit_state"] == "failed"
    assert [(a["action"], a["target"]) for a in planned["actions"]] == [("restart", pair.node[1])]
    assert pair.unit(1, "ActiveState") == "failed" and pair.unit(1, "ActiveEnterTimestamp") == entered

    report, result = run(pair)
    assert result["outcome"] == "healed", result
    assert (result["action"], result["primary"], result["state_after"]) == ("restart_unit", pair.node[1], "healthy")
    assert [(a["action"], a["target"]) for a in result["actions"]] == [("restart", pair.node[1])]
    assert pair.unit(1, "ActiveState") == "active" and pair.unit(1, "ActiveEnterTimestamp") != entered
    # Writes work on the primary and reach the standby; the standby was not promoted.
    pair.sql(1, "CREATE TABLE IF NOT EXISTS sre_it_db_down (at timestamptz); INSERT INTO sre_it_db_down VALUES (now())")
    wait_for(lambda: pair.sql(2, "SELECT count(*) FROM sre_it_db_down") == "1", 30, "the write to reach the standby")
    assert pair.sql(2, "SELECT pg_is_in_recovery()") == "t"

    report, again = run(pair)
    assert again["outcome"] == "no action needed" and again["actions"] == [] and changed(report) == 0


def test_gone_primary_host_promotes_the_standby_only_when_fenced(pair):
    wait_for(pair.streaming, 30, "the standby to stream")
    lab_hosts("poweroff", "1")
    # The evidence a run needs: no fresh message from the old primary (db_down_min_primary_down_seconds).
    wait_for(lambda: pair.sql(2, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming' "
                                 "AND last_msg_receipt_time > now() - interval '2 seconds'") == "0",
             30, "the standby to stop hearing from the old primary")

    # The inventory's fencing statement removed: the host is gone, but nothing says it stays gone.
    report, refused = run(pair, {"db_down_host_gone_fencing": ""})
    assert (refused["action"], refused["actions"], changed(report)) == ("report", [], 0), refused
    assert refused["primary_host"]["gone"] is True and "db_down_host_gone_fencing" in refused["verdict"]
    assert pair.sql(2, "SELECT pg_is_in_recovery()") == "t"

    report, result = run(pair)
    assert result["outcome"] == "healed", result
    assert (result["action"], result["primary"], result["previous_primary"]) == ("promote", pair.node[2], pair.node[1])
    assert [(a["action"], a["target"], a["result"]) for a in result["actions"]] == [
        ("fence", pair.node[1], "confirmed"), ("promote", pair.node[2], "done")]
    assert result["primary_host"]["ssh"] == "unreachable" and result["primary_host"]["gone"] is True
    assert result["fencing"]["old_primary"] == pair.node[1]
    assert "must not come back as a primary" in result["fencing"]["warning"]
    assert pair.sql(2, "SELECT pg_is_in_recovery()") == "f"
    pair.sql(2, "CREATE TABLE sre_it_after_failover (at timestamptz); INSERT INTO sre_it_after_failover VALUES (now())")

    # The old host comes back as a primary anyway (a fresh lab host is one): refused, nothing changes.
    lab_hosts("up", "2")
    lab_hosts("pgpair", "--expose", "1")
    report, split = run(pair)
    assert (split["state"], split["action"], split["actions"], changed(report)) == ("split_brain", "report", [], 0), split
    assert pair.sql(2, "SELECT pg_is_in_recovery()") == "f" and pair.sql(1, "SELECT pg_is_in_recovery()") == "f"
