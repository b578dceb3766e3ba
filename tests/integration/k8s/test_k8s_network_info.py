"""k8s_network_info against the lab control plane: real Services, Endpoints (published by the
real endpoints controller from the simulated kubelet's pods) and NetworkPolicies."""

from __future__ import annotations

import json

import sre_testlib
from k8s_integration import FAULT, apply, deployment, kubectl, rollout_done, wait_for


def service(name, namespace, app):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}


def deny_ingress(name, namespace, app):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"]}}


def endpoint_addresses(name, namespace):
    data = json.loads(kubectl("get", "endpoints", name, "-n", namespace, "-o", "json", check=False).stdout or "{}")
    ready = sum(len(s.get("addresses") or []) for s in data.get("subsets") or [])
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in data.get("subsets") or [])
    return ready, not_ready


def test_services_without_endpoints_and_isolating_policies(auth, namespace):
    apply(deployment("api", namespace, replicas=2), service("api", namespace, "api"),
          service("typo", namespace, "apii"),
          deployment("sick", namespace, replicas=1, annotations={FAULT: "unready"}),
          service("sick", namespace, "sick"))
    rollout_done("api", namespace)
    wait_for(lambda: endpoint_addresses("api", namespace)[0] == 2, "api endpoints to list 2 ready pods", 120)
    wait_for(lambda: endpoint_addresses("sick", namespace)[1] == 1, "sick endpoints to list 1 not-ready pod", 120)

    # No-fault control: the healthy Service alone, no policy.
    healthy = sre_testlib.run_module("k8s_network_info", {**auth, "namespace": namespace, "services": ["api"]},
                                     check=True)
    assert healthy["changed"] is False and healthy["verdict"]["healthy"], healthy
    assert healthy["verdict"]["summary"].startswith("healthy, nothing to do")
    assert healthy["services"][0]["ready_endpoints"] == 2 and healthy["network_policies"] == []

    apply(deny_ingress("deny-api", namespace, "api"))
    result = sre_testlib.run_module("k8s_network_info", {**auth, "namespace": namespace})
    assert result["changed"] is False, result
    by = {s["name"]: s for s in result["services"]}
    assert not by["api"]["no_ready_endpoints"] and by["api"]["ready_pods"] == 2
    assert by["typo"]["no_ready_endpoints"] and "no pod matches the selector app=apii" in by["typo"]["reason"]
    assert by["sick"]["no_ready_endpoints"] and by["sick"]["not_ready_endpoints"] == 1
    assert "none is Ready" in by["sick"]["reason"]
    verdict = result["verdict"]
    assert verdict["healthy"] is False and verdict["act"] is False
    assert verdict["services_without_endpoints"] == ["sick", "typo"]
    assert verdict["isolating_policies"] == ["deny-api"]
    [policy] = result["network_policies"]
    assert policy["denies_all_ingress"] and not policy["denies_all_egress"] and len(policy["selects"]) == 2

    # The affected pods chosen by label: the sick pod is selected by no policy.
    sick = sre_testlib.run_module("k8s_network_info", {**auth, "namespace": namespace, "services": ["sick"],
                                                       "pod_selector": {"app": "sick"}})
    assert sick["network_policies"] == [] and sick["verdict"]["services_without_endpoints"] == ["sick"]


def test_missing_namespace_access_fails_with_the_target(auth):
    result = sre_testlib.run_module("k8s_network_info", {**auth, "kubeconfig": "/nonexistent/kubeconfig",
                                                         "namespace": "default"})
    assert result.get("failed") and "/nonexistent/kubeconfig" in result["msg"]


def test_network_partition_playbook_on_kubernetes(auth, namespace, tmp_path):
    """The same playbook on a cluster: healthy (no-fault control) changes nothing and passes; a
    Service whose selector matches no pod is named, and the run fails for a human (report only)."""
    from k8s_integration import changed_tasks, inventory, role_result

    apply(deployment("api", namespace, replicas=1), service("api", namespace, "api"),
          service("typo", namespace, "apii"))
    rollout_done("api", namespace)
    wait_for(lambda: endpoint_addresses("api", namespace)[0] == 1, "api endpoints to list the ready pod", 120)
    playbook = sre_testlib.REPO / "playbooks" / "outage" / "network_partition.yml"

    inv = inventory(tmp_path, namespace, network_partition_k8s_services=["api"])
    rc, report, stderr = sre_testlib.run_playbook(playbook, inventory=inv, extra_vars={"target": "kubernetes"})
    assert rc == 0, stderr
    result = role_result(report, "network_partition_result")
    assert result["outcome"] == "no action needed" and result["healthy"], result
    assert result["verdict"].startswith("healthy, nothing to do") and changed_tasks(report) == []

    inv = inventory(tmp_path, namespace, network_partition_k8s_services=["api", "typo"])
    rc, report, stderr = sre_testlib.run_playbook(playbook, inventory=inv, extra_vars={"target": "kubernetes"},
                                                  tags="assess")
    assert rc == 0, stderr
    assert role_result(report, "network_partition_result")["services_without_endpoints"] == ["typo"]
    rc, report, stderr = sre_testlib.run_playbook(playbook, inventory=inv, extra_vars={"target": "kubernetes"})
    assert rc != 0
    result = role_result(report, "network_partition_result")
    assert result["services_without_endpoints"] == ["typo"] and result["outcome"] == "failed"
    assert "no pod matches the selector app=apii" in result["verdict"] and changed_tasks(report) == []
