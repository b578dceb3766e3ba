"""pg_statements against the real lab PostgreSQL (pg_stat_statements preloaded, installed in the
database postgres, not in the sandbox): top statements ordered by mean and total time, literals
redacted, long-running active queries, EXPLAIN of a normalised statement (nothing executed), a
missing extension reported, reset only when asked and only outside check mode."""

from __future__ import annotations

import json

import pytest

from pg_integration import SANDBOX_DB, TAG, activity, assert_clean_failure, connect, free_port, live_pids, wait_for

COMMENT_SECRET = "slowq-comment-literal-8c1f"


@pytest.fixture(scope="module")
def workload(pg_lab, admin):
    """Statements in the sandbox database that pg_stat_statements records: a slow read, fast point
    reads, an update and a utility statement that keeps its literal. The statistics are reset first:
    in a full run the tests before these (lock waits, floods) leave slower and more frequent
    statements in the same database, and the order asserted below is this workload's."""
    with admin.cursor() as cur:
        cur.execute("SELECT pg_stat_statements_reset()")
    conn = connect(pg_lab, application=f"{TAG}-stmt-load", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_sleep(0.3)")
        for i in range(1, 6):
            cur.execute("SELECT balance FROM accounts WHERE id = %s", (i,))
        cur.execute("UPDATE accounts SET balance = balance WHERE id = 10")
        cur.execute(f"COMMENT ON TABLE accounts IS '{COMMENT_SECRET}'")
    conn.close()


@pytest.fixture
def args(su_login):
    def build(**overrides):
        return dict(su_login, login_db="postgres", databases=[SANDBOX_DB], **overrides)
    return build


def test_top_statements_by_mean_with_literals_redacted(workload, call, args, admin):
    before = live_pids(admin)
    result = call("pg_statements", args(top=20))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False and result["reset"] is False and result["actions"] == []
    assert live_pids(admin) == before
    statements = result["statements"]
    assert statements["available"] is True and statements["order_by"] == "mean"
    top = statements["top"]
    means = [s["mean_ms"] for s in top]
    assert means == sorted(means, reverse=True)
    assert {s["database"] for s in top} == {SANDBOX_DB}
    sleep = next(s for s in top if "pg_sleep" in s["query"])
    assert sleep["query"] == "SELECT pg_sleep($1)" and sleep["mean_ms"] >= 300 and sleep["kind"] == "read"
    assert top[0] is sleep
    point = next(s for s in top if "FROM accounts WHERE id" in s["query"])
    assert point["calls"] == 5 and point["rows"] == 5 and {"total_ms", "max_ms", "queryid", "user"} <= set(point)
    comment = next(s for s in top if s["query"].startswith("COMMENT ON TABLE"))
    assert comment["query"] == "COMMENT ON TABLE accounts IS ?" and comment["kind"] == "utility"
    assert COMMENT_SECRET not in json.dumps(result)
    with admin.cursor() as cur:  # the literal really is in pg_stat_statements: the redaction did the work
        cur.execute("SELECT count(*) FROM pg_stat_statements WHERE query LIKE %s", (f"%{COMMENT_SECRET}%",))
        assert cur.fetchone()[0] >= 1


def test_order_by_total(workload, call, args):
    top = call("pg_statements", args(top=20, order_by="total"))["statements"]["top"]
    totals = [s["total_ms"] for s in top]
    assert totals == sorted(totals, reverse=True) and statements_named(top, "pg_sleep")


def statements_named(top, word):
    return [s for s in top if word in s["query"]]


def test_explain_plans_reads_without_running_anything(workload, call, args, admin):
    # Sessions named sre.runbooks that were there before (in a full run: pgbouncer's pooled server
    # connections keep the application_name of the playbook that opened them) are not this test's.
    before = live_pids(admin, "sre.runbooks")
    result = call("pg_statements", args(top=20, explain=True, explain_limit=20))
    top = result["statements"]["top"]
    point = statements_named(top, "FROM accounts WHERE id")[0]
    assert any("accounts" in line for line in point["plan"]), point
    assert point.get("plan_generic") is True and "explain_skipped" not in point
    sleep = statements_named(top, "pg_sleep")[0]
    assert sleep["plan"] and "explain_skipped" not in sleep
    update = next(s for s in top if s["query"].startswith("UPDATE accounts"))
    assert "write" in update["explain_skipped"] and "plan" not in update
    comment = next(s for s in top if s["query"].startswith("COMMENT ON"))
    assert "utility" in comment["explain_skipped"]
    # Nothing ran: pg_sleep($1) was planned, not executed (no new call recorded), no session left.
    again = call("pg_statements", args(top=20))["statements"]["top"]
    assert statements_named(again, "pg_sleep")[0]["calls"] == sleep["calls"]
    # (a backend outlives its client by a moment: the module has exited, its backend may still be listed)
    wait_for(lambda: not live_pids(admin, "sre.runbooks") - before, 30, "the module's sessions to be gone")


def test_long_running_queries_are_listed_redacted(sessions, call, args, admin):
    slow = sessions.active(seconds=60, application=f"{TAG}-stmt-slow")
    literal = sessions._open("active", f"{TAG}-stmt-literal")
    literal.conn.commit()
    literal.run_in_thread("SELECT pg_sleep(60), 'customer@example.com' AS email")
    su = sessions._open("active", f"{TAG}-stmt-su", user=sessions.lab.superuser)
    su.conn.commit()
    su.run_in_thread("SELECT pg_sleep(60)")
    wait_for(lambda: all(activity(admin, [s.pid]).get(s.pid, {}).get("state") == "active" for s in (literal, su)),
             what="the sleeping sessions")
    wait_for(lambda: youngest_query_age(admin, [slow.pid, literal.pid, su.pid]) >= 0.4, what="the queries to age")
    result = call("pg_statements", args(top=0, long_query_threshold="0.2s"))
    rows = {r["pid"]: r for r in result["long_running"]}
    assert {slow.pid, literal.pid, su.pid} <= set(rows)
    assert rows[slow.pid]["application"] == f"{TAG}-stmt-slow" and rows[slow.pid]["superuser"] is False
    assert rows[slow.pid]["wait_event"] == "PgSleep" and rows[slow.pid]["blocked_by"] == []
    assert rows[slow.pid]["kind"] == "read" and rows[slow.pid]["duration_seconds"] >= 0.2
    assert rows[slow.pid]["query"] == "SELECT pg_sleep(?)"
    assert rows[literal.pid]["query"] == "SELECT pg_sleep(?), ? AS email"
    assert "customer@example.com" not in json.dumps(result)
    assert rows[su.pid]["superuser"] is True
    assert result["long_running_total"] >= 3 and result["active_queries"] >= 3
    durations = [r["duration_seconds"] for r in result["long_running"]]
    assert durations == sorted(durations, reverse=True)
    assert result["statements"]["top"] == []
    # Under the threshold: not listed.
    assert slow.pid not in {r["pid"] for r in call("pg_statements", args(top=0, long_query_threshold="1h"))["long_running"]}


def youngest_query_age(admin, pids) -> float:
    """The age of the youngest of ``pids``' current queries (0 when one is not active)."""
    with admin.cursor() as cur:
        cur.execute("SELECT min(CASE WHEN state = 'active' THEN EXTRACT(EPOCH FROM now() - query_start) ELSE 0 END), "
                    "count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
        age, count = cur.fetchone()
        return float(age) if count == len(pids) and age is not None else 0.0


def test_missing_extension_is_reported_not_a_traceback(call, su_login):
    result = call("pg_statements", dict(su_login, login_db=SANDBOX_DB, top=5))
    assert result.get("failed") is not True, result.get("msg")
    assert result["statements"]["available"] is False and result["statements"]["top"] == []
    assert f"not installed in database {SANDBOX_DB}" in result["statements"]["reason"]
    assert "CREATE EXTENSION" in result["statements"]["reason"]
    assert isinstance(result["long_running"], list)
    failed = call("pg_statements", dict(su_login, login_db=SANDBOX_DB, top=0, reset=True))
    assert "nothing was reset" in assert_clean_failure(failed)


@pytest.mark.parametrize("bad, message", [
    (dict(top=-1), "top must be between"),
    (dict(long_query_threshold="soon"), "long_query_threshold"),
    (dict(query_text_limit=0), "query_text_limit"),
])
def test_bad_input_fails_clearly(call, su_login, bad, message):
    assert message in assert_clean_failure(call("pg_statements", dict(su_login, **bad)))


def test_reset_only_when_asked_and_not_in_check_mode(workload, call, args, admin):
    def recorded() -> int:
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                        "WHERE d.datname = %s", (SANDBOX_DB,))
            return cur.fetchone()[0]
    assert recorded() > 0
    check = call("pg_statements", args(top=0, reset=True), check=True)
    assert check["changed"] is True and check["reset"] is True
    assert [a["result"] for a in check["actions"]] == ["check mode"]
    assert recorded() > 0, "check mode reset pg_stat_statements"
    done = call("pg_statements", args(top=0, reset=True))
    assert done["changed"] is True and [(a["action"], a["result"]) for a in done["actions"]] == [
        ("reset pg_stat_statements", "done")]
    assert recorded() == 0


def test_a_non_superuser_without_rights_cannot_reset(call, pg_lab):
    login = dict(login_host=pg_lab.host, login_port=pg_lab.port, login_user=pg_lab.app_user,
                 login_password=pg_lab.app_password, login_db="postgres")
    result = call("pg_statements", dict(login, top=1, reset=True))
    message = assert_clean_failure(result)
    assert "pg_stat_statements_reset() failed" in message
    assert result["statements"]["available"] is True


def test_connection_error_names_the_target(call, su_login):
    port = free_port()
    message = assert_clean_failure(call("pg_statements", dict(su_login, login_port=port, connect_timeout=2)))
    assert f":{port}" in message
