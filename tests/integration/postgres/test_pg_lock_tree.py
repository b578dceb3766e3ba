"""pg_activity_info's blocking tree (lock_tree, lock_summary) against real lock waits in the lab."""

from __future__ import annotations

from pg_integration import TAG, wait_for


def test_the_tree_names_the_root_blocker_its_waiters_and_the_chain(sessions, admin, call, su_login):
    blocker = sessions.idle_in_transaction(application=f"{TAG}-tree-blocker")
    with blocker.conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 7")
    row_waiters = []
    for _i in range(3):
        waiter = sessions.idle(application=f"{TAG}-tree-waiter", autocommit=True)
        waiter.run_in_thread("UPDATE accounts SET balance = balance + 1 WHERE id = 7")
        row_waiters.append(waiter)
    # A DDL statement queues behind the blocker's lock on the table; a reader queues behind the DDL.
    ddl = sessions.idle(application=f"{TAG}-tree-ddl", autocommit=True)
    ddl.run_in_thread("ALTER TABLE accounts ADD COLUMN IF NOT EXISTS note text")
    wait_for(lambda: sessions.blocked_by(ddl.pid) != [], what="the ALTER TABLE to wait")
    reader = sessions.idle(application=f"{TAG}-tree-reader", autocommit=True)
    reader.run_in_thread("SELECT count(*) FROM accounts")
    everyone = [*row_waiters, ddl, reader]
    wait_for(lambda: all(sessions.blocked_by(s.pid) for s in everyone), what="every waiter to wait")

    result = call("pg_activity_info", dict(su_login, top_statements=0))
    assert result.get("failed") is not True, result.get("msg")
    ours = [r for r in result["lock_tree"] if r["pid"] == blocker.pid]
    assert len(ours) == 1, result["lock_tree"]
    root = ours[0]
    assert root["state"] == "idle in transaction" and root["user"] == "app" and root["superuser"] is False
    assert root["backend_type"] == "client backend" and root["known"] is True
    assert root["transaction_age_seconds"] > 0 and root["longest_wait_seconds"] >= 0
    assert set(root["waiter_pids"]) == {s.pid for s in everyone}
    assert root["waiters"] == 5
    # The reader waits behind the DDL (and maybe the blocker): it is not a root of its own.
    assert ddl.pid not in {r["pid"] for r in result["lock_tree"]}
    assert "accounts" in root["relations"]
    assert {"AccessExclusiveLock", "ShareLock"} <= set(root["waiting_modes"])
    assert any(lock["relation"] == "accounts" for lock in root["holding"])
    assert {s.pid for s in everyone} <= set(result["lock_summary"]["blocked_pids"])
    assert result["lock_summary"]["root_blockers"] >= 1
    assert len(root["sample_waiters"]) == 5

    blocker.conn.rollback()
    for session in everyone:
        session.thread.join(timeout=15)
        assert session.error is None, session.error
    again = call("pg_activity_info", dict(su_login, top_statements=0))
    assert blocker.pid not in {r["pid"] for r in again["lock_tree"]}
    assert not {s.pid for s in everyone} & set(again["lock_summary"]["blocked_pids"])
