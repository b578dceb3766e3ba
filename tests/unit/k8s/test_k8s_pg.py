"""Unit tests for plugins/module_utils/_k8s_pg.py: who owns failover of a PostgreSQL StatefulSet, and
every branch of the db_down decision on Kubernetes."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._k8s_pg import (
    PROMOTION,
    decide,
    failover_owner,
    missing_pods,
    pod_record,
    pod_role,
)

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
INCIDENT = datetime.datetime(2026, 1, 1, 11, 50, tzinfo=datetime.timezone.utc)
WORKLOAD = {"name": "pg", "desired": 3, "current_revision": "pg-1", "update_revision": "pg-1"}
NO_OWNER = {"owner": None, "source": None, "detected": [], "evidence": [], "conflict": False}


def k8s_pod(name="pg-0", ready=True, crash=None, labels=None, annotations=None, env=None, owners=None,
            node="n1", created="2026-01-01T11:00:00Z", unready_since="2026-01-01T11:55:00Z", terminating=False):
    meta = {"name": name, "namespace": "db", "uid": f"uid-{name}", "creationTimestamp": created,
            "labels": {"controller-revision-hash": "pg-1", **(labels or {})}, "annotations": annotations or {},
            "ownerReferences": owners or [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "pg",
                                           "controller": True, "uid": "sts"}]}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T11:59:50Z"
    container = {"name": "postgres", "ready": ready, "restartCount": 0, "state": {"running": {}}}
    if crash:
        container.update(restartCount=6, state={"waiting": {"reason": "CrashLoopBackOff"}},
                         lastState={"terminated": {"reason": crash, "exitCode": 137 if crash == "OOMKilled" else 1}})
    ready_cond = {"type": "Ready", "status": "True" if ready else "False",
                  "lastTransitionTime": "2026-01-01T11:00:00Z" if ready else unready_since}
    return {"metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "postgres", "env": env or []}]},
            "status": {"phase": "Running", "conditions": [ready_cond], "containerStatuses": [container]}}


def records(*pods, nodes_not_ready=(), primary_pod=None):
    return [pod_record(p, NOW, set(nodes_not_ready), "pg", primary_pod) for p in pods]


def healthy_set(**overrides):
    return [k8s_pod("pg-0", labels={"role": "primary"}), k8s_pod("pg-1", labels={"role": "replica"}),
            k8s_pod("pg-2", labels={"role": "replica"})]


# --------------------------------------------------------------------------- who owns failover

@pytest.mark.parametrize("pod, owner", [
    (k8s_pod(labels={"cnpg.io/cluster": "pg", "cnpg.io/instanceRole": "primary"}), "CloudNativePG"),
    (k8s_pod(owners=[{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "pg", "controller": True}]),
     "CloudNativePG"),
    (k8s_pod(labels={"application": "spilo", "spilo-role": "master"}), "Zalando Spilo (Patroni)"),
    (k8s_pod(labels={"postgres-operator.crunchydata.com/cluster": "hippo"}), "Crunchy PGO (Patroni)"),
    (k8s_pod(annotations={"status": json.dumps({"conn_url": "postgres://10.0.0.5:5432/postgres", "role": "master",
                                                "state": "running"})}), "Patroni"),
    (k8s_pod(env=[{"name": "PATRONI_KUBERNETES_LABELS", "value": "{}"}, {"name": "PATRONI_SCOPE", "value": "pg"}]),
     "Patroni"),
    (k8s_pod(env=[{"name": "REPMGR_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]), "repmgr"),
])
def test_operator_evidence_is_found_on_the_pods(pod, owner):
    found = failover_owner(None, [pod], "auto")
    assert found["owner"] == owner and found["source"] == "detected" and not found["conflict"]
    assert found["evidence"] and all(e["where"] == "Pod/db/pg-0" for e in found["evidence"])


def test_operator_evidence_names_keys_never_values():
    secret = "s3cr3t-Value"
    pod = k8s_pod(env=[{"name": "PATRONI_SUPERUSER_PASSWORD", "value": secret}],
                  annotations={"status": json.dumps({"conn_url": f"postgres://u:{secret}@h/db", "role": "master"})})
    assert secret not in json.dumps(failover_owner(None, [pod], "auto"))


def test_owner_on_the_statefulset_counts_too():
    sts = {"metadata": {"name": "pg", "namespace": "db", "ownerReferences": [
        {"apiVersion": "acid.zalan.do/v1", "kind": "postgresql", "name": "acid-pg", "controller": True}]}}
    found = failover_owner(sts, [k8s_pod()], "auto")
    assert found["owner"] == "Zalando postgres-operator (Patroni)"
    assert found["evidence"][0]["where"] == "StatefulSet/db/pg"


def test_a_plain_statefulset_has_no_owner():
    found = failover_owner({"metadata": {"name": "pg", "namespace": "db"}}, healthy_set(), "auto")
    assert found == {"owner": None, "source": None, "detected": [], "evidence": [], "conflict": False}


def test_the_inventory_names_an_owner_that_leaves_no_trace():
    found = failover_owner(None, healthy_set(), "patroni")
    assert found["owner"] == "patroni" and found["source"] == "inventory"


def test_the_inventory_says_none_and_the_cluster_agrees():
    found = failover_owner(None, healthy_set(), "none")
    assert found["owner"] is None and not found["conflict"]


def test_the_inventory_says_none_but_the_cluster_carries_an_operator():
    found = failover_owner(None, [k8s_pod(labels={"cnpg.io/cluster": "pg"})], "none")
    assert found["owner"] == "CloudNativePG" and found["conflict"]


# --------------------------------------------------------------------------- pods

def test_primary_from_labels_or_inventory():
    assert pod_role(k8s_pod(labels={"spilo-role": "master"}), None) == "primary"
    assert pod_role(k8s_pod(labels={"app.kubernetes.io/component": "read"}), None) == "replica"
    assert pod_role(k8s_pod(), None) == "unknown"
    assert pod_role(k8s_pod("pg-1", labels={"role": "primary"}), "pg-0") == "replica"
    assert pod_role(k8s_pod("pg-0"), "pg-0") == "primary"


def test_pod_record_of_a_crashing_pod():
    rec = records(k8s_pod("pg-1", ready=False, crash="Error"))[0]
    assert rec["failing"] and rec["reason"] == "CrashLoopBackOff" and rec["ordinal"] == 1
    assert rec["last_termination"]["exit_code"] == 1 and rec["unready_seconds"] == 300
    assert rec["restart_count"] == 6 and rec["node_ready"] is True


def test_a_ready_pod_with_old_restarts_is_not_failing():
    pod = k8s_pod("pg-0")
    pod["status"]["containerStatuses"][0]["restartCount"] = 4
    rec = records(pod)[0]
    assert not rec["failing"] and rec["reason"] is None and rec["restart_count"] == 4


def test_missing_ordinals():
    assert [m["name"] for m in missing_pods("pg", 3, ["pg-0", "pg-2"])] == ["pg-1"]
    assert missing_pods(None, 3, []) == []


# --------------------------------------------------------------------------- the decision, every branch

def test_healthy_statefulset_is_left_alone():
    v = decide(WORKLOAD, records(*healthy_set()), NO_OWNER, INCIDENT, 30)
    assert (v["state"], v["found"], v["act"], v["action"]) == ("healthy", False, False, "none")
    assert v["primary"] == "pg-0" and v["promotion"] is None


def test_one_failing_pod_is_restarted():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, crash="Error", labels={"role": "replica"})
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert (v["state"], v["act"], v["action"], v["target"]) == ("restart_pod", True, "restart_pod", "pg-1")
    assert "last exit 1" in v["summary"] and v["promotion"] == PROMOTION


def test_the_failing_primary_is_restarted_and_named():
    pods = healthy_set()
    pods[0] = k8s_pod("pg-0", ready=False, crash="Error", labels={"role": "primary"})
    v = decide(WORKLOAD, records(*pods), NO_OWNER, None, 30)
    assert v["act"] and v["target"] == "pg-0" and "(the primary)" in v["summary"]


def test_a_hung_pod_not_ready_is_restarted():
    pods = healthy_set()
    pods[2] = k8s_pod("pg-2", ready=False)
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "restart_pod" and v["target"] == "pg-2" and "NotReady" in v["summary"]


def test_operator_owned_is_refused_even_with_one_failing_pod():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, crash="Error", labels={"cnpg.io/cluster": "pg"})
    recs = records(*pods)
    owner = failover_owner(None, pods, "auto")
    v = decide(WORKLOAD, recs, owner, INCIDENT, 30)
    assert (v["state"], v["found"], v["act"], v["action"]) == ("operator_owned", True, False, "report")
    assert "CloudNativePG" in v["summary"] and "cnpg.io/cluster" in v["summary"] and "pg-1" in v["summary"]


def test_operator_owned_and_healthy_is_nothing_to_do():
    owner = failover_owner(None, [], "patroni")
    v = decide(WORKLOAD, records(*healthy_set()), owner, INCIDENT, 30)
    assert (v["state"], v["found"], v["act"]) == ("operator_owned", False, False)


def test_inventory_none_against_operator_labels_is_refused():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, crash="Error", labels={"application": "spilo"})
    v = decide(WORKLOAD, records(*pods), failover_owner(None, pods, "none"), INCIDENT, 30)
    assert v["state"] == "operator_owned" and not v["act"] and "disagree" in v["summary"]


def test_several_failing_pods_are_reported():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, crash="Error")
    pods[2] = k8s_pod("pg-2", ready=False)
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert (v["state"], v["act"], v["failing"]) == ("several_failing", False, ["pg-1", "pg-2"])


def test_a_missing_pod_and_a_failing_one_are_several():
    recs = records(k8s_pod("pg-0"), k8s_pod("pg-1", ready=False, crash="Error"))
    recs += missing_pods("pg", 3, ["pg-0", "pg-1"])
    v = decide(WORKLOAD, recs, NO_OWNER, INCIDENT, 30)
    assert v["state"] == "several_failing" and v["failing"] == ["pg-1", "pg-2"]


def test_a_missing_pod_alone_is_not_restartable():
    recs = records(k8s_pod("pg-0"), k8s_pod("pg-1")) + missing_pods("pg", 3, ["pg-0", "pg-1"])
    v = decide(WORKLOAD, recs, NO_OWNER, INCIDENT, 30)
    assert v["state"] == "not_restartable" and not v["act"] and "did not create" in v["summary"]


def test_scaled_to_zero_is_reported_never_scaled():
    v = decide({**WORKLOAD, "desired": 0}, [], NO_OWNER, INCIDENT, 30)
    assert v["state"] == "scaled_to_zero" and not v["act"] and v["found"]


def test_a_pod_on_a_not_ready_node_is_not_deleted():
    pods = healthy_set()
    pods[0] = k8s_pod("pg-0", ready=False, node="n2", labels={"role": "primary"})
    v = decide(WORKLOAD, records(*pods, nodes_not_ready={"n2"}), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "node_not_ready" and not v["act"] and "fence the node" in v["summary"]


def test_a_full_volume_is_reported():
    pods = healthy_set()
    pods[0] = k8s_pod("pg-0", ready=False, crash="Error")
    recs = records(*pods)
    recs[0]["disk_full"] = True
    v = decide(WORKLOAD, recs, NO_OWNER, INCIDENT, 30)
    assert v["state"] == "disk_full" and not v["act"]


def test_a_pod_of_an_unfinished_rollout_is_a_bad_release():
    pods = healthy_set()
    pods[2] = k8s_pod("pg-2", ready=False, crash="Error", labels={"controller-revision-hash": "pg-2"})
    v = decide({**WORKLOAD, "update_revision": "pg-2"}, records(*pods), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "bad_release" and not v["act"] and "crashloop runbook" in v["summary"]


@pytest.mark.parametrize("crash, reason", [("OOMKilled", "OOMKilled")])
def test_oomkilled_is_not_restartable(crash, reason):
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, crash=crash)
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "not_restartable" and reason in v["summary"] and "memory_exhaustion" in v["summary"]


def test_image_pull_is_not_restartable():
    pods = healthy_set()
    bad = k8s_pod("pg-1", ready=False)
    bad["status"].update(phase="Pending", containerStatuses=[
        {"name": "postgres", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}])
    pods[1] = bad
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "not_restartable" and "image" in v["summary"]


def test_a_pod_already_recreated_in_this_incident_is_not_deleted_again():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, crash="Error", created="2026-01-01T11:55:00Z")
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "already_restarted" and not v["act"] and "escalate" in v["summary"]
    # Without an incident start every run may restart (like kubectl delete pod).
    assert decide(WORKLOAD, records(*pods), NO_OWNER, None, 30)["state"] == "restart_pod"


def test_a_blip_is_watched_not_acted_on():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", ready=False, unready_since="2026-01-01T11:59:50Z")
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 30)
    assert v["state"] == "settling" and not v["act"] and "10 s only" in v["summary"]
    assert decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 5)["state"] == "restart_pod"


def test_a_terminating_pod_is_being_replaced():
    pods = healthy_set()
    pods[1] = k8s_pod("pg-1", terminating=True)
    v = decide(WORKLOAD, records(*pods), NO_OWNER, INCIDENT, 0)
    assert v["state"] == "settling" and not v["act"] and "Terminating" in v["summary"]
