"""Unit tests for db_verdict's opt-in steps (issue 12): the exhaustion caused by blocked sessions
(runbook 003 "kill the blocker", through the lock_contention runbook) and the application restart
(runbook 001 "restart the application to refresh connections", once per incident). Every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.db_verdict import db_verdict

INCIDENT = "2026-12-03T03:00:00.500Z"


def reading(percent=90.0, clients=900, usable=1000, blocked=0, roots=(), by_application=None, by_user=None):
    return {"utilisation_percent": percent, "client_backends": clients, "usable_connections": usable,
            "by_application": by_application or {}, "by_user": by_user or {},
            "lock_summary": {"blocked_sessions": blocked, "root_blockers": len(roots)},
            "lock_tree": [{"pid": pid, "waiters": blocked} for pid in roots]}


def terminated(percent, backends=()):
    return {"changed": True, "acted": len(backends), "server": {"utilisation_percent": percent},
            "backends": list(backends)}


def unit(active_since, state="active", missing=False):
    if missing:
        return {"units": {"app.service": {"name": "app.service", "exists": False}}, "missing_units": ["app.service"]}
    # systemd_unit_info's shape: units keyed by the full unit name.
    return {"units": {"app.service": {"name": "app.service", "active_state": state, "active_since": active_since}},
            "missing_units": []}


APP = dict(restart_app=True, app_name="app.service", app_applications=["shop"], incident_started=INCIDENT)


# --- blocked sessions (runbook 003) -----------------------------------------------------------

def test_blocked_sessions_piling_up_are_recognised_and_acted_on_when_allowed():
    v = db_verdict(reading(blocked=800, roots=[4242]), kill_blockers=True)
    b = v["blockers"]
    assert b["cause"] is True and b["act"] is True and b["skipped"] is None
    assert (b["waiting"], b["share_percent"], b["root_blockers"], b["root_pids"]) == (800, 88.9, 1, [4242])
    assert "lock_contention" in v["summary"] and "4242" in v["summary"]


def test_blocked_sessions_without_the_opt_in_are_reported_with_the_override():
    v = db_verdict(reading(blocked=800, roots=[4242]))
    b = v["blockers"]
    assert b["cause"] is True and b["act"] is False
    assert "run lock_contention" in b["skipped"] and "db_exhaustion_kill_blockers: true" in b["skipped"]
    assert b["skipped"] in v["summary"]
    # ... and the failed verify names it too, not only "find the leaking application".
    v = db_verdict(reading(blocked=800, roots=[4242]), terminated=terminated(90.0), after=reading(90.0))
    assert v["healed"] is False and "run lock_contention" in v["verify_message"]


@pytest.mark.parametrize("blocked, roots, share, cause", [
    (449, [1], 50, False),      # 49.9 % wait: under the share, idle sessions are the story
    (450, [1], 50, True),       # exactly the share
    (450, [], 50, False),       # waiting in a cycle, no root blocker: a deadlock the server breaks
    (100, [1], "10", True),     # the share as an inventory string
    (0, [], 50, False),
])
def test_the_blocked_share_decides_the_cause(blocked, roots, share, cause):
    v = db_verdict(reading(blocked=blocked, roots=roots), kill_blockers=True, blocked_share=share)
    assert v["blockers"]["cause"] is cause and v["blockers"]["act"] is cause


def test_blocked_sessions_under_the_threshold_are_not_this_runbooks_business():
    v = db_verdict(reading(percent=10.0, clients=100, blocked=90, roots=[7]), kill_blockers=True)
    assert v["healthy"] is True and v["blockers"]["cause"] is True
    assert v["blockers"]["act"] is False and v["blockers"]["skipped"] is None


def test_unknown_client_count_is_no_cause():
    before = {"utilisation_percent": 95.0, "lock_summary": {"blocked_sessions": 5}, "lock_tree": [{"pid": 1}]}
    v = db_verdict(before, kill_blockers=True)
    assert v["blockers"]["cause"] is False and v["blockers"]["share_percent"] is None


def test_bad_shares_are_refused():
    with pytest.raises(AnsibleFilterError, match="blocked_share"):
        db_verdict(reading(), blocked_share="half")
    with pytest.raises(AnsibleFilterError, match="app_min_share"):
        db_verdict(reading(), app_min_share=None)


# --- application restart (runbook 001) --------------------------------------------------------

def test_no_app_decision_before_terminating():
    assert db_verdict(reading(), **APP)["app"] is None


def test_terminating_was_enough_so_no_restart():
    v = db_verdict(reading(), terminated=terminated(30.0), **APP)
    assert v["app"]["needed"] is False and v["app"]["restart"] is False and v["app"]["skipped"] is None


def test_default_off_never_restarts():
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_name="app.service", app_applications=["shop"])
    assert v["app"]["needed"] is True and v["app"]["restart"] is False
    assert "db_exhaustion_restart_app: false" in v["app"]["skipped"]
    assert "restart app.service" not in v["summary"]


def test_restart_when_the_app_dominates_what_terminating_left():
    v = db_verdict(reading(by_application={"shop": 800, "other": 100}), terminated=terminated(90.0), **APP)
    assert v["app"]["restart"] is True and v["app"]["sessions"] == 800 and v["app"]["share_percent"] == 88.9
    assert "restart app.service (once per incident)" in v["summary"]


def test_the_fresh_reading_is_the_evidence_when_given():
    # After a pooler restart the app holds far less: the fresh reading says under the threshold.
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_reading=reading(percent=20.0, clients=200, by_application={"shop": 150}), **APP)
    assert v["app"]["needed"] is False and v["app"]["restart"] is False
    # A skipped reading task (Ansible's {"skipped": true}) is no evidence: the terminate result is.
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_reading={"skipped": True, "changed": False}, **APP)
    assert v["app"]["restart"] is True


def test_someone_else_holds_the_connections_so_no_restart():
    v = db_verdict(reading(by_application={"shop": 100, "batch": 800}), terminated=terminated(90.0), **APP)
    assert v["app"]["restart"] is False and v["app"]["share_percent"] == 11.1
    assert "under db_exhaustion_app_min_share 50%" in v["app"]["skipped"]


def test_by_user_when_no_application_names():
    args = {**APP, "app_applications": [], "app_users": ["shop_rw"]}
    v = db_verdict(reading(by_user={"shop_rw": 700}), terminated=terminated(90.0), **args)
    assert v["app"]["restart"] is True and v["app"]["sessions"] == 700


def test_no_evidence_configured_refuses():
    args = {**APP, "app_applications": [], "app_users": []}
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0), **args)
    assert v["app"]["restart"] is False and "no evidence" in v["app"]["skipped"]


def test_no_app_named_refuses():
    args = {**APP, "app_name": ""}
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0), **args)
    assert v["app"]["restart"] is False and "db_exhaustion_app_unit" in v["app"]["skipped"]


def test_check_mode_judges_what_would_be_left():
    # 900 clients of 1000; 700 idle shop sessions would be terminated: 20 % left, under 80 %.
    gone = [{"pid": n, "application": "shop", "user": "shop_rw"} for n in range(700)]
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0, gone), check_mode=True, **APP)
    assert v["app"]["needed"] is False
    # 100 would go: 80 % left, still over; the app holds 700 of the 800 left.
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0, gone[:100]),
                   check_mode=True, **APP)
    assert v["app"]["needed"] is True and v["app"]["restart"] is True
    assert (v["app"]["sessions"], v["app"]["share_percent"]) == (700, 87.5)


def test_systemd_unit_missing_is_skipped():
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit(None, missing=True), **APP)
    assert v["app"]["restart"] is False and "not found" in v["app"]["skipped"]


def test_systemd_unit_started_before_the_incident_is_restarted():
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit("2026-12-03T02:59:59Z"), **APP)
    assert v["app"]["restart"] is True and v["app"]["already_restarted_at"] is None


@pytest.mark.parametrize("since", ["2026-12-03T03:00:00Z", "2026-12-03T03:04:00Z"])
def test_systemd_unit_active_since_the_incident_is_not_restarted_again(since):
    # Same-second: systemd's timestamp has a one-second resolution, the incident start is truncated.
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit(since), **APP)
    assert v["app"]["restart"] is False and v["app"]["skipped"] is None
    assert v["app"]["already_restarted_at"] == since
    assert "already restarted during this incident" in v["summary"]


@pytest.mark.parametrize("since", ["2026-12-03T02:00:00Z", "2026-12-03T03:04:00Z", None])
def test_systemd_unit_not_active_is_never_restarted(since):
    # Failed after this runbook's restart, or stopped before: not restarted (again) by this step.
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit(since, state="failed"), **APP)
    assert v["app"]["restart"] is False and "is failed, not active" in v["app"]["skipped"]


def test_no_incident_start_means_no_once_guard():
    args = {**APP, "incident_started": None}
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit("2026-12-03T03:04:00Z"), **args)
    assert v["app"]["restart"] is True


def test_bad_incident_start_is_refused():
    args = {**APP, "incident_started": "yesterday"}
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit("2026-12-03T03:04:00Z"), **args)


def test_unreadable_unit_start_refuses_rather_than_risk_a_second_restart():
    v = db_verdict(reading(by_application={"shop": 800}), terminated=terminated(90.0),
                   app_unit=unit("Thu 2026-12-03 03:04:00 UTC"), **APP)
    assert v["app"]["restart"] is False and "cannot tell when app.service last started" in v["app"]["skipped"]
