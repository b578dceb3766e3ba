"""The redis_unavailable role's decide step (filter plugin sre.runbooks.redis_verdict): every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.redis_verdict import (
    FilterModule,
    redis_group_leader,
    redis_verdict,
)

A, B, C = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"
S1 = "10.0.0.1:26379"


def plan(state="healthy", steps=(), master=A, dead=(), alive=(), **extra):
    result = {"changed": False, "master": master, "previous_master": A, "method": "none",
              "plan": {"steps": list(steps), "reasons": []},
              "verdict": {"state": state, "act": bool(steps), "reason": f"{state} reason",
                          "dead_nodes": list(dead), "alive_unreachable": list(alive)}}
    result.update(extra)
    return result


def node(addr, role="master", reachable=True, ratio=0.1, link="up", kind=None):
    if not reachable:
        return {"address": addr, "reachable": False, "error": "refused", "error_kind": kind or "unreachable"}
    return {"address": addr, "reachable": True, "role": role, "replication": {"master_link_status": link},
            "memory": {"used_ratio": ratio, "used_human": "1M", "maxmemory_bytes": 1000, "maxmemory_policy": "noeviction",
                       "evicted_keys": 0},
            "stats": {"hit_rate": 0.5}}


def health(*nodes, sentinels=()):
    return {"nodes": list(nodes), "sentinels": list(sentinels), "sentinel_master": A}


def test_healthy_group_nothing_to_do():
    f = redis_verdict(plan(), health(node(A), node(B, "replica"), node(C, "replica")))
    assert f["act"] is False and f["failover_needed"] is False and f["state"] == "healthy"
    assert f["summary"].startswith("healthy, nothing to do") and f["dead_nodes"] == [] and f["flush"] == []
    assert f["rejoin_target"] == A


def test_busy_master_is_reported_not_acted_on():
    f = redis_verdict(plan("master_busy", alive=[{"address": A, "reason": "busy"}]),
                      health(node(A, reachable=False, kind="busy"), node(B, "replica"), node(C, "replica")))
    assert f["act"] is False and f["dead_nodes"] == [] and f["unreachable"] == [A]
    assert f["summary"].startswith("no action (master_busy)") and f["rejoin_target"] is None
    assert f["alive_unreachable"] == [{"address": A, "reason": "busy"}]


def test_master_down_fails_over_and_restarts_the_dead_node():
    steps = [{"action": "promote", "target": B}]
    f = redis_verdict(plan("master_down", steps=steps, master=B, dead=[A]),
                      health(node(A, reachable=False), node(B, "replica", link="down"), node(C, "replica", link="down")),
                      units={A: "redis-a.service"})
    assert f["act"] and f["failover_needed"] and f["broken_replicas"] == [B, C]
    assert f["dead_nodes"] == [{"address": A, "host": "10.0.0.1", "port": 6379}]
    assert f["restart_units"] == [{"address": A, "host": "10.0.0.1", "port": 6379, "unit": "redis-a.service"}]
    assert f["rejoin_target"] == B
    assert f["summary"] == "acting: none (master_down): master_down reason; dead: 10.0.0.1:6379"


def test_failed_plan_acts_to_stop_and_falls_back_to_health_for_dead_nodes():
    failed = {"failed": True, "msg": "guardrail 'split_brain' tripped: ...", "guardrail": "split_brain",
              "split_brain": [{"address": A}, {"address": B}]}
    f = redis_verdict(failed, health(node(A), node(B), node(C, reachable=False), node("10.0.0.4:6379", reachable=False,
                                                                                      kind="loading")))
    assert f["act"] and f["plan_error"].startswith("guardrail") and f["failover_needed"] is False
    assert f["guardrail"] == "split_brain" and len(f["split_brain"]) == 2 and f["rejoin_target"] is None
    assert [d["address"] for d in f["dead_nodes"]] == [C]
    assert f["state"] == "plan_failed" and f["summary"].startswith("acting: cannot plan")


def test_unreachable_sentinel_is_reported_never_restarted():
    f = redis_verdict(plan(), health(node(A), node(B, "replica"),
                                     sentinels=[{"address": S1, "reachable": False}]), units={S1: "sentinel"})
    assert f["act"] is False and f["unreachable_sentinels"] == [S1] and f["restart_units"] == []


def test_pods_from_the_mapping_or_the_statefulset_dns_name():
    dead = ["redis-2.redis.cache.svc:6379", C, "other-0.x:6379"]
    f = redis_verdict(plan("nodes_unreachable", dead=dead), health(), pods={C: "redis-1"}, statefulset="redis")
    assert [(p["address"], p["pod"]) for p in f["restart_pods"]] == [(dead[0], "redis-2"), (C, "redis-1")]
    assert f["no_pod"] == ["other-0.x:6379"]


def test_ipv6_nodes_are_parsed_once():
    f = redis_verdict(plan("nodes_unreachable", dead=["[fd00::3]:6380"]), health())
    assert f["dead_nodes"] == [{"address": "[fd00::3]:6380", "host": "fd00::3", "port": 6380}]
    with pytest.raises(AnsibleFilterError, match="host:port"):
        redis_verdict(plan("nodes_unreachable", dead=["h:notaport"]), health())


def test_flush_only_full_masters_only_when_allowed_and_only_the_asked_dbs():
    nodes = health(node(A, ratio=0.99), node(B, "replica", ratio=0.99), node(C, "replica", ratio=0.2))
    refused = redis_verdict(plan(), nodes)
    assert refused["act"] is True and refused["flush"] == []
    assert [m["address"] for m in refused["memory_full"]] == [A, B]
    assert "redis_unavailable_allow_flush" in refused["flush_note"] and "read-only" in refused["flush_note"]
    allowed = redis_verdict(plan(), nodes, allow_flush=True, flush_dbs=[0, 3])
    assert allowed["flush"] == [{"address": A, "host": "10.0.0.1", "port": 6379, "db": 0},
                                {"address": A, "host": "10.0.0.1", "port": 6379, "db": 3}]
    assert [r["address"] for r in allowed["flush_refused"]] == [B]
    # Only a replica full: nothing to flush (the master is not full).
    replica_only = redis_verdict(plan(), health(node(A), node(B, "replica", ratio=0.99)), allow_flush=True)
    assert replica_only["flush"] == [] and replica_only["flush_refused"][0]["address"] == B
    assert redis_verdict(plan(), health(node(A, ratio=None)))["memory_full"] == []


def test_empty_inputs_and_default_flush_db():
    f = redis_verdict(None, None)
    assert f["act"] is False and f["state"] == "unknown" and f["plan_method"] == "none"
    f = redis_verdict(plan(), health(node(A, ratio=0.97)), allow_flush=True)
    assert [x["db"] for x in f["flush"]] == [0]


def test_sentinels_in_odown_are_listed():
    views = [{"address": S1, "reachable": True, "odown": True}, {"address": "x:1", "reachable": True, "odown": False}]
    assert redis_verdict(plan(), health(node(A), sentinels=views))["sentinels_in_odown"] == [S1]


def test_group_leader_is_the_first_host_of_the_group():
    keys = ["g1", "g2", "g1"]
    hosts = ["h1", "h2", "h3"]
    assert redis_group_leader(keys, hosts, "g1") == "h1"
    assert redis_group_leader(keys, hosts, "g2") == "h2"
    with pytest.raises(AnsibleFilterError, match="no host"):
        redis_group_leader(keys, hosts, "g3")
    with pytest.raises(AnsibleFilterError, match="one group key per host"):
        redis_group_leader(keys, hosts[:2], "g1")
    assert set(FilterModule().filters()) == {"redis_verdict", "redis_group_leader"}
