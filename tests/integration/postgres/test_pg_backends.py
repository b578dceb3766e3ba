"""pg_backends against the real lab PostgreSQL: guardrails, filters, cancel, privileges, bad input.

Each test opens its own real sessions (fixture `sessions`), compares the set of live PIDs before
and after the module call, and asserts exactly which ones ended.
"""

from __future__ import annotations

import time

import psycopg2
import psycopg2.extras
import pytest
from psycopg2 import sql

from pg_integration import (
    SANDBOX_DB,
    TAG,
    activity,
    assert_clean_failure,
    free_port,
    live_pids,
    wait_for,
)


@pytest.fixture
def args(su_login):
    """Superuser login, scoped to the sandbox database, no age threshold."""

    def build(**overrides):
        base = dict(su_login, databases=[SANDBOX_DB], min_state_age="0")
        base.update(overrides)
        return base

    return build


def pids(*sessions) -> set[int]:
    return {s.pid for s in sessions}


def ended(admin, before: set[int]) -> set[int]:
    return before - live_pids(admin)


def state_ages(admin, wanted: set[int]) -> dict[int, float]:
    """pid -> seconds since its last state change, on the server's clock (as pg_backends measures)."""
    with admin.cursor() as cur:
        cur.execute("SELECT pid, EXTRACT(EPOCH FROM now() - state_change) FROM pg_stat_activity WHERE pid = ANY(%s)",
                    (list(wanted),))
        return {pid: float(age) for pid, age in cur.fetchall()}


def assert_ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


# --- guardrails ----------------------------------------------------------------------------


def test_superusers_are_spared_unless_include_superusers(sessions, admin, call, args):
    app = sessions.idle()
    su = sessions.superuser_idle()
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args()))
    assert ended(admin, before) == pids(app)
    assert {b["pid"] for b in result["backends"]} == pids(app)

    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(include_superusers=True, applications=[su.application])))
    assert ended(admin, before) == pids(su)
    assert result["backends"][0]["superuser"] is True


def test_own_backend_is_never_selected(admin, call, args, su_login):
    # The module's own session is the only active one in the sandbox with its application name.
    # Were it selected, the module would terminate itself and fail with a connection error.
    result = assert_ok(
        call(
            "pg_backends",
            args(
                login_db=SANDBOX_DB, backend_states=["active"], applications=["sre.runbooks"], include_superusers=True
            ),
        )
    )
    assert result["matched"] == 0
    assert result["changed"] is False


def test_walsenders_and_background_processes_are_never_selected(pg_lab, admin, call, args, su_login):
    repl = psycopg2.connect(
        host=pg_lab.host,
        port=pg_lab.port,
        user=pg_lab.superuser,
        password=pg_lab.superuser_password,
        dbname="postgres",
        application_name=f"{TAG}-walsender",
        connection_factory=psycopg2.extras.PhysicalReplicationConnection,
    )
    try:
        walsender = repl.get_backend_pid()
        wait_for(
            lambda: activity(admin, [walsender]).get(walsender, {}).get("backend_type") == "walsender",
            what="the walsender to show up",
        )
        row = activity(admin, [walsender])[walsender]
        assert row["state"] in ("idle", "active")
        every_state = [
            "active",
            "idle",
            "idle in transaction",
            "idle in transaction (aborted)",
            "fastpath function call",
            "disabled",
        ]
        # Even with every state and superusers included, and no other filter, nothing but client
        # backends is selected (check mode: this call never terminates anything).
        result = assert_ok(
            call(
                "pg_backends",
                dict(
                    su_login,
                    backend_states=every_state,
                    min_state_age="0",
                    include_superusers=True,
                    max_terminate=100000,
                ),
                check=True,
            )
        )
        selected = {b["pid"] for b in result["backends"]}
        assert walsender not in selected
        with admin.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")
            non_client = {r[0] for r in cur.fetchall()}
        assert non_client, "expected background processes in pg_stat_activity"
        assert not selected & non_client
        # And for real, aimed straight at the walsender.
        result = assert_ok(
            call(
                "pg_backends",
                dict(
                    su_login,
                    backend_states=every_state,
                    min_state_age="0",
                    include_superusers=True,
                    applications=[f"{TAG}-walsender"],
                ),
            )
        )
        assert result["matched"] == 0 and result["changed"] is False
        assert walsender in live_pids(admin, f"{TAG}-walsender")
    finally:
        repl.close()


# --- cancel, blocking_only -----------------------------------------------------------------


def test_cancelled_cancels_the_query_and_keeps_the_connection(sessions, admin, call, args):
    busy = sessions.active(seconds=60)
    idle = sessions.idle()
    before = live_pids(admin)
    result = assert_ok(
        call("pg_backends", args(state="cancelled", backend_states=["active"], applications=[busy.application]))
    )
    assert result["changed"] is True
    assert {a["pid"]: (a["action"], a["result"]) for a in result["actions"]} == {busy.pid: ("cancel", "done")}
    busy.thread.join(timeout=10)
    assert isinstance(busy.error, psycopg2.errors.QueryCanceled), busy.error
    assert live_pids(admin) == before, "cancelling dropped a connection"
    busy.conn.rollback()
    with busy.conn.cursor() as cur:  # the same connection still works
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] == busy.pid
    busy.conn.commit()
    assert idle.pid in live_pids(admin)
    again = assert_ok(
        call("pg_backends", args(state="cancelled", backend_states=["active"], applications=[busy.application]))
    )
    assert again["changed"] is False


def test_blocking_only_terminates_the_blocker_and_nothing_else(sessions, admin, call, args):
    blocker, blocked = sessions.blocking_pair()
    bystander = sessions.idle_in_transaction()
    busy = sessions.active(seconds=60)
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(backend_states=["idle in transaction", "active"], blocking_only=True)))
    assert ended(admin, before) == pids(blocker)
    assert {b["pid"] for b in result["backends"]} == pids(blocker)
    # The waiter got its lock and finished its UPDATE.
    blocked.thread.join(timeout=10)
    assert blocked.error is None
    assert pids(blocked, bystander, busy) <= live_pids(admin)
    again = assert_ok(call("pg_backends", args(backend_states=["idle in transaction", "active"], blocking_only=True)))
    assert again["changed"] is False


# --- filters --------------------------------------------------------------------------------


def test_client_addrs_matches_tcp_clients_and_never_the_unix_socket(sessions, admin, call, args):
    tcp = [sessions.idle() for _i in range(2)]
    local = [sessions.idle(via_socket=True) for _i in range(2)]
    assert all(activity(admin, [s.pid])[s.pid]["client_addr"] is None for s in local)
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(client_addrs=["10.0.0.0/8"])))
    assert result["matched"] == 0 and live_pids(admin) == before
    result = assert_ok(call("pg_backends", args(client_addrs=["127.0.0.0/8"])))
    assert ended(admin, before) == pids(*tcp)
    assert {b["client_addr"] for b in result["backends"]} == {"127.0.0.1"}
    assert pids(*local) <= live_pids(admin)


def test_users_filter(sessions, admin, call, args, throwaway_role, pg_lab):
    role, password = throwaway_role()
    theirs = [sessions.idle(user=role, password=password) for _i in range(2)]
    app = [sessions.idle() for _i in range(2)]
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(users=[role]), secrets=[password]))
    assert ended(admin, before) == pids(*theirs)
    assert {b["user"] for b in result["backends"]} == {role}
    assert pids(*app) <= live_pids(admin)


def test_databases_filter(sessions, admin, call, args, pg_lab):
    in_app_db = [sessions.idle(dbname=pg_lab.app_user, application=f"{TAG}-dbfilter") for _i in range(2)]
    in_sandbox = [sessions.idle(application=f"{TAG}-dbfilter") for _i in range(2)]
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(databases=[SANDBOX_DB], applications=[f"{TAG}-dbfilter"])))
    assert ended(admin, before) == pids(*in_sandbox)
    assert {b["database"] for b in result["backends"]} == {SANDBOX_DB}
    assert pids(*in_app_db) <= live_pids(admin)


def test_applications_and_exclude_applications(sessions, admin, call, args):
    a = [sessions.idle(application=f"{TAG}-app-a") for _i in range(2)]
    b = [sessions.idle(application=f"{TAG}-app-b") for _i in range(2)]
    c = [sessions.idle(application=f"{TAG}-app-c") for _i in range(2)]
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(applications=[f"{TAG}-app-a"])))
    assert ended(admin, before) == pids(*a)
    assert {x["application"] for x in result["backends"]} == {f"{TAG}-app-a"}

    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(exclude_applications=[f"{TAG}-app-b"])))
    assert ended(admin, before) == pids(*c)
    assert pids(*b) <= live_pids(admin)


MIN_STATE_AGE_S = 10


def test_min_state_age_spares_young_sessions(sessions, admin, call, args):
    old = [sessions.idle() for _i in range(3)]
    # The old sessions pass the threshold (the server's clock) before the young ones open; the young
    # ones stay under it as long as the module reads pg_stat_activity within 10 s of their opening:
    # ~1 s here, a few seconds with the suite in lanes (2.7 s was too close for that).
    wait_for(lambda: min(state_ages(admin, pids(*old)).values()) >= MIN_STATE_AGE_S + 0.2, timeout=60,
             what=f"the old sessions to be {MIN_STATE_AGE_S}s idle")
    young = [sessions.idle() for _i in range(3)]
    before = live_pids(admin)
    result = assert_ok(call("pg_backends", args(min_state_age=f"{MIN_STATE_AGE_S}s")))
    assert ended(admin, before) == pids(*old)
    assert all(b["state_age_seconds"] >= MIN_STATE_AGE_S for b in result["backends"])
    assert pids(*young) <= live_pids(admin)


def test_min_state_age_by_state_overrides_per_state(sessions, admin, call, args):
    idle = [sessions.idle() for _i in range(2)]
    in_tx = [sessions.idle_in_transaction() for _i in range(2)]
    time.sleep(0.3)
    before = live_pids(admin)
    # idle sessions need an hour, idle-in-transaction ones none: only the latter end.
    result = assert_ok(
        call(
            "pg_backends",
            args(
                backend_states=["idle", "idle in transaction"], min_state_age="0", min_state_age_by_state={"idle": "1h"}
            ),
        )
    )
    assert ended(admin, before) == pids(*in_tx)
    assert {b["state"] for b in result["backends"]} == {"idle in transaction"}
    assert pids(*idle) <= live_pids(admin)
    # The other way round, with the base age the one that protects.
    before = live_pids(admin)
    result = assert_ok(
        call("pg_backends", args(backend_states=["idle"], min_state_age="1h", min_state_age_by_state={"idle": "0.2s"}))
    )
    assert ended(admin, before) == pids(*idle)


# --- privileges -----------------------------------------------------------------------------


def test_non_superuser_without_pg_signal_backend_fails_and_terminates_nothing(
    sessions, admin, call, args, throwaway_role, pg_lab
):
    # pg_read_all_stats lets the role see other roles' sessions, so it finds what to terminate
    # and the module must stop before signalling: the role may not signal them.
    role, password = throwaway_role("pg_read_all_stats")
    victims = [sessions.idle() for _i in range(3)]
    before = live_pids(admin)
    result = call("pg_backends", args(login_user=role, login_password=password), secrets=[password])
    message = assert_clean_failure(result)
    assert "pg_signal_backend" in message
    assert role in message
    assert "Nothing was changed" in message
    assert live_pids(admin) == before
    assert pids(*victims) <= live_pids(admin)


def test_non_superuser_cannot_signal_superuser_sessions(sessions, admin, call, args, throwaway_role):
    role, password = throwaway_role("pg_read_all_stats", "pg_signal_backend")
    su = sessions.superuser_idle()
    before = live_pids(admin)
    result = call(
        "pg_backends",
        args(login_user=role, login_password=password, include_superusers=True, applications=[su.application]),
        secrets=[password],
    )
    message = assert_clean_failure(result)
    assert "superuser" in message
    assert live_pids(admin) == before


def test_non_superuser_with_pg_signal_backend_terminates(sessions, admin, call, args, throwaway_role):
    role, password = throwaway_role("pg_read_all_stats", "pg_signal_backend")
    victims = [sessions.idle() for _i in range(2)]
    before = live_pids(admin)
    assert_ok(call("pg_backends", args(login_user=role, login_password=password), secrets=[password]))
    assert ended(admin, before) == pids(*victims)


def test_plain_role_may_end_its_own_sessions(sessions, admin, call, args, throwaway_role):
    role, password = throwaway_role()
    own = [sessions.idle(user=role, password=password) for _i in range(2)]
    app = sessions.idle()
    before = live_pids(admin)
    assert_ok(
        call("pg_backends", args(login_user=role, login_password=password, login_db=SANDBOX_DB), secrets=[password])
    )
    assert ended(admin, before) == pids(*own)
    assert app.pid in live_pids(admin)


def test_plain_role_is_told_it_cannot_see_other_roles_sessions(sessions, admin, call, args, throwaway_role):
    role, password = throwaway_role()
    victims = [sessions.idle() for _i in range(3)]
    before = live_pids(admin)
    result = call("pg_backends", args(login_user=role, login_password=password), secrets=[password])
    assert live_pids(admin) == before
    assert pids(*victims) <= live_pids(admin)
    assert result.get("failed") or result.get("warnings"), result


# --- secrets in query texts -----------------------------------------------------------------


def test_password_in_a_sessions_last_query_is_masked(sessions, admin, call, args, throwaway_role):
    role, password = throwaway_role()
    session = sessions.idle(user=role, password=password)
    session.conn.autocommit = True  # so that ALTER ROLE stays the session's last query
    with session.conn.cursor() as cur:  # a role may change its own password
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    result = assert_ok(call("pg_backends", args(users=[role]), check=True, secrets=[password]))
    [backend] = result["backends"]
    assert backend["pid"] == session.pid
    assert "PASSWORD ?" in backend["query"]  # literals redacted (the password's too)


# --- bad input: a clear message, no traceback, nothing terminated ------------------------------

BAD_INPUT = [
    pytest.param(dict(backend_states=["idle", "sleeping"]), "backend_states", id="unknown-state"),
    pytest.param(dict(state="killed"), "state", id="unknown-target-state"),
    pytest.param(dict(min_state_age="-5m"), "min_state_age", id="negative-age"),
    pytest.param(dict(min_state_age="-1"), "min_state_age", id="negative-seconds"),
    pytest.param(dict(min_state_age="five minutes"), "min_state_age", id="unparsable-age"),
    pytest.param(dict(min_state_age_by_state={"sleeping": "1s"}), "min_state_age_by_state", id="by-state-unknown"),
    pytest.param(dict(min_state_age_by_state={"idle": "soon"}), "min_state_age_by_state[idle]", id="by-state-bad-age"),
    pytest.param(dict(max_terminate=0), "max_terminate", id="max-terminate-0"),
    pytest.param(dict(max_terminate=-3), "max_terminate", id="max-terminate-negative"),
    pytest.param(dict(cap_mode="some"), "cap_mode", id="unknown-cap-mode"),
    pytest.param(dict(wait_timeout=-1), "wait_timeout", id="negative-wait"),
    pytest.param(dict(backend_states=[]), "backend_states", id="no-states"),
]


@pytest.fixture
def victims(sessions, admin):
    """Idle sessions that a run with the sandbox defaults would terminate."""
    created = [sessions.idle() for _i in range(3)]
    return pids(*created)


@pytest.mark.parametrize("bad, option", BAD_INPUT)
def test_bad_input_fails_naming_the_option_and_terminates_nothing(bad, option, victims, admin, call, args):
    before = live_pids(admin)
    result = call("pg_backends", args(**bad))
    message = assert_clean_failure(result)
    assert option in message, message
    assert live_pids(admin) == before
    assert victims <= live_pids(admin)


def test_unreachable_port_names_the_target_and_the_next_step(victims, admin, call, args):
    port = free_port()
    result = call("pg_backends", args(login_port=port, connect_timeout=2))
    message = assert_clean_failure(result)
    assert f"127.0.0.1:{port}" in message
    assert "is the server running" in message
    assert victims <= live_pids(admin)


def test_wrong_password_names_the_user_and_the_next_step(victims, admin, call, args, pg_lab):
    result = call("pg_backends", args(login_password="not-the-password"), secrets=["not-the-password"])
    message = assert_clean_failure(result)
    assert f"127.0.0.1:{pg_lab.port} as {pg_lab.superuser}" in message
    assert "login_password" in message
    assert victims <= live_pids(admin)


def test_invalid_client_addr_fails_cleanly(victims, admin, call, args, pg_lab):
    result = call("pg_backends", args(client_addrs=["not-an-address"]))
    message = assert_clean_failure(result)
    assert "client_addrs: 'not-an-address' is not an IP address" in message
    assert victims <= live_pids(admin)


@pytest.mark.parametrize("age", ["nan", "inf"])
def test_non_finite_age_names_the_option(age, victims, admin, call, args):
    result = call("pg_backends", args(min_state_age=age))
    message = assert_clean_failure(result)
    assert victims <= live_pids(admin)
    assert "min_state_age" in message


# --- issue 9: cancel is for running queries ---------------------------------------------------


@pytest.mark.parametrize("states", [["idle"], ["idle in transaction"], ["active", "idle in transaction (aborted)"]])
def test_cancelled_on_sessions_without_a_running_query_is_refused(states, sessions, admin, call, args):
    """pg_cancel_backend on an idle (or idle-in-transaction) session cancels nothing: the module
    used to report changed on every run while the sessions stayed. It refuses instead."""
    idle = sessions.idle()
    in_tx = sessions.idle_in_transaction()
    before = activity(admin, pids(idle, in_tx))
    result = call("pg_backends", args(state="cancelled", backend_states=states))
    message = assert_clean_failure(result)
    assert "cancel" in message and "active" in message and "terminated" in message, message
    assert result.get("changed") is not True
    assert result.get("actions", []) == []
    after = activity(admin, pids(idle, in_tx))
    assert {p: a["state"] for p, a in after.items()} == {p: a["state"] for p, a in before.items()}


def test_a_backend_error_after_the_first_action_returns_the_actions_not_a_traceback(sessions, admin, call, args, pg_lab):
    """The module's own session is terminated (as a failover or an operator would) right after it
    ended its first batch of victims: it must report the actions it did and what failed.

    The module signals in batches of 50 in one statement; the watcher waits for a whole batch to
    end, or it could kill the module inside its first statement (whose outcome is then unknown)."""
    import threading

    from pg_integration import connect

    victims = sessions.many_idle(120)
    victim_pids = pids(*victims)
    watcher = connect(pg_lab, user=pg_lab.superuser, dbname="postgres", application=f"{TAG}-killer", autocommit=True)
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_module_after_its_first_action():
        with watcher.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(victim_pids),))
                if cur.fetchone()[0] <= len(victim_pids) - 50:
                    cur.execute("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'sre.runbooks' AND pid <> pg_backend_pid()")
                    killed.extend(row[0] for row in cur.fetchall())
                    return

    thread = threading.Thread(target=kill_the_module_after_its_first_action, daemon=True)
    thread.start()
    try:
        result = call("pg_backends", args(max_terminate=500, wait_timeout=5))
    finally:
        stop.set()
        thread.join(timeout=10)
        watcher.close()
    assert killed, "the module's session was never terminated: the fault was not injected"
    message = assert_clean_failure(result)
    assert "see actions" in message, message
    done = [a for a in result["actions"] if a["result"] in ("done", "still present after wait_timeout")]
    assert done, result["actions"]
    assert {a["pid"] for a in done} <= victim_pids
    assert result["changed"] is True
    # What it reports as done really ends.
    ended_pids = {a["pid"] for a in done}
    wait_for(lambda: not (ended_pids & live_pids(admin)), timeout=10, what="the signalled sessions to end")
