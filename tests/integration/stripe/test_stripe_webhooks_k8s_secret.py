"""The stripe_webhooks playbook with the signing secret in a Kubernetes Secret (the app's
Deployment takes it as STRIPE_WEBHOOK_SECRET), against the Stripe lab and the lab control plane:
present -> the failed events are replayed; missing -> refused, nothing replayed. The secret's
value is a canary: it is never printed or returned, even at -vvv."""

from __future__ import annotations

import json
import typing as t
import uuid

import pytest
from sre_testlib import kubeconfig, kubectl, lab_running, leaking_tasks, leaks, run_playbook, task_results

PLAYBOOK = "playbooks/outage/stripe_webhooks.yml"
HOST = "lab-stripe"
RECORD = "sre.runbooks.stripe_webhooks : Record | structured result for the incident timeline"


@pytest.fixture(scope="module")
def k8s_namespace() -> t.Iterator[str]:
    with lab_running("k8s"):
        kubectl("get", "--raw", "/readyz")
        name = f"it-stripe-{uuid.uuid4().hex[:8]}"
        kubectl("create", "namespace", name)
        try:
            yield name
        finally:
            kubectl("delete", "namespace", name, "--wait=false", check=False)


def webhook_worker(namespace: str, name: str, secret_name: str) -> dict[str, t.Any]:
    """The payment app's webhook worker: it reads the signing secret from a Secret key."""
    env = [{"name": "STRIPE_WEBHOOK_SECRET",
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "signing-secret"}}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "worker", "image": "registry.invalid/payments:1",
                                                           "env": env}]}}}}


def run(lab, endpoint, namespace, name, **kw):
    extra = {"stripe_webhooks_api_key": lab.api_key, "stripe_webhooks_endpoint_id": endpoint["id"],
             "stripe_webhooks_verify_timeout": 20, "k8s_kubeconfig": kubeconfig(),
             "stripe_webhooks_secret_k8s": {"namespace": namespace, "kind": "Deployment", "name": name}}
    rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra, env={"ANSIBLE_VERBOSITY": "3"}, **kw)
    text = json.dumps(report) + err
    for secret in (lab.api_key, endpoint["secret"]):
        assert secret not in text, str(leaking_tasks(report, secret)) + "\n" + leaks(text, secret)
    if "raw_stdout" in report:  # -vvv prints before the JSON report
        raw = report["raw_stdout"]
        report = json.loads(raw[raw.find("\n{") + 1:])
    records = task_results(report, RECORD)
    assert HOST in records, err[-3000:] + json.dumps(report)[-3000:]
    result = records[HOST]["ansible_facts"]["stripe_webhooks_result"]
    changed = [task["task"]["name"] for play in report.get("plays", []) for task in play["tasks"]
               if task["hosts"].get(HOST, {}).get("changed")]
    return rc, result, changed, err


def test_secret_in_kubernetes_present_replays(stripe_lab, failed_events, k8s_namespace):
    endpoint, failed = failed_events
    name = f"webhook-worker-{uuid.uuid4().hex[:6]}"
    kubectl("create", "secret", "generic", f"{name}-stripe", "-n", k8s_namespace,
            "--from-file=signing-secret=/dev/stdin", stdin=endpoint["secret"])
    kubectl("apply", "-f", "-", stdin=webhook_worker(k8s_namespace, name, f"{name}-stripe"))

    rc, result, changed, err = run(stripe_lab, endpoint, k8s_namespace, name, check=True)
    assert rc == 0, err[-3000:]
    assert result["outcome"] == "check mode: would replay the failed events" and changed == []
    secret = result["webhook_secret"]
    assert secret["present"] and secret["length"] == len(endpoint["secret"])
    assert secret["source"] == (f"Kubernetes Secret {name}-stripe key signing-secret "
                                f"(env STRIPE_WEBHOOK_SECRET of Deployment/{name} container worker)")

    rc, result, changed, err = run(stripe_lab, endpoint, k8s_namespace, name)
    assert rc == 0, err[-3000:]
    assert result["outcome"] == "healed" and sorted(result["acknowledged"]) == failed
    assert set(failed) <= set(stripe_lab.receiver_control()["acks"])


def test_secret_missing_in_kubernetes_refuses(stripe_lab, failed_events, k8s_namespace):
    endpoint, _failed = failed_events
    name = f"webhook-worker-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "-f", "-", stdin=webhook_worker(k8s_namespace, name, f"{name}-never-created"))
    rc, result, changed, _err = run(stripe_lab, endpoint, k8s_namespace, name)
    assert rc != 0 and changed == []
    assert result["outcome"] == "failed" and result["replayed"] == []
    assert "not set in the app's configuration" in result["error"]
    assert f"Secret {name}-never-created" in result["error"] and not result["webhook_secret"]["present"]
    assert not set(_failed) & set(stripe_lab.receiver_control()["acks"])
