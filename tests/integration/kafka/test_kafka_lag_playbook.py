"""playbooks/outage/kafka_lag.yml against the real lab broker: the no-fault control, a stuck group
without a mapped consumer (reported, nothing restarted), a group catching up (left alone), and
--check / --tags assess changing nothing. The restart itself needs a systemd host: the drill."""

from __future__ import annotations

import threading

from sre_testlib import REPO, lab_inventory_of, run_playbook, task_results

PLAYBOOK = REPO / "playbooks" / "outage" / "kafka_lag.yml"


def run(tmp_path, group, **kw):
    extra = {"kafka_lag_groups": [group], "kafka_lag_threshold": 5, "kafka_lag_window_seconds": 2,
             **kw.pop("extra", {})}
    rc, report, stderr = run_playbook(PLAYBOOK, lab_inventory_of(tmp_path, "kafka"), extra_vars=extra, **kw)
    results = task_results(report, "sre.runbooks.kafka_lag : Record | structured result for the incident timeline")
    record = results["lab-kafka"]["ansible_facts"]["kafka_lag_result"]
    changed = [t["task"]["name"] for p in report.get("plays", []) for t in p["tasks"]
               if t["hosts"].get("lab-kafka", {}).get("changed")]
    return rc, record, changed, stderr


def test_no_fault_control(kafka_lab, tmp_path):
    topic = kafka_lab.topic(2)
    kafka_lab.produce(topic, 10)
    group = kafka_lab.name("healthy")
    kafka_lab.commit(group, {(topic, 0): 10, (topic, 1): 10})
    kafka_lab.wait_committed(group, {(topic, 0): 10, (topic, 1): 10})
    rc, record, changed, stderr = run(tmp_path, group)
    assert rc == 0, stderr
    assert changed == []
    assert record["outcome"] == "no action needed" and record["healthy"] is True
    assert "healthy" in record["verdict"] and record["actions"] == []
    # the default run never recreates a topic (nothing listed in kafka_lag_recreate_topics)
    assert record["recreate"]["requested"] == [] and record["recreate"]["recreated"] == []
    assert record["recreate"]["data_loss"] == []
    kafka_lab.wait_committed(group, {(topic, 0): 10, (topic, 1): 10})  # offsets (and so the topic) kept


def test_stuck_group_without_consumer_is_reported_not_touched(kafka_lab, tmp_path):
    topic = kafka_lab.topic(2)
    kafka_lab.produce(topic, 10)
    group = kafka_lab.name("stuck")
    kafka_lab.commit(group, {(topic, 0): 1, (topic, 1): 1})
    kafka_lab.wait_committed(group, {(topic, 0): 1, (topic, 1): 1})
    for kw in ({}, {"check": True}, {"tags": "assess"}):
        rc, record, changed, stderr = run(tmp_path, group, **kw)
        assert rc == 0, (kw, stderr)
        assert changed == [], kw
        assert record["stuck"] == [group] and record["unmapped"] == [group], kw
        assert record["outcome"] == "no action needed" and record["lag_before"] == {group: 18}, kw
        assert "no consumer unit mapped" in record["verdict"]


def test_group_catching_up_is_left_alone(kafka_lab, tmp_path):
    topic = kafka_lab.topic(1)
    kafka_lab.produce(topic, 200, partitions=1)
    group = kafka_lab.name("draining")
    kafka_lab.commit(group, {(topic, 0): 1})
    kafka_lab.wait_committed(group, {(topic, 0): 1})
    stop = threading.Event()

    def consume_slowly():
        offset = 1
        while not stop.wait(0.3) and offset < 190:
            offset += 1
            kafka_lab.commit(group, {(topic, 0): offset})

    worker = threading.Thread(target=consume_slowly, daemon=True)
    worker.start()
    runs = []
    try:
        # --check too: its window must be as real as the run's, or a group catching up looks stuck.
        # The role's default 5 s window, not 2 s: each commit above opens a consumer and waits for
        # the broker, which with the suite in lanes can take a good part of 2 s, and a window
        # without a commit in it reads as stuck.
        for kw in ({}, {"check": True}):
            runs.append(run(tmp_path, group, extra={
                "kafka_lag_consumers": {group: {"unit": "never-restarted.service"}},
                "kafka_lag_window_seconds": 5}, **kw))
    finally:
        stop.set()
        worker.join(10)
    for rc, record, changed, stderr in runs:
        assert rc == 0, stderr
        assert changed == []
        assert record["draining"] == [group] and record["stuck"] == [] and record["actions"] == []
        assert "catching up" in record["verdict"]
