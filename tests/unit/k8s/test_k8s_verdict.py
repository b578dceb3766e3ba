"""Unit tests for plugins/filter/k8s_verdict.py: every branch of the Kubernetes runbooks' decisions."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.k8s_verdict import (
    FilterModule,
    api_gateway_down,
    api_gateway_down_bounce,
    crashloop,
    crashloop_candidates,
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


# ---------------------------------------------------------------- crashloop

REASONS = ["CrashLoopBackOff", "Error", "OOMKilled", "CreateContainerConfigError"]
SHOP = {"kind": "Deployment", "name": "shop"}


def crash_pod(name, owner=("Deployment", "shop"), reason="CrashLoopBackOff", oom=False):
    return {"name": name, "reason": reason, "oom_killed": oom, "owner": {"kind": owner[0], "name": owner[1]}}


def releases(live_crashing=("shop-new-1",), previous=None, item=SHOP):
    if previous is None:
        previous = {"revision": 1, "pods": 3, "ready": 3, "unhealthy": [], "crashing": []}
    return {"item": item, "releases": {"live": {"revision": 2, "crashing": list(live_crashing),
                                                "unhealthy": list(live_crashing)},
                                       "previous": previous or None}}


def config(missing=(), item=SHOP):
    return {"item": item, "missing": [{"description": d} for d in missing]}


def decide(pods, rollouts, configs, **kw):
    triage = {"unhealthy_pods": pods}
    candidates = crashloop_candidates(triage, REASONS, kw.pop("workloads", []))
    return candidates, crashloop(candidates, triage, rollouts, configs, REASONS, **kw)


def test_candidates_are_unique_workloads_with_crashing_pods():
    triage = {"unhealthy_pods": [crash_pod("a"), crash_pod("b"), crash_pod("c", owner=("ReplicaSet", "x")),
                                 crash_pod("d", reason="Pending"), crash_pod("e", owner=("StatefulSet", "db"))]}
    assert crashloop_candidates(triage, REASONS) == [SHOP, {"kind": "StatefulSet", "name": "db"}]
    assert crashloop_candidates(triage, REASONS, ["db"]) == [{"kind": "StatefulSet", "name": "db"}]


def test_healthy_namespace_does_nothing():
    candidates, verdict = decide([], [], [])
    assert candidates == [] and verdict["act"] is False and "healthy" in verdict["reason"]


def test_bad_release_with_a_healthy_predecessor_is_rolled_back():
    _, verdict = decide([crash_pod("shop-new-1")], [releases()], [config()])
    assert verdict["act"] is True and verdict["rollback"] == [SHOP] and verdict["report"] == []


def test_oomkilled_is_memory_exhaustion_not_a_bad_release():
    _, verdict = decide([crash_pod("shop-new-1", oom=True)], [releases()], [config()])
    assert verdict["act"] is False and "memory" in verdict["report"][0]["reason"]


def test_missing_config_key_is_reported_not_rolled_back():
    pods = [crash_pod("shop-new-1", reason="CreateContainerConfigError")]
    _, verdict = decide(pods, [releases()], [config(["Secret s key k (env K of Deployment/shop) exists but has no such key"])])
    assert verdict["act"] is False and "no such key" in verdict["report"][0]["reason"]


def test_config_check_that_did_not_run_refuses():
    _, verdict = decide([crash_pod("shop-new-1")], [releases()], [{"item": SHOP, "failed": True, "msg": "403"}])
    assert verdict["act"] is False and "403" in verdict["report"][0]["reason"]


def test_crashing_pods_of_an_older_release_are_not_a_bad_release():
    _, verdict = decide([crash_pod("shop-old-1")], [releases(live_crashing=())], [config()])
    assert verdict["act"] is False and "do not belong to the live release" in verdict["report"][0]["reason"]


def test_no_earlier_release_refuses():
    _, verdict = decide([crash_pod("shop-new-1")], [releases(previous=False)], [config()])
    assert verdict["act"] is False and "no earlier release" in verdict["report"][0]["reason"]


def test_unhealthy_previous_release_refuses():
    previous = {"revision": 1, "pods": 2, "ready": 1, "unhealthy": ["shop-old-1"], "crashing": ["shop-old-1"]}
    _, verdict = decide([crash_pod("shop-new-1")], [releases(previous=previous)], [config()])
    assert verdict["act"] is False and "unhealthy too" in verdict["report"][0]["reason"]


def test_previous_release_without_running_pods_is_not_evidence():
    previous = {"revision": 1, "pods": 0, "ready": 0, "unhealthy": [], "crashing": []}
    _, verdict = decide([crash_pod("shop-new-1")], [releases(previous=previous)], [config()])
    assert verdict["act"] is False and "nothing shows it was healthy" in verdict["report"][0]["reason"]


def test_missing_release_information_refuses():
    _, verdict = decide([crash_pod("shop-new-1")], [], [config()])
    assert verdict["act"] is False and "no release information" in verdict["report"][0]["reason"]


def test_undo_disabled_reports_only():
    _, verdict = decide([crash_pod("shop-new-1")], [releases()], [config()], undo_enabled=False)
    assert verdict["act"] is False and verdict["report"][0]["name"] == "shop"


def test_guardrail_on_many_workloads_stops():
    names = ["a", "b", "c", "d"]
    pods = [crash_pod(f"{n}-new", owner=("Deployment", n)) for n in names]
    items = [{"kind": "Deployment", "name": n} for n in names]
    rollouts = [releases([f"{n}-new"], item=i) for n, i in zip(names, items)]
    _, verdict = decide(pods, rollouts, [config(item=i) for i in items], max_workloads=3)
    assert verdict["act"] is False and verdict["stop"] is True
    assert "crashloop_max_workloads" in verdict["guardrail"] and "-e crashloop_max_workloads=4" in verdict["guardrail"]


def test_mixed_workloads_roll_back_only_the_bad_release():
    pods = [crash_pod("shop-new-1"), crash_pod("db-0", owner=("StatefulSet", "db"), oom=True)]
    db = {"kind": "StatefulSet", "name": "db"}
    _, verdict = decide(pods, [releases(), releases(["db-0"], item=db)], [config(), config(item=db)])
    assert verdict["rollback"] == [SHOP] and [r["name"] for r in verdict["report"]] == ["db"]
