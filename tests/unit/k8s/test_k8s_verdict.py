"""Unit tests for plugins/filter/k8s_verdict.py: every branch of the Kubernetes runbooks' decisions."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.k8s_verdict import (
    FilterModule,
    api_gateway_down,
    api_gateway_down_bounce,
)

CRASH = ["CrashLoopBackOff", "Error"]


def status(available, desired=3, complete=None, revision=2, replicaset="gw-new"):
    return {"status": {"available": available, "desired": desired,
                       "complete": available >= desired if complete is None else complete},
            "revision": revision, "replicaset": replicaset}


def failing(rs, reason="CrashLoopBackOff"):
    return {"name": f"{rs}-x", "reason": reason, "owner": {"kind": "Deployment", "name": "gw", "replicaset": rs}}


# ---------------------------------------------------------------- api_gateway_down

def test_healthy_gateway_is_left_alone():
    verdict = api_gateway_down(status(3), {"unhealthy_pods": []}, CRASH)
    assert verdict["act"] is False and verdict["remedy"] == "none" and "healthy" in verdict["reason"]


def test_no_status_does_nothing():
    assert api_gateway_down({}, None, CRASH)["act"] is False


def test_newest_rollout_failing_is_rolled_back():
    verdict = api_gateway_down(status(2, complete=False), {"unhealthy_pods": [failing("gw-new")]}, CRASH)
    assert verdict["act"] is True and verdict["remedy"] == "undo"


def test_failing_pods_of_several_replicasets_restart():
    triage = {"unhealthy_pods": [failing("gw-new"), failing("gw-old")]}
    assert api_gateway_down(status(1, complete=False), triage, CRASH)["remedy"] == "restart"


def test_first_revision_cannot_be_rolled_back():
    verdict = api_gateway_down(status(0, revision=1), {"unhealthy_pods": [failing("gw-new")]}, CRASH)
    assert verdict["remedy"] == "restart"


def test_undo_disabled_restarts():
    verdict = api_gateway_down(status(0), {"unhealthy_pods": [failing("gw-new")]}, CRASH, undo_enabled=False)
    assert verdict["remedy"] == "restart"


def test_unready_pods_are_not_a_bad_release():
    verdict = api_gateway_down(status(0), {"unhealthy_pods": [failing("gw-new", "NotReady")]}, CRASH)
    assert verdict["act"] is True and verdict["remedy"] == "restart"


def test_complete_but_short_of_replicas_acts():
    assert api_gateway_down(status(2, complete=True), {}, CRASH)["act"] is True


# ---------------------------------------------------------------- api_gateway_down_bounce

def restart(available, complete=False, result="done", msg="rollout is stuck"):
    return {"changed": result == "done", "msg": msg, "status": {"available": available, "complete": complete},
            "actions": [{"action": "rollout restart", "result": result}] if result else []}


def test_full_outage_not_healed_by_a_restart_bounces():
    verdict = api_gateway_down_bounce(status(0), restart(0))
    assert verdict["act"] is True and verdict["stop"] is False


def test_restart_already_done_this_incident_still_allows_the_bounce():
    assert api_gateway_down_bounce(status(0), restart(0, result="already done"))["act"] is True


def test_partial_outage_never_scales_to_zero():
    verdict = api_gateway_down_bounce(status(2, complete=False), restart(2))
    assert verdict["act"] is False and verdict["stop"] is True and "partial outage" in verdict["reason"]


def test_replicas_that_came_back_during_the_restart_block_the_bounce():
    verdict = api_gateway_down_bounce(status(0), restart(1))
    assert verdict["act"] is False and verdict["stop"] is True


def test_a_restart_that_itself_failed_never_bounces():
    failed = {"failed": False, "msg": "cannot rollout restart: HTTP 403", "actions": []}
    verdict = api_gateway_down_bounce(status(0), failed)
    assert verdict["act"] is False and verdict["stop"] is True and "HTTP 403" in verdict["reason"]


def test_a_restart_without_status_never_bounces():
    verdict = api_gateway_down_bounce(status(0), {"actions": [{"result": "done"}], "msg": "boom"})
    assert verdict["act"] is False and verdict["stop"] is True


def test_healed_by_the_restart():
    verdict = api_gateway_down_bounce(status(0), restart(3, complete=True))
    assert verdict["act"] is False and verdict["stop"] is False


def test_bounce_disabled_stops_with_the_reason():
    verdict = api_gateway_down_bounce(status(0), restart(0), enabled=False)
    assert verdict["act"] is False and verdict["stop"] is True and "disabled" in verdict["reason"]


def test_check_mode_never_bounces():
    verdict = api_gateway_down_bounce(status(0), restart(0), check_mode=True)
    assert verdict["act"] is False and verdict["stop"] is False


@pytest.mark.parametrize("restart_result", [None, {"skipped": True, "changed": False}])
def test_no_restart_no_bounce(restart_result):
    verdict = api_gateway_down_bounce(status(0), restart_result)
    assert verdict["act"] is False and verdict["stop"] is False


# ---------------------------------------------------------------- the filter entry point

def test_filter_dispatches_and_rejects_unknown_decisions():
    k8s_verdict = FilterModule().filters()["k8s_verdict"]
    assert k8s_verdict(status(3), "api_gateway_down", triage={}, crash_reasons=CRASH)["act"] is False
    with pytest.raises(AnsibleFilterError, match="unknown decision"):
        k8s_verdict({}, "nope")
    with pytest.raises(AnsibleFilterError, match="api_gateway_down"):
        k8s_verdict({}, "api_gateway_down", bogus=1)
