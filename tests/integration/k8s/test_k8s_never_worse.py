"""Issue 9, "never make an outage worse", on the lab control plane: each test reproduces an unsafe
decision of the Kubernetes runbooks (it failed on the code before the fix) and proves the fix."""

from __future__ import annotations

import json
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
    assert "healthy" in result["verdict"]["reason"]
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
            f"--containers=app")
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
