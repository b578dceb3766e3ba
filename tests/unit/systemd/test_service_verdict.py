"""Unit tests for the service-down verdict (plugins/module_utils/_systemd.py service_verdict,
unit_verdict) and the unit list of systemd_unit_info: every branch of the decision."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _systemd
from ansible_collections.sre.runbooks.plugins.modules import systemd_unit_info


def unit(name="app.service", exists=True, active="active", sub="running", result="success",
         n_restarts=0, active_for=600, probe=None, journal=None):
    healthy = active == "active" and sub != "auto-restart"
    return {"name": name, "exists": exists, "load_state": "loaded" if exists else "not-found",
            "active_state": active, "sub_state": sub, "result": result, "n_restarts": n_restarts,
            "active_for_seconds": active_for if active == "active" else None, "healthy": healthy,
            "restart_looping": sub == "auto-restart", "probe": probe, "oom_killed": False,
            "journal": journal or []}


FAILED = dict(active="failed", sub="failed", result="signal")
PROBE_OK = {"ok": True, "type": "http", "target": "http://127.0.0.1/", "error": None}
PROBE_BAD = {"ok": False, "type": "http", "target": "http://127.0.0.1/", "error": "timed out"}


@pytest.mark.parametrize("state, status, action", [
    (unit(), "stable", "none"),
    (unit(probe=PROBE_OK), "stable", "none"),
    (unit(exists=False, active="inactive", sub="dead"), "missing", "report"),
    (unit(active="activating", sub="auto-restart", n_restarts=1), "looping", "report"),
    (unit(n_restarts=5, active_for=4), "looping", "report"),       # sampled in its brief running phase
    (unit(n_restarts=3, **FAILED), "looping", "report"),          # at the threshold, not active
    (unit(n_restarts=2, **FAILED), "down", "restart"),            # under the threshold
    (unit(**FAILED), "down", "restart"),
    (unit(active="inactive", sub="dead"), "down", "restart"),
    (unit(probe=PROBE_BAD), "down", "restart"),                   # active but hung
    (unit(n_restarts=5, active_for=60), "stable", "none"),        # recovered: up for stable_seconds
    (unit(n_restarts=5, active_for=3600), "stable", "none"),
])
def test_unit_verdict_branches(state, status, action):
    verdict = _systemd.unit_verdict(state, restart_loop_threshold=3, stable_seconds=60)
    assert (verdict["status"], verdict["action"]) == (status, action)
    assert verdict["reason"]


def test_a_recovered_unit_says_why_it_is_left_alone():
    reason = _systemd.unit_verdict(unit(n_restarts=7, active_for=120), 3, 60)["reason"]
    assert "recovered" in reason and "7" in reason


def test_thresholds_are_the_callers():
    state = unit(n_restarts=5, active_for=100)
    assert _systemd.unit_verdict(state, 3, 60)["status"] == "stable"
    assert _systemd.unit_verdict(state, 3, 300)["status"] == "looping"
    assert _systemd.unit_verdict(state, 10, 300)["status"] == "stable"


def states_of(*units):
    return {u["name"]: u for u in units}


def test_healthy_units_mean_nothing_to_do():
    states = states_of(unit("a.service", probe=PROBE_OK), unit("b.service"))
    verdict = _systemd.service_verdict(states, ["a.service", "b.service"], 3, 60, max_restarts=5)
    assert verdict["healthy"] is True
    assert verdict["act"] is False
    assert verdict["down"] == verdict["to_restart"] == verdict["looping"] == []
    assert verdict["stable"] == ["a.service", "b.service"]
    assert verdict["problem"] is None
    assert verdict["summary"].startswith("healthy, nothing to do")
    assert "still_down" not in verdict


def test_down_units_are_restarted_in_the_given_order_and_looping_ones_reported():
    states = states_of(unit("db.service", **FAILED), unit("loop.service", sub="auto-restart", active="activating"),
                       unit("web.service", probe=PROBE_BAD), unit("ok.service"))
    order = ["db.service", "loop.service", "web.service", "ok.service"]
    verdict = _systemd.service_verdict(states, order, 3, 60)
    assert verdict["down"] == ["db.service", "loop.service", "web.service"]
    assert verdict["looping"] == ["loop.service"]
    assert verdict["to_restart"] == ["db.service", "web.service"]
    assert verdict["act"] is True and verdict["healthy"] is False
    assert verdict["report_units"] == ["loop.service"]
    assert "loop.service" in verdict["evidence"]
    assert "crash-looping" in verdict["summary"] and "db.service, web.service" in verdict["summary"]


def test_only_looping_units_do_not_act():
    verdict = _systemd.service_verdict(states_of(unit("x.service", n_restarts=4, **FAILED)), ["x.service"], 3, 60)
    assert verdict["act"] is False
    assert verdict["looping"] == ["x.service"]
    assert verdict["healthy"] is False


def test_the_guardrail_refuses_with_its_override():
    states = states_of(unit("a.service", **FAILED), unit("b.service", **FAILED))
    verdict = _systemd.service_verdict(states, ["a.service", "b.service"], 3, 60, max_restarts=1)
    assert verdict["act"] is False and verdict["guardrail_tripped"] is True
    assert verdict["to_restart"] == []
    assert "guardrail 'service_down_max_restarts' tripped" in verdict["problem"]
    assert "-e service_down_max_restarts=2" in verdict["problem"]
    assert _systemd.service_verdict(states, ["a.service", "b.service"], 3, 60, max_restarts=2)["act"] is True


def test_a_missing_unit_refuses():
    states = states_of(unit("a.service", **FAILED), unit("ghost.service", exists=False, active="inactive", sub="dead"))
    verdict = _systemd.service_verdict(states, ["a.service", "ghost.service"], 3, 60)
    assert verdict["missing"] == ["ghost.service"]
    assert verdict["act"] is False and verdict["healthy"] is False
    assert "ghost.service not found" in verdict["problem"]


@pytest.mark.parametrize("after, settled, still_down", [
    (unit("a.service"), True, []),
    (unit("a.service", **FAILED), False, ["a.service"]),
    (unit("a.service", probe=PROBE_BAD), False, ["a.service"]),
    (unit("a.service", n_restarts=1, active_for=1), True, ["a.service"]),  # up, but crashed again since
])
def test_verify_after_a_restart(after, settled, still_down):
    verdict = _systemd.service_verdict(states_of(after), ["a.service"], 3, 60, restarted=["a.service"])
    assert verdict["settled"] is settled
    assert verdict["still_down"] == still_down
    assert verdict["report_units"] == still_down
    if still_down:
        assert verdict["summary"].startswith("still down after a restart: a.service")


def test_evidence_carries_state_and_journal():
    state = unit("a.service", **FAILED, journal=[{"message": "bind() failed"}, {"message": "[emerg] bad"}])
    line = _systemd.unit_evidence(state)
    assert line.startswith("[a.service: failed/failed, result signal")
    assert "bind() failed | [emerg] bad" in line


@pytest.mark.parametrize("name, full", [
    ("nginx", "nginx.service"), ("nginx.service", "nginx.service"), ("dev-sda.device", "dev-sda.device"),
    ("app.socket", "app.socket"), ("postgresql@15-main", "postgresql@15-main.service"), (" x.timer ", "x.timer"),
])
def test_unit_names_get_service_unless_they_have_a_type(name, full):
    assert _systemd.full_unit_name(name) == full


def test_units_may_be_names_or_mappings_with_a_probe():
    names, probes = systemd_unit_info.split_units(
        ["nginx", {"name": "pg", "tcp_port": 5432}, {"name": "web", "http_url": "http://x/", "http_status": 204},
         {"name": "plain"}, " "])
    assert names == ["nginx", "pg", "web", "plain"]
    assert probes == [
        {"unit": "pg", "tcp_port": 5432, "tcp_host": "127.0.0.1", "http_url": None, "http_status": 200},
        {"unit": "web", "tcp_port": None, "tcp_host": "127.0.0.1", "http_url": "http://x/", "http_status": 204}]


@pytest.mark.parametrize("bad, message", [
    ({"tcp_port": 1}, "has no name"),
    ({"name": "a", "port": 1}, "unknown keys port"),
    ({"name": "a", "tcp_port": 1, "http_url": "http://x/"}, "give one probe"),
    (42, "neither a unit name"),
])
def test_bad_unit_entries_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        systemd_unit_info.split_units([bad])
