"""The Kubernetes outage playbooks under ansible-runner, as AWX runs them (tests/lib/runner_lab.py),
side by side against a healthy namespace: the outcome test_k8s_never_worse.py's no-fault control
asserts of the plain runs, read from the job events."""

from __future__ import annotations

import json

from k8s_integration import apply, deployment, get, inventory, kubectl, nodes_all_schedulable, rollout_done
from runner_lab import COVERED, Job, assert_no_action_needed, run_all


def test_k8s_playbooks_under_ansible_runner(namespace, tmp_path):
    nodes_all_schedulable()
    apply(deployment("api-gateway", namespace, replicas=2), deployment("checkout", namespace, replicas=2))
    rollout_done("api-gateway", namespace)
    rollout_done("checkout", namespace)
    before = {d: get("deployment", d, namespace)["metadata"]["generation"] for d in ("api-gateway", "checkout")}
    inv = inventory(tmp_path, namespace)
    jobs = run_all([Job(tmp_path, name, inv, {"memory_exhaustion_allow_limit_raise": True}
                        if name == "memory_exhaustion" else {}) for name in COVERED["k8s"]])
    for job in jobs:
        result = assert_no_action_needed(job, "lab-k8s")
        if isinstance(result.get("verdict"), str):
            assert "healthy" in result["verdict"] or "nothing" in result["verdict"], f"{job.name}: {result['verdict']}"
    assert before == {d: get("deployment", d, namespace)["metadata"]["generation"] for d in before}
    assert not any(n["spec"].get("unschedulable") for n in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"])
