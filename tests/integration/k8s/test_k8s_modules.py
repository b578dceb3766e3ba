"""sre.runbooks k8s_* modules against the real lab control plane (kube-apiserver 1.20 + simulated kubelet)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import sre_testlib
from k8s_integration import (
    FAULT,
    MEMORY_USAGE,
    apply,
    bad_rollout,
    crashlooping,
    deployment,
    get,
    kubectl,
    nodes_all_schedulable,
    pods,
    rollout_done,
    wait_for,
)


def module(name, args, **kwargs):
    result = sre_testlib.run_module(name, args, **kwargs)
    assert "api_key" not in json.dumps(result.get("invocation", {})) or \
        result["invocation"]["module_args"].get("api_key") in (None, "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
    return result


# ------------------------------------------------------------------------------ k8s_rollout

def test_bad_rollout_undo_goes_back_once_and_does_not_toggle(namespace, auth):
    apply(deployment("shop", namespace))
    rollout_done("shop", namespace)
    good_image = get("deployment", "shop", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
    bad_rollout("shop", namespace)
    args = {**auth, "namespace": namespace, "name": "shop", "action": "undo"}

    preview = module("k8s_rollout", args, check=True, diff=True)
    assert preview["changed"] is True and preview["rolled_back_to"] == 1
    assert preview["diff"]["after"]["spec"]["containers"][0]["image"] == good_image
    assert get("deployment", "shop", namespace)["spec"]["template"]["spec"]["containers"][0]["image"] != good_image, \
        "check mode changed the Deployment"

    undo = module("k8s_rollout", {**args, "wait": True, "wait_timeout": 60})
    assert undo["changed"] is True, undo
    assert undo["previous_revision"] == 2 and undo["rolled_back_to"] == 1 and undo["revision"] == 3
    assert undo["status"]["complete"] is True
    assert undo["actions"][0]["result"] == "done"
    live = get("deployment", "shop", namespace)["spec"]["template"]
    assert live["spec"]["containers"][0]["image"] == good_image
    assert FAULT not in (live["metadata"].get("annotations") or {})
    assert not crashlooping(namespace, "app=shop")

    # kubectl rollout undo would now go back to the bad revision 2; ours must not.
    again = module("k8s_rollout", args)
    assert again["changed"] is False, again
    assert again["revision"] == 3 and "not toggling back" in again["message"]
    assert get("deployment", "shop", namespace)["spec"]["template"]["spec"]["containers"][0]["image"] == good_image


def test_undo_to_revision_is_idempotent_and_unknown_revision_fails(namespace, auth):
    apply(deployment("api", namespace, replicas=1))
    rollout_done("api", namespace)
    kubectl("set", "image", "deployment/api", "app=registry.invalid/app:2", "-n", namespace)
    rollout_done("api", namespace)
    kubectl("set", "image", "deployment/api", "app=registry.invalid/app:3", "-n", namespace)
    rollout_done("api", namespace)
    args = {**auth, "namespace": namespace, "name": "api", "action": "undo", "to_revision": 1}
    first = module("k8s_rollout", args)
    assert first["changed"] is True and first["rolled_back_to"] == 1
    rollout_done("api", namespace)
    assert get("deployment", "api", namespace)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1")
    second = module("k8s_rollout", args)
    assert second["changed"] is False, second
    missing = module("k8s_rollout", {**args, "to_revision": 42})
    assert missing["failed"] and "no revision 42" in missing["msg"]


def test_restart_replaces_pods_once(namespace, auth):
    apply(deployment("gw", namespace, replicas=2))
    rollout_done("gw", namespace)
    before = {p["metadata"]["name"] for p in pods(namespace, "app=gw")}
    time.sleep(1.1)  # pod start times have a one-second resolution
    args = {**auth, "namespace": namespace, "name": "gw", "action": "restart",
            "restarted_after": sre_testlib_now(), "wait": True, "wait_timeout": 60}
    check = module("k8s_rollout", args, check=True)
    assert check["changed"] is True and check["actions"][0]["result"] == "check mode"
    assert {p["metadata"]["name"] for p in pods(namespace, "app=gw")} == before

    first = module("k8s_rollout", args)
    assert first["changed"] is True and first["revision"] == first["previous_revision"] + 1, first
    after = wait_for(lambda: (names := {p["metadata"]["name"] for p in pods(namespace, "app=gw")})
                     and not names & before and len(names) == 2 and names, "the old pods to be replaced")
    second = module("k8s_rollout", args)
    assert second["changed"] is False, second
    assert {p["metadata"]["name"] for p in pods(namespace, "app=gw")} == after


def test_scale_sets_the_count_once_and_returns_no_object(namespace, auth):
    apply(deployment("edge", namespace, replicas=2))
    rollout_done("edge", namespace)
    args = {**auth, "namespace": namespace, "name": "edge", "action": "scale", "replicas": 0,
            "wait": True, "wait_timeout": 60}
    check = module("k8s_rollout", args, check=True, diff=True)
    assert check["changed"] is True and check["replicas"] == {"before": 2, "after": 0}, check
    assert check["diff"]["before"] == {"replicas": 2} and check["diff"]["after"] == {"replicas": 0}
    assert get("deployment", "edge", namespace)["spec"]["replicas"] == 2, "check mode scaled"

    down = module("k8s_rollout", args)
    assert down["changed"] is True and down["actions"][0]["action"] == "scale", down
    assert down["status"]["current"] == 0 and down["status"]["complete"] is True, down["status"]
    # Only counts come back: the Deployment (its template, env, args) never does.
    assert "template" not in json.dumps(down) and "containers" not in json.dumps(down)
    again = module("k8s_rollout", args)
    assert again["changed"] is False and again["actions"][0]["result"] == "already done", again

    up = module("k8s_rollout", {**args, "replicas": 2})
    assert up["changed"] is True and up["status"]["available"] == 2, up
    bad = module("k8s_rollout", {**args, "replicas": None})
    assert bad["failed"] and "needs replicas" in bad["msg"]
    daemon = module("k8s_rollout", {**args, "kind": "DaemonSet"})
    assert daemon["failed"] and "no replica count" in daemon["msg"]


# ------------------------------------------------------------------------------ k8s_node_drain

def test_node_drain_leaves_pods_already_terminating_and_a_second_run_changes_nothing(namespace, auth, failing_node):
    # CI failure of 2026-12-02: a pod of a namespace being deleted sat Terminating on the dead node;
    # evicting it is refused (HTTP 403, NamespaceTerminating) forever, so kubernetes.core.k8s_drain
    # never finished, and on a second run it "evicted" the Terminating pods again (changed).
    nodes_all_schedulable()
    apply(deployment("web", namespace, replicas=3, spread=True))
    rollout_done("web", namespace)
    node = sorted(p["spec"]["nodeName"] for p in pods(namespace, "app=web"))[0]
    doomed = f"{namespace}-gone"
    kubectl("create", "namespace", doomed)
    hold = "sre-runbooks.io/test-hold"
    try:
        # A finalizer keeps the pod Terminating once its namespace is deleted, as a dead kubelet does.
        apply({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "old", "namespace": doomed, "finalizers": [hold],
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "old-1",
                                                 "uid": "00000000-0000-0000-0000-000000000001"}]},
               "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.invalid/app:1"}]}})
        failing_node(node)
        wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "False"
                             for c in get("node", node)["status"]["conditions"]), f"{node} to be NotReady")
        kubectl("delete", "namespace", doomed, "--wait=false")
        wait_for(lambda: get("pod", "old", doomed)["metadata"].get("deletionTimestamp")
                 and get("namespace", doomed)["status"].get("phase") == "Terminating",
                 "the namespace and its pod to be Terminating")
        gone = [f"{doomed}/old"]
        on_node = sorted(f"{namespace}/{p['metadata']['name']}" for p in pods(namespace, "app=web")
                         if p["spec"]["nodeName"] == node)
        args = {**auth, "name": node, "disruption_budget_timeout": 10, "retry_interval": 1, "wait_timeout": 1}

        def ours(names):  # other tests' namespaces may still have pods on the node
            return sorted(n for n in names if n.split("/")[0] in (namespace, doomed))

        check = module("k8s_node_drain", args, check=True)
        assert check["changed"] is True and check["cordoned"] is True, check
        assert ours(check["evicted"]) == on_node, check
        assert ours(check["left_alone"]["terminating"]) == gone, (check["left_alone"], gone)
        assert not get("node", node)["spec"].get("unschedulable"), "check mode cordoned"
        assert all(not p["metadata"].get("deletionTimestamp") for p in pods(namespace, "app=web")), "check mode evicted"

        first = module("k8s_node_drain", args)
        assert first["changed"] is True and first["cordoned"] is True and ours(first["evicted"]) == on_node, first
        assert gone[0] in first["left_alone"]["terminating"] and not first["ready"]
        assert get("node", node)["spec"].get("unschedulable") is True
        assert [a["action"] for a in first["actions"]] == ["cordon"] + ["evict pod"] * len(first["evicted"])
        # Only names and counts come back, never a pod object.
        assert "containers" not in json.dumps(first)

        second = module("k8s_node_drain", args)
        assert second["changed"] is False and second["evicted"] == [] and second["cordoned"] is False, second
        assert set(on_node) | set(gone) <= set(second["left_alone"]["terminating"])
    finally:
        kubectl("patch", "pod", "old", "-n", doomed, "--type=json",
                "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]', check=False)
        kubectl("delete", "namespace", doomed, "--wait=false", check=False)


def test_node_drain_names_what_it_cannot_move_before_cordoning(namespace, auth):
    nodes_all_schedulable()
    node = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"][0]["metadata"]["name"]
    apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pet", "namespace": namespace},
           "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}]}})
    result = module("k8s_node_drain", {**auth, "name": node})
    assert result["failed"] and result["changed"] is False, result
    assert f"{namespace}/pet has emptyDir data" in result["msg"] and "nothing was changed" in result["msg"]
    assert not get("node", node)["spec"].get("unschedulable"), "it cordoned before refusing"
    forced = module("k8s_node_drain", {**auth, "name": node, "delete_emptydir_data": True}, check=True)
    assert forced["failed"] and "not managed by a controller" in forced["msg"], forced
    plan = module("k8s_node_drain", {**auth, "name": node, "delete_emptydir_data": True, "force": True}, check=True)
    assert plan["changed"] is True and f"{namespace}/pet" in plan["evicted"], plan
    missing = module("k8s_node_drain", {**auth, "name": "no-such-node"})
    assert missing["failed"] and "not found" in missing["msg"]


def sre_testlib_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))


def test_status_wait_fails_naming_the_crashing_pods(namespace, auth):
    apply(deployment("pay", namespace, replicas=2))
    rollout_done("pay", namespace)
    bad_rollout("pay", namespace, fault="oomkilled")
    result = module("k8s_rollout", {**auth, "namespace": namespace, "name": "pay", "action": "status",
                                    "wait": True, "wait_timeout": 3})
    assert result["failed"] is True
    assert "is stuck" in result["msg"] and "CrashLoopBackOff" in result["msg"] and "OOMKilled" in result["msg"]
    assert result["status"]["complete"] is False and result["status"]["blocking_pods"]
    status = module("k8s_rollout", {**auth, "namespace": namespace, "name": "pay", "action": "status"})
    assert status["changed"] is False and status["status"]["updated"] == 1


def test_statefulset_undo_uses_controller_revisions(namespace, auth):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "cache", "namespace": namespace},
           "spec": {"replicas": 2, "serviceName": "cache", "selector": {"matchLabels": {"app": "cache"}},
                    "template": {"metadata": {"labels": {"app": "cache"}},
                                 "spec": {"containers": [{"name": "app", "image": "registry.invalid/cache:1"}]}}}}
    apply(sts)
    kubectl("rollout", "status", "statefulset/cache", "-n", namespace, "--timeout=60s")
    kubectl("set", "image", "statefulset/cache", "app=registry.invalid/cache:2", "-n", namespace)
    kubectl("rollout", "status", "statefulset/cache", "-n", namespace, "--timeout=60s")
    args = {**auth, "kind": "StatefulSet", "namespace": namespace, "name": "cache", "action": "undo",
            "wait": True, "wait_timeout": 60}
    first = module("k8s_rollout", args)
    assert first["changed"] is True and first["rolled_back_to"] == 1, first
    assert get("statefulset", "cache", namespace)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1")
    assert module("k8s_rollout", args)["changed"] is False


def test_daemonset_restart_and_undo(namespace, auth):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "app", "image": "registry.invalid/agent:1"}]}}}}
    apply(ds)
    kubectl("rollout", "status", "daemonset/agent", "-n", namespace, "--timeout=60s")
    kubectl("set", "image", "daemonset/agent", "app=registry.invalid/agent:2", "-n", namespace)
    kubectl("rollout", "status", "daemonset/agent", "-n", namespace, "--timeout=60s")
    base = {**auth, "kind": "DaemonSet", "namespace": namespace, "name": "agent", "wait": True, "wait_timeout": 60}
    undo = module("k8s_rollout", {**base, "action": "undo"})
    assert undo["changed"] is True and undo["rolled_back_to"] == 1, undo
    assert get("daemonset", "agent", namespace)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1")
    assert module("k8s_rollout", {**base, "action": "undo"})["changed"] is False
    restart = module("k8s_rollout", {**base, "action": "restart"})
    assert restart["changed"] is True and restart["status"]["complete"] is True
    assert restart["status"]["desired"] == len(pods(namespace, "app=agent")) == 3


def test_missing_workload_fails_with_next_step(namespace, auth):
    result = module("k8s_rollout", {**auth, "namespace": namespace, "name": "nope", "action": "status"})
    assert result["failed"] and "not found" in result["msg"] and "kubectl get deployment" in result["msg"]


def test_unreachable_apiserver_names_the_target(tmp_path):
    result = module("k8s_triage_info", {"host": "https://127.0.0.1:1", "api_key": "x", "validate_certs": False,
                                        "namespace": "default"})
    assert result["failed"] and "cannot reach the Kubernetes API at https://127.0.0.1:1" in result["msg"]


# ------------------------------------------------------------------------------ k8s_triage_info

def test_triage_finds_crashloop_oomkilled_pending_and_empty_services(namespace, auth):
    apply(deployment("ok", namespace, replicas=2),
          deployment("crash", namespace, replicas=2, annotations={FAULT: "crashloop"}),
          deployment("oom", namespace, replicas=1, memory_limit="128Mi", annotations={MEMORY_USAGE: "200Mi"}),
          deployment("hungry", namespace, replicas=1, memory_limit="100Ti"),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "crash", "namespace": namespace},
           "spec": {"selector": {"app": "crash"}, "ports": [{"port": 80}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ok", "namespace": namespace},
           "spec": {"selector": {"app": "ok"}, "ports": [{"port": 80}]}})
    wait_for(lambda: len(crashlooping(namespace, "app in (crash,oom)")) == 3, "3 crash-looping pods")
    rollout_done("ok", namespace)

    def triage():
        result = module("k8s_triage_info", {**auth, "namespace": namespace, "previous_logs": 2, "log_lines": 5},
                        check=True)
        ready = result.get("summary", {}).get("services_without_endpoints") == 1 and result["summary"]["pending"] == 1
        return result if ready else None

    result = wait_for(triage, "endpoints and the scheduler to settle", timeout=30)
    assert result["changed"] is False and result["healthy"] is False
    summary = result["summary"]
    assert summary["pods_total"] == 6 and summary["crashloop"] == 3 and summary["oom_killed"] == 1
    assert summary["workloads_degraded"] == 3  # crash, oom, hungry
    worst = result["unhealthy_pods"][0]
    assert worst["oom_killed"] and worst["owner"] == {"kind": "Deployment", "name": "oom",
                                                      "replicaset": worst["owner"]["replicaset"]}
    assert worst["containers"][0]["last_termination"]["exit_code"] == 137
    assert worst["memory"]["app"]["limit"] == "128Mi"
    assert "heap" in worst["previous_log"]  # fetched through the apiserver from the kubelet
    crash = [p for p in result["unhealthy_pods"] if p["owner"]["name"] == "crash"]
    assert crash[0]["last_termination_reasons"] == ["Error"]
    pending = [p for p in result["unhealthy_pods"] if p["phase"] == "Pending"]
    assert pending[0]["reason"] == "Unschedulable" and "Insufficient memory" in pending[0]["scheduler_message"]
    assert [s["name"] for s in result["services_without_endpoints"]] == ["crash"]
    assert any(e["reason"] == "BackOff" for e in result["events"])

    selected = module("k8s_triage_info", {**auth, "namespace": namespace, "label_selectors": ["app=ok"]})
    assert selected["summary"]["pods_total"] == 2 and selected["summary"]["pods_unhealthy"] == 0


def test_triage_reports_notready_node(k8s_lab, auth, failing_node):
    failing_node("lab-node-3")

    def seen():
        result = module("k8s_triage_info", {**auth, "all_namespaces": True})
        return result if any(n["name"] == "lab-node-3" and not n["ready"] for n in result["nodes"]) else None

    result = wait_for(seen, "lab-node-3 to be NotReady")
    assert result["summary"]["nodes_not_ready"] >= 1
    node = next(n for n in result["nodes"] if n["name"] == "lab-node-3")
    assert "node.kubernetes.io/not-ready:NoSchedule" in node["taints"]
    assert any(p.startswith("Ready=False") for p in node["problems"])


# ------------------------------------------------------------------------------ k8s_config_check

def test_config_check_reports_missing_keys_without_revealing_secrets(namespace, auth):
    secret_value = "whsec_it_" + "s3cr3t" * 4
    kubectl("create", "secret", "generic", "stripe", "-n", namespace, f"--from-literal=webhook={secret_value}")
    kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=mode=live")
    env = [{"name": "WEBHOOK", "valueFrom": {"secretKeyRef": {"name": "stripe", "key": "webhook"}}},
           {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "stripe", "key": "api_key"}}},
           {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
           {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "x", "optional": True}}}]
    apply(deployment("worker", namespace, replicas=1, env=env))
    result = sre_testlib.run_module("k8s_config_check", {**auth, "namespace": namespace, "name": "worker",
                                                         "kind": "Deployment"})
    raw = json.dumps(result)
    unkeyed = hashlib.sha256(secret_value.encode()).hexdigest()
    assert secret_value not in raw and base64.b64encode(secret_value.encode()).decode() not in raw
    assert unkeyed[:8] not in raw, "an unkeyed hash lets a reader confirm a guess offline"
    assert result["ok"] is False and result["workloads"] == ["Deployment/worker"]
    by_key = {(r["name"], r["key"]): r for r in result["references"]}
    webhook = by_key[("stripe", "webhook")]
    assert webhook["exists"] and webhook["key_exists"] and webhook["length"] == len(secret_value)
    assert "hmac_sha256" not in webhook, "by default only the length is returned"
    assert by_key[("cfg", "mode")]["key_exists"] is True
    assert [(m["name"], m["key"]) for m in result["missing"]] == [("stripe", "api_key")]
    assert "exists but has no such key" in result["missing"][0]["description"]

    strict = sre_testlib.run_module("k8s_config_check", {**auth, "namespace": namespace, "fail_on_missing": True,
                                                         "hash_secrets": True})
    assert strict["failed"] and "stripe key api_key" in strict["msg"]
    hashed = next(r for r in strict["references"] if r["key"] == "webhook")["hmac_sha256"]
    assert secret_value not in json.dumps(strict) and unkeyed[:8] not in json.dumps(strict)
    again = sre_testlib.run_module("k8s_config_check", {**auth, "namespace": namespace, "hash_secrets": True})
    assert next(r for r in again["references"] if r["key"] == "webhook")["hmac_sha256"] != hashed, \
        "a per-run key: two runs never give the same hash"
    keyed = [sre_testlib.run_module("k8s_config_check", {**auth, "namespace": namespace, "hash_key": "team-key"})
             for _run in range(2)]
    assert len({next(r for r in k["references"] if r["key"] == "webhook")["hmac_sha256"] for k in keyed}) == 1
    assert "team-key" not in json.dumps(keyed)


# ------------------------------------------------------------------------------ k8s_memory_limit

def test_memory_limit_raises_once_and_respects_the_guardrail(namespace, auth):
    apply(deployment("tenant", namespace, replicas=1, memory_limit="256Mi", annotations={MEMORY_USAGE: "300Mi"}))
    wait_for(lambda: crashlooping(namespace, "app=tenant"), "the OOMKilled pod")
    args = {**auth, "namespace": namespace, "name": "tenant", "factor": 1.5}
    tripped = module("k8s_memory_limit", {**args, "factor": 3})
    assert tripped["failed"] and tripped["guardrail"] == "max_factor" and "max_factor" in tripped["msg"]
    preview = module("k8s_memory_limit", args, check=True, diff=True)
    assert preview["changed"] and preview["diff"]["after"] == {"app": "384Mi"}
    assert get("deployment", "tenant", namespace)["spec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"]["memory"] == "256Mi"
    first = module("k8s_memory_limit", args)
    assert first["changed"] and first["containers"][0] == {"name": "app", "baseline": "256Mi", "before": "256Mi",
                                                           "after": "384Mi"}
    rollout_done("tenant", namespace)
    assert not crashlooping(namespace, "app=tenant")
    second = module("k8s_memory_limit", args)
    assert second["changed"] is False, second
