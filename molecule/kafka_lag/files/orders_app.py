"""The drill's application on the lab host: a producer that keeps writing orders, a consumer
that reads them as a consumer group, and a lag probe the drill checks with (not the module
under test). The Kafka client is the one lab/lab kafka attach puts in /opt/kafka-client.

    python3 orders_app.py produce BOOTSTRAP TOPIC RATE        (messages per second, forever)
    python3 orders_app.py consume BOOTSTRAP TOPIC GROUP STATE  (STATE: count of messages read)
    python3 orders_app.py lag BOOTSTRAP TOPIC GROUP            (prints committed/end/lag JSON)
"""

import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 2


def ensure_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=30).topics:
        return
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def produce(bootstrap, topic, rate):
    ensure_topic(bootstrap, topic)
    # The lab broker (Tansu) needs one record per batch, or its end offsets are wrong.
    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0})
    n = 0
    while True:
        producer.produce(topic, value=b"order-%d" % n, partition=n % PARTITIONS)
        producer.poll(0)
        n += 1
        time.sleep(1.0 / rate)


def consume(bootstrap, topic, group, state):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    ensure_topic(bootstrap, topic)
    # The consumer takes its partitions itself (assign) and commits as group GROUP: what the lag
    # runbook reads is the group's committed offsets. Not subscribe(): the lab broker (Tansu) never
    # completes the JoinGroup of a restarted member after the old member vanished.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": True, "auto.commit.interval.ms": 500})
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    print("assigned", list(range(PARTITIONS)), "from the committed offsets of", group, flush=True)
    count, written = 0, -1
    try:
        while not stop:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                count += 1
            if count != written:
                with open(state + ".tmp", "w", encoding="utf-8") as fh:
                    fh.write(str(count))
                os.replace(state + ".tmp", state)
                written = count
    finally:
        # Commits what was read.
        print("closing after", count, "messages", flush=True)
        consumer.close()


def lag(bootstrap, topic, group):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=30)}
        end = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(PARTITIONS)}
    finally:
        consumer.close()
    total = sum(end[p] - max(committed[p], 0) for p in range(PARTITIONS))
    print(json.dumps({"committed": sum(max(c, 0) for c in committed.values()), "end": sum(end.values()),
                      "lag": total}))


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "produce":
        produce(args[0], args[1], float(args[2]))
    elif mode == "consume":
        consume(*args[:4])
    elif mode == "lag":
        lag(*args[:3])
    else:
        sys.exit("usage: orders_app.py produce|consume|lag ...")


if __name__ == "__main__":
    main()
