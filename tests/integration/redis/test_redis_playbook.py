"""playbooks/outage/redis_unavailable.yml against the real lab: a healthy group is left alone,
`--tags assess` and `--check` change nothing, a killed master is replaced and the run is idempotent,
a Sentinel-managed group is failed over by its sentinels, full memory is only flushed when allowed."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest
import redis
import yaml

from sre_testlib import REPO, kubeconfig, kubectl, lab_running, run_playbook

pytestmark = pytest.mark.slow

PLAYBOOK = REPO / "playbooks" / "outage" / "redis_unavailable.yml"


def task(report, suffix):
    """Per-host results of the last task whose name ends with suffix (role tasks carry a prefix)."""
    found = {}
    for play in report.get("plays", []):
        for entry in play.get("tasks", []):
            if entry["task"]["name"].endswith(suffix):
                found = entry["hosts"]
    return found


def record(report):
    return task(report, "Record | structured result for the incident timeline")["lab-redis"]["ansible_facts"][
        "redis_unavailable_result"]


def play(lab, inventory, **kwargs):
    rc, report, stderr = run_playbook(PLAYBOOK, inventory, **kwargs)
    assert lab.password not in json.dumps(report) + stderr, "the password was printed"
    return rc, report, stderr


def changed_tasks(report):
    return [entry["task"]["name"] for play_ in report.get("plays", []) for entry in play_.get("tasks", [])
            if any(h.get("changed") for h in entry["hosts"].values())]


@pytest.mark.parametrize("with_sentinels", [False, True])
def test_healthy_group_is_left_alone(lab, tmp_path, with_sentinels):
    """No-fault control: nothing injected, nothing done, and the verdict says so."""
    before = lab.roles()
    rc, report, stderr = play(lab, lab.inventory(tmp_path, with_sentinels=with_sentinels))
    assert rc == 0, stderr or report
    result = record(report)
    assert result["outcome"] == "no action needed" and result["master"] == lab.nodes[0]
    assert result["verdict"] == "healthy" and result["reason"].startswith("healthy, nothing to do"), result
    assert result["actions"] == [] and result["restarted"] == [] and result["flushed"] == []
    assert report["stats"]["lab-redis"]["changed"] == 0 and changed_tasks(report) == []
    assert lab.roles() == before


def test_master_at_maxclients_is_reported_and_left_alone(lab_nodes, tmp_path):
    """A different fault (a connection leak fills maxclients): busy is not dead, nothing is done."""
    lab = lab_nodes
    admin, fillers = lab.fill_client_slots(lab.ports[0])
    try:
        rc, report, stderr = play(lab, lab.inventory(tmp_path, redis_unavailable_min_master_down_seconds=0))
        assert rc == 0, stderr or report
        result = record(report)
        assert result["verdict"] == "master_busy" and "max number of clients" in result["reason"], result
        assert result["outcome"] == "no action needed" and result["actions"] == [] and result["restarted"] == []
        assert report["stats"]["lab-redis"]["changed"] == 0 and changed_tasks(report) == []
        assert admin.info("replication")["role"] == "master"
    finally:
        for client in fillers:
            client.close()
        admin.config_set("maxclients", 10000)
    assert lab.roles()[lab.nodes[0]] == "master"


def test_killed_master_assess_check_act_verify_and_second_run(lab_nodes, tmp_path):
    lab = lab_nodes
    inv = lab.inventory(tmp_path, redis_unavailable_min_master_down_seconds=1)
    lab.write(lab.ports[0], 300, acked_by=2)
    lab.kill(lab.ports[0])
    time.sleep(1.2)  # the replicas must have seen the link down for min_master_down_seconds
    before = lab.roles()

    rc, report, stderr = play(lab, inv, tags="assess")
    assert rc == 0, stderr or report
    assessed = record(report)
    assert assessed["outcome"] == "assessed only" and assessed["unreachable_before"] == [lab.nodes[0]]
    assert report["stats"]["lab-redis"]["changed"] == 0
    assert lab.roles() == before, "--tags assess changed the group"

    rc, report, stderr = play(lab, inv, check=True)
    assert rc == 0, stderr or report
    assert record(report)["outcome"] == "check mode: would act"
    assert record(report)["method"] == "promote"
    assert lab.roles() == before, "--check changed the group"

    rc, report, stderr = play(lab, inv)
    assert rc == 0, stderr or report
    healed = record(report)
    assert healed["outcome"] == "healed" and healed["previous_master"] == lab.nodes[0], healed
    new_master = healed["master"]
    assert new_master in lab.nodes[1:] and healed["write_check"]["ok"] is True
    assert [a["action"] for a in healed["actions"]] == ["promote", "replicaof"]
    other = next(n for n in lab.nodes[1:] if n != new_master)
    assert lab.roles() == {lab.nodes[0]: "down", new_master: "master", other: f"replica of {new_master}"}
    assert lab.client(int(new_master.rsplit(":", 1)[1])).dbsize() == 300

    rc, report, stderr = play(lab, inv)
    assert rc == 0, stderr or report
    assert report["stats"]["lab-redis"]["changed"] == 0, "second run changed something"
    assert record(report)["actions"] == []


@pytest.mark.parametrize("topology", ["sentinels_only", "with_sentinels"])
def test_sentinel_managed_group(lab, tmp_path, topology):
    inv = lab.inventory(tmp_path, **{topology: True}, redis_unavailable_min_master_down_seconds=0)
    # The lab's sentinels agree a master is down after 30 s, and then fail over on their own; a
    # playbook run takes ~6 s, but 3-4x that with the suite in lanes. Ten minutes keeps "not agreed
    # yet" true for the whole first run, however slow.
    lab.sentinels_down_after(600_000)
    lab.kill(lab.ports[0])
    # The sentinels do not agree yet: the run reports it and changes nothing.
    rc, report, stderr = play(lab, inv)
    assert rc == 0, stderr or report
    waiting = record(report)
    assert waiting["verdict"] == "master_unconfirmed" and "sentinels do not agree" in waiting["reason"], waiting
    assert waiting["actions"] == [] and lab.sentinel_masters() == {lab.nodes[0]}
    # The on-call engineer overrides the evidence.
    rc, report, stderr = play(lab, inv, extra_vars={"redis_unavailable_force": True})
    assert rc == 0, stderr or report
    healed = record(report)
    assert healed["method"] == "sentinel" and healed["master"] in lab.nodes[1:], healed
    assert lab.sentinel_masters() == {healed["master"]}
    rc, report, stderr = play(lab, inv)
    assert rc == 0 and report["stats"]["lab-redis"]["changed"] == 0, stderr or report


def fill_memory(lab):
    master = lab.client(lab.ports[0])
    used = int(master.info("memory")["used_memory"])
    master.config_set("maxmemory-policy", "noeviction")
    master.config_set("maxmemory", used + 512 * 1024)
    with pytest.raises(Exception, match="maxmemory"):
        for i in range(10000):
            master.set(f"fill{i}", "x" * 1024)
    return master


def test_full_memory_is_reported_and_flushed_only_when_allowed(lab_nodes, tmp_path):
    lab = lab_nodes
    other_db = redis.Redis(host=lab.host, port=lab.ports[0], password=lab.password, db=1, decode_responses=True)
    other_db.set("keep-me", "db1")
    master = fill_memory(lab)
    keys = master.dbsize()
    rc, report, stderr = play(lab, lab.inventory(tmp_path))
    # Not allowed to flush: the master still refuses writes, so the run fails and says why.
    assert rc != 0
    result = record(report)
    assert [m["address"] for m in result["memory_full"]] == [lab.nodes[0]] and result["flushed"] == []
    assert "redis_unavailable_allow_flush" in result["error"]
    assert master.dbsize() == keys, "flushed without redis_unavailable_allow_flush"

    rc, report, stderr = play(lab, lab.inventory(tmp_path), extra_vars={"redis_unavailable_allow_flush": True})
    assert rc == 0, stderr or report
    result = record(report)
    # Runbook 004: FLUSHDB of the asked database (0) on the full node only.
    assert result["flushed"] == [lab.nodes[0]] and result["flushed_dbs"] == [0], result
    assert [(a["action"], a["target"], a["db"]) for a in result["actions"]] == [("flushdb", lab.nodes[0], 0)]
    assert master.dbsize() == 0 and other_db.get("keep-me") == "db1", "FLUSHALL, not FLUSHDB"


def test_only_a_full_replica_flushes_nothing(lab_nodes, tmp_path):
    """A replica over its maxmemory is a read-only copy: its master is not flushed in its place."""
    lab = lab_nodes
    lab.write(lab.ports[0], 500, acked_by=2)
    replica = lab.client(lab.ports[1])
    replica.config_set("maxmemory", int(replica.info("memory")["used_memory"]))
    rc, report, stderr = play(lab, lab.inventory(tmp_path), extra_vars={"redis_unavailable_allow_flush": True})
    result = record(report)
    assert [m["address"] for m in result["memory_full"]] == [lab.nodes[1]], result
    assert result["flushed"] == [] and lab.client(lab.ports[0]).dbsize() == 500
    assert lab.client(lab.ports[1]).dbsize() == 500
    assert rc != 0 and "read-only" in result["error"], "a full node that cannot be healed must fail the run"


def test_kubernetes_restart_failure_is_recorded_and_named(lab_nodes, tmp_path):
    lab = lab_nodes
    lab.kill(lab.ports[2])
    rc, report, stderr = play(lab, lab.inventory(tmp_path, outage_platform="kubernetes",
                                                 redis_unavailable_pods={lab.nodes[2]: "redis-2"}))
    assert rc != 0
    result = record(report)
    assert result["outcome"] == "failed" and "delete the pods of dead redis nodes" in result["error"].lower(), result


def test_two_hosts_of_one_group_fail_over_once(lab_nodes, tmp_path):
    """Group-wide steps run on one host per replication group, not once per inventory host."""
    lab = lab_nodes
    inv = lab.inventory(tmp_path, redis_unavailable_min_master_down_seconds=0)
    hosts = inv / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    redis_hosts = data["all"]["children"]["redis"]["hosts"]
    redis_hosts["lab-redis-2"] = dict(redis_hosts["lab-redis"])
    hosts.write_text(yaml.safe_dump(data))
    lab.kill(lab.ports[0])
    rc, report, stderr = play(lab, inv)
    assert rc == 0, stderr or report
    failovers = task(report, "Act | fail over or re-point so one master has every other node as replica")
    assert sorted(h for h, r in failovers.items() if r.get("changed")) == ["lab-redis"]
    results = [h["ansible_facts"]["redis_unavailable_result"]
               for h in task(report, "Record | structured result for the incident timeline").values()]
    masters = [address for address, role in lab.roles().items() if role == "master"]
    assert {r["master"] for r in results} == set(masters) and len(masters) == 1
    assert {r["outcome"] for r in results} == {"healed"}


def test_tripped_guardrail_stops_the_run_and_changes_nothing(lab_nodes, tmp_path):
    lab = lab_nodes
    lagging = lab.client(lab.ports[2])
    lagging.config_set("masterauth", "not-the-password")
    lagging.execute_command("CLIENT", "KILL", "TYPE", "master")
    lab.write(lab.ports[0], 20000)
    inv = lab.inventory(tmp_path, redis_unavailable_target=lab.nodes[2])
    before = lab.roles()
    rc, report, stderr = play(lab, inv, tags="assess")
    assert rc == 0, stderr or report
    assert "max_lag_bytes" in task(report, "Assess | report")["lab-redis"]["msg"]
    rc, report, stderr = play(lab, inv)
    assert rc != 0
    result = record(report)
    assert result["outcome"] == "failed" and "guardrail 'max_lag_bytes' tripped" in result["error"]
    assert lab.roles() == before


def test_kubernetes_dead_replica_replaces_only_its_pod(lab_nodes, tmp_path):
    """outage_platform: kubernetes on the real lab control plane: a dead replica's pod is deleted
    (the StatefulSet controller recreates it); the master's pod and the other replica's are not
    touched, and the StatefulSet is not restarted. The lab's pods are simulated, so this test
    plays the kubelet's part: once the dead pod is replaced, it starts the dead process again."""
    lab = lab_nodes
    with lab_running("k8s"):
        namespace = f"it-redis-{uuid.uuid4().hex[:6]}"
        kubectl("create", "namespace", namespace)
        try:
            kubectl("apply", "-f", "-", stdin={
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "redis", "namespace": namespace},
                "spec": {"serviceName": "redis", "replicas": 3, "selector": {"matchLabels": {"app": "redis"}},
                         "template": {"metadata": {"labels": {"app": "redis"}},
                                      "spec": {"containers": [{"name": "redis", "image": "registry.invalid/redis:7"}],
                                               "terminationGracePeriodSeconds": 1}}}})
            kubectl("rollout", "status", "statefulset/redis", "-n", namespace, "--timeout=120s")

            def pod_uids():
                pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
                return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}

            uids = pod_uids()
            assert sorted(uids) == ["redis-0", "redis-1", "redis-2"]
            lab.write(lab.ports[0], 100, acked_by=2)
            lab.kill(lab.ports[2])

            replaced, errors = threading.Event(), []

            def kubelet():
                try:
                    for _attempt in range(600):
                        now = pod_uids()
                        if now.get("redis-2") not in (None, uids["redis-2"]):
                            lab.start_stopped()
                            replaced.set()
                            return
                        time.sleep(0.2)
                except Exception as exc:  # a thread's exception would otherwise vanish
                    errors.append(repr(exc))

            watcher = threading.Thread(target=kubelet, daemon=True)
            watcher.start()
            pods = dict(zip(lab.nodes, ["redis-0", "redis-1", "redis-2"]))
            inv = lab.inventory(tmp_path, outage_platform="kubernetes", k8s_kubeconfig=kubeconfig(),
                                k8s_namespace=namespace, redis_unavailable_pods=pods)
            rc, report, stderr = play(lab, inv)
            watcher.join(timeout=5)
            assert not errors, errors
            assert replaced.is_set(), "the playbook never deleted the dead pod"
            assert rc == 0, stderr or report
            result = record(report)
            assert result["outcome"] == "healed" and result["platform"] == "kubernetes", result
            assert result["unreachable_before"] == [lab.nodes[2]] and result["restarted"] == [lab.nodes[2]], result
            assert [(a["action"], a["pod"]) for a in result["actions"] if a["action"] == "delete_pod"] == \
                [("delete_pod", "redis-2")]
            after = pod_uids()
            assert after["redis-0"] == uids["redis-0"], "the master's pod was replaced"
            assert after["redis-1"] == uids["redis-1"], "a healthy replica's pod was replaced"
            template = json.loads(kubectl("get", "statefulset", "redis", "-n", namespace, "-o", "json").stdout)
            assert "restartedAt" not in json.dumps(template["spec"]["template"]), "the StatefulSet was restarted"
            assert lab.roles() == {lab.nodes[0]: "master", lab.nodes[1]: f"replica of {lab.nodes[0]}",
                                   lab.nodes[2]: f"replica of {lab.nodes[0]}"}
        finally:
            kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_kubernetes_unreachable_sentinel_restarts_nothing(lab, tmp_path):
    """A dead sentinel is reported; no pod is deleted, no StatefulSet restarted (no cluster is even
    needed: any Kubernetes call here would fail the run)."""
    sentinel_pid = int(open(f"{lab.state_dir}/sentinel-{lab.sentinel_ports[0]}/sentinel.pid").read())
    os.kill(sentinel_pid, signal.SIGKILL)
    time.sleep(0.3)
    inv = lab.inventory(tmp_path, with_sentinels=True, outage_platform="kubernetes",
                        redis_unavailable_pods=dict(zip(lab.nodes, ["redis-0", "redis-1", "redis-2"])))
    rc, report, stderr = play(lab, inv)
    assert rc == 0, stderr or report
    result = record(report)
    assert result["unreachable_sentinels"] == [lab.sentinels[0]] and result["restarted"] == [], result
    assert result["actions"] == [] and report["stats"]["lab-redis"]["changed"] == 0


def test_nodes_named_localhost_switch_over_to_a_target(lab_nodes, tmp_path):
    """An inventory that names the nodes by DNS name: FAILOVER TO must use the master's view."""
    lab = lab_nodes
    nodes = [f"localhost:{p}" for p in lab.ports]
    inv = lab.inventory(tmp_path, redis_nodes=nodes, redis_unavailable_target=nodes[1])
    rc, report, stderr = play(lab, inv)
    assert rc == 0, stderr or report
    result = record(report)
    assert result["method"] == "failover" and result["master"] == nodes[1], result
    assert lab.roles()[lab.nodes[1]] == "master"
