"""kafka_topic_recreate and the kafka_lag role's recreation step against the real lab broker (Tansu).

The lab cannot make a topic corrupt (Tansu keeps every partition led and readable), so every topic
here looks healthy: the real recreations pass force, and the refusal of a healthy topic without it
is tested too. The decision for a broken topic is unit-tested (tests/unit/kafka/test_kafka_recreate.py)."""

from __future__ import annotations

import json

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, OffsetSpec, ResourceType

from sre_testlib import REPO, lab_inventory_of, run_module, run_playbook, task_results

PLAYBOOK = REPO / "playbooks" / "outage" / "kafka_lag.yml"
RECORD_TASK = "sre.runbooks.kafka_lag : Record | structured result for the incident timeline"


def make_topic(lab, partitions=3, configs=None):
    name = lab.name("recreate")
    for fut in lab.admin.create_topics([NewTopic(name, partitions, 1, config=configs or {})]).values():
        fut.result(30)
    return name


def end_offsets(lab, topic, partitions=3):
    futs = lab.admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)})
    return {tp.partition: fut.result(10).offset for tp, fut in futs.items()}


def committed(lab, group):
    res = lab.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions if tp.offset >= 0}


def topic_configs(lab, topic):
    fut = lab.admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    return {k: v.value for k, v in next(iter(fut.values())).result(10).items()}


def layout(lab, topic):
    tm = lab.admin.list_topics(topic, timeout=10).topics[topic]
    return sorted((p.id, len(p.replicas), p.leader >= 0) for p in tm.partitions.values())


def seeded(lab):
    """A topic with messages, a non-default config, and a group's committed offsets on it."""
    topic = make_topic(lab, 3, {"retention.ms": "7200000"})
    lab.produce(topic, 4, partitions=3)
    group = lab.name("reader")
    lab.commit(group, {(topic, 0): 3, (topic, 1): 4, (topic, 2): 2})
    lab.wait_committed(group, {(topic, 0): 3, (topic, 1): 4, (topic, 2): 2})
    return topic, group


def test_module_guardrails_check_mode_and_recreation(kafka_lab):
    topic, group = seeded(kafka_lab)
    base = {"bootstrap_servers": [kafka_lab.bootstrap], "topics": [topic], "copy_configs": "all"}
    phrase = f"RECREATE {topic}"

    # no confirmation: refused, naming what to type; nothing deleted
    res = run_module("kafka_topic_recreate", dict(base, confirm=["yes"], force=True))
    assert res.get("failed") and f"'{phrase}'" in res["msg"] and "Nothing was deleted" in res["msg"], res
    assert res["refused"] == [topic] and res["actions"] == [] and res["changed"] is False
    # confirmed but healthy and not forced: refused
    res = run_module("kafka_topic_recreate", dict(base, confirm=[phrase]))
    assert res.get("failed") and "looks healthy" in res["msg"] and "force" in res["msg"], res
    assert end_offsets(kafka_lab, topic) == {0: 4, 1: 4, 2: 4}

    # check mode: exactly what it would delete and create, and the offsets it would lose; nothing changes
    res = run_module("kafka_topic_recreate", dict(base, confirm=[phrase], force=True), check=True)
    assert not res.get("failed"), res
    assert res["changed"] is True and res["recreated"] == [] and res["data_loss"] == [topic]
    (plan,) = res["plan"]
    assert plan["status"] == "recreate" and plan["layout"] == {"partitions": 3, "replication_factor": 1}
    assert plan["configs"]["retention.ms"] == "7200000"
    assert plan["committed_offsets"] == {group: {"0": 3, "1": 4, "2": 2}}
    assert plan["messages"] == {"0": 4, "1": 4, "2": 4}
    assert [(a["action"], a["target"], a["result"]) for a in res["actions"]] == [
        ("recreate topic", topic, "would delete and recreate")]
    assert "would delete and recreate topic" in res["summary"] and "losing about 12 message(s)" in res["summary"]
    assert end_offsets(kafka_lab, topic) == {0: 4, 1: 4, 2: 4}
    assert committed(kafka_lab, group) == {(topic, 0): 3, (topic, 1): 4, (topic, 2): 2}

    # confirmed and forced: deleted and created identically, verified; messages and offsets gone
    res = run_module("kafka_topic_recreate", dict(base, confirm=[phrase], force=True))
    assert not res.get("failed"), res
    assert res["changed"] is True and res["recreated"] == [topic]
    done = [(a["action"], a["result"]) for a in res["actions"]]
    assert done == [("delete topic", "deleted"), ("recreate topic", "recreated")]
    (check,) = res["verification"]
    assert check == {"topic": topic, "ok": True, "problems": [], "partitions": 3, "replication_factor": 1,
                     "leaders": 3}
    assert layout(kafka_lab, topic) == [(0, 1, True), (1, 1, True), (2, 1, True)]
    assert topic_configs(kafka_lab, topic)["retention.ms"] == "7200000"
    assert end_offsets(kafka_lab, topic) == {0: 0, 1: 0, 2: 0}
    assert committed(kafka_lab, group) == {}

    # the same incident again (the role passes what the timeline remembers): not recreated again
    kafka_lab.produce(topic, 1, partitions=3)
    res = run_module("kafka_topic_recreate", dict(base, confirm=[phrase], force=True,
                                                  already_recreated={topic: "2026-01-31T03:00:00.000Z"}))
    assert not res.get("failed"), res
    assert res["changed"] is False and res["already_recreated"] == [topic] and res["actions"] == []
    assert end_offsets(kafka_lab, topic) == {0: 1, 1: 1, 2: 1}
    # the incident's memory unreadable: refused
    res = run_module("kafka_topic_recreate", dict(base, confirm=[phrase], force=True, incident_memory=False))
    assert res.get("failed") and "incident timeline" in res["msg"], res


def test_playbook_recreates_only_when_listed_and_confirmed_once_per_incident(kafka_lab, tmp_path):
    topic, group = seeded(kafka_lab)
    inventory = lab_inventory_of(tmp_path, "kafka")
    phrase = f"RECREATE {topic}"

    def run(extra=None, **kw):
        rc, report, stderr = run_playbook(PLAYBOOK, inventory, extra_vars={
            "kafka_lag_groups": [group], "kafka_lag_threshold": 5, "kafka_lag_window_seconds": 1,
            **(extra or {})}, **kw)
        record = task_results(report, RECORD_TASK)["lab-kafka"]["ansible_facts"]["kafka_lag_result"]
        changed = [t["task"]["name"] for p in report.get("plays", []) for t in p["tasks"]
                   if t["hosts"].get("lab-kafka", {}).get("changed")]
        return rc, record, changed, stderr

    asked = {"kafka_lag_recreate_topics": [topic], "kafka_lag_recreate_force": True}

    # (the default run, nothing listed, never recreates: test_kafka_lag_playbook.py's no-fault control)
    # listed, but the confirmation does not match: refused, naming the phrase; nothing deleted
    rc, record, changed, stderr = run({**asked, "kafka_lag_recreate_confirm": f"RECREATE {topic}-typo"})
    assert rc != 0
    assert record["outcome"] == "failed" and f"'{phrase}'" in record["error"], record
    # the phrase names another (unlisted) topic: refused too, so the operator sees the mismatch
    assert changed == [] and topic in record["recreate"]["refused"]
    assert end_offsets(kafka_lab, topic) == {0: 4, 1: 4, 2: 4}

    # --check: says what it would delete and create and what is lost, changes nothing
    rc, record, changed, stderr = run({**asked, "kafka_lag_recreate_confirm": phrase}, check=True)
    assert rc == 0, stderr
    assert record["outcome"] == f"check mode: would recreate topic {topic}", record
    assert record["recreate"]["data_loss"] == [topic]
    assert record["recreate"]["committed_offsets_lost"] == {topic: {group: {"0": 3, "1": 4, "2": 2}}}
    assert "would delete and recreate topic" in record["verdict"]
    assert end_offsets(kafka_lab, topic) == {0: 4, 1: 4, 2: 4}

    # listed and confirmed (forced: the lab's topic is healthy): recreated, verified, loss recorded
    rc, record, changed, stderr = run({**asked, "kafka_lag_recreate_confirm": phrase})
    assert rc == 0, stderr
    assert record["outcome"] == "healed" and record["recreate"]["recreated"] == [topic], record
    assert [v["ok"] for v in record["recreate"]["verification"]] == [True]
    assert ("recreate topic", topic, "recreated") in [(a["action"], a["target"], a["result"]) for a in record["actions"]]
    assert end_offsets(kafka_lab, topic) == {0: 0, 1: 0, 2: 0}
    assert layout(kafka_lab, topic) == [(0, 1, True), (1, 1, True), (2, 1, True)]
    assert topic_configs(kafka_lab, topic)["retention.ms"] == "7200000"

    # a second run of the same incident: the timeline remembers; nothing is recreated again
    kafka_lab.produce(topic, 1, partitions=3)
    rc, record, changed, stderr = run({**asked, "kafka_lag_recreate_confirm": phrase})
    assert rc == 0, stderr
    assert changed == [] and record["recreate"]["already_recreated"] == [topic], record
    assert record["outcome"] == "no action needed" and "recreated in this incident already" in record["verdict"]
    assert end_offsets(kafka_lab, topic) == {0: 1, 1: 1, 2: 1}


def test_sasl_password_never_returned():
    canary = "canary-Pw-4f1e9a"
    res = run_module("kafka_topic_recreate", {"bootstrap_servers": ["127.0.0.1:1"], "topics": ["t"],
                                              "confirm": ["RECREATE t"], "security_protocol": "SASL_PLAINTEXT",
                                              "sasl_password": canary})
    assert res["failed"] and "sasl_username" in res["msg"]
    assert canary not in json.dumps(res) and canary not in res["_stderr"]
