"""db_down on Kubernetes (issue 15) against the lab control plane: PostgreSQL as a StatefulSet whose pods
the real controller-manager manages and the simulated kubelet runs. No-fault control (and another
scenario's fault), fault -> assess -> check -> act -> verify -> second run, once per incident, and an
operator-owned StatefulSet refused."""

from __future__ import annotations

import json

import sre_testlib
from k8s_integration import (
    FAULT,
    apply,
    changed_tasks,
    crashlooping,
    deployment,
    inventory,
    kubectl,
    pods,
    role_result,
    wait_for,
)

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_down.yml"


def statefulset(name, namespace, replicas=2, labels=None):
    pod_labels = {"app": name, **(labels or {})}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": pod_labels},
                                  "spec": {"containers": [{"name": "postgres", "image": "registry.invalid/postgres:15"}],
                                           "terminationGracePeriodSeconds": 1}}}}


def uids(namespace, selector):
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(namespace, selector)}


def all_ready(namespace, selector, count):
    found = pods(namespace, selector)
    return len(found) == count and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])
        for p in found)


def start(name, namespace, **kwargs):
    apply(statefulset(name, namespace, **kwargs))
    wait_for(lambda: all_ready(namespace, f"app={name}", 2), f"{name}'s 2 pods to be Ready")


def crash(namespace, pod):
    kubectl("annotate", "pod", pod, "-n", namespace, f"{FAULT}=crashloop", "--overwrite")
    wait_for(lambda: pod in crashlooping(namespace, f"app={pod.rsplit('-', 1)[0]}"), f"{pod} to crash-loop")


def play(inv, **kwargs):
    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars={"target": "kubernetes"}, **kwargs)
    assert rc == 0, err or json.dumps(report)[-3000:]
    result = role_result(report, "db_down_result")
    assert result is not None, json.dumps(report)[-3000:]
    return result, report


def test_db_down_kubernetes_restarts_the_one_failing_pod_once(namespace, tmp_path):
    start("pg", namespace)
    # Another scenario's fault in the same namespace (a crash-looping Deployment) is not this runbook's.
    apply(deployment("web", namespace, replicas=1, annotations={FAULT: "crashloop"}))
    wait_for(lambda: crashlooping(namespace, "app=web"), "web to crash-loop")
    inv = inventory(tmp_path, namespace, postgresql_k8s_statefulset="pg", postgresql_failover_owner="none",
                    postgresql_k8s_primary_pod="pg-0", db_down_k8s_min_failing_seconds=0,
                    db_down_k8s_wait_timeout=60)
    before = uids(namespace, "app=pg")

    # No-fault control: healthy StatefulSet, nothing changes.
    result, report = play(inv)
    assert result["outcome"] == "no action needed" and result["state"] == "healthy", result
    assert result["primary"] == "pg-0" and not changed_tasks(report) and result["actions"] == []

    crash(namespace, "pg-1")
    result, report = play(inv, tags="assess")
    assert result["outcome"] == "assessed only" and result["state"] == "restart_pod" and result["target"] == "pg-1"
    assert "pg-1" in result["verdict"] and not changed_tasks(report)
    crashed = next(p for p in result["pods_before"] if p["name"] == "pg-1")
    assert crashed["reason"] == "CrashLoopBackOff" and crashed["last_termination"]["exit_code"] == 1
    assert "promotion on Kubernetes is not automated" in result["promotion"]

    result, report = play(inv, check=True)
    assert result["outcome"] == "check mode: would restart pod", result
    assert [a["result"] for a in result["actions"]] == ["check mode"]
    assert uids(namespace, "app=pg") == before

    result, report = play(inv)
    assert result["outcome"] == "healed" and result["state_after"] == "healthy", result
    assert [(a["action"], a["target"]) for a in result["actions"]] == [("delete pod", f"Pod/{namespace}/pg-1")]
    after = uids(namespace, "app=pg")
    assert after["pg-0"] == before["pg-0"] and after["pg-1"] != before["pg-1"], "only pg-1 is replaced"
    assert result["deleted"]["replacement_uid"] == after["pg-1"] and all_ready(namespace, "app=pg", 2)

    result, report = play(inv)
    assert result["outcome"] == "no action needed" and not changed_tasks(report), result

    # The replacement fails too, in the same incident: a second restart will not heal it.
    crash(namespace, "pg-1")
    result, report = play(inv)
    assert result["outcome"] == "reported: already_restarted" and "escalate" in result["verdict"], result
    assert uids(namespace, "app=pg") == after and not changed_tasks(report)
    assert len(crashlooping(namespace, "app=web")) == 1, "the other scenario's fault is left alone"


def test_db_down_kubernetes_refuses_an_operator_owned_statefulset(namespace, tmp_path):
    start("pgcn", namespace, labels={"cnpg.io/cluster": "pgcn"})
    crash(namespace, "pgcn-1")
    before = uids(namespace, "app=pgcn")
    inv = inventory(tmp_path, namespace, postgresql_k8s_statefulset="pgcn", db_down_k8s_min_failing_seconds=0)
    result, report = play(inv)
    assert result["outcome"] == "reported: operator_owned", result
    assert result["failover_owner"]["owner"] == "CloudNativePG" and result["failing"] == ["pgcn-1"]
    assert "cnpg.io/cluster" in result["verdict"] and result["actions"] == []
    assert uids(namespace, "app=pgcn") == before and not changed_tasks(report)
