"""pg_backends against a real connection flood: 520 idle sessions, idle-in-transaction ones, an
active long query, a superuser session and a blocked/blocking pair, all at once.

The tests in this file share the flood (opening 550 sessions once keeps the suite fast) and run
in file order: check mode, the cap, the partial cap, the real termination, the second run. Each
one computes what it expects from pg_stat_activity at that moment, so each assertion stands on
its own.
"""

from __future__ import annotations

import pytest

from pg_integration import SANDBOX_DB, TAG, activity, assert_clean_failure, live_pids

IDLE = 520
IN_TX = 30


@pytest.fixture(scope="module")
def flood(module_sessions):
    s = module_sessions
    idle = s.many_idle(IDLE, application=f"{TAG}-flood")
    in_tx = [s.idle_in_transaction(application=f"{TAG}-flood-tx") for _i in range(IN_TX)]
    superuser = s.superuser_idle()
    blocker, blocked = s.blocking_pair()
    active = s.active(seconds=120)
    return dict(
        idle={x.pid for x in idle},
        in_tx={x.pid for x in in_tx},
        superuser=superuser.pid,
        blocker=blocker.pid,
        blocked=blocked.pid,
        active=active.pid,
    )


@pytest.fixture
def args(su_login):
    def build(**overrides):
        base = dict(su_login, databases=[SANDBOX_DB], min_state_age="0", wait_timeout=10)
        base.update(overrides)
        return base

    return build


def idle_flood_pids(admin) -> set[int]:
    return {
        pid
        for pid, row in activity(admin).items()
        if row["application_name"] == f"{TAG}-flood" and row["state"] == "idle"
    }


def test_the_flood_is_really_there(flood, admin, call, su_login):
    rows = activity(admin)
    states = {pid: row["state"] for pid, row in rows.items()}
    assert flood["idle"] <= set(states) and all(states[p] == "idle" for p in flood["idle"])
    assert all(states[p] == "idle in transaction" for p in flood["in_tx"])
    assert states[flood["blocker"]] == "idle in transaction"
    assert states[flood["blocked"]] == "active"
    assert states[flood["active"]] == "active"
    assert states[flood["superuser"]] == "idle"
    info = call("pg_activity_info", dict(su_login, top_statements=0))
    assert info["by_application"][f"{TAG}-flood"] == IDLE
    assert info["by_application"][f"{TAG}-flood-tx"] == IN_TX
    assert info["by_state"]["idle"] >= IDLE + 1
    assert info["utilisation_percent"] >= round(100.0 * (IDLE + IN_TX + 5) / info["usable_connections"], 1)


def test_check_mode_lists_exactly_the_would_be_pids_and_kills_nothing(flood, admin, call, args):
    expected = flood["idle"] | flood["in_tx"] | {flood["blocker"]}
    before = live_pids(admin)
    result = call(
        "pg_backends", args(backend_states=["idle", "idle in transaction"], max_terminate=1000), check=True, diff=True
    )
    assert result.get("failed") is not True, result.get("msg")
    assert {b["pid"] for b in result["backends"]} == expected
    assert len(result["backends"]) == len(expected)  # no duplicates
    assert result["matched"] == len(expected)
    assert result["acted"] == 0
    assert result["changed"] is True
    assert {a["result"] for a in result["actions"]} == {"check mode"}
    assert {a["pid"] for a in result["actions"]} == expected
    assert result["diff"]["before"]["matching"] == len(expected)
    assert result["diff"]["after"]["matching"] == 0
    assert result["diff"]["before"]["client_backends"] - result["diff"]["after"]["client_backends"] == len(expected)
    assert live_pids(admin) == before, "check mode terminated something"


def test_cap_exceeded_fails_naming_max_terminate_and_kills_nothing(flood, admin, call, args):
    before = live_pids(admin)
    result = call("pg_backends", args(max_terminate=100))
    message = assert_clean_failure(result)
    assert "max_terminate" in message
    assert "cap_mode=partial" in message  # how to override
    assert result["guardrail"] == "max_terminate"
    assert result["matched"] == IDLE
    assert result.get("changed") is False
    assert result["actions"] == []
    assert live_pids(admin) == before, "a tripped guardrail terminated something"


def test_partial_cap_terminates_exactly_the_oldest_n(flood, admin, call, args):
    rows = activity(admin, idle_flood_pids(admin))
    oldest_first = sorted(rows.values(), key=lambda r: (r["state_change"], r["pid"]))
    expected = {r["pid"] for r in oldest_first[:50]}
    before = live_pids(admin)
    result = call("pg_backends", args(max_terminate=50, cap_mode="partial"))
    assert result.get("failed") is not True, result.get("msg")
    after = live_pids(admin)
    assert before - after == expected
    assert {b["pid"] for b in result["backends"]} == expected
    assert result["matched"] == IDLE
    assert result["acted"] == 50
    assert result["capped"] == IDLE - 50
    assert result["changed"] is True
    ages = [b["state_age_seconds"] for b in result["backends"]]
    assert ages == sorted(ages, reverse=True), "backends are not reported oldest first"


def test_terminates_exactly_the_matching_pids_and_spares_the_rest(flood, admin, call, args):
    expected = idle_flood_pids(admin)
    assert len(expected) == IDLE - 50
    before = live_pids(admin)
    result = call("pg_backends", args(max_terminate=1000))
    assert result.get("failed") is not True, result.get("msg")
    after = live_pids(admin)
    assert before - after == expected
    # The idle-in-transaction sessions, the active query, the superuser and the lock pair live.
    survivors = flood["in_tx"] | {flood[k] for k in ("superuser", "blocker", "blocked", "active")}
    assert survivors <= after
    assert result["acted"] == len(expected)
    assert {a["pid"]: a["result"] for a in result["actions"]} == {pid: "done" for pid in expected}
    assert all(a["action"] == "terminate" and a["timestamp"].endswith("Z") for a in result["actions"])


def test_second_run_is_unchanged(flood, admin, call, args):
    before = live_pids(admin)
    result = call("pg_backends", args(max_terminate=1000))
    assert result["changed"] is False
    assert result["matched"] == 0
    assert result["acted"] == 0
    assert result["backends"] == [] and result["actions"] == []
    assert live_pids(admin) == before


def test_idle_in_transaction_sessions_and_the_blocker_go_the_waiter_stays(flood, admin, call, args):
    expected = flood["in_tx"] | {flood["blocker"]}
    before = live_pids(admin)
    result = call("pg_backends", args(backend_states=["idle in transaction"], max_terminate=1000))
    assert result.get("failed") is not True, result.get("msg")
    after = live_pids(admin)
    assert before - after == expected
    assert {flood["blocked"], flood["active"], flood["superuser"]} <= after
    again = call(
        "pg_backends",
        args(backend_states=["idle in transaction"], max_terminate=1000, applications=[f"{TAG}-flood-tx"]),
    )
    assert again["changed"] is False
