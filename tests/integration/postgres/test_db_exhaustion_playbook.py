"""playbooks/outage/db_exhaustion.yml end to end against the real lab: inject the fault with
lab/pg/inject, prove it is there, run the playbook read-only (--tags assess), in check mode, for
real, and again; assert what each run did to the real server and the record it leaves.

The tests share one injected fault and run in file order (assess, check, heal, second run).
"""

from __future__ import annotations

import json
import subprocess
import time
import typing as t
from pathlib import Path

import psycopg2
import pytest

import sre_testlib
from pg_integration import Lab, find_task

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
FAULT_IDLE = 300
FAULT_IN_TX = 20
THRESHOLD = 20  # percent: 320 of 1197 usable slots is ~27 %
MIN_IDLE = 2.0
EXTRA_VARS = {
    "db_exhaustion_min_idle": f"{MIN_IDLE:g}s",
    "db_exhaustion_min_idle_in_transaction": f"{MIN_IDLE:g}s",
    "db_exhaustion_utilisation_threshold": THRESHOLD,
}
RESULT_TASK = "Record | structured result for the incident timeline"
ACT_TASK = "Act | terminate"  # the pg_backends task
RESULT_KEYS = {
    "scenario",
    "host",
    "platform",
    "started",
    "finished",
    "duration_seconds",
    "check_mode",
    "outcome",
    "error",
    "threshold_percent",
    "before",
    "matched",
    "terminated",
    "terminated_by_state",
    "would_terminate",
    "pooler_restarted",
    "pooler_skipped",
    "blocked",
    "blockers_outcome",
    "app_restarted",
    "app_skipped",
    "verdict",
    "healthy",
    "actions",
    "after",
}
SNAPSHOT_KEYS = {
    "utilisation_percent",
    "client_backends",
    "usable_connections",
    "by_state",
    "oldest_idle_seconds",
    "oldest_idle_in_transaction_seconds",
    "blocking_pids",
}


def run(lab: Lab, **kwargs) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """Run the playbook on lab-postgres; return (JSON report, db_exhaustion_result)."""
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars=EXTRA_VARS, limit="lab-postgres", **kwargs)
    serialized = json.dumps(report) + stderr
    for secret in lab.secrets:
        assert secret not in serialized, "a lab password appears in the playbook output"
    assert rc == 0, f"ansible-playbook failed (rc={rc}): {stderr[-2000:]}\n{json.dumps(report)[-3000:]}"
    record = find_task(report, RESULT_TASK)
    assert record is not None, "the record task did not run"
    result = record["ansible_facts"]["db_exhaustion_result"]
    assert set(result) == RESULT_KEYS
    assert set(result["before"]) == SNAPSHOT_KEYS
    return report, result


def client_pids(admin, terminable_only: bool = False) -> set[int]:
    """Client sessions other than the modules' own; with terminable_only, only those the playbook
    would end (non-superuser, idle or idle in transaction for longer than MIN_IDLE), so that another
    user's short-lived session on a shared lab cannot make a read-only check fail."""
    condition = ""
    if terminable_only:
        condition = (
            " AND NOT coalesce(r.rolsuper, false) AND a.state IN ('idle', 'idle in transaction')"
            f" AND a.state_change <= now() - interval '{MIN_IDLE} seconds'"
        )
    with admin.cursor() as cur:
        cur.execute(
            "SELECT a.pid FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE a.backend_type = 'client backend' AND a.application_name <> 'sre.runbooks' "
            "AND a.pid <> pg_backend_pid()" + condition
        )
        return {row[0] for row in cur.fetchall()}


def utilisation(admin) -> float:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
            "current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int "
            "FROM pg_stat_activity"
        )
        clients, usable = cur.fetchone()
        return 100.0 * clients / usable


@pytest.fixture(scope="module")
def fault(pg_lab: Lab, admin) -> t.Iterator[dict[str, t.Any]]:
    """The connection-exhaustion fault, injected with the lab's own injector and removed afterwards."""
    inject = sre_testlib.REPO / "lab" / "pg" / "inject"
    proc = subprocess.run(
        [str(inject), str(FAULT_IDLE), str(FAULT_IN_TX)], capture_output=True, text=True, timeout=150, check=False
    )
    assert proc.returncode == 0, f"lab/pg/inject failed: {proc.stderr}"
    try:
        # The injector writes the PIDs it holds to lab_state_dir/pg/fault.json once all are open.
        ready = json.loads((Path(sre_testlib.lab_var("lab_state_dir")) / "pg" / "fault.json").read_text())
        idle, in_tx = set(ready["idle"]), set(ready["idle_in_transaction"])
        assert len(idle) == FAULT_IDLE and len(in_tx) == FAULT_IN_TX, "the injector did not open every connection"
        # Every fault session must be older than the playbook's thresholds before the first run.
        with admin.cursor() as cur:
            cur.execute("SELECT max(state_change) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(idle | in_tx),))
            youngest = cur.fetchone()[0]
            cur.execute("SELECT EXTRACT(EPOCH FROM now() - %s)", (youngest,))
            age = float(cur.fetchone()[0])
        if age < MIN_IDLE:
            time.sleep(MIN_IDLE - age + 0.05)
        yield dict(idle=idle, in_tx=in_tx, all=idle | in_tx)
    finally:
        subprocess.run([str(inject), "stop"], capture_output=True, text=True, timeout=60, check=False)


def test_the_fault_is_really_there(fault, admin):
    with admin.cursor() as cur:
        cur.execute("SELECT pid, state FROM pg_stat_activity WHERE pid = ANY(%s)", (list(fault["all"]),))
        states = dict(cur.fetchall())
    assert {p for p, s in states.items() if s == "idle"} == fault["idle"]
    assert {p for p, s in states.items() if s == "idle in transaction"} == fault["in_tx"]
    assert utilisation(admin) >= THRESHOLD


def test_tags_assess_is_read_only(fault, admin, pg_lab):
    before = client_pids(admin, terminable_only=True)
    assert fault["all"] <= before
    report, result = run(pg_lab, tags="assess")
    assert fault["all"] <= client_pids(admin), "--tags assess terminated fault sessions"
    assert not before - client_pids(admin), "--tags assess ended sessions"
    assert find_task(report, ACT_TASK) is None, "--tags assess ran the act phase"
    assert result["outcome"] == "assessed only"
    assert result["before"]["utilisation_percent"] >= THRESHOLD
    assert result["before"]["by_state"]["idle"] >= FAULT_IDLE
    assert result["before"]["by_state"]["idle in transaction"] >= FAULT_IN_TX
    assert result["terminated"] == 0 and result["actions"] == [] and result["after"] is None
    assert report["stats"]["lab-postgres"]["changed"] == 0


def test_check_mode_terminates_nothing_and_says_what_it_would_do(fault, admin, pg_lab):
    before = client_pids(admin, terminable_only=True)
    report, result = run(pg_lab, check=True)
    after = client_pids(admin)
    assert fault["all"] <= after, "--check terminated fault sessions"
    assert len(before - after) == 0, f"--check ended sessions: {sorted(before - after)[:10]}"
    act = find_task(report, ACT_TASK)
    would = {b["pid"] for b in act["backends"]}
    assert fault["all"] <= would
    assert before <= would  # every old idle session, the injected ones and any other
    assert act["acted"] == 0
    assert {a["result"] for a in act["actions"]} == {"check mode"}
    assert result["check_mode"] is True
    assert result["outcome"] == "check mode: would act"
    assert result["would_terminate"] == len(would)
    assert result["terminated"] == 0
    assert result["after"] is None


def test_the_playbook_heals_the_server(fault, admin, pg_lab):
    before_util = utilisation(admin)
    assert before_util >= THRESHOLD
    report, result = run(pg_lab)
    live = client_pids(admin)
    assert not fault["all"] & live, f"{len(fault['all'] & live)} fault sessions survived"
    assert utilisation(admin) < THRESHOLD
    # A fresh connection as the application makes it works (the playbook verified it too).
    psycopg2.connect(
        host=pg_lab.host,
        port=pg_lab.port,
        user=pg_lab.app_user,
        password=pg_lab.app_password,
        dbname=pg_lab.app_user,
        connect_timeout=5,
    ).close()

    assert result["outcome"] == "healed"
    assert result["error"] is None
    assert result["check_mode"] is False
    assert result["scenario"] == "db_exhaustion" and result["host"] == "lab-postgres"
    assert result["platform"] == "systemd"
    assert result["threshold_percent"] == THRESHOLD
    assert result["before"]["utilisation_percent"] >= THRESHOLD
    assert set(result["after"]) == SNAPSHOT_KEYS
    assert result["after"]["utilisation_percent"] < THRESHOLD
    assert result["terminated"] >= len(fault["all"])
    assert result["matched"] >= result["terminated"]
    assert result["terminated_by_state"]["idle"] >= FAULT_IDLE
    assert result["terminated_by_state"]["idle in transaction"] >= FAULT_IN_TX
    assert sum(result["terminated_by_state"].values()) == result["terminated"]
    assert result["would_terminate"] == 0
    assert result["pooler_restarted"] is False
    assert isinstance(result["duration_seconds"], (int, float)) and result["duration_seconds"] > 0
    assert result["started"] and result["finished"] and result["started"] <= result["finished"]
    done = {a["pid"] for a in result["actions"] if a["action"] == "terminate" and a["result"] == "done"}
    assert fault["all"] <= done
    assert all({"timestamp", "action", "target", "result"} <= set(a) for a in result["actions"])
    assert report["stats"]["lab-postgres"]["changed"] >= 1
    assert report["stats"]["lab-postgres"]["failures"] == 0


def test_second_run_changes_nothing(fault, admin, pg_lab):
    before = client_pids(admin, terminable_only=True)
    report, result = run(pg_lab)
    assert report["stats"]["lab-postgres"]["changed"] == 0
    assert result["outcome"] == "no action needed"
    assert result["terminated"] == 0 and result["actions"] == []
    assert not before - client_pids(admin), "the second run ended sessions"
