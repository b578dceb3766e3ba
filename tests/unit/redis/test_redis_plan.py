"""The failover planner and address handling of module_utils/_redis.py: pure logic, no server."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped
from ansible_collections.sre.runbooks.plugins.module_utils._redis import (
    Address,
    RedisModuleError,
    SplitBrain,
    candidate_lag,
    master_down_evidence,
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


def orphan(addr, of=A, offset=1000, down=30, priority=100):
    """A replica whose link to its (dead) master has been down for `down` seconds."""
    return replica(addr, of, offset=offset, link="down", down=down, priority=priority)


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
    probes = [dead(A), orphan(B, offset=900, down=30), orphan(C, offset=1000, down=30)]
    plan = plan_failover(probes)
    assert plan.method == "promote" and plan.master == C and plan.previous_master == A
    assert plan.steps == [{"action": "promote", "target": C}, {"action": "replicaof", "target": B, "master": C}]
    assert plan.unreachable == [A]
    assert plan.verdict["state"] == "master_down" and plan.verdict["act"] is True
    assert "every reachable replica reports its link down" in plan.verdict["reason"]


def test_replica_priority_zero_is_never_promoted():
    probes = [dead(A), orphan(B, offset=900), orphan(C, offset=1000, priority=0)]
    assert plan_failover(probes).master == B


def test_failover_mode_refuses_without_a_live_master():
    with pytest.raises(RedisModuleError, match="FAILOVER needs a live master"):
        plan_failover([dead(A), orphan(B), orphan(C)], mode="failover")


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
    probes = [dead(A), orphan(B, offset=1000, down=15), orphan(C, offset=400, down=75)]
    assert candidate_lag(probes[2], None, probes) == (600, 60.0)
    with pytest.raises(GuardrailTripped, match="most advanced replica"):
        plan_failover(probes, target=C, max_lag_bytes=100)


def test_two_masters_are_a_split_brain_whatever_their_offsets():
    """The lower-offset master may hold writes the other never saw: refuse, name both sides."""
    probes = [dict(master(A, offset=0), keys={"db0": 7}), dict(master(B, offset=2000, replicas=(C,)), keys={"db0": 300}),
              replica(C, B, 2000)]
    with pytest.raises(SplitBrain) as exc:
        plan_failover(probes)
    assert exc.value.guardrail == "split_brain"
    assert [(m["address"], m["keys"], m["offset"], m["connected_followers"]) for m in exc.value.masters] == \
        [(A, 7, 0, 0), (B, 300, 2000, 1)]
    assert "10.0.0.1:6379 (7 keys, offset 0, 0 followers)" in str(exc.value) and "target" in str(exc.value)
    assert "most replicas" not in str(exc.value)


def test_split_brain_with_target_or_force_keeps_the_named_or_best_master():
    probes = [master(A, offset=0), master(B, offset=2000, replicas=(C,)), replica(C, B, 2000)]
    plan = plan_failover(probes, target=B)
    assert plan.master == B and plan.method == "repoint" and plan.verdict["state"] == "split_brain"
    assert plan.steps == [{"action": "demote", "target": A, "master": B, "was": "master"}]
    assert "writes only the others hold are lost" in plan.reasons[0]
    kept_a = plan_failover(probes, target=A)
    assert kept_a.master == A and {"action": "demote", "target": B, "master": A, "was": "master"} in kept_a.steps
    forced = plan_failover(probes, force=True)
    assert forced.master == B and "force: true keeps 10.0.0.2:6379" in forced.reasons[0]
    # A target that replicates one of the masters keeps that master's side and fails over to it.
    via_replica = plan_failover(probes, target=C)
    assert via_replica.master == C and via_replica.steps[0] == {"action": "failover", "target": C, "on": B}


def test_split_brain_target_outside_both_sides_is_refused():
    probes = [master(A), master(B), replica(C, A)]
    probes[2]["role"] = "replica"
    probes[2]["master_canonical"] = "10.0.0.9:6379"
    probes.append(master("10.0.0.9:6379"))
    with pytest.raises(SplitBrain):
        plan_failover(probes)


def test_two_equal_masters_need_a_target():
    probes = [master(A, offset=10), master(B, offset=10), replica(C, A), replica("10.0.0.4:6379", B)]
    with pytest.raises(SplitBrain, match="split_brain"):
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
    assert plan.verdict == {"state": "nodes_unreachable", "act": False,
                            "reason": "10.0.0.1:6379 is a healthy master; unreachable: 10.0.0.3:6379",
                            "dead_nodes": [C], "alive_unreachable": []}


def test_verdicts_of_a_healthy_group_a_stray_replica_and_a_switchover():
    assert plan_failover(healthy()).verdict["state"] == "healthy"
    assert plan_failover(healthy()).verdict["act"] is False
    stray = plan_failover([master(A, replicas=(B,)), replica(B, A), replica(C, B)])
    assert stray.verdict["state"] == "replicas_astray" and stray.verdict["act"] is True
    switch = plan_failover(healthy(), target=B)
    assert switch.verdict["state"] == "switchover" and switch.verdict["evidence"] is None


def sentinels(sdown=0, odown=0, reachable=3, quorum=2):
    return [{"address": f"10.0.0.{i}:26379", "reachable": i < reachable, "quorum": quorum,
             "sdown": i < sdown, "odown": i < odown} for i in range(3)]


def test_sentinel_managed_group_uses_sentinel_failover_once_the_sentinels_agree():
    probes = [dead(A), orphan(B), orphan(C, offset=900)]
    plan = plan_failover(probes, sentinel_master_canonical=A, sentinel_views=sentinels(odown=1))
    assert plan.method == "sentinel" and plan.steps == [{"action": "sentinel_failover", "target": B}]
    assert plan.verdict["evidence"]["sentinels"]["odown"] == ["10.0.0.0:26379"]
    # s_down on quorum sentinels is the same agreement, computed here.
    assert plan_failover(probes, sentinel_master_canonical=A, sentinel_views=sentinels(sdown=2)).steps
    with pytest.raises(RedisModuleError, match="fight the sentinels"):
        plan_failover(probes, sentinel_master_canonical=A, mode="promote", sentinel_views=sentinels(odown=3))
    assert plan_failover(healthy(), sentinel_master_canonical=A).steps == []


@pytest.mark.parametrize("views", [sentinels(), sentinels(sdown=1), sentinels(reachable=0)])
def test_sentinels_that_do_not_agree_stop_the_failover(views):
    plan = plan_failover([dead(A), orphan(B), orphan(C)], sentinel_master_canonical=A, sentinel_views=views)
    assert plan.steps == [] and plan.verdict["state"] == "master_unconfirmed"
    assert "sentinels do not agree" in plan.verdict["reason"]
    assert plan_failover([dead(A), orphan(B), orphan(C)], sentinel_master_canonical=A, sentinel_views=views,
                         force=True).steps == [{"action": "sentinel_failover", "target": B}]


# ------------------------------------------------------------------ evidence before promotion

@pytest.mark.parametrize("kind, state", [("busy", "master_busy"), ("loading", "master_loading")])
def test_a_master_that_answers_busy_or_loading_is_not_replaced(kind, state):
    probes = [dead(A, kind), orphan(B), orphan(C)]
    plan = plan_failover(probes)
    assert plan.steps == [] and plan.method == "none" and plan.master == A and plan.previous_master == A
    assert plan.verdict["state"] == state and plan.verdict["act"] is False
    assert "not down" in plan.verdict["reason"] and "force: true" in plan.verdict["reason"]
    # Even a target does not replace it without force.
    assert plan_failover(probes, target=B).steps == []
    forced = plan_failover(probes, force=True)
    assert forced.steps[0] == {"action": "promote", "target": B} and forced.verdict["forced"] is True
    assert "force: true overrides the evidence" in forced.reasons[0]


def test_a_master_only_this_host_cannot_reach_is_partitioned_not_dead():
    probes = [dead(A), replica(B, A, link="up"), orphan(C)]
    plan = plan_failover(probes)
    assert plan.steps == [] and plan.verdict["state"] == "master_partitioned"
    assert "10.0.0.2:6379 still report master_link_status:up" in plan.verdict["reason"]
    first = plan.verdict["evidence"]["replicas"][0]
    assert first == {"address": B, "master_link_status": "up", "master_link_down_since_seconds": None}


def test_a_link_down_for_less_than_the_threshold_is_not_yet_evidence():
    probes = [dead(A), orphan(B, down=3), orphan(C, down=30)]
    plan = plan_failover(probes)
    assert plan.steps == [] and plan.verdict["state"] == "master_unconfirmed"
    assert "3s on 10.0.0.2:6379" in plan.verdict["reason"]
    assert plan_failover(probes, min_master_down_seconds=2).steps[0]["action"] == "promote"


def test_a_replica_that_never_reached_its_master_counts_as_link_down():
    probes = [dead(A), orphan(B, down=None), orphan(C, down=None)]
    assert plan_failover(probes).verdict["state"] == "master_down"


def test_no_replica_can_confirm_a_master_outside_the_probes():
    evidence = master_down_evidence(None, [], 10)
    assert evidence["state"] == "unconfirmed" and evidence["down"] is False


def test_an_old_master_that_answers_as_a_replica_leaves_the_group_without_master():
    old = dict(replica(A, B), keys={})
    evidence = master_down_evidence(old, [old], 10)
    assert evidence["down"] is True and "answers as a replica" in evidence["reason"]


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


def test_dead_and_alive_unreachable_nodes():
    # A replica its master lists online is alive (unreachable only from here); a dead one is dead.
    m = master(A, replicas=(B, C))
    m["replicas"][1]["state"] = "wait_bgsave"
    plan = plan_failover([m, dead(B), dead(C)])
    assert plan.verdict["dead_nodes"] == [C]
    assert [a["address"] for a in plan.verdict["alive_unreachable"]] == [B]
    # A busy master is alive; a confirmed-dead master is dead.
    busy = plan_failover([dead(A, "busy"), orphan(B), orphan(C)])
    assert busy.verdict["dead_nodes"] == [] and busy.verdict["alive_unreachable"][0]["address"] == A
    partitioned = plan_failover([dead(A), replica(B, A), orphan(C)])
    assert partitioned.verdict["dead_nodes"] == [] and "master_link_status:up" in \
        partitioned.verdict["alive_unreachable"][0]["reason"]
    down = plan_failover([dead(A), orphan(B), orphan(C)])
    assert down.verdict["dead_nodes"] == [A] and down.verdict["alive_unreachable"] == []
