"""Issue 9, "never make an outage worse", on the lab control plane: each test reproduces an unsafe
decision of the Kubernetes runbooks (it failed on the code before the fix) and proves the fix."""

from __future__ import annotations

import json
import threading
import time

import sre_testlib
from k8s_integration import (
    FAULT,
    apply,
    bad_rollout,
    changed_tasks,
    crashlooping,
    deployment,
    get,
    inventory,
    kubectl,
    nodes_all_schedulable,
    pods,
    role_result,
    rollout_done,
    wait_for,
)

PLAYBOOKS = sre_testlib.REPO / "playbooks" / "outage"


def play(name, inv, **kwargs):
    return sre_testlib.run_playbook(PLAYBOOKS / f"{name}.yml", inventory=inv, **kwargs)


def image_of(name, namespace):
    return get("deployment", name, namespace)["spec"]["template"]["spec"]["containers"][0]["image"]


def ready_pods(namespace, selector):
    return {p["metadata"]["name"] for p in pods(namespace, selector)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])}


def test_undo_after_a_rollout_restart_returns_to_the_last_different_release(namespace, auth):
    apply(deployment("shop", namespace, replicas=1))
    rollout_done("shop", namespace)
    bad_rollout("shop", namespace)  # revision 2: image :2, crash-loops
    kubectl("rollout", "restart", "deployment/shop", "-n", namespace)  # revision 3: the same release + restartedAt
    wait_for(lambda: get("deployment", "shop", namespace)["metadata"]["annotations"].get(
        "deployment.kubernetes.io/revision") == "3", "the restart to be revision 3")
    result = sre_testlib.run_module("k8s_rollout", {**auth, "namespace": namespace, "name": "shop", "action": "undo"})
    assert result["changed"] is True and result["rolled_back_to"] == 1, result
    assert image_of("shop", namespace).endswith(":1")
    assert FAULT not in (get("deployment", "shop", namespace)["spec"]["template"]["metadata"].get("annotations") or {})


def test_api_gateway_down_never_scales_a_partial_outage_to_zero(namespace, tmp_path):
    apply(deployment("api-gateway", namespace, replicas=3))
    rollout_done("api-gateway", namespace)
    serving = ready_pods(namespace, "app=api-gateway")
    assert len(serving) == 3
    # A release whose pods never become ready: the rollout stalls (maxUnavailable 0), so 3 old
    # replicas serve and 1 new one does not. A restart cannot heal it; a scale to 0 would take
    # the 3 serving replicas down.
    kubectl("patch", "deployment", "api-gateway", "-n", namespace, "-p",
            json.dumps({"spec": {"template": {"metadata": {"annotations": {FAULT: "unready"}}}}}))
    wait_for(lambda: len(pods(namespace, "app=api-gateway")) == 4, "the new, unready pod")
    inv = inventory(tmp_path, namespace, api_gateway_down_wait_timeout=4, api_gateway_down_scale_pause=1,
                    api_gateway_down_undo_bad_rollout=False)
    rc, report, _err = play("api_gateway_down", inv)
    result = role_result(report, "api_gateway_down_result")
    assert rc != 0, "the runbook must fail loudly when the restart did not heal"
    assert result["outcome"] == "failed" and result["scaled_to_zero_and_back"] is False, result
    assert "partial outage" in result["error"], result["error"]
    assert get("deployment", "api-gateway", namespace)["spec"]["replicas"] == 3
    assert serving <= ready_pods(namespace, "app=api-gateway"), "serving replicas were taken down"


def test_api_gateway_down_on_a_healthy_gateway_does_nothing(namespace, tmp_path):
    apply(deployment("api-gateway", namespace, replicas=2))
    rollout_done("api-gateway", namespace)
    before = get("deployment", "api-gateway", namespace)
    rc, report, err = play("api_gateway_down", inventory(tmp_path, namespace))
    assert rc == 0, err
    result = role_result(report, "api_gateway_down_result")
    assert result["outcome"] == "no action needed" and result["actions"] == [], result
    assert "healthy" in result["verdict"]
    assert not changed_tasks(report)
    after = get("deployment", "api-gateway", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


CANARY = "canary-7Hk2-" + "q" * 14


def test_previous_logs_and_rollout_diff_never_show_a_secret(namespace, auth):
    previous_log = (f"connecting to postgresql://app:{CANARY}@db:5432/app\n"
                    f"config: STRIPE_API_KEY={CANARY} mode=live\nAuthorization: Bearer {CANARY}\npanic: boom\n")
    apply(deployment("leaky", namespace, replicas=1,
                     annotations={FAULT: "crashloop", "sim.sre-runbooks.io/previous-log": previous_log},
                     env=[{"name": "DB_PASSWORD", "value": CANARY}, {"name": "FEATURE", "value": CANARY}]))
    wait_for(lambda: crashlooping(namespace, "app=leaky"), "the leaky pod to crash-loop")
    triage = sre_testlib.run_module("k8s_triage_info", {**auth, "namespace": namespace, "previous_logs": 1,
                                                        "log_lines": 10})
    logged = next(p for p in triage["unhealthy_pods"] if p.get("previous_log"))
    assert "panic: boom" in logged["previous_log"], "the log tail was not fetched: the test proves nothing"
    assert CANARY not in json.dumps(triage)

    kubectl("set", "env", "deployment/leaky", "-n", namespace, f"FEATURE={CANARY}x",
            "--containers=app")
    kubectl("patch", "deployment", "leaky", "-n", namespace, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/spec/template/spec/containers/0/args",
          "value": ["--db-password", CANARY, f"--api-token={CANARY}"]}]))
    for action in ("undo", "restart"):
        result = sre_testlib.run_module("k8s_rollout", {**auth, "namespace": namespace, "name": "leaky",
                                                        "action": action}, check=True, diff=True)
        assert result["changed"] is True and result["diff"]["after"], result
        assert CANARY not in json.dumps(result), f"{action} --diff shows a secret"


def test_crashloop_does_not_roll_back_an_oomkill(namespace, tmp_path):
    # The new release runs out of memory: that is memory_exhaustion's scenario, not a bad release.
    apply(deployment("tenant", namespace, replicas=2, memory_limit="256Mi"))
    rollout_done("tenant", namespace)
    bad_rollout("tenant", namespace, fault="oomkilled")
    rc, report, err = play("crashloop", inventory(tmp_path, namespace, crashloop_wait_timeout=30))
    assert rc == 0, err or json.dumps(report)[-2000:]
    result = role_result(report, "crashloop_result")
    assert result["outcome"] == "reported: not rolled back" and result["actions"] == [], result
    assert "OOMKilled" in result["reported"][0]["reason"] and "memory" in result["reported"][0]["reason"]
    assert image_of("tenant", namespace).endswith(":2") and not changed_tasks(report)


def test_crashloop_does_not_roll_back_a_workload_whose_only_release_crashes(namespace, tmp_path):
    # Every pod crashes since revision 1: there is no healthy release to go back to.
    apply(deployment("solo", namespace, replicas=2, annotations={FAULT: "crashloop"}))
    wait_for(lambda: len(crashlooping(namespace, "app=solo")) == 2, "2 crash-looping pods")
    rc, report, err = play("crashloop", inventory(tmp_path, namespace, crashloop_wait_timeout=30))
    assert rc == 0, err or json.dumps(report)[-2000:]
    result = role_result(report, "crashloop_result")
    assert result["outcome"] == "reported: not rolled back" and result["actions"] == [], result
    assert "no earlier release" in result["reported"][0]["reason"]


def statefulset(name, namespace, replicas=2, annotations=None, image="registry.invalid/db:1"):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                                  "spec": {"containers": [{"name": "app", "image": image}],
                                           "terminationGracePeriodSeconds": 1}}}}


def test_crashloop_rolls_back_a_statefulset_and_replaces_its_crashing_pod(namespace, tmp_path):
    apply(statefulset("db", namespace))
    kubectl("rollout", "status", "statefulset/db", "-n", namespace, "--timeout=60s")
    # Release 2 crashes: the controller updates db-1 (highest ordinal first) and waits forever for it.
    apply(statefulset("db", namespace, annotations={FAULT: "crashloop"}, image="registry.invalid/db:2"))
    wait_for(lambda: crashlooping(namespace, "app=db") == ["db-1"], "db-1 to crash-loop")
    rc, report, err = play("crashloop", inventory(tmp_path, namespace, crashloop_wait_timeout=45))
    assert rc == 0, err or json.dumps(report)[-3000:]
    result = role_result(report, "crashloop_result")
    assert result["outcome"] == "healed" and result["workloads"] == [{"kind": "StatefulSet", "name": "db"}], result
    assert [a["action"] for a in result["actions"]] == ["rollout undo", "delete pod"], result["actions"]
    assert result["actions"][1]["target"].endswith("/db-1")
    sts = get("statefulset", "db", namespace)
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1")
    assert not crashlooping(namespace, "app=db") and len(ready_pods(namespace, "app=db")) == 2


def test_memory_limit_baseline_belongs_to_one_incident(namespace, auth):
    apply(deployment("tenant-api", namespace, replicas=1, memory_limit="256Mi"))
    rollout_done("tenant-api", namespace)

    def limit():
        return get("deployment", "tenant-api", namespace)["spec"]["template"]["spec"]["containers"][0][
            "resources"]["limits"]["memory"]

    def raise_for(started):
        return sre_testlib.run_module("k8s_memory_limit", {**auth, "namespace": namespace, "name": "tenant-api",
                                                           "factor": 1.5, "incident_started_at": started})

    first_incident = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    first = raise_for(first_incident)
    assert first["changed"] is True and limit() == "384Mi", first
    again = raise_for(first_incident)
    assert again["changed"] is False and limit() == "384Mi", "raised twice in one incident"
    time.sleep(1.1)  # the annotation's time has one-second resolution
    later = raise_for(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    assert later["changed"] is True and limit() == "576Mi", later
    assert "before this incident" in later["baseline_source"]


def web_on_one_node(namespace, name="web", replicas=3, volumes=None):
    """A spread Deployment; returns (a node that holds exactly one replica, that pod's name)."""
    nodes_all_schedulable()
    # Earlier tests' namespaces are deleted asynchronously; a pod of one left on the node to fail
    # cannot be evicted (no new objects in a terminating namespace) and would fail the drain.
    wait_for(lambda: not [n for n in json.loads(kubectl("get", "namespaces", "-o", "json").stdout)["items"]
                          if n["metadata"]["name"].startswith("it-") and n["metadata"]["name"] != namespace],
             "earlier test namespaces to be gone", timeout=120)
    manifest = deployment(name, namespace, replicas=replicas, spread=True)
    if volumes:
        manifest["spec"]["template"]["spec"]["volumes"] = volumes
    apply(manifest)
    rollout_done(name, namespace)
    placement: dict[str, list[str]] = {}
    for pod in pods(namespace, f"app={name}"):
        placement.setdefault(pod["spec"]["nodeName"], []).append(pod["metadata"]["name"])
    node = next((n for n in sorted(placement) if len(placement[n]) == 1), None)
    assert node, f"the scheduler placed the replicas {placement}; no node holds exactly one"
    return node, placement[node][0]


def not_ready(node):
    wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "False"
                         for c in get("node", node)["status"]["conditions"]), f"{node} to be NotReady")


def test_node_failure_counts_pods_a_dead_kubelet_leaves_terminating_as_gone(namespace, tmp_path, failing_node):
    node, pod = web_on_one_node(namespace)
    failing_node(node)
    not_ready(node)
    inv = inventory(tmp_path, namespace, node_failure_reschedule_timeout=60, node_failure_drain_wait_timeout=60)
    rc, report, err = play("node_failure", inv)
    drain = [r for r in json.dumps(report).split('"msg": ') if "evict" in r.lower() or "drain" in r.lower()]
    assert rc == 0, (err or "") + "\n".join(drain[-5:])[-3000:]
    result = role_result(report, "node_failure_result")
    assert result["outcome"] == "healed" and result["drained"] == [node], result
    # The lab's kubelet is dead like a real one: the evicted pod is still there, Terminating.
    left = json.loads(kubectl("get", "pods", "-n", namespace, "--field-selector", f"spec.nodeName={node}",
                              "-o", "json").stdout)["items"]
    assert [p["metadata"]["name"] for p in left] == [pod] and left[0]["metadata"].get("deletionTimestamp")
    running = pods(namespace, "app=web")
    assert len(running) == 3 and all(p["spec"]["nodeName"] != node for p in running)


def test_node_failure_verify_leaves_daemonset_pods_on_a_ready_node(namespace, tmp_path):
    node, _pod = web_on_one_node(namespace)
    apply({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
           "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}},
                                 "spec": {"containers": [{"name": "app", "image": "registry.invalid/agent:1"}],
                                          "terminationGracePeriodSeconds": 1}}}})
    kubectl("rollout", "status", "daemonset/agent", "-n", namespace, "--timeout=60s")
    # An operator takes a Ready node out by name (maintenance, a flaky disk): DaemonSet pods stay.
    inv = inventory(tmp_path, namespace, node_failure_nodes=[node], node_failure_reschedule_timeout=60,
                    node_failure_drain_wait_timeout=60)
    try:
        rc, report, err = play("node_failure", inv)
        assert rc == 0, err or json.dumps(report)[-3000:]
        result = role_result(report, "node_failure_result")
        assert result["outcome"] == "healed" and result["drained"] == [node], result
        on_node = [p["metadata"]["name"] for p in pods(namespace) if p["spec"]["nodeName"] == node]
        assert len(on_node) == 1 and on_node[0].startswith("agent-"), on_node
    finally:
        kubectl("uncordon", node, check=False)


def test_node_failure_names_the_pod_an_emptydir_blocks_instead_of_retrying(namespace, tmp_path, failing_node):
    node, pod = web_on_one_node(namespace, name="cache", volumes=[{"name": "scratch", "emptyDir": {}}])
    failing_node(node)
    not_ready(node)
    # Retrying the refused drain would cost retries x delay = 120 s; refusing up front takes one
    # assessment (~5 s here, 3-4x that with the suite in lanes). The bound sits between the two.
    inv = inventory(tmp_path, namespace, node_failure_drain_retries=24, node_failure_drain_delay=5)
    started = time.monotonic()
    rc, report, _err = play("node_failure", inv)
    elapsed = time.monotonic() - started
    result = role_result(report, "node_failure_result")
    assert rc != 0 and result["outcome"] == "failed", result
    assert f"{namespace}/{pod} on {node}" in result["error"] and "emptyDir" in result["error"], result["error"]
    assert "node_failure_delete_emptydir_data=true" in result["error"]
    assert elapsed < 90, f"took {elapsed:.0f} s: it retried a drain that can never succeed"
    assert not get("node", node)["spec"].get("unschedulable"), "it cordoned before finding the blocker"


def test_rollout_failure_after_an_action_returns_the_actions_done(namespace, auth):
    # The restart is done, then the Deployment disappears while the module waits: the failure
    # must carry the restart it already made (for the incident record), not a traceback.
    apply(deployment("gw", namespace, replicas=1, annotations={FAULT: "unready"}))
    wait_for(lambda: pods(namespace, "app=gw"), "the gateway pod")
    done, deleted, errors = threading.Event(), threading.Event(), []

    def delete_once_restarted():
        # Once the restart is in the template (the module waits then; its pods never get ready),
        # not after a fixed 3 s: a module that takes longer to start would find no Deployment at all.
        try:
            while not done.wait(0.2):
                annotations = (get("deployment", "gw", namespace)["spec"]["template"]["metadata"].get("annotations")
                               or {})
                if "kubectl.kubernetes.io/restartedAt" in annotations:
                    kubectl("delete", "deployment", "gw", "-n", namespace, "--wait=false")
                    deleted.set()
                    return
        except Exception as exc:  # a thread's exception would otherwise vanish
            errors.append(repr(exc))

    watcher = threading.Thread(target=delete_once_restarted, daemon=True)
    watcher.start()
    try:
        result = sre_testlib.run_module("k8s_rollout", {**auth, "namespace": namespace, "name": "gw",
                                                        "action": "restart", "wait": True, "wait_timeout": 90})
    finally:
        done.set()
        watcher.join(30)
    assert not errors and deleted.is_set(), f"the restart never showed in the Deployment: {errors} {result}"
    assert result["failed"] is True and "Traceback" not in json.dumps(result), result
    assert result["changed"] is True and [a["action"] for a in result["actions"]] == ["rollout restart"], result
    assert result["actions"][0]["result"] == "done"


# ------------------------------------------------------------------------- no-fault controls

RESULT_FACT = {"api_gateway_down": "api_gateway_down_result", "crashloop": "crashloop_result",
               "memory_exhaustion": "memory_exhaustion_result", "node_failure": "node_failure_result"}


def assert_left_alone(name, inv, extra_vars=None):
    rc, report, err = play(name, inv, extra_vars=extra_vars or {})
    assert rc == 0, f"{name}: {err or json.dumps(report)[-2000:]}"
    result = role_result(report, RESULT_FACT[name])
    assert result["outcome"] == "no action needed", f"{name}: {result}"
    assert not result.get("actions"), f"{name} acted: {result.get('actions')}"
    assert not changed_tasks(report), f"{name} changed: {changed_tasks(report)}"
    if "verdict" in result and isinstance(result["verdict"], str):
        assert "healthy" in result["verdict"] or "nothing" in result["verdict"], f"{name}: {result['verdict']}"
    return result


def test_every_k8s_playbook_leaves_a_healthy_cluster_alone(namespace, tmp_path):
    nodes_all_schedulable()
    apply(deployment("api-gateway", namespace, replicas=2), deployment("checkout", namespace, replicas=2))
    rollout_done("api-gateway", namespace)
    rollout_done("checkout", namespace)
    before = {d: get("deployment", d, namespace)["metadata"]["generation"] for d in ("api-gateway", "checkout")}
    inv = inventory(tmp_path, namespace)
    for name in RESULT_FACT:
        assert_left_alone(name, inv, {"memory_exhaustion_allow_limit_raise": True} if name == "memory_exhaustion" else None)
    assert before == {d: get("deployment", d, namespace)["metadata"]["generation"] for d in before}
    assert not any(n["spec"].get("unschedulable") for n in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"])


def test_k8s_playbooks_leave_a_fault_that_is_not_theirs_alone(namespace, tmp_path, failing_node):
    # A crash-looping release (crashloop's fault) and, later, a NotReady node (node_failure's fault).
    apply(deployment("api-gateway", namespace, replicas=2), deployment("checkout", namespace, replicas=2))
    rollout_done("api-gateway", namespace)
    rollout_done("checkout", namespace)
    bad_rollout("checkout", namespace)
    inv = inventory(tmp_path, namespace)
    checkout = get("deployment", "checkout", namespace)["metadata"]["generation"]
    for name in ("node_failure", "memory_exhaustion", "api_gateway_down"):
        assert_left_alone(name, inv, {"memory_exhaustion_allow_limit_raise": True} if name == "memory_exhaustion" else None)
    assert get("deployment", "checkout", namespace)["metadata"]["generation"] == checkout

    # Now a node fails: crashloop must not roll anything back because pods went NotReady with it.
    kubectl("rollout", "undo", "deployment/checkout", "-n", namespace)
    rollout_done("checkout", namespace)
    node = pods(namespace, "app=api-gateway")[0]["spec"]["nodeName"]
    failing_node(node)
    not_ready(node)
    gateway = get("deployment", "api-gateway", namespace)["metadata"]["generation"]
    assert_left_alone("crashloop", inv)
    assert assert_left_alone("memory_exhaustion", inv, {"memory_exhaustion_allow_limit_raise": True})
    assert get("deployment", "api-gateway", namespace)["metadata"]["generation"] == gateway
