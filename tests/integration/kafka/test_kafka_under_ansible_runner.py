"""kafka_lag under ansible-runner, as AWX runs it (tests/lib/runner_lab.py), against a healthy
consumer group on the lab broker: the outcome test_kafka_lag_playbook.py's no-fault control
asserts of the plain run, read from the job events."""

from __future__ import annotations

from runner_lab import COVERED, Job, assert_no_action_needed, run_all
from sre_testlib import lab_inventory_of


def test_kafka_playbook_under_ansible_runner(kafka_lab, tmp_path):
    topic = kafka_lab.topic(2)
    kafka_lab.produce(topic, 10)
    group = kafka_lab.name("healthy")
    kafka_lab.commit(group, {(topic, 0): 10, (topic, 1): 10})
    kafka_lab.wait_committed(group, {(topic, 0): 10, (topic, 1): 10})
    extra = {"kafka_lag_groups": [group], "kafka_lag_threshold": 5, "kafka_lag_window_seconds": 2}
    (job,) = run_all([Job(tmp_path, name, lab_inventory_of(tmp_path, "kafka"), extra) for name in COVERED["kafka"]])
    result = assert_no_action_needed(job, "lab-kafka")
    assert result["healthy"] is True and "healthy" in result["verdict"], result
