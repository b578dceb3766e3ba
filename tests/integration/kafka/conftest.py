"""The Kafka lab for the integration tests: one session fixture starts the Tansu broker
(lab_running) and stops it afterwards, even on failure. The broker is memory-only, so each test
uses topics and groups of its own (uuid suffix) and never sees another test's data."""

from __future__ import annotations

import time
import typing as t
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sre_testlib import lab_running, lab_var


class KafkaLab:
    def __init__(self) -> None:
        self.bootstrap = f"{lab_var('lab_bind_address')}:{lab_var('lab_kafka_port')}"
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def topic(self, partitions: int = 2) -> str:
        name = self.name("t")
        for fut in self.admin.create_topics([NewTopic(name, partitions, 1)]).values():
            fut.result(30)
        return name

    def produce(self, topic: str, per_partition: int, partitions: int = 2) -> None:
        # Tansu: one record per batch, or its end offsets are wrong.
        producer = Producer({"bootstrap.servers": self.bootstrap, "batch.num.messages": 1, "linger.ms": 0})
        for i in range(per_partition * partitions):
            producer.produce(topic, value=b"m%d" % i, partition=i % partitions)
        assert producer.flush(30) == 0

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit offsets for a group as a consumer would (without joining it)."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                             "session.timeout.ms": 6000, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(t_, p, o) for (t_, p), o in offsets.items()],
                            asynchronous=False)
        finally:
            consumer.close()

    def wait_committed(self, group: str, want: dict[tuple[str, int], int], timeout: float = 30) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions
        deadline = time.monotonic() + timeout
        got: dict[t.Any, t.Any] = {}
        while time.monotonic() < deadline:
            res = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
            got = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions if tp.offset >= 0}
            if all(got.get(k) == v for k, v in want.items()):
                return
            time.sleep(0.2)
        raise AssertionError(f"group {group} committed {got}, wanted {want}")


@pytest.fixture(scope="session")
def kafka_lab() -> t.Iterator[KafkaLab]:
    with lab_running("kafka"):
        yield KafkaLab()
