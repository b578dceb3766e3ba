"""Unit tests for redis_unavailable on compose hosts (_compose_redis.redis_container_verdict) and
its filter (compose_verdict('redis_unavailable')): every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.compose_verdict import compose_verdict
from ansible_collections.sre.runbooks.plugins.module_utils._compose_redis import ping_state, redis_container_verdict

NAME = "shop_redis_1"
OK = [{"address": "127.0.0.1:6379", "reachable": True}]
DOWN = [{"address": "127.0.0.1:6379", "reachable": False, "error_kind": "unreachable", "error": "refused"}]
BUSY = [{"address": "127.0.0.1:6379", "reachable": False, "error_kind": "busy"}]
LOADING = [{"address": "127.0.0.1:6379", "reachable": False, "error_kind": "loading"}]


def c(name=NAME, service="redis", state="running", problem=None, health="healthy", number=1, oneoff=False):
    return {"name": name, "service": service, "number": number, "oneoff": oneoff, "state": state, "problem": problem,
            "health": health, "restart_count": 0, "exit_code": 0, "oom_killed": False, "started_at": None}


def api():
    return c("shop_api_1", "api")


def verdict(containers, pings, acted=None, **kw):
    return redis_container_verdict(containers, "redis", pings, acted or {}, **kw)


def test_ping_state_worst_first():
    assert ping_state([]) is None
    assert ping_state(OK) == "ok"
    assert ping_state(OK + DOWN) == "unreachable"
    assert ping_state(DOWN + BUSY) == "busy"
    assert ping_state(BUSY + LOADING) == "loading"
    assert ping_state([{"reachable": False}]) == "unreachable"


@pytest.mark.parametrize("pings", [OK, []])
def test_healthy_redis_is_left_alone(pings):
    v = verdict([api(), c()], pings)
    assert v["healthy"] and not v["found"] and not v["act"] and v["report"] == {} and v["failing"] == []
    assert v["summary"] == ("redis: running and answering PING" if pings else
                            "redis: running and healthy (Docker's evidence; no address to PING)")


def test_other_services_failing_is_not_this_runbooks():
    v = verdict([c("shop_api_1", "api", state="exited", problem="stopped"), c()], OK)
    assert v["healthy"] and not v["act"]


@pytest.mark.parametrize("pings", [DOWN, []])
def test_stopped_is_started(pings):
    v = verdict([c(state="exited", problem="stopped", health="unhealthy")], pings)
    assert v["act"] and v["to_start"] == [NAME] and v["services_to_start"] == ["redis"] and v["to_restart"] == []
    assert "start" in v["summary"] and v["found"] and not v["healthy"]


def test_stopped_but_something_answers_ping_is_reported():
    v = verdict([c(state="exited", problem="stopped")], OK)
    assert not v["act"] and "another process holds the port" in v["report"][NAME] and v["failing"] == [NAME]


@pytest.mark.parametrize("problem", ["restarting", "looping"])
def test_crash_looping_is_restarted_once(problem):
    v = verdict([c(state="restarting" if problem == "restarting" else "running", problem=problem)], DOWN)
    assert v["act"] and v["to_restart"] == [NAME] and v["services_to_restart"] == ["redis"]


def test_unhealthy_and_not_answering_is_restarted():
    v = verdict([c(problem="unhealthy", health="unhealthy")], DOWN)
    assert v["act"] and v["to_restart"] == [NAME]


def test_unhealthy_without_ping_address_is_restarted_on_dockers_evidence():
    v = verdict([c(problem="unhealthy", health="unhealthy")], [])
    assert v["act"] and v["to_restart"] == [NAME] and v["ping"] is None


def test_unhealthy_but_answering_ping_is_reported():
    v = verdict([c(problem="unhealthy", health="unhealthy")], OK)
    assert not v["act"] and "recovering" in v["report"][NAME]


def test_no_healthcheck_and_not_answering_is_restarted():
    v = verdict([c(health=None)], DOWN)
    assert v["act"] and v["to_restart"] == [NAME] and "PING unreachable" in v["summary"]


def test_healthy_by_docker_but_not_answering_here_is_a_path_problem_not_a_dead_redis():
    v = verdict([c()], DOWN)
    assert not v["act"] and "network or bind-address problem" in v["report"][NAME] and v["found"]


def test_healthcheck_starting_and_not_answering_waits():
    v = verdict([c(health="starting")], DOWN)
    assert not v["act"] and "not decided yet" in v["report"][NAME]


@pytest.mark.parametrize("pings,word", [(BUSY, "busy, not down"), (LOADING, "LOADING")])
@pytest.mark.parametrize("problem,health", [(None, "healthy"), ("unhealthy", "unhealthy"), ("looping", None)])
def test_busy_or_loading_redis_is_alive_never_restarted(pings, word, problem, health):
    v = verdict([c(problem=problem, health=health)], pings)
    assert not v["act"] and word in v["report"][NAME] and v["to_restart"] == []


def test_paused_is_reported():
    v = verdict([c(state="paused", problem="paused")], DOWN)
    assert not v["act"] and "unpause" in v["report"][NAME]


@pytest.mark.parametrize("acted,word", [({"restart": [NAME]}, "restart"), ({"start": [NAME]}, "start")])
@pytest.mark.parametrize("state,problem", [("exited", "stopped"), ("running", "unhealthy"), ("restarting", "restarting")])
def test_down_again_after_this_incidents_action_is_reported_never_twice(acted, word, state, problem):
    v = verdict([c(state=state, problem=problem, health="unhealthy")], DOWN, acted)
    assert not v["act"] and v["down_after_action"] == [NAME]
    assert f"again after this incident's {word}" in v["report"][NAME] and "not restarted twice" in v["report"][NAME]


def test_restart_not_allowed_reports_only():
    v = verdict([c(state="exited", problem="stopped")], DOWN, restart=False)
    assert not v["act"] and "restart not allowed" in v["report"][NAME]


def test_no_redis_container_is_a_problem():
    v = verdict([api()], DOWN)
    assert not v["act"] and "has no container" in v["problem"] and "found: api" in v["problem"]
    assert v["summary"] == v["problem"] and v["found"]


def test_guardrail_acts_on_none():
    scaled = [c(state="exited", problem="stopped", number=1), c("shop_redis_2", state="exited", problem="stopped", number=2),
              c("shop_redis_3", state="exited", problem="stopped", number=3)]
    v = verdict(scaled, [], max_actions=2)
    assert not v["act"] and v["to_start"] == [] and "guardrail max_actions" in v["problem"]
    assert all("not acted on" in v["report"][n] for n in ("shop_redis_1", "shop_redis_2", "shop_redis_3"))


def test_scaled_service_ping_not_attributed_and_oneoff_ignored():
    scaled = [c(), c("shop_redis_2", number=2), c("shop_redis_run_1", state="exited", problem="stopped", oneoff=True)]
    v = verdict(scaled, DOWN)
    assert not v["act"] and v["failing"] == [] and "not attributed: 2 containers" in v["summary"]
    assert [x["ping"] for x in v["containers"]] == [None, None]


def test_filter_dispatches_and_rejects_bad_input():
    info = {"services": {"redis": [c(state="exited", problem="stopped")], "api": [api()]},
            "acted": {"restart": [], "start": []}}
    v = compose_verdict(info, "redis_unavailable", ping={"nodes": DOWN})
    assert v["to_start"] == [NAME]
    skipped = compose_verdict(info, "redis_unavailable", ping={"skipped": True}, service="redis")
    assert skipped["to_start"] == [NAME] and skipped["ping"] is None
    assert compose_verdict(info, "redis_unavailable", service="cache")["problem"].startswith("service cache")
    with pytest.raises(AnsibleFilterError, match="redis_health_info"):
        compose_verdict(info, "redis_unavailable", ping={"nodes": "x"})
    with pytest.raises(AnsibleFilterError, match="unknown scenario"):
        compose_verdict(info, "kafka")
