"""The one record shape of the outage roles (plugins/plugin_utils/_record.py)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.sre.runbooks.plugins.plugin_utils import _record

NOW = datetime.datetime(2026, 12, 2, 3, 15, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"error": "boom", "found": True, "act": True, "acted": True}, "failed"),
    ({"found": False}, "no action needed"),
    ({"found": True, "act": False, "reported": "not rolled back"}, "reported: not rolled back"),
    ({"found": True, "act": False}, "reported only"),
    ({"found": True, "act": True, "check_mode": True, "remedy": "cordon and drain"}, "check mode: would cordon and drain"),
    ({"found": True, "act": True, "check_mode": True}, "check mode: would act"),
    ({"found": True, "act": True, "acted": False}, "assessed only"),
    ({"found": True, "act": True, "acted": True}, "healed"),
])
def test_outcome_in_one_order(kwargs, expected):
    assert _record.outcome(**kwargs) == expected


def test_every_time_is_utc_with_milliseconds_and_z():
    record = _record.build("node_failure", "lab-k8s", False, started="2026-12-02T03:14:00.5", found=True, act=True,
                           acted=True, now=NOW)
    assert record["started"] == "2026-12-02T03:14:00.500Z" and record["finished"] == "2026-12-02T03:15:00.000Z"
    assert record["duration_seconds"] == 59.5
    assert list(record)[:10] == list(_record.COMMON_KEYS)
    assert _record.build("x", "h", False, started="1764645240", now=NOW)["started"] == "2025-12-02T03:14:00.000Z"
    assert _record.build("x", "h", False, started="2026-12-02T04:14:00+01:00", now=NOW)["started"] == \
        "2026-12-02T03:14:00.000Z"
    assert _record.build("x", "h", False, now=NOW)["started"] is None


def test_actions_come_from_the_modules_oldest_first_loops_included():
    undo = {"actions": [{"timestamp": "2026-12-02T03:14:05.000Z", "action": "rollout undo"}]}
    loop = {"results": [{"actions": [{"timestamp": "2026-12-02T03:14:01.000Z", "action": "evict pod"}]},
                        {"skipped": True}]}
    record = _record.build("x", "h", False, results=[undo, loop, {}, None, "junk"], now=NOW)
    assert [a["action"] for a in record["actions"]] == ["evict pod", "rollout undo"]


def test_a_module_without_actions_gets_them_stamped_when_its_task_ran():
    restarted = {"results": [{"item": "nginx.service", "changed": True}, {"item": "redis.service", "changed": False}]}
    record = _record.build("service_down", "h", False, now=NOW, results=[
        {"result": restarted, "action": "restart", "target": "systemd unit ", "at": "2026-12-02T03:14:30"}])
    assert record["actions"] == [{"timestamp": "2026-12-02T03:14:30.000Z", "action": "restart",
                                  "target": "systemd unit nginx.service", "result": "done"}]
    flushed = {"results": [{"item": {"address": "10.0.0.1:6379", "db": 2}, "changed": True}]}
    record = _record.build("redis_unavailable", "h", True, now=NOW, results=[
        {"result": flushed, "action": "flushdb", "item_key": "address", "item_fields": ["db"], "check_mode": True}])
    assert record["actions"] == [{"timestamp": None, "action": "flushdb", "target": "10.0.0.1:6379",
                                  "result": "check mode", "db": 2}]


def test_the_verdict_is_one_sentence_and_details_follow_the_common_keys():
    record = _record.build("db_exhaustion", "db1", False, verdict={"act": True, "summary": "92% used", "reason": "r"},
                           details={"threshold_percent": 80}, now=NOW)
    assert record["verdict"] == "92% used" and record["threshold_percent"] == 80
    assert _record.build("x", "h", False, verdict={"act": False, "reason": "healthy"}, now=NOW)["verdict"] == "healthy"
    assert _record.build("x", "h", False, verdict="master_down", now=NOW)["verdict"] == "master_down"
    with pytest.raises(ValueError, match="common key 'outcome'"):
        _record.build("x", "h", False, details={"outcome": "healed"}, now=NOW)
