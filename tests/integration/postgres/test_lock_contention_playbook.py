"""playbooks/outage/lock_contention.yml end to end against the real lab PostgreSQL: a real blocker
(a session holding a row lock, idle in transaction) with real waiters; prove the fault is there,
run the playbook read-only (--tags assess), in check mode, for real, and again.

The tests share one injected fault and run in file order (assess, check, heal, second run).
"""

from __future__ import annotations

import json
import typing as t

import pytest

import sre_testlib
from pg_integration import TAG, Lab, find_task, live_pids, wait_for

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "lock_contention.yml"
WAITERS = 8
ROW = 9
EXTRA_VARS = {"lock_contention_min_transaction_age": "1s", "lock_contention_min_wait": "1s",
              "lock_contention_verify_timeout": 60}
RESULT_TASK = "Record | structured result for the incident timeline"


def run(lab: Lab, extra_vars: dict[str, t.Any] | None = None, **kwargs) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars=dict(EXTRA_VARS, **(extra_vars or {})),
                                                  limit="lab-postgres", **kwargs)
    serialized = json.dumps(report) + stderr
    for secret in lab.secrets:
        assert secret not in serialized, "a lab password appears in the playbook output"
    assert rc == 0, f"ansible-playbook failed (rc={rc}): {stderr[-2000:]}\n{json.dumps(report)[-3000:]}"
    record = find_task(report, RESULT_TASK)
    assert record is not None, "the record task did not run"
    return report, record["ansible_facts"]["lock_contention_result"]


def changed_tasks(report: dict[str, t.Any]) -> list[str]:
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get("lab-postgres", {}).get("changed")]


def wait_age(admin, pids: list[int], column: str, seconds: float) -> None:
    def old_enough() -> bool:
        with admin.cursor() as cur:
            cur.execute(f"SELECT bool_and(now() - {column} >= make_interval(secs => %s)) "  # noqa: S608 - fixed names
                        "FROM pg_stat_activity WHERE pid = ANY(%s)", (seconds, pids))
            return bool(cur.fetchone()[0])
    wait_for(old_enough, timeout=30, what=f"{column} of {pids} to be {seconds}s old")


@pytest.fixture(scope="module")
def fault(module_sessions, admin) -> dict[str, t.Any]:
    blocker = module_sessions.idle_in_transaction(application=f"{TAG}-lc-blocker")
    with blocker.conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (ROW,))
    waiters = []
    for _i in range(WAITERS):
        waiter = module_sessions.idle(application=f"{TAG}-lc-waiter", autocommit=True)
        waiter.run_in_thread("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (ROW,))
        waiters.append(waiter)
    wait_for(lambda: all(module_sessions.blocked_by(w.pid) for w in waiters), timeout=30, what="every waiter to wait")
    wait_age(admin, [blocker.pid], "xact_start", 1.5)
    wait_age(admin, [w.pid for w in waiters], "state_change", 1.5)
    return dict(blocker=blocker, waiters=waiters, sessions=module_sessions)


def test_the_fault_is_really_there(fault):
    blocker, sessions = fault["blocker"], fault["sessions"]
    assert all(sessions.blocked_by(w.pid) == [blocker.pid] or blocker.pid in sessions.blocked_by(w.pid)
               or sessions.blocked_by(w.pid) for w in fault["waiters"])
    assert any(sessions.blocked_by(w.pid) == [blocker.pid] for w in fault["waiters"])


def test_tags_assess_is_read_only(fault, admin, pg_lab):
    before = live_pids(admin)
    report, result = run(pg_lab, tags="assess")
    assert live_pids(admin) == before
    assert find_task(report, "Act | terminate the idle") is None
    assert result["outcome"] == "assessed only"
    roots = {r["pid"]: r for r in result["before"]["tree"]}
    assert roots[fault["blocker"].pid]["waiters"] == WAITERS
    assert [b["action"] for b in result["blockers"] if b["pid"] == fault["blocker"].pid] == ["terminate"]
    assert result["actions"] == [] and result["after"] is None
    assert report["stats"]["lab-postgres"]["changed"] == 0


def test_check_mode_changes_nothing_and_names_the_blocker(fault, admin, pg_lab):
    before = live_pids(admin)
    report, result = run(pg_lab, check=True)
    assert live_pids(admin) == before
    act = find_task(report, "Act | terminate the idle")
    assert [b["pid"] for b in act["backends"]] == [fault["blocker"].pid]
    assert {a["result"] for a in act["actions"]} == {"check mode"}
    assert result["outcome"] == "check mode: would act" and result["would_terminate"] == 1
    assert result["terminated"] == 0 and result["after"] is None
    assert all(fault["sessions"].blocked_by(w.pid) for w in fault["waiters"])


def test_the_playbook_terminates_the_root_blocker_and_the_waiters_proceed(fault, admin, pg_lab):
    others = live_pids(admin) - {fault["blocker"].pid} - {w.pid for w in fault["waiters"]}
    report, result = run(pg_lab)
    assert fault["blocker"].pid not in live_pids(admin)
    for waiter in fault["waiters"]:
        waiter.thread.join(timeout=30)
        assert not waiter.thread.is_alive() and waiter.error is None, waiter.error
        assert waiter.pid in live_pids(admin), "a waiter was terminated"
    assert others <= live_pids(admin)
    assert result["outcome"] == "healed", result
    assert result["terminated"] == 1 and result["cancelled"] == 0
    assert [(a["action"], a["pid"], a["result"]) for a in result["actions"]] == [
        ("terminate", fault["blocker"].pid, "done")]
    assert result["waiters_watched"] == WAITERS and result["still_blocked"] == []
    assert fault["blocker"].pid not in {r["pid"] for r in result["after"]["tree"]}
    assert changed_tasks(report) == ["sre.runbooks.lock_contention : Act | terminate the idle-in-transaction root blockers"]


def test_a_second_run_changes_nothing(fault, admin, pg_lab):
    report, result = run(pg_lab)
    assert changed_tasks(report) == []
    assert result["actions"] == [] and result["terminated"] == 0 and result["cancelled"] == 0
