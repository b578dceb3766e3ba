"""db_exhaustion when the slots are taken by sessions waiting for locks behind one root blocker
(issue 12, runbook 003 "kill the blocker"), end to end against the real lab PostgreSQL: a real
blocker (a row lock held idle in transaction) and WAITERS real waiters, each of which leaves once
its UPDATE went through, as an application's request does. Without the opt-in the run names the
cause and touches nothing; --check says what it would do; with db_exhaustion_kill_blockers the
lock_contention runbook ends the blocker, the waiters proceed and the connections recover; a second
run has nothing to do. The tests share one fault and run in file order.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import typing as t

import psycopg2
import pytest

import sre_testlib
from pg_integration import TAG, Lab, activity, connect, wait_for

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
WAITERS = 80
ROW = 7
THRESHOLD = 5  # percent: 80 waiters of the lab's 1197 usable slots is ~7 %
EXTRA_VARS = {
    "db_exhaustion_utilisation_threshold": THRESHOLD,
    # Nothing here is old enough for the idle step: only the blocker step can heal.
    "db_exhaustion_min_idle": "1h",
    "db_exhaustion_min_idle_in_transaction": "1h",
    # lock_contention's own guards, lowered from 1m / 30s for a test that lasts seconds.
    "lock_contention_min_transaction_age": "1s",
    "lock_contention_min_wait": "1s",
    "lock_contention_verify_timeout": 60,
}
OPT_IN = {"db_exhaustion_kill_blockers": True}
RECORD = "sre.runbooks.db_exhaustion : Record | structured result for the incident timeline"


def run(lab: Lab, extra_vars: dict[str, t.Any] | None = None, **kwargs) -> tuple[int, dict[str, t.Any], dict]:
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars=dict(EXTRA_VARS, **(extra_vars or {})),
                                                  limit="lab-postgres", **kwargs)
    serialized = json.dumps(report) + stderr
    for secret in lab.secrets:
        assert secret not in serialized, "a lab password appears in the playbook output"
    result = sre_testlib.task_results(report, RECORD).get("lab-postgres")
    assert result is not None, f"the record task did not run (rc={rc}): {stderr[-2000:]}"
    return rc, report, result["ansible_facts"]["db_exhaustion_result"]


def tasks_named(report: dict[str, t.Any], prefix: str) -> list[dict[str, t.Any]]:
    return [task["hosts"]["lab-postgres"] for play in report["plays"] for task in play["tasks"]
            if task["task"]["name"].startswith(prefix) and "lab-postgres" in task["hosts"]]


class Waiter:
    """An application request: UPDATE the locked row, commit, close the connection."""

    def __init__(self, lab: Lab) -> None:
        self.conn = connect(lab, application=f"{TAG}-dbx-waiter", autocommit=True)
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.pid = cur.fetchone()[0]
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (ROW,))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.conn.close()


def blocked_pids(admin) -> set[int]:
    with admin.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0")
        return {row[0] for row in cur.fetchall()}


def utilisation(admin) -> float:
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
                    "current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int "
                    "FROM pg_stat_activity")
        clients, usable = cur.fetchone()
        return 100.0 * clients / usable


@pytest.fixture(scope="module")
def fault(pg_lab: Lab, module_sessions, admin) -> t.Iterator[dict[str, t.Any]]:
    blocker = module_sessions.idle_in_transaction(application=f"{TAG}-dbx-blocker")
    with blocker.conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (ROW,))
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        waiters = list(pool.map(lambda _i: Waiter(pg_lab), range(WAITERS)))
    try:
        for waiter in waiters:
            waiter.thread.start()
        pids = {w.pid for w in waiters}
        wait_for(lambda: pids <= blocked_pids(admin), timeout=60, what="every waiter to wait for the row lock")

        def old_enough() -> bool:
            with admin.cursor() as cur:
                cur.execute("SELECT bool_and(now() - coalesce(xact_start, state_change) >= interval '1.5 s') "
                            "FROM pg_stat_activity WHERE pid = ANY(%s)", ([blocker.pid, *pids],))
                return bool(cur.fetchone()[0])
        wait_for(old_enough, timeout=30, what="the blocker's transaction and the waits to pass the 1s guards")
        yield dict(blocker=blocker, waiters=waiters, pids=pids)
    finally:
        for waiter in waiters:
            try:
                waiter.conn.cancel()
            except psycopg2.Error:
                pass
        for waiter in waiters:
            waiter.thread.join(timeout=10)


def test_the_fault_is_really_there(fault, admin):
    assert fault["pids"] <= blocked_pids(admin)
    assert fault["blocker"].pid in activity(admin, [fault["blocker"].pid])
    assert utilisation(admin) >= THRESHOLD


def test_default_off_names_the_cause_and_touches_nothing(fault, admin, pg_lab):
    rc, report, result = run(pg_lab)
    # Not healed (the slots stay taken), and the run says why and how to act.
    assert rc != 0 and result["outcome"] == "failed", result
    assert result["blocked"]["cause"] is True and result["blocked"]["act"] is False
    assert result["blocked"]["root_pids"] == [fault["blocker"].pid]
    assert result["blocked"]["waiting"] >= WAITERS
    assert "run lock_contention" in result["blocked"]["skipped"]
    assert "db_exhaustion_kill_blockers: true" in result["error"]
    assert result["blockers_outcome"] is None and result["actions"] == []
    assert result["app_restarted"] is False and result["app_skipped"] is None
    assert not tasks_named(report, "sre.runbooks.lock_contention")
    assert fault["blocker"].pid in activity(admin, [fault["blocker"].pid])
    assert fault["pids"] <= blocked_pids(admin)


def test_check_mode_says_it_would_end_the_blocker(fault, admin, pg_lab):
    rc, report, result = run(pg_lab, extra_vars=OPT_IN, check=True)
    assert rc == 0, result
    assert result["outcome"] == "check mode: would act" and result["blocked"]["act"] is True
    assert result["blockers_outcome"] == "check mode: would act"
    assert [(a["action"], a["pid"], a["result"]) for a in result["actions"]] == \
        [("terminate", fault["blocker"].pid, "check mode")]
    assert fault["blocker"].pid in activity(admin, [fault["blocker"].pid])
    assert fault["pids"] <= blocked_pids(admin)


def test_the_blocker_is_ended_the_waiters_proceed_and_the_slots_come_back(fault, admin, pg_lab):
    rc, report, result = run(pg_lab, extra_vars=OPT_IN)
    assert rc == 0, result
    assert result["outcome"] == "healed", result
    assert result["blockers_outcome"] == "healed"
    assert [(a["action"], a["pid"], a["result"]) for a in result["actions"]] == \
        [("terminate", fault["blocker"].pid, "done")]
    assert result["terminated"] == 0  # the idle step had nothing to do: the blocker step healed
    assert result["after"]["utilisation_percent"] < THRESHOLD
    for waiter in fault["waiters"]:
        waiter.thread.join(timeout=30)
        assert waiter.error is None, waiter.error
    assert fault["blocker"].pid not in activity(admin, [fault["blocker"].pid])
    assert not fault["pids"] & set(activity(admin, fault["pids"]))
    assert utilisation(admin) < THRESHOLD
    # The lock_contention runbook ran inside and left its own record too.
    lc = tasks_named(report, "sre.runbooks.lock_contention : Record | structured result")
    assert lc and lc[-1]["ansible_facts"]["lock_contention_result"]["outcome"] == "healed"


def test_second_run_changes_nothing(fault, pg_lab):
    rc, report, result = run(pg_lab, extra_vars=OPT_IN)
    assert rc == 0
    assert result["outcome"] == "no action needed" and result["actions"] == []
    assert report["stats"]["lab-postgres"]["changed"] == 0
