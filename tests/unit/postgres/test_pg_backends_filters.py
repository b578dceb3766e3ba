"""Unit tests for pg_backends.build_filters: module options -> the selection SQL's parameters."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.runbooks.plugins.modules import pg_backends
from ansible_collections.sre.runbooks.plugins.modules.pg_backends import STATES, build_filters

SQL_PARAMETERS = {
    "states",
    "min_age",
    "min_age_by_state",
    "databases",
    "users",
    "applications",
    "exclude_applications",
    "client_addrs",
    "include_superusers",
    "blocking_only",
    "min_xact_age",
    "only_pids",
}


def params(**overrides):
    """The module's params as AnsibleModule hands them over: every option present, defaults filled."""
    base = dict(
        state="terminated",
        backend_states=["idle"],
        min_state_age="5m",
        min_state_age_by_state=None,
        min_transaction_age=None,
        pids=None,
        databases=None,
        users=None,
        applications=None,
        exclude_applications=None,
        client_addrs=None,
        blocking_only=False,
        include_superusers=False,
        max_terminate=100,
        cap_mode="fail",
        wait_timeout=5.0,
    )
    base.update(overrides)
    return base


def test_defaults_map_to_the_runbook_filter():
    filters = build_filters(params())
    assert set(filters) == SQL_PARAMETERS
    assert filters["states"] == ["idle"]
    assert filters["min_age"] == 300.0
    assert json.loads(filters["min_age_by_state"]) == {}
    for name in ("databases", "users", "applications", "exclude_applications", "client_addrs"):
        assert filters[name] is None, name  # NULL in SQL: the filter is off
    assert filters["include_superusers"] is False
    assert filters["blocking_only"] is False


def test_every_sql_placeholder_has_a_parameter():
    import re

    from ansible_collections.sre.runbooks.plugins.module_utils import _postgres

    placeholders = set(re.findall(r"%\((\w+)\)s", _postgres.SELECT_BACKENDS_SQL))
    assert placeholders == SQL_PARAMETERS
    signal_sql = _postgres.SIGNAL_BACKENDS_SQL.format(
        function="pg_cancel_backend", predicates=_postgres._MATCH_PREDICATES
    )
    assert set(re.findall(r"%\((\w+)\)s", signal_sql)) == SQL_PARAMETERS | {"pids"}


@pytest.mark.parametrize("name", ["databases", "users", "applications", "exclude_applications"])
def test_list_filters_pass_through(name):
    assert build_filters(params(**{name: ["a", "b"]}))[name] == ["a", "b"]


def test_client_addrs_accepts_addresses_and_networks():
    nets = ["10.0.0.5", "10.0.0.0/8", "::1"]
    assert build_filters(params(client_addrs=nets))["client_addrs"] == nets


def test_client_addrs_rejects_a_typo_naming_the_option():
    with pytest.raises(ValueError, match="client_addrs: '10.0.0.300' is not an IP address"):
        build_filters(params(client_addrs=["10.0.0.300"]))


@pytest.mark.parametrize("value", [[], [""], [None, ""]])
@pytest.mark.parametrize("name", ["databases", "users", "applications", "exclude_applications", "client_addrs"])
def test_empty_list_filters_mean_no_filter(name, value):
    # `databases: "{{ db_exhaustion_databases or omit }}"`-style inputs: empty must not match nothing.
    assert build_filters(params(**{name: value}))[name] is None


def test_blank_entries_are_dropped_from_list_filters():
    assert build_filters(params(users=["app", "", None, "report"]))["users"] == ["app", "report"]


def test_states_are_passed_in_order_and_as_a_new_list():
    states = ["idle in transaction", "idle"]
    filters = build_filters(params(backend_states=states))
    assert filters["states"] == states
    filters["states"].append("active")
    assert states == ["idle in transaction", "idle"]


@pytest.mark.parametrize("age, seconds", [("0", 0.0), (0, 0.0), ("90s", 90.0), ("2m", 120.0), ("1.5", 1.5)])
def test_min_state_age_is_parsed_to_seconds(age, seconds):
    assert build_filters(params(min_state_age=age))["min_age"] == seconds


def test_min_state_age_by_state_becomes_json_seconds_per_state():
    filters = build_filters(
        params(
            backend_states=["idle", "idle in transaction"],
            min_state_age_by_state={"idle in transaction": "2m", "idle in transaction (aborted)": 30},
        )
    )
    assert json.loads(filters["min_age_by_state"]) == {
        "idle in transaction": 120.0,
        "idle in transaction (aborted)": 30.0,
    }


def test_every_documented_state_is_accepted_in_min_state_age_by_state():
    filters = build_filters(params(min_state_age_by_state={state: "1s" for state in STATES}))
    assert set(json.loads(filters["min_age_by_state"])) == set(STATES)


def test_states_match_pg_stat_activity_vocabulary():
    assert set(STATES) == {
        "active",
        "idle",
        "idle in transaction",
        "idle in transaction (aborted)",
        "fastpath function call",
        "disabled",
    }


@pytest.mark.parametrize("age", ["soon", "-5m", "-1", "", "5 minutes"])
def test_bad_min_state_age_names_the_option(age):
    with pytest.raises(ValueError, match=r"^min_state_age: "):
        build_filters(params(min_state_age=age))


def test_unknown_state_in_min_state_age_by_state_names_the_option_and_the_choices():
    with pytest.raises(ValueError) as err:
        build_filters(params(min_state_age_by_state={"sleeping": "5m"}))
    message = str(err.value)
    assert message.startswith("min_state_age_by_state: unknown state 'sleeping'")
    assert "idle in transaction" in message


@pytest.mark.parametrize("age", ["-1", "later"])
def test_bad_age_in_min_state_age_by_state_names_the_state(age):
    with pytest.raises(ValueError, match=r"^min_state_age_by_state\[idle\]: "):
        build_filters(params(min_state_age_by_state={"idle": age}))


@pytest.mark.parametrize("flag", ["include_superusers", "blocking_only"])
def test_boolean_flags_are_real_booleans(flag):
    assert build_filters(params(**{flag: True}))[flag] is True
    assert build_filters(params(**{flag: 1}))[flag] is True
    assert build_filters(params(**{flag: 0}))[flag] is False


class _SpecCaptured(Exception):
    pass


def test_module_defaults_are_the_safe_guardrails(monkeypatch):
    """The argument spec the module really builds: defaults a 3 a.m. operator can rely on."""
    captured = {}

    def fake_module(argument_spec, supports_check_mode):
        captured.update(argument_spec)
        captured["_check_mode"] = supports_check_mode
        raise _SpecCaptured

    monkeypatch.setattr(pg_backends, "AnsibleModule", fake_module)
    with pytest.raises(_SpecCaptured):
        pg_backends.main()
    assert captured["_check_mode"] is True
    assert captured["include_superusers"]["default"] is False
    assert captured["blocking_only"]["default"] is False
    assert captured["max_terminate"]["default"] == 100
    assert captured["cap_mode"]["default"] == "fail"
    assert captured["state"]["default"] == "terminated"
    # No default in the spec: build_filters picks [idle], or the blocker states with blocking_only.
    assert captured["backend_states"].get("default") is None
    assert build_filters(params(backend_states=None))["states"] == ["idle"]
    assert captured["min_transaction_age"].get("default") is None
    assert captured["pids"].get("default") is None
    assert captured["min_state_age"]["default"] == "5m"
    assert captured["login_password"]["no_log"] is True
    assert set(captured["backend_states"]["choices"]) == set(STATES)


# --- blocking_only without backend_states (issue 12) ---------------------------------------


def test_blocking_only_without_states_matches_every_state_that_can_hold_a_lock():
    filters = build_filters(params(backend_states=None, blocking_only=True))
    assert filters["states"] == ["active", "idle in transaction", "idle in transaction (aborted)"]


def test_blocking_only_cancel_without_states_matches_active_blockers_only():
    filters = build_filters(params(backend_states=None, blocking_only=True, state="cancelled"))
    assert filters["states"] == ["active"]
    assert pg_backends.refuse_cancel_without_query("cancelled", filters["states"]) is None


def test_explicit_states_win_over_the_blocking_default():
    assert build_filters(params(backend_states=["idle"], blocking_only=True))["states"] == ["idle"]


def test_without_blocking_only_or_states_the_default_is_idle():
    assert build_filters(params(backend_states=None))["states"] == ["idle"]


@pytest.mark.parametrize("age, seconds", [(None, None), ("", None), ("0", 0.0), ("2m", 120.0)])
def test_min_transaction_age_is_optional_and_parsed(age, seconds):
    assert build_filters(params(min_transaction_age=age))["min_xact_age"] == seconds


def test_bad_min_transaction_age_names_the_option():
    with pytest.raises(ValueError, match=r"^min_transaction_age: "):
        build_filters(params(min_transaction_age="soon"))


def test_pids_pass_through_and_an_empty_list_matches_nothing():
    assert build_filters(params())["only_pids"] is None
    assert build_filters(params(pids=[12, 34]))["only_pids"] == [12, 34]
    assert build_filters(params(pids=[]))["only_pids"] == []


@pytest.mark.parametrize("bad", [[0], [-3], [None]])
def test_bad_pids_name_the_option(bad):
    with pytest.raises(ValueError, match=r"^pids: "):
        build_filters(params(pids=bad))
