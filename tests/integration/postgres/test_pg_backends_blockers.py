"""pg_backends blocking_only without backend_states, against the real lab PostgreSQL (issue 12).

A session that holds a lock another one waits for is active, idle in transaction or idle in
transaction (aborted); `blocking_only: true` on its own must match it in each of those states
(it once matched nothing: the default backend_states [idle] excluded every real blocker).
"""

from __future__ import annotations

import psycopg2
import pytest

from pg_integration import SANDBOX_DB, activity, live_pids, wait_for

ADVISORY_KEY = 912012


@pytest.fixture
def args(su_login):
    def build(**overrides):
        base = dict(su_login, databases=[SANDBOX_DB], blocking_only=True, min_state_age="0")
        base.update(overrides)
        return base

    return build


def ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


def lock_row(session, row_id: int) -> None:
    with session.conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (row_id,))


def wait_behind(sessions, blocker, row_id: int, statement: str = "UPDATE accounts SET balance = balance + 1 WHERE id = %s"):
    waiter = sessions.idle(application=f"{blocker.application}-waiter")
    waiter.run_in_thread(statement, (row_id,))
    wait_for(lambda: sessions.blocked_by(waiter.pid) == [blocker.pid],
             what=f"pid {waiter.pid} to wait behind {blocker.pid}")
    return waiter


def blocker_in_each_state(sessions, admin):
    """Three real blockers on rows 1-3: idle in transaction, idle in transaction (aborted), active."""
    idle_tx = sessions.idle_in_transaction()
    lock_row(idle_tx, 1)

    # An error aborts the transaction and releases its locks at once; a session-level advisory
    # lock survives it, so an aborted transaction can still block others.
    aborted = sessions.idle_in_transaction()
    with aborted.conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
    with pytest.raises(psycopg2.errors.DivisionByZero):
        with aborted.conn.cursor() as cur:
            cur.execute("SELECT 1 / 0")

    active = sessions.idle_in_transaction()
    lock_row(active, 3)
    active.run_in_thread("SELECT pg_sleep(60)")
    wait_for(lambda: activity(admin, [active.pid])[active.pid]["state"] == "active",
             what=f"pid {active.pid} to run pg_sleep")

    waiters = [wait_behind(sessions, idle_tx, 1),
               wait_behind(sessions, aborted, ADVISORY_KEY, "SELECT pg_advisory_xact_lock(%s)"),
               wait_behind(sessions, active, 3)]
    states = {pid: row["state"] for pid, row in activity(admin, [idle_tx.pid, aborted.pid, active.pid]).items()}
    assert states == {idle_tx.pid: "idle in transaction", aborted.pid: "idle in transaction (aborted)",
                      active.pid: "active"}
    return {"idle in transaction": idle_tx, "idle in transaction (aborted)": aborted, "active": active}, waiters


def test_blocking_only_alone_matches_blockers_in_every_state_that_holds_a_lock(sessions, admin, call, args):
    blockers, waiters = blocker_in_each_state(sessions, admin)
    bystander = sessions.idle_in_transaction()  # holds no lock anyone waits for
    before = live_pids(admin)

    checked = ok(call("pg_backends", args(), check=True))
    assert {b["pid"]: b["state"] for b in checked["backends"]} == {s.pid: st for st, s in blockers.items()}
    assert live_pids(admin) == before, "check mode ended sessions"

    result = ok(call("pg_backends", args()))
    assert {b["pid"] for b in result["backends"]} == {s.pid for s in blockers.values()}
    assert result["acted_by_state"] == {"idle in transaction": 1, "idle in transaction (aborted)": 1, "active": 1}
    assert before - live_pids(admin) == {s.pid for s in blockers.values()}
    for waiter in waiters:  # every waiter got its lock and finished
        waiter.thread.join(timeout=15)
        assert not waiter.thread.is_alive() and waiter.error is None, waiter.error
    assert bystander.pid in live_pids(admin)
    assert ok(call("pg_backends", args()))["changed"] is False


def test_the_age_rule_applies_to_blockers(sessions, admin, call, args):
    blocker, waiter = sessions.blocking_pair()
    # The default min_state_age (5m) measures time in the current state: a fresh blocker is spared.
    young = ok(call("pg_backends", {k: v for k, v in args().items() if k != "min_state_age"}))
    assert young["matched"] == 0 and young["changed"] is False
    # min_transaction_age measures from the start of the transaction.
    assert ok(call("pg_backends", args(min_transaction_age="1h")))["matched"] == 0
    wait_for(lambda: sessions.blocked_by(waiter.pid) == [blocker.pid], what="the wait to go on")
    result = ok(call("pg_backends", args(min_transaction_age="0s")))
    assert [b["pid"] for b in result["backends"]] == [blocker.pid]
    assert blocker.pid not in live_pids(admin)


def test_cancelled_with_blocking_only_alone_cancels_active_blockers_only(sessions, admin, call, args):
    blockers, waiters = blocker_in_each_state(sessions, admin)
    before = live_pids(admin)
    result = ok(call("pg_backends", args(state="cancelled")))
    active = blockers["active"]
    assert [(a["pid"], a["action"], a["result"]) for a in result["actions"]] == [(active.pid, "cancel", "done")]
    active.thread.join(timeout=10)
    assert isinstance(active.error, psycopg2.errors.QueryCanceled), active.error
    assert live_pids(admin) == before  # cancel keeps every connection
    # Cancelling aborts its transaction, which lets go of its row lock: the waiter proceeds.
    waiters[2].thread.join(timeout=15)
    assert not waiters[2].thread.is_alive() and waiters[2].error is None, waiters[2].error
    assert activity(admin, [active.pid])[active.pid]["state"] == "idle in transaction (aborted)"
    # The other two blockers were not cancelled: their waiters still wait.
    assert sessions.blocked_by(waiters[0].pid) == [blockers["idle in transaction"].pid]


def test_only_pids_narrows_to_the_given_sessions(sessions, admin, call, args):
    first, _w1 = sessions.blocking_pair(row_id=4)
    second, _w2 = sessions.blocking_pair(row_id=5)
    before = live_pids(admin)
    result = ok(call("pg_backends", args(pids=[second.pid])))
    assert [b["pid"] for b in result["backends"]] == [second.pid]
    assert before - live_pids(admin) == {second.pid}
    assert first.pid in live_pids(admin)
