"""module_utils/_kafka.py pure logic and the kafka_lag role's decide step (kafka_lag_verdict): every branch."""

from __future__ import annotations

import struct

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.kafka_verdict import kafka_lag_verdict
from ansible_collections.sre.runbooks.plugins.module_utils._kafka import (
    api_versions_request,
    client_config,
    group_report,
    parse_api_versions,
    partition_lag,
    split_server,
    topic_health,
)


def test_partition_lag():
    assert partition_lag(10, 250) == 240
    assert partition_lag(250, 250) == 0
    assert partition_lag(300, 250) == 0
    assert partition_lag(None, 250) is None
    assert partition_lag(10, None) is None
    assert partition_lag(-1001, 5) is None


def test_group_report_totals():
    rep = group_report("g", {("t", 1): 5, ("t", 0): 10}, {("t", 0): 30, ("t", 1): 5}, "stable",
                       [{"member_id": "m"}])
    assert [p["partition"] for p in rep["partitions"]] == [0, 1]
    assert (rep["total_lag"], rep["max_lag"], rep["member_count"], rep["unknown_lag_partitions"]) == (20, 20, 1, 0)
    empty = group_report("e", {("t", 0): 1}, {})
    assert (empty["total_lag"], empty["max_lag"], empty["unknown_lag_partitions"]) == (0, 0, 1)


def test_topic_health():
    topics = {"ok": [{"partition": 0, "leader": 1, "replicas": [1, 2], "isrs": [1, 2]}],
              "under": [{"partition": 0, "leader": 1, "replicas": [1, 2], "isrs": [1]}],
              "dead": [{"partition": 0, "leader": -1, "replicas": [1], "isrs": []}]}
    assert topic_health(topics) == {"without_leader": ["dead"], "under_replicated": ["dead", "under"]}


def test_split_server():
    assert split_server("k1:9093") == ("k1", 9093)
    assert split_server("k1") == ("k1", 9092)
    assert split_server("[::1]:19092") == ("::1", 19092)
    assert split_server("[::1]") == ("::1", 9092)


def test_api_versions_roundtrip():
    req = api_versions_request(7)
    size, key, ver, cid = struct.unpack_from(">ihhi", req)
    assert (size, key, ver, cid) == (len(req) - 4, 18, 0, 7)
    payload = struct.pack(">ihi", 7, 0, 2) + struct.pack(">hhh", 3, 0, 12) + struct.pack(">hhh", 999, 1, 2)
    assert parse_api_versions(payload, 7) == {"error_code": 0, "apis": {"Metadata": [0, 12], "api_999": [1, 2]}}


@pytest.mark.parametrize("payload,cid", [(b"short", 1), (struct.pack(">ihi", 2, 0, 0), 1),
                                         (struct.pack(">ihi", 1, 0, 5), 1)])
def test_api_versions_bad(payload, cid):
    with pytest.raises(ValueError):
        parse_api_versions(payload, cid)


def test_client_config():
    base = {"bootstrap_servers": ["a:1", "b:2"], "timeout": 2}
    assert client_config(base)["bootstrap.servers"] == "a:1,b:2"
    assert client_config(base)["socket.timeout.ms"] == 2000
    sasl = client_config({**base, "security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": "p",
                          "sasl_mechanism": "SCRAM-SHA-512", "ssl_cafile": "/ca"})
    assert sasl["sasl.mechanism"] == "SCRAM-SHA-512" and sasl["ssl.ca.location"] == "/ca"
    with pytest.raises(ValueError, match="sasl_username"):
        client_config({**base, "security_protocol": "SASL_PLAINTEXT"})


def sample(*groups, reachable=True):
    return {"reachable": reachable,
            "groups": [{"group": g, "total_lag": lag,
                        "partitions": [{"topic": "t", "partition": 0, "committed_offset": off}]}
                       for g, lag, off in groups]}


CONSUMERS = {"orders": {"unit": "orders-consumer.service", "host": "app1"}}


def test_verdict_healthy():
    v = kafka_lag_verdict(sample(("orders", 5, 100)), sample(("orders", 3, 102)), threshold=10, consumers=CONSUMERS)
    assert v["healthy"] and not v["act"] and "nothing to do" in v["summary"]


def test_verdict_stuck_restarts():
    v = kafka_lag_verdict(sample(("orders", 500, 100)), sample(("orders", 600, 100)), threshold=10,
                          consumers=CONSUMERS, unit_started={"orders-consumer.service": 50}, incident_started=100)
    assert v["act"] and v["restart"] == [{"group": "orders", "unit": "orders-consumer.service", "host": "app1",
                                          "lag": 600}]
    assert v["stuck"] == ["orders"] and not v["healthy"]


def test_verdict_draining_left_alone():
    v = kafka_lag_verdict(sample(("orders", 5000, 100)), sample(("orders", 4000, 200)), threshold=10,
                          consumers=CONSUMERS)
    assert not v["act"] and v["draining"] == ["orders"] and "catching up" in v["summary"]


def test_verdict_new_group_not_judged():
    v = kafka_lag_verdict(sample(), sample(("orders", 5000, 100)), threshold=10, consumers=CONSUMERS)
    assert not v["act"] and v["draining"] == ["orders"]


def test_verdict_unmapped():
    v = kafka_lag_verdict(sample(("other", 500, 1)), sample(("other", 600, 1)), threshold=10, consumers=CONSUMERS)
    assert not v["act"] and v["unmapped"] == ["other"] and "kafka_lag_consumers" in v["summary"]


def test_verdict_once_per_incident():
    v = kafka_lag_verdict(sample(("orders", 500, 1)), sample(("orders", 600, 1)), threshold=10, consumers=CONSUMERS,
                          unit_started={"orders-consumer.service": 150}, incident_started=100)
    assert not v["act"] and v["already_restarted"] == ["orders"] and "human" in v["summary"]


def test_verdict_unreachable():
    v = kafka_lag_verdict(sample(reachable=False), sample(("orders", 600, 1)), consumers=CONSUMERS)
    assert not v["act"] and "broker" in v["problem"] and not v["healthy"]


def test_verdict_bad_input():
    with pytest.raises(AnsibleFilterError):
        kafka_lag_verdict(None, {})
    with pytest.raises(AnsibleFilterError):
        kafka_lag_verdict({}, {}, threshold=-1)


def test_still_stuck():
    from ansible_collections.sre.runbooks.plugins.filter.kafka_verdict import kafka_lag_still_stuck
    restarted = [{"group": "a", "lag": 500}, {"group": "b", "lag": 500}, {"group": "c", "lag": 500},
                 {"group": "gone", "lag": 500}]
    after = sample(("a", 5, 1), ("b", 400, 1), ("c", 800, 1))
    assert kafka_lag_still_stuck(after, restarted, threshold=10) == ["c", "gone"]
    assert kafka_lag_still_stuck(sample(reachable=False), restarted[:1]) == ["a"]
    assert kafka_lag_still_stuck(after, [], threshold=10) == []


@pytest.mark.parametrize("started,since,act", [("@150", "1970-01-01T00:01:40+00:00", False),
                                               ("@50", "1970-01-01T00:01:40Z", True),
                                               ("", 100, True), ("n/a", 100, True), ("@0", 100, True),
                                               (150, None, True)])
def test_verdict_time_formats(started, since, act):
    v = kafka_lag_verdict(sample(("orders", 500, 1)), sample(("orders", 600, 1)), threshold=10, consumers=CONSUMERS,
                          unit_started={"orders-consumer.service": started}, incident_started=since)
    assert v["act"] is act


def test_verdict_bad_time():
    with pytest.raises(AnsibleFilterError, match="cannot read a time"):
        kafka_lag_verdict(sample(("orders", 500, 1)), sample(("orders", 600, 1)), threshold=10, consumers=CONSUMERS,
                          unit_started={"orders-consumer.service": "yesterday"}, incident_started=1)
