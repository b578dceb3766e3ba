"""Unit tests for _postgres.build_lock_tree: pg_blocking_pids rows -> the blocking tree."""

from __future__ import annotations

from ansible_collections.sre.runbooks.plugins.module_utils._postgres import build_lock_tree


def row(pid, blocked_by=(), state="active", wait=None, xact=10.0, superuser=False, backend_type="client backend",
        waiting_for=None, holding=None):
    return dict(pid=pid, blocked_by=list(blocked_by), user="app", database="db", application="web", state=state,
                backend_type=backend_type, superuser=superuser, transaction_age_seconds=xact, state_age_seconds=1,
                query="q", wait_seconds=wait, waiting_for=waiting_for, holding=holding)


ROW_LOCK = [{"mode": "ShareLock", "locktype": "transactionid", "relation": None}]
TABLE_LOCK = [{"mode": "AccessExclusiveLock", "locktype": "relation", "relation": "accounts"}]


def test_no_waits_no_tree():
    tree, summary = build_lock_tree([])
    assert tree == []
    assert summary == {"blocked_sessions": 0, "root_blockers": 0, "longest_wait_seconds": None,
                       "blocked_pids": [], "deadlocked_pids": [], "truncated": False}


def test_one_blocker_many_waiters():
    graph = [row(1, state="idle in transaction", xact="90.5",
                 holding=[{"mode": "RowExclusiveLock", "locktype": "relation", "relation": "accounts"}])]
    graph += [row(p, [1], wait=str(p), waiting_for=ROW_LOCK) for p in range(10, 210)]
    tree, summary = build_lock_tree(graph)
    assert len(tree) == 1
    root = tree[0]
    assert root["pid"] == 1 and root["state"] == "idle in transaction" and root["known"] is True
    assert root["transaction_age_seconds"] == 90.5
    assert root["waiters"] == root["direct_waiters"] == 200
    assert root["waiter_pids"] == list(range(10, 210))
    assert root["longest_wait_seconds"] == 209.0
    assert root["waiting_modes"] == ["ShareLock"] and root["relations"] == ["accounts"]
    assert [w["pid"] for w in root["sample_waiters"]] == [209, 208, 207, 206, 205]
    assert summary["blocked_sessions"] == 200 and summary["root_blockers"] == 1
    assert summary["longest_wait_seconds"] == 209.0 and summary["deadlocked_pids"] == []


def test_a_chain_counts_for_its_root_only():
    # 1 blocks 2 (ALTER TABLE waiting), 2 blocks 3 and 4 (queued behind the AccessExclusiveLock).
    graph = [row(1, state="idle in transaction"), row(2, [1], wait=5, waiting_for=TABLE_LOCK),
             row(3, [2], wait=3, waiting_for=TABLE_LOCK), row(4, [2, 1], wait=2, waiting_for=TABLE_LOCK)]
    tree, summary = build_lock_tree(graph)
    assert [r["pid"] for r in tree] == [1]
    assert tree[0]["direct_waiters"] == 2 and tree[0]["waiters"] == 3
    assert tree[0]["waiter_pids"] == [2, 3, 4]
    assert summary["blocked_pids"] == [2, 3, 4]


def test_two_roots_sorted_by_waiters():
    graph = [row(1), row(2), row(10, [1], wait=1), row(11, [2], wait=1), row(12, [2], wait=4)]
    tree, _summary = build_lock_tree(graph)
    assert [(r["pid"], r["waiters"]) for r in tree] == [(2, 2), (1, 1)]


def test_prepared_transaction_and_unknown_blockers():
    tree, _summary = build_lock_tree([row(10, [0], wait=1), row(11, [77], wait=1)])
    by_pid = {r["pid"]: r for r in tree}
    assert by_pid[0]["prepared_transaction"] is True and by_pid[0]["known"] is False
    assert by_pid[77]["known"] is False and by_pid[77]["state"] is None


def test_a_cycle_has_no_root_and_is_reported_as_deadlocked():
    tree, summary = build_lock_tree([row(1, [2], wait=1), row(2, [1], wait=1), row(3, [1], wait=1)])
    assert tree == []
    assert summary["deadlocked_pids"] == [1, 2, 3]


def test_null_ages_and_truncation():
    tree, summary = build_lock_tree([row(1, xact=None), row(2, [1], wait=None)], truncated=True)
    assert tree[0]["transaction_age_seconds"] is None and tree[0]["longest_wait_seconds"] is None
    assert summary["truncated"] is True and summary["longest_wait_seconds"] is None
