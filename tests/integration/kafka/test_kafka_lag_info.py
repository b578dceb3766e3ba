"""kafka_consumer_lag_info against the real lab broker: a group that lags, one that does not."""

from __future__ import annotations

from sre_testlib import run_module


def test_lag_per_group_and_partition(kafka_lab):
    topic = kafka_lab.topic(2)
    kafka_lab.produce(topic, 10)
    lagging, current = kafka_lab.name("lagging"), kafka_lab.name("current")
    kafka_lab.commit(lagging, {(topic, 0): 2, (topic, 1): 4})
    kafka_lab.commit(current, {(topic, 0): 10, (topic, 1): 10})
    kafka_lab.wait_committed(lagging, {(topic, 0): 2, (topic, 1): 4})
    kafka_lab.wait_committed(current, {(topic, 0): 10, (topic, 1): 10})

    res = run_module("kafka_consumer_lag_info", {"bootstrap_servers": [kafka_lab.bootstrap],
                                                 "groups": [lagging, current]}, check=True)
    assert not res.get("failed"), res
    assert res["changed"] is False and res["reachable"] is True
    broker = res["brokers"][0]
    assert broker["reachable"] and broker["api_error_code"] == 0
    assert broker["api_versions"]["OffsetFetch"][1] >= 1 and "Metadata" in broker["api_versions"]
    assert [p["partition"] for p in res["topics"][topic]] == [0, 1]
    assert res["topic_health"] == {"without_leader": [], "under_replicated": []}
    groups = {g["group"]: g for g in res["groups"]}
    lag = groups[lagging]
    assert [(p["committed_offset"], p["end_offset"], p["lag"]) for p in lag["partitions"]] == [(2, 10, 8), (4, 10, 6)]
    assert (lag["total_lag"], lag["max_lag"], lag["error"]) == (14, 8, None)
    assert groups[current]["total_lag"] == 0
    assert all(p["lag"] == 0 for p in groups[current]["partitions"])


def test_all_groups_listed_by_default(kafka_lab):
    topic = kafka_lab.topic(1)
    kafka_lab.produce(topic, 3, partitions=1)
    group = kafka_lab.name("listed")
    kafka_lab.commit(group, {(topic, 0): 1})
    kafka_lab.wait_committed(group, {(topic, 0): 1})
    res = run_module("kafka_consumer_lag_info", {"bootstrap_servers": [kafka_lab.bootstrap]})
    assert group in [g["group"] for g in res["groups"]], res["groups"]


def test_unreachable_broker_is_reported_not_failed():
    res = run_module("kafka_consumer_lag_info", {"bootstrap_servers": ["127.0.0.1:1"], "timeout": 2})
    assert not res.get("failed"), res
    assert res["reachable"] is False and res["brokers"][0]["reachable"] is False
    assert "no Kafka broker reachable" in res["msg"] and res["groups"] == []


def test_bad_sasl_options_fail_clearly():
    res = run_module("kafka_consumer_lag_info", {"bootstrap_servers": ["127.0.0.1:1"],
                                                 "security_protocol": "SASL_PLAINTEXT"})
    assert res["failed"] and "sasl_username" in res["msg"]
