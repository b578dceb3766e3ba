"""playbooks/outage/redis_unavailable.yml against the real lab: a healthy group is left alone,
`--tags assess` and `--check` change nothing, a killed master is replaced and the run is idempotent,
a Sentinel-managed group is failed over by its sentinels, full memory is only flushed when allowed."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
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


def test_healthy_group_is_left_alone(lab_nodes, tmp_path):
    lab = lab_nodes
    rc, report, stderr = play(lab, lab.inventory(tmp_path))
    assert rc == 0, stderr or report
    result = record(report)
    assert result["outcome"] == "no action needed" and result["master"] == lab.nodes[0]
    assert report["stats"]["lab-redis"]["changed"] == 0


def test_killed_master_assess_check_act_verify_and_second_run(lab_nodes, tmp_path):
    lab = lab_nodes
    inv = lab.inventory(tmp_path)
    lab.write(lab.ports[0], 300, acked_by=2)
    lab.kill(lab.ports[0])
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
    inv = lab.inventory(tmp_path, **{topology: True})
    lab.kill(lab.ports[0])
    rc, report, stderr = play(lab, inv)
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
    master = fill_memory(lab)
    keys = master.dbsize()
    rc, report, stderr = play(lab, lab.inventory(tmp_path))
    # Not allowed to flush: the master still refuses writes, so the run fails and says why.
    assert rc != 0
    result = record(report)
    assert [m["address"] for m in result["memory_full"]] == [lab.nodes[0]] and result["flushed"] is False
    assert "redis_unavailable_allow_flush" in result["error"]
    assert master.dbsize() == keys, "flushed without redis_unavailable_allow_flush"

    rc, report, stderr = play(lab, lab.inventory(tmp_path), extra_vars={"redis_unavailable_allow_flush": True})
    assert rc == 0, stderr or report
    assert record(report)["flushed"] is True and master.dbsize() == 0


def test_kubernetes_restart_failure_is_recorded_and_named(lab_nodes, tmp_path):
    lab = lab_nodes
    lab.kill(lab.ports[2])
    rc, report, stderr = play(lab, lab.inventory(tmp_path, outage_platform="kubernetes"))
    assert rc != 0
    result = record(report)
    assert result["outcome"] == "failed" and "statefulset" in result["error"].lower(), result


def test_two_hosts_of_one_group_fail_over_once(lab_nodes, tmp_path):
    """Group-wide steps run on one host per replication group, not once per inventory host."""
    lab = lab_nodes
    inv = lab.inventory(tmp_path)
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


def test_kubernetes_statefulset_restart_brings_a_dead_node_back(lab_nodes, tmp_path):
    """outage_platform: kubernetes on the real lab control plane: a dead node is brought back by a
    rollout restart of the Redis StatefulSet. The lab's pods are simulated, so this test plays
    the kubelet's part: once the restart is on the StatefulSet, it starts the dead process again."""
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
            lab.write(lab.ports[0], 100, acked_by=2)
            lab.kill(lab.ports[2])

            restarted, errors = threading.Event(), []

            def kubelet():
                try:
                    for _attempt in range(600):
                        template = json.loads(kubectl("get", "statefulset", "redis", "-n", namespace,
                                                      "-o", "json").stdout)
                        if "kubectl.kubernetes.io/restartedAt" in json.dumps(template["spec"]["template"]):
                            lab.start_stopped()
                            restarted.set()
                            return
                        time.sleep(0.2)
                except Exception as exc:  # a thread's exception would otherwise vanish
                    errors.append(repr(exc))

            watcher = threading.Thread(target=kubelet, daemon=True)
            watcher.start()
            inv = lab.inventory(tmp_path, outage_platform="kubernetes", k8s_kubeconfig=kubeconfig(),
                                k8s_namespace=namespace)
            rc, report, stderr = play(lab, inv)
            watcher.join(timeout=5)
            assert not errors, errors
            assert restarted.is_set(), "the playbook never restarted the StatefulSet"
            assert rc == 0, stderr or report
            result = record(report)
            assert result["outcome"] == "healed" and result["platform"] == "kubernetes", result
            assert result["unreachable_before"] == [lab.nodes[2]] and result["restarted"] == ["redis"], result
            assert lab.roles() == {lab.nodes[0]: "master", lab.nodes[1]: f"replica of {lab.nodes[0]}",
                                   lab.nodes[2]: f"replica of {lab.nodes[0]}"}
        finally:
            kubectl("delete", "namespace", namespace, "--wait=false", check=False)
