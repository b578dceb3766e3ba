"""The db_down decision (plugins/filter/db_down_verdict.py): every branch."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.filter.db_down_verdict import FilterModule, db_down_verdict


def plan(state, act=False, **extra):
    return dict({"changed": False, "verdict": {"state": state, "act": act, "reason": f"reason {state}"},
                 "primary": "p:1", "previous_primary": "p:1", "plan": {"candidate": "s:2" if act else None}}, **extra)


def test_healthy_nothing_to_do():
    v = db_down_verdict(plan("healthy"))
    assert (v["found"], v["act"], v["action"]) == (False, False, "none")
    assert v["summary"].startswith("healthy, nothing to do")


@pytest.mark.parametrize("state", ["nodes_unreachable", "standbys_astray", "primary_busy", "primary_starting",
                                   "primary_partitioned", "primary_down_unconfirmed"])
def test_report_only_states(state):
    v = db_down_verdict(plan(state), restart_command=["x"])
    assert (v["found"], v["act"], v["action"], v["state"]) == (True, False, "report", state)


def test_guardrail_is_reported():
    v = db_down_verdict({"failed": True, "msg": "guardrail 'split_brain' tripped", "guardrail": "split_brain",
                         "verdict": {"state": "split_brain", "act": False}})
    assert (v["act"], v["action"], v["guardrail"], v["state"]) == (False, "report", "split_brain", "split_brain")
    assert "split_brain" in v["summary"]


@pytest.mark.parametrize("failed", [True, False])
def test_guardrail_is_reported_whatever_failed_when_made_of_failed(failed):
    """The role registers pg_failover with failed_when: false: ansible-core then sets failed false."""
    v = db_down_verdict({"failed": failed, "msg": "guardrail 'split_brain' tripped: two primaries", "guardrail": "split_brain",
                         "verdict": {"state": "split_brain", "act": False}})
    assert (v["act"], v["action"], v["state"]) == (False, "report", "split_brain")
    assert v["summary"].startswith("guardrail 'split_brain' tripped") and "unexpected" not in v["summary"]
    v = db_down_verdict({"failed": failed, "msg": "bad input"})
    assert (v["state"], v["act"], v["summary"]) == ("error", False, "bad input")


def test_failure_without_verdict():
    v = db_down_verdict({"failed": True, "msg": "bad input"})
    assert (v["state"], v["act"], v["summary"]) == ("error", False, "bad input")


def test_host_up_restarts_with_a_command():
    v = db_down_verdict(plan("primary_down_host_up"), restart_command=["systemctl", "restart", "postgresql"])
    assert (v["act"], v["action"]) == (True, "restart")


def test_host_up_without_command_reports():
    v = db_down_verdict(plan("primary_down_host_up"), restart_command=[])
    assert (v["act"], v["action"]) == (False, "report") and "by hand" in v["summary"]


def test_primary_down_promotes():
    v = db_down_verdict(plan("primary_down", act=True))
    assert (v["act"], v["action"], v["candidate"]) == (True, "promote", "s:2")


def test_unknown_state_reports():
    v = db_down_verdict(plan("something_new"))
    assert (v["act"], v["action"]) == (False, "report") and "unexpected" in v["summary"]
    assert db_down_verdict(None)["state"] == "unknown"


def test_filter_registered():
    assert FilterModule().filters()["db_down_verdict"] is db_down_verdict


def test_astray_with_repointing_enabled_repoints():
    v = db_down_verdict(plan("standbys_astray", act=True))
    assert (v["found"], v["act"], v["action"]) == (True, True, "repoint")


STORAGE = {"disks": [{"mount": "/", "used_percent": 40.0, "available_bytes": 9},
                     {"mount": "/var/lib/postgresql", "used_percent": 100.0, "available_bytes": 0}],
           "disk_verdict": {"full": [{"mount": "/var/lib/postgresql", "reasons": ["100.0% used (limit 90.0%)"]}]}}
DATA = "/var/lib/postgresql/15/main"


@pytest.mark.parametrize("state,act", [("primary_down_host_up", False), ("primary_down", True)])
def test_full_data_disk_neither_restarts_nor_promotes(state, act):
    v = db_down_verdict(plan(state, act=act), restart_command=["x"], storage=STORAGE, data_directory=DATA)
    assert (v["state"], v["act"], v["action"]) == ("primary_disk_full", False, "report")
    assert v["data_mount"]["mount"] == "/var/lib/postgresql" and "100.0% used" in v["summary"]


def test_disk_full_elsewhere_or_not_measured_does_not_block():
    v = db_down_verdict(plan("primary_down_host_up"), restart_command=["x"], storage=STORAGE, data_directory="/srv/pg")
    assert (v["action"], v["data_mount"]["mount"], v["data_mount"]["full"]) == ("restart", "/", False)
    for storage in ({}, {"failed": True}, {"skipped": True}):
        assert db_down_verdict(plan("primary_down_host_up"), restart_command=["x"], storage=storage,
                               data_directory=DATA)["action"] == "restart"
    assert db_down_verdict(plan("primary_down_host_up"), restart_command=["x"], storage=STORAGE)["action"] == "restart"
    assert db_down_verdict(plan("healthy"), storage=STORAGE, data_directory=DATA)["action"] == "none"
