"""Secret canary across the Kubernetes playbooks: a known value sits in a Secret, in a pod
template's env and args, and in a crashed container's log. Each playbook runs at -vvv (the most a
user prints); the value appears in no output and no registered result."""

from __future__ import annotations

import pytest

import sre_testlib
from k8s_integration import FAULT, apply, crashlooping, deployment, inventory, kubectl, wait_for

CANARY = "Canary-k8s-9f3b2c71"
PREVIOUS_LOG = "sim.sre-runbooks.io/previous-log"
PLAYBOOKS = ["crashloop", "api_gateway_down", "memory_exhaustion", "node_failure"]
# Short waits: the canary is about what the runs print, not whether the (unhealable) fault heals.
FAST = {"api_gateway_down_wait_timeout": 15, "api_gateway_down_scale_pause": 1, "crashloop_wait_timeout": 15,
        "memory_exhaustion_wait_timeout": 15, "node_failure_drain_wait_timeout": 15,
        "node_failure_reschedule_timeout": 15, "node_failure_drain_retries": 1}


@pytest.fixture
def secret_laden_namespace(namespace):
    kubectl("create", "secret", "generic", "app-secrets", "-n", namespace,
            f"--from-literal=password={CANARY}", f"--from-literal=DATABASE_URL=postgresql://app:{CANARY}@db/shop")
    env = [{"name": "DB_PASSWORD", "value": CANARY},
           {"name": "DATABASE_URL", "value": f"postgresql://app:{CANARY}@db/shop"},
           {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "password"}}}]
    for name in ("checkout", "api-gateway"):
        manifest = deployment(name, namespace, replicas=2, env=env, memory_limit="128Mi")
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        container["args"] = [f"--token={CANARY}", "--port=8080"]
        manifest["spec"]["template"]["metadata"]["annotations"] = {
            FAULT: "crashloop",
            PREVIOUS_LOG: f"starting\nconnecting to postgresql://app:{CANARY}@db/shop\npassword={CANARY} rejected\n",
        }
        apply(manifest)
    wait_for(lambda: crashlooping(namespace, "app=checkout"), "checkout to crash-loop")
    return namespace


@pytest.mark.parametrize("scenario", PLAYBOOKS)
def test_no_playbook_prints_or_returns_a_secret(scenario, secret_laden_namespace, tmp_path):
    inv = inventory(tmp_path, secret_laden_namespace, **FAST)
    for check in (True, False):
        rc, report, err = sre_testlib.run_playbook(
            sre_testlib.REPO / "playbooks" / "outage" / f"{scenario}.yml", inventory=inv, check=check,
            diff=True, env={"ANSIBLE_VERBOSITY": "3"})
        text = str(report) + err
        assert "lab-k8s" in text, text[-3000:]
        assert CANARY not in text, (f"{scenario} (check={check}) leaked in tasks {sre_testlib.leaking_tasks(report, CANARY)}:\n"
                                    + sre_testlib.leaks(text, CANARY))
