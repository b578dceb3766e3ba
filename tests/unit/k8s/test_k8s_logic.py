"""Unit tests for plugins/module_utils/_k8s.py: the logic that needs no apiserver."""

from __future__ import annotations

import base64
import datetime

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    config_references,
    memory_quantity,
    normalized_template,
    parse_quantity,
    pod_owner,
    pod_problem,
    secret_fingerprint,
    selector_string,
    template_hash,
    workload_health,
)

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


def pod(name="p", phase="Running", ready=True, containers=None, node="n1", owner=None, labels=None, scheduled=None):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled:
        conditions.append(scheduled)
    meta = {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-01T11:59:00Z", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "app"}]},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": containers or []}}


def crashing(reason="Error", code=1, restarts=7):
    return {"name": "app", "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"reason": reason, "exitCode": code}}}


def test_healthy_pod_is_not_a_problem():
    running = {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {}}}
    assert pod_problem(pod(containers=[running]), NOW, set()) is None


def test_oomkilled_crashloop_ranks_above_plain_crashloop():
    oom = pod_problem(pod(ready=False, containers=[crashing("OOMKilled", 137)]), NOW, set())
    err = pod_problem(pod(ready=False, containers=[crashing("Error", 1, restarts=50)]), NOW, set())
    assert oom["reason"] == err["reason"] == "CrashLoopBackOff"
    assert oom["oom_killed"] and not err["oom_killed"]
    assert oom["containers"][0]["last_termination"] == {"reason": "OOMKilled", "exit_code": 137, "signal": None,
                                                        "started_at": None, "finished_at": None}
    assert oom["score"] > err["score"]


def test_pending_pod_carries_the_schedulers_reason():
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available: 3 Insufficient memory."}
    problem = pod_problem(pod(phase="Pending", ready=False, node=None, scheduled=unschedulable), NOW, set())
    assert problem["reason"] == "Unschedulable" and "Insufficient memory" in problem["scheduler_message"]


def test_pod_on_a_notready_node_says_so():
    problem = pod_problem(pod(ready=False, node="dead"), NOW, {"dead"})
    assert "NodeNotReady" in problem["reasons"]


def test_replicaset_owner_resolves_to_its_deployment():
    p = pod(owner=("ReplicaSet", "api-gateway-5f887798c5"), labels={"pod-template-hash": "5f887798c5"})
    assert pod_owner(p) == {"kind": "Deployment", "name": "api-gateway", "replicaset": "api-gateway-5f887798c5"}
    assert pod_owner(pod(owner=("StatefulSet", "redis"))) == {"kind": "StatefulSet", "name": "redis"}
    assert pod_owner(pod()) is None


@pytest.mark.parametrize("selector, expected", [
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                           {"key": "canary", "operator": "DoesNotExist"}]}, "tier in (web,api),!canary"),
    (None, ""),
])
def test_selector_string(selector, expected):
    assert selector_string(selector) == expected


def deployment(generation=2, observed=2, replicas=3, updated=3, available=3, total=3, conditions=None):
    return {"metadata": {"name": "d", "namespace": "ns", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available,
                       "readyReplicas": available, "replicas": total, "conditions": conditions or []}}


def test_deployment_rollout_complete_only_when_all_new_pods_are_available():
    assert workload_health("Deployment", deployment())["complete"] is True
    assert workload_health("Deployment", deployment(observed=1))["complete"] is False
    assert workload_health("Deployment", deployment(updated=1, total=4))["complete"] is False
    assert workload_health("Deployment", deployment(available=2))["complete"] is False


def test_progress_deadline_is_the_stuck_reason():
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}
    stuck = deployment(updated=1, conditions=[condition])
    assert workload_health("Deployment", stuck)["stuck_reason"] == "ProgressDeadlineExceeded: too slow"


def test_template_hash_ignores_controller_labels():
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a", "image": "i:1"}]}}
    from_rs = {"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}, "creationTimestamp": None},
               "spec": {"containers": [{"name": "a", "image": "i:1"}]}}
    assert template_hash(template) == template_hash(from_rs)
    assert normalized_template(from_rs)["metadata"] == {"labels": {"app": "x"}}
    changed = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a", "image": "i:2"}]}}
    assert template_hash(changed) != template_hash(template)


def test_config_references_cover_env_envfrom_and_volumes():
    template = {"spec": {
        "containers": [{"name": "app",
                        "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                                {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "m",
                                                                                "optional": True}}},
                                {"name": "PLAIN", "value": "x"}],
                        "envFrom": [{"secretRef": {"name": "all"}}]}],
        "volumes": [{"name": "v", "secret": {"secretName": "tls", "items": [{"key": "crt", "path": "c"}]}},
                    {"name": "p", "projected": {"sources": [{"configMap": {"name": "pc"}}]}}]}}
    refs = {(r["kind"], r["name"], r["key"], r["via"], r["optional"]) for r in config_references(template)}
    assert refs == {("Secret", "s", "k", "env K", False), ("ConfigMap", "c", "m", "env M", True),
                    ("Secret", "all", None, "envFrom", False), ("Secret", "tls", "crt", "volume v", False),
                    ("ConfigMap", "pc", None, "volume p", False)}


def test_secret_fingerprint_never_contains_the_value_nor_an_unkeyed_hash():
    import hashlib
    import hmac

    value = "sk_live_" + "canary" * 5
    encoded = base64.b64encode(value.encode()).decode()
    plain = secret_fingerprint(encoded)
    assert plain == {"length": len(value), "empty": False}
    keyed = secret_fingerprint(encoded, b"k1")
    assert keyed["hmac_sha256"] == hmac.new(b"k1", value.encode(), hashlib.sha256).hexdigest()
    assert secret_fingerprint(encoded, b"k2")["hmac_sha256"] != keyed["hmac_sha256"]
    unkeyed = hashlib.sha256(value.encode()).hexdigest()
    assert value not in str(keyed) and unkeyed[:8] not in str(keyed) and encoded not in str(keyed)
    assert secret_fingerprint("", b"k1") == {"length": 0, "empty": True}


@pytest.mark.parametrize("text, value", [("256Mi", 256 * 2**20), ("1Gi", 2**30), ("1G", 1e9), ("500M", 5e8),
                                         ("1e9", 1e9), ("1.5Gi", 1.5 * 2**30), (1024, 1024.0)])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


def test_parse_quantity_rejects_garbage():
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("lots")


@pytest.mark.parametrize("size, text", [(384 * 2**20, "384Mi"), (2 * 2**30, "2Gi"), (1.5e9, "1431Mi")])
def test_memory_quantity_rounds_up_to_mib(size, text):
    assert memory_quantity(size) == text


def test_release_hash_ignores_restart_stamps_and_own_markers_only():
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import release_hash

    base = {"metadata": {"labels": {"app": "a", "pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
    restarted = {"metadata": {"labels": {"app": "a"},
                              "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
                                              "sre.runbooks/rolled-back": "{}"}},
                 "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
    other_annotation = {"metadata": {"labels": {"app": "a"}, "annotations": {"team": "x"}},
                        "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
    other_image = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    assert release_hash(base) == release_hash(restarted)
    assert template_hash(base) != template_hash(restarted)
    assert release_hash(base) != release_hash(other_annotation)
    assert release_hash(base) != release_hash(other_image)


CANARY = "canary-Zq9x-" + "7" * 12


def test_masked_template_pair_never_shows_env_values_or_secret_args():
    import json

    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import masked_template_pair

    def template(image, env_value, dsn_user="app"):
        return {"metadata": {"annotations": {"note": f"postgresql://{dsn_user}:{CANARY}@db/x",
                                             "log": f"config: API_TOKEN={CANARY} mode=prod"}},
                "spec": {"containers": [{"name": "app", "image": image,
                                         "args": ["--db-password", CANARY, f"--api-token={CANARY}", "--port=80"],
                                         "env": [{"name": "MODE", "value": env_value},
                                                 {"name": "PLAIN", "value": CANARY},
                                                 {"name": "REF", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}

    before, after = masked_template_pair(template("app:1", "live"), template("app:2", "test"))
    text = json.dumps([before, after])
    assert CANARY not in text and "live" not in text.replace("livenessProbe", "")
    assert after["spec"]["containers"][0]["image"] == "app:2"
    env = {e["name"]: e for e in after["spec"]["containers"][0]["env"]}
    assert env["MODE"]["value"].endswith("(differs)") and "(differs)" not in env["PLAIN"]["value"]
    assert env["REF"]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "k"}
    assert after["spec"]["containers"][0]["args"][-1] == "--port=80"


def test_container_and_event_messages_are_masked():
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import container_problem, event_summary

    status = {"name": "app", "state": {"terminated": {"reason": "Error", "message": f"fatal: DB_PASSWORD={CANARY}"}}}
    assert CANARY not in str(container_problem(status))
    event = {"metadata": {"namespace": "ns"}, "message": f"probe failed: Authorization: Bearer {CANARY}"}
    assert CANARY not in str(event_summary(event, NOW))


def test_release_pods_groups_restarts_with_their_release_and_judges_the_previous_one():
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import pod_revision_name, release_pods

    def tpl(image, restarted=None):
        meta = {"labels": {"app": "shop"}}
        if restarted:
            meta["annotations"] = {"kubectl.kubernetes.io/restartedAt": restarted}
        return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": image}]}}

    history = [{"revision": 1, "name": "shop-aaa", "template": tpl("app:1")},
               {"revision": 2, "name": "shop-bbb", "template": tpl("app:2")},
               {"revision": 3, "name": "shop-ccc", "template": tpl("app:2", "2026-01-01T00:00:00Z")}]
    workload = {"metadata": {"name": "shop", "annotations": {"deployment.kubernetes.io/revision": "3"}},
                "spec": {"template": tpl("app:2", "2026-01-01T00:00:00Z")}}

    def rs_pod(name, rs_hash, ready=True, containers=None):
        p = pod(name, ready=ready, containers=containers, labels={"pod-template-hash": rs_hash})
        return p

    pods = [rs_pod("old-1", "aaa"), rs_pod("old-2", "aaa"),
            rs_pod("bad-1", "bbb", ready=False, containers=[crashing()]),
            rs_pod("bad-2", "ccc", ready=False, containers=[crashing("OOMKilled", 137)])]
    assert pod_revision_name("Deployment", "shop", pods[0]) == "shop-aaa"
    result = release_pods("Deployment", workload, history, pods, NOW)
    assert result["live"]["revision"] == 3 and result["live"]["revisions"] == ["shop-bbb", "shop-ccc"]
    assert result["live"]["crashing"] == ["bad-1", "bad-2"] and result["live"]["oom_killed"] == ["bad-2"]
    assert result["previous"] == {"revision": 1, "revisions": ["shop-aaa"], "pods": 2, "ready": 2, "crashing": [],
                                  "oom_killed": [], "unhealthy": []}
    sts_pod = pod("db-0", labels={"controller-revision-hash": "db-5d8f"})
    ds_pod = pod("agent-x", labels={"controller-revision-hash": "7c9b"})
    assert pod_revision_name("StatefulSet", "db", sts_pod) == "db-5d8f"
    assert pod_revision_name("DaemonSet", "agent", ds_pod) == "agent-7c9b"
    assert release_pods("Deployment", {**workload, "spec": {"template": tpl("app:1")},
                                       "metadata": {"name": "shop"}}, history[:1], pods, NOW)["previous"] is None


def test_mask_log_masks_assignments_nested_behind_a_harmless_key():
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import mask_log

    text = f"config: STRIPE_API_KEY={CANARY} mode=live\nurl postgresql://u:{CANARY}@db/x\nAuthorization: Bearer {CANARY}"
    masked = mask_log(text)
    assert CANARY not in masked and "mode=live" in masked and masked.count("\n") == 2


# ------------------------------------------------------------------------------ drain_plan

def _pod(name, owner=None, phase="Running", deleting=False, mirror=False, empty_dir=False):
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import MIRROR_POD  # noqa: PLC0415
    meta = {"name": name, "namespace": "ns"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T22:00:00Z"
    if mirror:
        meta["annotations"] = {MIRROR_POD: "abc"}
    spec = {"volumes": [{"name": "tmp", "emptyDir": {}}]} if empty_dir else {}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def test_drain_plan_sorts_every_kind_of_pod():
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import drain_plan  # noqa: PLC0415
    plan = drain_plan([_pod("web", "ReplicaSet"), _pod("done", None, phase="Succeeded"),
                       _pod("going", "ReplicaSet", deleting=True), _pod("going-unowned", None, deleting=True),
                       _pod("agent", "DaemonSet"), _pod("static", None, mirror=True)])
    assert plan == {"evict": ["ns/web"], "delete": ["ns/done"], "terminating": ["ns/going", "ns/going-unowned"],
                    "daemonset": ["ns/agent"], "mirror": ["ns/static"], "blocked": []}


@pytest.mark.parametrize(("pod", "options", "blocked"), [
    (_pod("cache", "ReplicaSet", empty_dir=True), {}, "emptyDir data"),
    (_pod("pet", None), {}, "not managed by a controller"),
    (_pod("agent", "DaemonSet"), {"ignore_daemonsets": False}, "DaemonSet"),
])
def test_drain_plan_blocks_what_it_may_not_move_unless_allowed(pod, options, blocked):
    from ansible_collections.sre.runbooks.plugins.module_utils._k8s import drain_plan  # noqa: PLC0415
    plan = drain_plan([pod], **options)
    assert plan["evict"] == [] and len(plan["blocked"]) == 1 and blocked in plan["blocked"][0]
    allowed = drain_plan([pod], delete_emptydir_data=True, force=True)
    assert not allowed["blocked"]
