"""Unit tests for the slow_queries decisions (filter sre.runbooks.slow_queries_verdict), every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.slow_queries_verdict import FilterModule, slow_queries_verdict


def query(pid=100, duration=600.0, user="app", application="web", kind="read", **kw):
    base = dict(pid=pid, user=user, database="app", application=application, kind=kind, superuser=False,
                duration_seconds=duration, query_start=f"2026-01-01T00:00:{pid % 60:02d}.000000Z",
                wait_event_type="Timeout", wait_event="PgSleep", blocked_by=[], query="SELECT pg_sleep($1)")
    base.update(kw)
    return base


def info(*rows):
    return {"long_running": list(rows), "long_running_total": len(rows)}


def actions(*pids, result="done"):
    return {"actions": [{"pid": p, "result": result, "action": "cancel"} for p in pids]}


def test_registered_as_a_filter():
    assert FilterModule().filters()["slow_queries_verdict"] is slow_queries_verdict


def test_no_long_running_query_is_healthy():
    v = slow_queries_verdict(info())
    assert v["healthy"] is True and v["act"] is False and v["cancel_pids"] == []
    assert v["summary"].startswith("healthy, nothing to do")


def test_queries_under_min_duration_are_healthy():
    v = slow_queries_verdict(info(query(duration=30)), min_duration="1m")
    assert v["healthy"] is True and v["queries"] == []


def test_no_long_running_list_does_nothing():
    v = slow_queries_verdict({"failed": True})
    assert v["act"] is False and v["healthy"] is False and "nothing done" in v["reason"]


def test_one_runaway_query_is_cancelled():
    v = slow_queries_verdict(info(query(pid=7)), min_duration="5m")
    assert v["act"] is True and v["cancel_pids"] == [7] and v["healed"] is None
    assert v["queries"][0]["action"] == "cancel" and v["reported"] is None


@pytest.mark.parametrize("row, why", [
    (query(superuser=True, user="postgres"), "superuser"),
    (query(blocked_by=[42]), "lock contention"),
    (query(kind="utility"), "utility statement"),
    (query(kind="write"), "write statement"),
    (query(application="pg_dump"), "protected"),
    (query(user="etl"), "protected"),
    (query(application="batch"), "not in slow_queries_cancel_applications"),
    (query(user="other"), "not in slow_queries_cancel_users"),
])
def test_each_guard_spares_a_query(row, why):
    v = slow_queries_verdict(info(row), cancel_kinds=["read"], protect_applications=["pg_dump"], protect_users=["etl"],
                             cancel_applications=["web", "pg_dump"], cancel_users=["app", "postgres", "etl"])
    assert v["act"] is False and v["healthy"] is False and v["cancel_pids"] == []
    assert v["queries"][0]["action"] == "none" and why in v["queries"][0]["why"], v["queries"][0]["why"]
    assert v["reported"] == "no slow query may be cancelled (see verdict)"
    assert "none may be cancelled" in v["reason"]


def test_empty_allow_lists_allow_any_application_and_user():
    v = slow_queries_verdict(info(query(pid=1, application="x", user="y")), cancel_applications=[], cancel_users=None)
    assert v["cancel_pids"] == [1]


def test_only_the_allowed_are_picked_and_the_rest_left_alone():
    v = slow_queries_verdict(info(query(pid=1), query(pid=2, application="billing")), cancel_applications=["web"])
    assert v["cancel_pids"] == [1] and "1 other(s) left alone" in v["reason"]


def test_more_than_the_cap_refuses():
    v = slow_queries_verdict(info(*(query(pid=p) for p in range(1, 5))), max_cancel=3)
    assert v["act"] is False and v["refused"] is True and v["cancel_pids"] == []
    assert "guardrail max_cancel" in v["reason"] and "slow_queries_max_cancel" in v["reason"]
    assert v["reported"].startswith("refused by the max_cancel guard")


def test_the_cap_counts_only_cancellable_queries():
    rows = [query(pid=1), query(pid=2, superuser=True), query(pid=3, superuser=True)]
    assert slow_queries_verdict(info(*rows), max_cancel=1)["cancel_pids"] == [1]


def test_verify_healed_when_the_query_is_gone_or_restarted():
    before = info(query(pid=1), query(pid=2))
    after = info(query(pid=2, query_start="2026-01-01T01:00:00.000000Z"))
    v = slow_queries_verdict(before, cancelled=actions(1, 2), after=after)
    assert v["healed"] is True and v["still_running"] == [] and "stopped" in v["verify_message"]


def test_verify_names_the_query_that_still_runs():
    before = info(query(pid=1), query(pid=2))
    v = slow_queries_verdict(before, cancelled=actions(1, 2), after=info(query(pid=2)))
    assert v["healed"] is False and v["still_running"] == [2] and "still run" in v["verify_message"]


def test_verify_mentions_spared_pids():
    v = slow_queries_verdict(info(query(pid=1), query(pid=2)), cancelled=actions(1), after=info())
    assert v["healed"] is True and "[2] had already finished" in v["verify_message"]


def test_verify_without_the_cancel_result():
    v = slow_queries_verdict(info(query(pid=1)), after=info())
    assert v["healed"] is True


def test_no_verify_when_not_acting():
    v = slow_queries_verdict(info(query(pid=1, superuser=True)), after=info(query(pid=1, superuser=True)))
    assert v["healed"] is None and v["verify_message"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"min_duration": "soon"}, "min_duration"),
    ({"max_cancel": "many"}, "max_cancel must be an integer"),
    ({"max_cancel": 0}, "at least 1"),
    ({"cancel_kinds": ["ddl"]}, "unknown kind"),
    ({"cancel_applications": 5}, "must be a list"),
])
def test_bad_options_fail_clearly(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        slow_queries_verdict(info(), **kwargs)


def test_a_single_string_is_a_one_item_list():
    v = slow_queries_verdict(info(query(pid=1, application="web")), cancel_applications="web", cancel_kinds="read")
    assert v["cancel_pids"] == [1]
