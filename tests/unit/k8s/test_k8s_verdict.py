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
    memory_exhaustion,
    node_failure,
    node_failure_verify,
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


def releases(live_crashing=("shop-new-1",), previous=None, item=None):
    item = item or SHOP
    if previous is None:
        previous = {"revision": 1, "pods": 3, "ready": 3, "unhealthy": [], "crashing": []}
    return {"item": item, "releases": {"live": {"revision": 2, "crashing": list(live_crashing),
                                                "unhealthy": list(live_crashing)},
                                       "previous": previous or None}}


def config(missing=(), item=None):
    item = item or SHOP
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
    _candidates, verdict = decide([crash_pod("shop-new-1")], [releases()], [config()])
    assert verdict["act"] is True and verdict["rollback"] == [SHOP] and verdict["report"] == []


def test_oomkilled_is_memory_exhaustion_not_a_bad_release():
    _candidates, verdict = decide([crash_pod("shop-new-1", oom=True)], [releases()], [config()])
    assert verdict["act"] is False and "memory" in verdict["report"][0]["reason"]


def test_missing_config_key_is_reported_not_rolled_back():
    pods = [crash_pod("shop-new-1", reason="CreateContainerConfigError")]
    _candidates, verdict = decide(pods, [releases()], [config(["Secret s key k (env K of Deployment/shop) exists but has no such key"])])
    assert verdict["act"] is False and "no such key" in verdict["report"][0]["reason"]


def test_config_check_that_did_not_run_refuses():
    _candidates, verdict = decide([crash_pod("shop-new-1")], [releases()], [{"item": SHOP, "failed": True, "msg": "403"}])
    assert verdict["act"] is False and "403" in verdict["report"][0]["reason"]


def test_crashing_pods_of_an_older_release_are_not_a_bad_release():
    _candidates, verdict = decide([crash_pod("shop-old-1")], [releases(live_crashing=())], [config()])
    assert verdict["act"] is False and "do not belong to the live release" in verdict["report"][0]["reason"]


def test_no_earlier_release_refuses():
    _candidates, verdict = decide([crash_pod("shop-new-1")], [releases(previous=False)], [config()])
    assert verdict["act"] is False and "no earlier release" in verdict["report"][0]["reason"]


def test_unhealthy_previous_release_refuses():
    previous = {"revision": 1, "pods": 2, "ready": 1, "unhealthy": ["shop-old-1"], "crashing": ["shop-old-1"]}
    _candidates, verdict = decide([crash_pod("shop-new-1")], [releases(previous=previous)], [config()])
    assert verdict["act"] is False and "unhealthy too" in verdict["report"][0]["reason"]


def test_previous_release_without_running_pods_is_not_evidence():
    previous = {"revision": 1, "pods": 0, "ready": 0, "unhealthy": [], "crashing": []}
    _candidates, verdict = decide([crash_pod("shop-new-1")], [releases(previous=previous)], [config()])
    assert verdict["act"] is False and "nothing shows it was healthy" in verdict["report"][0]["reason"]


def test_missing_release_information_refuses():
    _candidates, verdict = decide([crash_pod("shop-new-1")], [], [config()])
    assert verdict["act"] is False and "no release information" in verdict["report"][0]["reason"]


def test_undo_disabled_reports_only():
    _candidates, verdict = decide([crash_pod("shop-new-1")], [releases()], [config()], undo_enabled=False)
    assert verdict["act"] is False and verdict["report"][0]["name"] == "shop"


def test_guardrail_on_many_workloads_stops():
    names = ["a", "b", "c", "d"]
    pods = [crash_pod(f"{n}-new", owner=("Deployment", n)) for n in names]
    items = [{"kind": "Deployment", "name": n} for n in names]
    rollouts = [releases([f"{n}-new"], item=i) for n, i in zip(names, items)]
    _candidates, verdict = decide(pods, rollouts, [config(item=i) for i in items], max_workloads=3)
    assert verdict["act"] is False and verdict["stop"] is True
    assert "crashloop_max_workloads" in verdict["guardrail"] and "-e crashloop_max_workloads=4" in verdict["guardrail"]


def test_mixed_workloads_roll_back_only_the_bad_release():
    pods = [crash_pod("shop-new-1"), crash_pod("db-0", owner=("StatefulSet", "db"), oom=True)]
    db = {"kind": "StatefulSet", "name": "db"}
    _candidates, verdict = decide(pods, [releases(), releases(["db-0"], item=db)], [config(), config(item=db)])
    assert verdict["rollback"] == [SHOP] and [r["name"] for r in verdict["report"]] == ["db"]


# ---------------------------------------------------------------- node_failure

def pod_on(name, owner="ReplicaSet", terminating=False, local_storage=False, phase="Running", ns="web"):
    return {"namespace": ns, "name": name, "owner_kind": owner, "phase": phase, "terminating": terminating,
            "local_storage": local_storage, "mirror": False}


def triage_nodes(*nodes, unhealthy=(), workloads=()):
    return {"nodes": [{"name": n, "ready": r, "pod_list": list(p)} for n, r, p in nodes],
            "unhealthy_pods": list(unhealthy), "workloads": list(workloads)}


def test_all_nodes_ready_nothing_to_do():
    verdict = node_failure(triage_nodes())
    assert verdict["act"] is False and verdict["stop"] is False and "healthy" in verdict["reason"]


def test_one_notready_node_is_drained_without_waiting_for_its_dead_kubelet():
    verdict = node_failure(triage_nodes(("n2", False, [pod_on("web-1")])), drain_wait_timeout=90)
    assert verdict["act"] is True and verdict["nodes"] == ["n2"] and verdict["drain"] == [{"name": "n2", "wait_timeout": 1}]


def test_a_named_ready_node_waits_for_the_deletions():
    verdict = node_failure(triage_nodes(), nodes=["n1"], drain_wait_timeout=90)
    assert verdict["drain"] == [{"name": "n1", "wait_timeout": 90}]


def test_guardrail_on_many_notready_nodes():
    verdict = node_failure(triage_nodes(("n1", False, []), ("n2", False, [])), max_nodes=1)
    assert verdict["act"] is False and verdict["stop"] is True and "node_failure_max_nodes=2" in verdict["guardrail"]


def test_emptydir_pod_blocks_the_drain_by_name_unless_allowed():
    pods = [pod_on("cache-1", local_storage=True), pod_on("agent", owner="DaemonSet", local_storage=True),
            pod_on("old", local_storage=True, terminating=True)]
    verdict = node_failure(triage_nodes(("n2", False, pods)))
    assert verdict["stop"] is True and [b["pod"] for b in verdict["blockers"]] == ["web/cache-1 on n2"]
    assert "delete-emptydir-data" in verdict["reason"] and "node_failure_delete_emptydir_data=true" in verdict["reason"]
    assert node_failure(triage_nodes(("n2", False, pods)), delete_emptydir_data=True)["act"] is True


def test_unmanaged_pod_blocks_the_drain_unless_forced():
    pods = [pod_on("bare", owner=None), pod_on("done", owner=None, phase="Succeeded")]
    verdict = node_failure(triage_nodes(("n2", False, pods)))
    assert verdict["stop"] is True and [b["pod"] for b in verdict["blockers"]] == ["web/bare on n2"]
    assert node_failure(triage_nodes(("n2", False, pods)), force=True)["act"] is True


def test_verify_counts_terminating_pods_on_a_dead_node_as_gone():
    after = triage_nodes(("n2", False, [pod_on("web-1", terminating=True), pod_on("agent", owner="DaemonSet")]))
    assert node_failure_verify(after, ["n2"], {})["done"] is True


def test_verify_waits_for_terminating_pods_on_a_ready_node():
    after = triage_nodes(("n1", True, [pod_on("web-1", terminating=True)]))
    verdict = node_failure_verify(after, ["n1"], {})
    assert verdict["done"] is False and "web/web-1 on n1 (terminating)" in verdict["remaining"]


def test_verify_ignores_daemonset_pods_on_a_ready_node():
    after = triage_nodes(("n1", True, [pod_on("agent-x", owner="DaemonSet"), pod_on("job", phase="Succeeded")]))
    assert node_failure_verify(after, ["n1"], {})["done"] is True


def test_verify_waits_for_pods_still_running_and_workloads_not_whole():
    after = triage_nodes(("n2", False, [pod_on("web-1")]),
                         workloads=[{"kind": "Deployment", "namespace": "web", "name": "web"},
                                    {"kind": "Deployment", "namespace": "other", "name": "web"}])
    before = {"unhealthy_pods": [{"name": "web-1", "namespace": "web", "node": "n2",
                                  "owner": {"kind": "Deployment", "name": "web"}}]}
    verdict = node_failure_verify(after, ["n2"], before)
    assert verdict["done"] is False and verdict["remaining"] == ["web/web-1 on n2"]
    assert verdict["degraded"] == ["Deployment/web/web"]


# ---------------------------------------------------------------- memory_exhaustion

def oom_pod(name, owner=("Deployment", "api"), containers=("app",)):
    return {"name": name, "oom_killed": True, "owner": {"kind": owner[0], "name": owner[1]} if owner else None,
            "containers": [{"name": c, "last_termination": {"reason": "OOMKilled"}} for c in containers]
            + [{"name": "sidecar", "last_termination": {"reason": "Error"}}]}


def test_memory_no_oomkill_is_healthy():
    verdict = memory_exhaustion({"unhealthy_pods": [crash_pod("x")]}, allow_raise=True)
    assert verdict["act"] is False and verdict["targets"] == [] and "healthy" in verdict["reason"]


def test_memory_targets_name_only_the_oomkilled_containers():
    verdict = memory_exhaustion({"unhealthy_pods": [oom_pod("api-1"), oom_pod("api-2", containers=("app", "cache"))]},
                                allow_raise=True)
    assert verdict["act"] is True
    assert verdict["targets"] == [{"kind": "Deployment", "name": "api", "containers": ["app", "cache"]}]
    assert verdict["oom_pods"] == ["api-1", "api-2"]


def test_memory_raise_not_allowed_reports():
    verdict = memory_exhaustion({"unhealthy_pods": [oom_pod("api-1")]})
    assert verdict["act"] is False and verdict["stop"] is False and "not allowed" in verdict["reason"]


def test_memory_bare_pods_are_only_reported():
    verdict = memory_exhaustion({"unhealthy_pods": [oom_pod("bare", owner=None)]}, allow_raise=True)
    assert verdict["act"] is False and verdict["unowned"] == ["bare"]


def test_memory_guardrail():
    pods = [oom_pod(f"w{i}-1", owner=("Deployment", f"w{i}")) for i in range(4)]
    verdict = memory_exhaustion({"unhealthy_pods": pods}, allow_raise=True, max_workloads=3)
    assert verdict["act"] is False and verdict["stop"] is True and "memory_exhaustion_max_workloads=4" in verdict["guardrail"]
