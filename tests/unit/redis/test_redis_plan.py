"""The failover planner and address handling of module_utils/_redis.py: pure logic, no server."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped
from ansible_collections.sre.runbooks.plugins.module_utils._redis import (
    Address,
    RedisModuleError,
    candidate_lag,
    plan_failover,
    replication_summary,
    sentinel_master,
    sentinel_pick,
)

A, B, C = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"


def master(addr, offset=1000, replicas=(), lags=None):
    lags = lags or {}
    return {"address": addr, "canonical": addr, "reachable": True, "role": "master", "offset": offset,
            "replicas": [{"address": r, "canonical": r, "state": "online", "offset": offset - lags.get(r, 0),
                          "lag_bytes": lags.get(r, 0), "lag_seconds": 0} for r in replicas]}


def replica(addr, of, offset=1000, link="up", down=None, priority=100):
    return {"address": addr, "canonical": addr, "reachable": True, "role": "replica", "master": of,
            "master_canonical": of, "master_link_status": link, "offset": offset,
            "master_link_down_since_seconds": down, "replica_priority": priority}


def dead(addr, kind="unreachable"):
    return {"address": addr, "canonical": addr, "reachable": False, "error": f"{addr}: refused", "error_kind": kind}


def healthy():
    return [master(A, replicas=(B, C)), replica(B, A), replica(C, A)]


def test_healthy_group_needs_nothing():
    plan = plan_failover(healthy())
    assert (plan.method, plan.master, plan.previous_master, plan.steps) == ("none", A, A, [])


def test_healthy_master_stays_even_when_a_mode_is_forced():
    for mode in ("failover", "promote"):
        plan = plan_failover(healthy(), mode=mode)
        assert plan.steps == [] and plan.master == A


def test_target_with_live_master_uses_coordinated_failover_and_repoints_the_rest():
    plan = plan_failover(healthy(), target=B)
    assert plan.method == "failover"
    assert plan.steps[0] == {"action": "failover", "target": B, "on": A}
    assert plan.steps[1:] == [{"action": "replicaof", "target": C, "master": B}]


def test_dead_master_promotes_the_replica_with_the_largest_offset():
    probes = [dead(A), replica(B, A, offset=900, link="down", down=3), replica(C, A, offset=1000, link="down", down=3)]
    plan = plan_failover(probes)
    assert plan.method == "promote" and plan.master == C and plan.previous_master == A
    assert plan.steps == [{"action": "promote", "target": C}, {"action": "replicaof", "target": B, "master": C}]
    assert plan.unreachable == [A]


def test_replica_priority_zero_is_never_promoted():
    probes = [dead(A), replica(B, A, offset=900), replica(C, A, offset=1000, priority=0)]
    assert plan_failover(probes).master == B


def test_failover_mode_refuses_without_a_live_master():
    with pytest.raises(RedisModuleError, match="FAILOVER needs a live master"):
        plan_failover([dead(A), replica(B, A), replica(C, A)], mode="failover")


def test_promote_while_master_answers_trips_split_brain_unless_forced():
    with pytest.raises(GuardrailTripped) as exc:
        plan_failover(healthy(), target=B, mode="promote")
    assert exc.value.guardrail == "split_brain" and "force: true" in str(exc.value)
    plan = plan_failover(healthy(), target=B, mode="promote", force=True)
    assert plan.steps[0] == {"action": "promote", "target": B}
    assert {"action": "demote", "target": A, "master": B} in plan.steps


def test_lag_guardrails_with_live_master():
    probes = [master(A, offset=5000, replicas=(B, C), lags={C: 4000}), replica(B, A, 5000), replica(C, A, 1000)]
    with pytest.raises(GuardrailTripped) as exc:
        plan_failover(probes, target=C, max_lag_bytes=1024)
    assert exc.value.guardrail == "max_lag_bytes" and "4000 bytes" in str(exc.value)
    assert plan_failover(probes, target=C, max_lag_bytes=None).master == C


def test_lag_of_a_replica_whose_link_is_down_counts_bytes_and_seconds():
    probes = [master(A, offset=5000, replicas=(B,)), replica(B, A, 5000), replica(C, A, 1000, link="down", down=42)]
    assert candidate_lag(probes[2], probes[0], probes) == (4000, 42.0)
    with pytest.raises(GuardrailTripped) as exc:
        plan_failover(probes, target=C, max_lag_bytes=None, max_lag_seconds=10)
    assert exc.value.guardrail == "max_lag_seconds"


def test_lag_without_master_is_measured_against_the_best_replica():
    probes = [dead(A), replica(B, A, 1000, link="down", down=5), replica(C, A, 400, link="down", down=65)]
    assert candidate_lag(probes[2], None, probes) == (600, 60.0)
    with pytest.raises(GuardrailTripped, match="most advanced replica"):
        plan_failover(probes, target=C, max_lag_bytes=100)


def test_returning_old_master_is_demoted_to_the_master_with_replicas():
    probes = [master(A, offset=0), master(B, offset=2000, replicas=(C,)), replica(C, B, 2000)]
    plan = plan_failover(probes)
    assert plan.master == B and plan.method == "repoint"
    assert plan.steps == [{"action": "demote", "target": A, "master": B, "was": "master"}]


def test_two_equal_masters_need_a_target():
    probes = [master(A, offset=10), master(B, offset=10), replica(C, "10.0.0.9:6379")]
    probes[2]["master_canonical"] = A
    probes.append(replica("10.0.0.4:6379", B))
    with pytest.raises(RedisModuleError, match="split brain.*target"):
        plan_failover(probes)
    assert plan_failover(probes, target=A).master == A


def test_bad_input_fails_before_any_step():
    with pytest.raises(RedisModuleError, match="empty"):
        plan_failover([])
    with pytest.raises(RedisModuleError, match="not one of the group"):
        plan_failover(healthy(), target="10.0.0.9:6379")
    with pytest.raises(RedisModuleError, match="not part of this group"):
        plan_failover([replica(B, A), replica(C, A)])
    with pytest.raises(RedisModuleError, match="rejected"):
        plan_failover([dict(dead(A, "auth"), error="Redis at 10.0.0.1:6379 rejected the credentials"),
                       replica(B, A)])
    with pytest.raises(RedisModuleError, match="no node of the group answers"):
        plan_failover([dead(A), dead(B)])


def test_unreachable_replica_is_reported_not_fatal():
    plan = plan_failover([master(A, replicas=(B,)), replica(B, A), dead(C)])
    assert plan.steps == [] and plan.unreachable == [C]


def test_sentinel_managed_group_uses_sentinel_failover():
    probes = [dead(A), replica(B, A), replica(C, A, offset=900)]
    plan = plan_failover(probes, sentinel_master_canonical=A)
    assert plan.method == "sentinel" and plan.steps == [{"action": "sentinel_failover", "target": B}]
    with pytest.raises(RedisModuleError, match="fight the sentinels"):
        plan_failover(probes, sentinel_master_canonical=A, mode="promote")
    assert plan_failover(healthy(), sentinel_master_canonical=A).steps == []


@pytest.mark.parametrize("text, host, port", [
    ("10.0.0.1:6380", "10.0.0.1", 6380), ("cache.example", "cache.example", 6379),
    ("[::1]:7000", "::1", 7000), ("::1", "::1", 6379),
])
def test_address_parse(text, host, port):
    addr = Address.parse(text)
    assert (addr.host, addr.port) == (host, port)


@pytest.mark.parametrize("text", ["", "host:0", "host:http", "[::1", "host:", "host:70000", ":6379"])
def test_address_parse_rejects(text):
    with pytest.raises(RedisModuleError):
        Address.parse(text)


def test_replication_summary_of_a_master_and_a_replica():
    m = replication_summary({"role": "master", "master_repl_offset": 100, "connected_slaves": 1,
                             "slave0": {"ip": "127.0.0.1", "port": 7001, "state": "online", "offset": 90, "lag": 1}})
    assert m["replicas"][0]["lag_bytes"] == 10 and m["replicas"][0]["canonical"] == "127.0.0.1:7001"
    r = replication_summary({"role": "slave", "master_host": "127.0.0.1", "master_port": 7000,
                             "master_link_status": "down", "slave_repl_offset": 90,
                             "master_link_down_since_seconds": 12, "master_sync_in_progress": 0})
    assert (r["role"], r["master_canonical"], r["master_link_down_since_seconds"]) == ("replica", "127.0.0.1:7000", 12)


def test_sentinel_helpers():
    views = [{"reachable": True, "master_canonical": A}, {"reachable": True, "master_canonical": B},
             {"reachable": True, "master_canonical": A}, {"reachable": False}]
    assert sentinel_master(views) == A
    view = {"replicas": [
        {"canonical": B, "priority": 100, "offset": 10, "flags": ["slave"], "runid": "b"},
        {"canonical": C, "priority": 100, "offset": 20, "flags": ["slave", "s_down"], "runid": "c"},
        {"canonical": "10.0.0.4:6379", "priority": 50, "offset": 1, "flags": ["slave"], "runid": "d"}]}
    assert sentinel_pick(view) == "10.0.0.4:6379"


def test_missing_redis_library_fails_with_missing_required_lib(monkeypatch):
    from ansible_collections.sre.runbooks.plugins.module_utils import _redis

    class Module:
        def fail_json(self, **kwargs):
            raise SystemExit(kwargs)

    monkeypatch.setattr(_redis, "HAS_REDIS", False)
    monkeypatch.setattr(_redis, "REDIS_IMPORT_ERROR", "Traceback: No module named 'redis'")
    with pytest.raises(SystemExit) as exc:
        _redis.require_redis(Module())
    assert "redis" in exc.value.args[0]["msg"] and "Failed to import" in exc.value.args[0]["msg"]
