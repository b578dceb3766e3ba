"""pg_activity_info against the real lab PostgreSQL: counts, utilisation, long queries, locks,
sizes, pg_stat_statements (available or not), masked passwords, bad input."""

from __future__ import annotations

import json
import time

import pytest

from pg_integration import SANDBOX_DB, TAG, assert_clean_failure, free_port, live_pids, wait_for


def has_lock(locks, expected):
    """Whether one lock entry carries every key/value of ``expected`` (entries have more keys)."""
    return any(all(lock.get(k) == v for k, v in expected.items()) for lock in locks or [])


@pytest.fixture
def info_args(su_login):
    def build(**overrides):
        base = dict(su_login, login_db=SANDBOX_DB, top_statements=0)
        base.update(overrides)
        return base

    return build


def test_counts_utilisation_ages_and_long_running(sessions, admin, call, info_args, pg_lab):
    idle = [sessions.idle(application=f"{TAG}-info-idle") for _i in range(4)]
    in_tx = [sessions.idle_in_transaction(application=f"{TAG}-info-tx") for _i in range(2)]
    busy = sessions.active(seconds=60, application=f"{TAG}-info-busy")
    su = sessions.superuser_idle(application=f"{TAG}-info-su")
    time.sleep(0.6)
    before = live_pids(admin)
    result = call("pg_activity_info", info_args(long_query_threshold="0.5s"))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    assert live_pids(admin) == before  # read-only

    assert result["max_connections"] == pg_lab.max_connections
    assert result["superuser_reserved_connections"] == 3
    assert result["usable_connections"] == pg_lab.max_connections - 3
    assert result["utilisation_percent"] == round(100.0 * result["client_backends"] / result["usable_connections"], 1)
    assert result["is_superuser"] is True
    # Our sessions, exactly, by application; the server-wide counts include them.
    apps = result["by_application"]
    assert apps[f"{TAG}-info-idle"] == 4
    assert apps[f"{TAG}-info-tx"] == 2
    assert apps[f"{TAG}-info-busy"] == 1
    assert apps[f"{TAG}-info-su"] == 1
    assert result["by_state"]["idle"] >= 5
    assert result["by_state"]["idle in transaction"] >= 2
    assert result["by_state"]["active"] >= 1
    # by_state counts every client session but the module's own.
    assert sum(result["by_state"].values()) == result["client_backends"] - 1
    assert result["by_database"][SANDBOX_DB] >= 7
    assert result["by_user"][pg_lab.app_user] >= 7
    assert result["by_user"][pg_lab.superuser] >= 2
    assert result["by_backend_type"]["client backend"] == result["client_backends"] - 1
    assert result["by_backend_type"].get("checkpointer") == 1
    assert result["total_backends"] > result["client_backends"]
    assert result["oldest_idle_seconds"] >= 0.5
    assert result["oldest_idle_in_transaction_seconds"] >= 0.5

    long_running = {q["pid"]: q for q in result["long_running"]}
    assert busy.pid in long_running
    entry = long_running[busy.pid]
    assert entry["duration_seconds"] >= 0.5
    assert "pg_sleep" in entry["query"]
    assert entry["application"] == busy.application
    assert entry["database"] == SANDBOX_DB
    assert entry["client_addr"] == "127.0.0.1"
    assert not {s.pid for s in idle + in_tx + [su]} & set(long_running)
    # The threshold matters: an hour-long threshold lists nothing of ours.
    result = call("pg_activity_info", info_args(long_query_threshold="1h"))
    assert busy.pid not in {q["pid"] for q in result["long_running"]}


def test_blocked_and_blocking_with_relation_and_lock_mode(sessions, admin, call, info_args):
    blocker, blocked = sessions.blocking_pair(row_id=3)
    result = call("pg_activity_info", info_args())
    blocked_rows = {b["pid"]: b for b in result["blocked"]}
    assert blocked.pid in blocked_rows
    row = blocked_rows[blocked.pid]
    assert row["blocking_pids"] == [blocker.pid]
    assert row["database"] == SANDBOX_DB
    assert "UPDATE accounts" in row["query"]
    # A row lock: the waiter queues on the blocker's transaction id.
    assert has_lock(row["waiting_for"], {"mode": "ShareLock", "locktype": "transactionid", "relation": None})
    assert blocker.pid in result["blocking_pids"]
    blocking_rows = {b["pid"]: b for b in result["blocking"]}
    holder = blocking_rows[blocker.pid]
    assert holder["state"] == "idle in transaction"
    assert has_lock(holder["holding"], {"mode": "RowExclusiveLock", "relation": "accounts"})
    assert blocked.pid not in blocking_rows


def test_blocked_on_a_table_lock_names_the_relation(sessions, admin, call, info_args):
    holder = sessions.idle_in_transaction(application=f"{TAG}-locker")
    with holder.conn.cursor() as cur:
        cur.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
    reader = sessions.idle(application=f"{TAG}-reader")
    reader.run_in_thread("SELECT count(*) FROM accounts")
    wait_for(lambda: sessions.blocked_by(reader.pid) == [holder.pid], what="the reader to wait")
    result = call("pg_activity_info", info_args())
    row = {b["pid"]: b for b in result["blocked"]}[reader.pid]
    assert has_lock(row["waiting_for"], {"mode": "AccessShareLock", "locktype": "relation", "relation": "accounts"})
    holding = {b["pid"]: b for b in result["blocking"]}[holder.pid]["holding"]
    assert has_lock(holding, {"mode": "AccessExclusiveLock", "relation": "accounts"})


def test_relation_names_are_right_when_the_lock_is_in_another_database(sessions, admin, call, info_args):
    blocker, blocked = sessions.blocking_pair(row_id=4)
    result = call("pg_activity_info", info_args(login_db="postgres"))
    holder = {b["pid"]: b for b in result["blocking"]}[blocker.pid]
    assert "accounts" in {h["relation"] for h in holder["holding"]}


def test_query_literals_are_redacted_in_every_text(sessions, call, info_args):
    # pg_stat_activity shows each text as sent: a customer's e-mail in a blocker's, a waiter's and
    # a long-running query must not reach the result (nor the incident timeline after it).
    blocker = sessions.idle_in_transaction(application=f"{TAG}-pii-blocker")
    with blocker.conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = balance WHERE id = 6 AND 'blocker.pii@example.com' <> ''")
    waiter = sessions.idle(application=f"{TAG}-pii-waiter")
    waiter.run_in_thread("UPDATE accounts SET balance = balance + 1 WHERE id = 6 AND 'waiter.pii@example.com' <> ''")
    wait_for(lambda: sessions.blocked_by(waiter.pid) == [blocker.pid], what="the waiter to wait")
    sleeper = sessions.idle(application=f"{TAG}-pii-sleeper")
    sleeper.run_in_thread("SELECT pg_sleep(60), 'sleeper.pii@example.com' AS email")
    wait_for(lambda: live_pids_active(sessions, sleeper.pid), what="the sleeper to run")
    result = call("pg_activity_info", info_args(long_query_threshold="0"))
    assert result.get("failed") is not True, result.get("msg")
    assert "pii@example.com" not in json.dumps(result)
    # The statement's shape stays: what the lock and exhaustion runbooks show the operator.
    assert {b["pid"]: b for b in result["long_running"]}[sleeper.pid]["query"] == "SELECT pg_sleep(?), ? AS email"
    assert ({b["pid"]: b for b in result["blocked"]}[waiter.pid]["query"]
            == "UPDATE accounts SET balance = balance + ? WHERE id = ? AND ? <> ?")
    assert ({b["pid"]: b for b in result["blocking"]}[blocker.pid]["query"]
            == "UPDATE accounts SET balance = balance WHERE id = ? AND ? <> ?")
    root = {r["pid"]: r for r in result["lock_tree"]}[blocker.pid]
    assert root["query"] == "UPDATE accounts SET balance = balance WHERE id = ? AND ? <> ?"
    assert root["sample_waiters"][0]["query"].startswith("UPDATE accounts SET balance = balance + ?")


def live_pids_active(sessions, pid):
    with sessions.admin.cursor() as cur:
        cur.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = cur.fetchone()
    return bool(row) and row[0] == "active"


def test_database_sizes(call, info_args):
    result = call("pg_activity_info", info_args())
    sizes = result["database_sizes"]
    assert {SANDBOX_DB, "postgres", "app"} <= set(sizes)
    assert all(isinstance(v, int) and v > 1_000_000 for v in sizes.values())
    assert "template0" not in sizes  # datallowconn = false


def test_statements_available_and_password_literals_masked(call, su_login, throwaway_role, admin):
    # CREATE ROLE ... PASSWORD '...' lands verbatim in pg_stat_statements (a utility statement).
    role, password = throwaway_role()
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_statements WHERE query LIKE %s", (f"%{password}%",))
        assert cur.fetchone()[0] >= 1, "the password is not in pg_stat_statements: the test proves nothing"
    result = call(
        "pg_activity_info",
        dict(su_login, login_db="postgres", top_statements=5000, query_text_limit=500),
        secrets=[password],
    )
    statements = result["statements"]
    assert statements["available"] is True
    assert "reason" not in statements
    top = statements["top_by_mean_time"]
    assert top and {"query", "calls", "mean_ms", "total_ms", "rows"} <= set(top[0])
    means = [s["mean_ms"] for s in top]
    assert means == sorted(means, reverse=True)
    mine = [s["query"] for s in top if role in s["query"] and "CREATE ROLE" in s["query"]]
    assert mine, "the CREATE ROLE statement is not reported"
    assert all("PASSWORD ?" in q for q in mine)  # the literal redacted (the password checked above)


def test_statements_unavailable_is_reported_not_an_error(call, info_args):
    # The sandbox database has no pg_stat_statements extension.
    result = call("pg_activity_info", info_args(top_statements=5))
    assert result.get("failed") is not True, result.get("msg")
    assert result["statements"]["available"] is False
    assert "pg_stat_statements" in result["statements"]["reason"]
    assert result["statements"]["top_by_mean_time"] == []


def test_top_statements_zero_skips_the_query(call, su_login):
    result = call("pg_activity_info", dict(su_login, top_statements=0))
    assert result["statements"]["available"] is True
    assert result["statements"]["top_by_mean_time"] == []


def test_query_text_limit(sessions, call, info_args):
    busy = sessions.active(seconds=60, application=f"{TAG}-longtext")
    time.sleep(0.2)
    result = call("pg_activity_info", info_args(long_query_threshold="0", query_text_limit=10))
    entry = {q["pid"]: q for q in result["long_running"]}[busy.pid]
    assert len(entry["query"]) <= 10


@pytest.mark.parametrize(
    "bad, option",
    [
        pytest.param(dict(long_query_threshold="soon"), "long_query_threshold", id="unparsable-threshold"),
        pytest.param(dict(long_query_threshold="-1"), "long_query_threshold", id="negative-threshold"),
        pytest.param(dict(top_statements=-1), "top_statements", id="negative-top"),
        pytest.param(dict(query_text_limit=0), "query_text_limit", id="zero-text-limit"),
        pytest.param(dict(ssl_mode="sometimes"), "ssl_mode", id="unknown-ssl-mode"),
    ],
)
def test_bad_input_names_the_option(bad, option, call, info_args):
    message = assert_clean_failure(call("pg_activity_info", info_args(**bad)))
    assert option in message


def test_unreachable_and_wrong_password_name_the_target(call, info_args, pg_lab):
    port = free_port()
    message = assert_clean_failure(call("pg_activity_info", info_args(login_port=port, connect_timeout=2)))
    assert f"127.0.0.1:{port}" in message and "is the server running" in message
    message = assert_clean_failure(
        call("pg_activity_info", info_args(login_password="wrong-password"), secrets=["wrong-password"])
    )
    assert f"as {pg_lab.superuser}" in message and "login_password" in message


def test_unix_socket_login(call, pg_lab):
    result = call(
        "pg_activity_info",
        dict(
            login_unix_socket=pg_lab.socket_dir, login_port=pg_lab.port, login_user=pg_lab.superuser, top_statements=0
        ),
    )
    assert result.get("failed") is not True, result.get("msg")
    assert result["max_connections"] == pg_lab.max_connections


def test_check_mode_reads_the_same(call, info_args, admin):
    before = live_pids(admin)
    result = call("pg_activity_info", info_args(), check=True)
    assert result.get("failed") is not True and result["changed"] is False
    assert live_pids(admin) == before
