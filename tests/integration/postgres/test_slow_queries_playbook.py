"""playbooks/outage/slow_queries.yml end to end against the real lab PostgreSQL: real long-running
queries (pg_sleep) from an allow-listed reporting application, a billing application that is not
allow-listed, a superuser, and an idle bystander. No-fault controls first (a healthy server; a
server in lock contention), then the fault: --tags assess, --check, the cap, the heal, a second
run, and a run at -vvv (the secret canary in the queries' literals and comments never printed).

The tests share one injected fault and run in file order.
"""

from __future__ import annotations

import json
import typing as t

import psycopg2.errors
import pytest

import sre_testlib
from pg_integration import TAG, Lab, activity, find_task, live_pids, wait_for

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "slow_queries.yml"
REPORT_APP = f"{TAG}-sq-report"
CANARY = "Canary-slowq-7e57c0de"
# The slow queries outlive every run of this file: six playbook runs share them (billing and the
# superuser's must still run in the last one), ~40 s in all here, 3-4x that with the suite in lanes.
# They are cancelled at teardown, so the length costs nothing.
SLOW_SQL = f"SELECT pg_sleep(1800), 'password={CANARY}' AS dsn /* postgresql://app:{CANARY}@db1/shop */"
EXTRA_VARS = {"slow_queries_min_duration": "1s", "slow_queries_verify_timeout": 60,
              "slow_queries_cancel_applications": [REPORT_APP, f"{TAG}-sq-su"]}
RESULT_TASK = "Record | structured result for the incident timeline"
CANCEL_TASK = "Act | cancel the long-running queries"


def run(lab: Lab, extra_vars: dict[str, t.Any] | None = None, **kwargs) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars=dict(EXTRA_VARS, **(extra_vars or {})),
                                                  limit="lab-postgres", **kwargs)
    serialized = json.dumps(report) + stderr
    for secret in [*lab.secrets, CANARY]:
        assert secret not in serialized, sre_testlib.leaks(serialized, secret)
    assert rc == 0, f"ansible-playbook failed (rc={rc}): {stderr[-2000:]}\n{json.dumps(report)[-3000:]}"
    record = find_task(report, RESULT_TASK)
    assert record is not None, "the record task did not run"
    return report, record["ansible_facts"]["slow_queries_result"]


def changed_tasks(report: dict[str, t.Any]) -> list[str]:
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get("lab-postgres", {}).get("changed")]


def running(admin, pids: list[int]) -> set[int]:
    """Those of ``pids`` still running their query (active)."""
    return {pid for pid, row in activity(admin, pids).items() if row["state"] == "active"}


def test_no_fault_control_a_healthy_server_is_left_alone(pg_lab, admin):
    before = live_pids(admin)
    report, result = run(pg_lab)
    assert result["outcome"] == "no action needed" and result["healthy"] is True
    assert result["verdict"].startswith("healthy, nothing to do")
    assert result["statements"]["available"] is True and result["actions"] == []
    assert changed_tasks(report) == [] and live_pids(admin) == before


def test_no_fault_control_a_lock_waiter_is_not_cancelled(sessions, pg_lab, admin):
    blocker, blocked = sessions.blocking_pair(row_id=3, application=f"{TAG}-sq-lock")
    wait_for(lambda: (activity(admin, [blocked.pid])[blocked.pid]["query_start"] is not None), what="the waiter")
    wait_for(lambda: run_age(admin, blocked.pid) >= 1.2, timeout=30, what="the lock wait to be 1s old")
    # Empty allow-lists: only the lock guard stands between the waiter and a cancel.
    report, result = run(pg_lab, {"slow_queries_cancel_applications": []})
    assert result["outcome"] == "reported: no slow query may be cancelled (see verdict)", result
    mine = [q for q in result["queries"] if q["pid"] == blocked.pid]
    assert mine and mine[0]["action"] == "none" and "lock contention" in mine[0]["why"]
    assert changed_tasks(report) == [] and running(admin, [blocked.pid]) == {blocked.pid}


def run_age(admin, pid: int) -> float:
    with admin.cursor() as cur:
        cur.execute("SELECT EXTRACT(EPOCH FROM now() - query_start) FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = cur.fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0


@pytest.fixture(scope="module")
def fault(module_sessions, admin) -> dict[str, t.Any]:
    def slow(application: str, **kw):
        session = module_sessions.idle(application=application, autocommit=True, **kw)
        session.run_in_thread(SLOW_SQL)
        return session

    reports = [slow(REPORT_APP) for _i in range(2)]
    billing = slow(f"{TAG}-sq-billing")
    superuser = slow(f"{TAG}-sq-su", user=module_sessions.lab.superuser)
    bystander = module_sessions.idle(application=f"{TAG}-sq-bystander", autocommit=True)
    slow_pids = [s.pid for s in [*reports, billing, superuser]]
    wait_for(lambda: running(admin, slow_pids) == set(slow_pids), timeout=30, what="the slow queries to run")
    wait_for(lambda: min(run_age(admin, p) for p in slow_pids) >= 1.2, timeout=30, what="the queries to be 1s old")
    return dict(reports=reports, billing=billing, superuser=superuser, bystander=bystander, slow_pids=slow_pids)


def test_tags_assess_is_read_only(fault, admin, pg_lab):
    before = live_pids(admin)
    report, result = run(pg_lab, tags="assess")
    assert result["outcome"] == "assessed only", result
    assert find_task(report, CANCEL_TASK) is None
    assert running(admin, fault["slow_pids"]) == set(fault["slow_pids"]) and live_pids(admin) == before
    actions = {q["pid"]: q["action"] for q in result["queries"]}
    assert [p for p in fault["slow_pids"] if actions.get(p) == "cancel"] == [s.pid for s in fault["reports"]]
    assert actions[fault["billing"].pid] == "none" and actions[fault["superuser"].pid] == "none"
    assert report["stats"]["lab-postgres"]["changed"] == 0


def test_check_mode_names_the_queries_and_cancels_nothing(fault, admin, pg_lab):
    report, result = run(pg_lab, check=True)
    act = find_task(report, CANCEL_TASK)
    assert sorted(b["pid"] for b in act["backends"]) == sorted(s.pid for s in fault["reports"])
    assert {a["result"] for a in act["actions"]} == {"check mode"}
    assert result["outcome"] == "check mode: would cancel" and result["would_cancel"] == 2 and result["cancelled"] == 0
    assert running(admin, fault["slow_pids"]) == set(fault["slow_pids"])


def test_the_cap_refuses_and_changes_nothing(fault, admin, pg_lab):
    report, result = run(pg_lab, {"slow_queries_max_cancel": 1})
    assert result["outcome"] == "reported: refused by the max_cancel guard (2 > 1)", result
    assert "slow_queries_max_cancel" in result["verdict"]
    assert changed_tasks(report) == [] and running(admin, fault["slow_pids"]) == set(fault["slow_pids"])


def test_the_playbook_cancels_only_the_allowed_queries(fault, admin, pg_lab):
    others = live_pids(admin)
    report, result = run(pg_lab)
    for session in fault["reports"]:
        session.thread.join(timeout=30)
        assert not session.thread.is_alive() and isinstance(session.error, psycopg2.errors.QueryCanceled), session.error
    assert live_pids(admin) == others, "a session was terminated, not cancelled"
    assert running(admin, [fault["billing"].pid, fault["superuser"].pid]) == {fault["billing"].pid, fault["superuser"].pid}
    assert activity(admin, [fault["bystander"].pid])[fault["bystander"].pid]["state"] == "idle"
    assert result["outcome"] == "healed", result
    assert result["cancelled"] == 2 and result["still_running"] == []
    assert sorted((a["action"], a["pid"], a["result"]) for a in result["actions"]) == sorted(
        ("cancel", s.pid, "done") for s in fault["reports"])
    changed = changed_tasks(report)
    assert len(changed) == 1 and changed[0].startswith(f"sre.runbooks.slow_queries : {CANCEL_TASK}"), changed
    assert result["long_running_after"] >= 2  # billing and the superuser still run


def test_a_second_run_changes_nothing(fault, admin, pg_lab):
    report, result = run(pg_lab)
    assert changed_tasks(report) == [] and result["actions"] == [] and result["cancelled"] == 0
    assert result["outcome"] == "reported: no slow query may be cancelled (see verdict)"


def test_at_vvv_no_secret_is_printed(fault, admin, pg_lab):
    # The billing and superuser queries still run and carry the canary in a literal and a comment.
    assert running(admin, [fault["billing"].pid]) == {fault["billing"].pid}
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars=EXTRA_VARS, limit="lab-postgres",
                                                  env={"ANSIBLE_VERBOSITY": "3"})
    text = str(report) + stderr
    assert rc == 0 and "lab-postgres" in text, text[-3000:]
    assert "pg_sleep(?)" in text, "the queries are not in the output: the canary proves nothing"
    for secret in [*pg_lab.secrets, CANARY]:
        assert secret not in text, str(sre_testlib.leaking_tasks(report, secret)) + "\n" + sre_testlib.leaks(text, secret)
