"""Unit tests for the memory_exhaustion decision on compose hosts (_docker.oom_verdict) and its
filter (compose_verdict): every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.compose_verdict import compose_verdict
from ansible_collections.sre.runbooks.plugins.module_utils._docker import oom_verdict

MB = 1 << 20


def c(name="shop_worker_1", service="worker", state="running", problem=None, oom=False, limit=64 * MB,
      usage=10 * MB, percent=15.6, oneoff=False):
    return {"name": name, "service": service, "number": 1, "oneoff": oneoff, "state": state, "problem": problem,
            "oom_killed": oom, "memory_limit_bytes": limit, "memory_usage_bytes": usage, "memory_percent": percent,
            "restart_count": 2, "exit_code": 137 if oom else 0}


def test_healthy_project_nothing_found():
    v = oom_verdict([c(), c("shop_api_1", "api", limit=None, percent=None)], {})
    assert not v["found"] and not v["act"] and v["report"] == {} and v["to_restart"] == []
    assert v["summary"] == "no container OOM-killed or near its memory limit"


@pytest.mark.parametrize("problem", ["restarting", "looping", "stopped", "unhealthy"])
def test_oom_killed_and_down_is_restarted_once(problem):
    v = oom_verdict([c(state="restarting" if problem == "restarting" else "running", problem=problem, oom=True, usage=None)], {})
    assert v["act"] and v["to_restart"] == ["shop_worker_1"] and v["services_to_restart"] == ["worker"]
    assert v["oom_killed"][0]["memory_limit_bytes"] == 64 * MB and "limit 64 MiB" in v["summary"]


def test_oom_killed_again_after_this_incidents_restart_is_reported_with_its_limit():
    v = oom_verdict([c(problem="looping", oom=True)], {"restart": ["shop_worker_1"]})
    assert not v["act"] and v["to_restart"] == [] and v["down_after_restart"] == ["shop_worker_1"]
    assert "limit 64 MiB, usage 10 MiB" in v["report"]["shop_worker_1"] and "mem_limit" in v["report"]["shop_worker_1"]


def test_oom_killed_but_serving_again_is_reported_not_restarted():
    v = oom_verdict([c(oom=True)], {})
    assert v["found"] and not v["act"] and "serving again" in v["report"]["shop_worker_1"]


def test_paused_and_restart_not_allowed_are_reported():
    v = oom_verdict([c(state="paused", problem="paused", oom=True)], {})
    assert not v["act"] and "paused" in v["report"]["shop_worker_1"]
    v = oom_verdict([c(problem="looping", oom=True)], {}, restart=False)
    assert not v["act"] and "restart not allowed" in v["report"]["shop_worker_1"]


def test_near_limit_reported_other_problems_left_to_service_down_oneoff_ignored():
    v = oom_verdict([c(percent=95.0, usage=61 * MB), c("shop_api_1", "api", problem="stopped"),
                     c("shop_worker_run_1", oneoff=True, oom=True, problem="stopped"),
                     c("shop_redis_1", "redis", percent=99.0, limit=None)], {})
    assert v["near_limit"] == ["shop_worker_1"] and "95.0%" in v["report"]["shop_worker_1"]
    assert v["other"] == ["shop_api_1"] and not v["act"] and v["oom_killed"] == []


def test_guardrail_restarts_none():
    many = [c(f"shop_worker_{i}", problem="restarting", oom=True) for i in range(4)]
    v = oom_verdict(many, {}, max_actions=3)
    assert not v["act"] and v["to_restart"] == [] and "guardrail max_actions" in v["problem"]
    assert all("not restarted" in r for r in v["report"].values())


def test_filter_wraps_the_module_result_and_refuses_bad_input():
    info = {"services": {"worker": [c(problem="looping", oom=True)]}, "acted": {"restart": [], "start": []}}
    assert compose_verdict(info, "memory_exhaustion")["to_restart"] == ["shop_worker_1"]
    with pytest.raises(AnsibleFilterError, match="compose_service_info"):
        compose_verdict({"failed": True}, "memory_exhaustion")
    with pytest.raises(AnsibleFilterError, match="unknown scenario"):
        compose_verdict(info, "disk_full")
