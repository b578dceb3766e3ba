"""lock_contention against other real lock situations in the lab: an active blocker is cancelled
(not terminated), a superuser blocker and a young blocker are left alone, and the no-fault
controls - a healthy server and a server with another scenario's fault - change nothing."""

from __future__ import annotations

from pg_integration import TAG, activity, live_pids, wait_for
from test_lock_contention_playbook import changed_tasks, run, wait_age


def blocker_with_waiters(sessions, admin, row: int, count: int = 3, user: str | None = None, active: bool = False):
    kw = {"user": user} if user else {}
    blocker = sessions.idle_in_transaction(application=f"{TAG}-lcc-blocker", **kw)
    with blocker.conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (row,))
    if active:
        blocker.run_in_thread("SELECT pg_sleep(120)")
        wait_for(lambda: activity(admin, [blocker.pid])[blocker.pid]["state"] == "active", what="the blocker to run")
    waiters = []
    for _i in range(count):
        waiter = sessions.idle(application=f"{TAG}-lcc-waiter", autocommit=True)
        waiter.run_in_thread("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (row,))
        waiters.append(waiter)
    wait_for(lambda: all(sessions.blocked_by(w.pid) for w in waiters), timeout=30, what="every waiter to wait")
    wait_age(admin, [blocker.pid], "xact_start", 1.5)
    wait_age(admin, [w.pid for w in waiters], "state_change", 1.5)
    return blocker, waiters


def test_an_active_blocker_is_cancelled_and_keeps_its_connection(sessions, admin, pg_lab):
    blocker, waiters = blocker_with_waiters(sessions, admin, row=2, active=True)
    report, result = run(pg_lab)
    assert result["outcome"] == "healed", result
    assert result["cancelled"] == 1 and result["terminated"] == 0 and result["escalated"] == 0
    assert blocker.pid in live_pids(admin), "cancel dropped the connection"
    blocker.thread.join(timeout=15)
    for waiter in waiters:
        waiter.thread.join(timeout=30)
        assert not waiter.thread.is_alive() and waiter.error is None, waiter.error
    assert changed_tasks(report) == ["sre.runbooks.lock_contention : Act | cancel the active root blockers "
                                     "(their transaction aborts and lets go)"]


def test_a_superuser_blocker_is_left_alone(sessions, admin, pg_lab):
    blocker, waiters = blocker_with_waiters(sessions, admin, row=3, user=pg_lab.superuser)
    before = live_pids(admin)
    report, result = run(pg_lab)
    assert live_pids(admin) == before and changed_tasks(report) == []
    assert result["outcome"] == "reported: refused by the guards (see verdict)"
    ours = [b for b in result["blockers"] if b["pid"] == blocker.pid]
    assert ours[0]["action"] == "none" and "superuser" in ours[0]["why"]
    assert all(sessions.blocked_by(w.pid) for w in waiters)


def test_a_young_blocker_is_left_alone(sessions, admin, pg_lab):
    blocker, waiters = blocker_with_waiters(sessions, admin, row=4)
    before = live_pids(admin)
    report, result = run(pg_lab, extra_vars={"lock_contention_min_transaction_age": "1h"})
    assert live_pids(admin) == before and changed_tasks(report) == []
    ours = [b for b in result["blockers"] if b["pid"] == blocker.pid]
    assert ours[0]["action"] == "none" and "under 3600s" in ours[0]["why"]


def test_no_fault_control_a_healthy_server_is_left_alone(sessions, admin, pg_lab):
    # Idle and idle-in-transaction sessions (another scenario's fault), no lock waits: nothing to do.
    idle = {s.pid for s in sessions.many_idle(5)}
    in_tx = sessions.idle_in_transaction()
    before = live_pids(admin)
    assert idle | {in_tx.pid} <= before
    report, result = run(pg_lab)
    assert changed_tasks(report) == []
    assert live_pids(admin) == before
    assert result["outcome"] == "no action needed" and result["healthy"] is True
    assert result["verdict"].startswith("healthy, nothing to do") and result["actions"] == []
