"""Helpers for the Kubernetes integration tests: kubectl against the lab, manifests, waiting."""

from __future__ import annotations

import json
import time
import typing as t
from pathlib import Path

import sre_testlib
from sre_testlib import kubeconfig, kubectl

FAULT = "sim.sre-runbooks.io/fault"
MEMORY_USAGE = "sim.sre-runbooks.io/memory-usage"
NODE_READY = "sim.sre-runbooks.io/ready"


def get(kind: str, name: str, namespace: str | None = None) -> dict[str, t.Any]:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    return json.loads(kubectl(*args).stdout)


def pods(namespace: str, selector: str | None = None) -> list[dict[str, t.Any]]:
    args = ["get", "pods", "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    return [p for p in json.loads(kubectl(*args).stdout)["items"] if not p["metadata"].get("deletionTimestamp")]


def deployment(name: str, namespace: str, replicas: int = 3, image: str = "registry.invalid/app:1",
               annotations: dict[str, str] | None = None, memory_limit: str | None = None,
               env: list[dict[str, t.Any]] | None = None, spread: bool = False) -> dict[str, t.Any]:
    """A Deployment of the simulated app; spread=True asks the scheduler to put the replicas on
    different nodes (softly, so a drained node's pods can still be placed elsewhere)."""
    container: dict[str, t.Any] = {"name": "app", "image": image}
    if memory_limit:
        container["resources"] = {"limits": {"memory": memory_limit}}
    if env:
        container["env"] = env
    pod_spec: dict[str, t.Any] = {"containers": [container], "terminationGracePeriodSeconds": 5}
    if spread:
        pod_spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": name}}}]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                              "spec": pod_spec}},
    }


def apply(*objects: dict[str, t.Any]) -> None:
    kubectl("apply", "-f", "-", stdin={"apiVersion": "v1", "kind": "List", "items": list(objects)})


def wait_for(predicate: t.Callable[[], t.Any], what: str, timeout: float = 60) -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.3)


def nodes_all_schedulable(timeout: float = 60) -> None:
    """Wait until every lab node is Ready, untainted and not cordoned: a node a previous test
    failed comes back asynchronously (the simulated kubelet lifts the not-ready taint)."""
    def clean() -> bool:
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return bool(nodes) and all(
            not n["spec"].get("unschedulable") and not n["spec"].get("taints")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
            for n in nodes)
    wait_for(clean, "every lab node to be Ready and schedulable", timeout)


def rollout_done(name: str, namespace: str, timeout: float = 60) -> None:
    kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, f"--timeout={int(timeout)}s")


def crashlooping(namespace: str, selector: str) -> list[str]:
    found = []
    for pod in pods(namespace, selector):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if ((status.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                found.append(pod["metadata"]["name"])
    return found


def bad_rollout(name: str, namespace: str, fault: str = "crashloop", image: str = "registry.invalid/app:2") -> None:
    """A release whose pods crash: new image, and the simulated kubelet crash-loops its pods."""
    patch = {"spec": {"template": {"metadata": {"annotations": {FAULT: fault}},
                                   "spec": {"containers": [{"name": "app", "image": image}]}}}}
    kubectl("patch", "deployment", name, "-n", namespace, "-p", json.dumps(patch))
    wait_for(lambda: crashlooping(namespace, f"app={name}"), f"pods of {name} to crash-loop")


def inventory(tmp_path: Path, namespace: str, **host_vars: t.Any) -> Path:
    """An inventory for one cluster host, as a user would write it (see inventories/examples)."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": str(sre_testlib.VENV_BIN / "python"),
            "outage_platform": "kubernetes", "k8s_kubeconfig": kubeconfig(), "k8s_namespace": namespace,
            **host_vars}
    path = tmp_path / "k8s_inventory.json"
    path.write_text(json.dumps({"all": {"children": {"kubernetes": {"hosts": {"lab-k8s": host}}}}}))
    # A JSON file is valid YAML; name it .yml so the yaml inventory plugin takes it.
    target = tmp_path / "k8s_inventory.yml"
    path.rename(target)
    return target


def role_result(report: dict[str, t.Any], fact: str) -> dict[str, t.Any] | None:
    """The last value of a role's *_result fact in an ansible.posix.json report."""
    found = None
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            host = task["hosts"].get("lab-k8s") or {}
            facts = host.get("ansible_facts") or {}
            if fact in facts:
                found = facts[fact]
    return found


def changed_tasks(report: dict[str, t.Any]) -> list[str]:
    return [task["task"]["name"] for play in report.get("plays", []) for task in play.get("tasks", [])
            if (task["hosts"].get("lab-k8s") or {}).get("changed")]
