"""Unit tests for plugins/module_utils/_docker.py: the decisions and parsing that need no engine."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._docker import (
    DockerAPI,
    DockerError,
    acted_containers,
    container_record,
    demux,
    oom_kills,
    parse_docker_time,
    plan_service_action,
    problem_of,
    service_verdict,
    usage_record,
)

NOW = datetime.datetime(2026, 5, 1, 3, 30, tzinfo=datetime.timezone.utc)
LONG_AGO = "2026-05-01T01:00:00.123456789Z"
JUST_NOW = "2026-05-01T03:29:50.5Z"


def rec(name="shop_api_1", service="api", state="running", health=None, restarts=0, started=LONG_AGO,
        oom=False, number=1, oneoff=False):
    return {"name": name, "id": "abc", "project": "shop", "service": service, "number": number, "oneoff": oneoff,
            "state": state, "running": state in ("running", "paused"), "health": health, "restart_count": restarts,
            "oom_killed": oom, "started_at": started}


def test_parse_docker_time():
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time(None) is None
    assert parse_docker_time(LONG_AGO) == datetime.datetime(2026, 5, 1, 1, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    assert parse_docker_time("2026-05-01T01:00:00Z").hour == 1


def test_container_record_reads_state_and_never_the_environment():
    inspected = {
        "Id": "0123456789abcdef", "Name": "/shop_worker_1", "RestartCount": 4,
        "State": {"Status": "exited", "Running": False, "ExitCode": 137, "OOMKilled": True, "Error": "",
                  "StartedAt": LONG_AGO, "FinishedAt": JUST_NOW, "Health": {"Status": "unhealthy", "FailingStreak": 3}},
        "Config": {"Image": "base", "Env": ["QUEUE_PASSWORD=hunter2"],
                   "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "worker",
                              "com.docker.compose.container-number": "1"}},
        "HostConfig": {"Memory": 67108864, "RestartPolicy": {"Name": "unless-stopped"}},
    }
    r = container_record(inspected)
    assert r["name"] == "shop_worker_1" and r["id"] == "0123456789ab"
    assert (r["service"], r["number"], r["state"], r["exit_code"], r["oom_killed"]) == ("worker", 1, "exited", 137, True)
    assert r["health"] == "unhealthy" and r["restart_count"] == 4 and r["memory_limit_bytes"] == 67108864
    assert r["finished_at"] == JUST_NOW and r["restart_policy"] == "unless-stopped"
    assert "hunter2" not in repr(r)
    bare = container_record({"State": {"Status": "running", "Running": True}, "HostConfig": {"Memory": 0}})
    assert bare["memory_limit_bytes"] is None and bare["finished_at"] is None and bare["restart_policy"] == "no"


def test_usage_record_cgroup_v1_and_missing_precpu():
    stats = {"memory_stats": {"usage": 50 << 20, "limit": 100 << 20, "stats": {"total_inactive_file": 10 << 20}},
             "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
             "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000}}
    u = usage_record(stats)
    assert u == {"cpu_percent": 40.0, "memory_usage_bytes": 40 << 20, "memory_percent": 40.0}
    assert usage_record({"memory_stats": {}, "cpu_stats": {}, "precpu_stats": {}}) == {
        "cpu_percent": None, "memory_usage_bytes": None, "memory_percent": None}


def test_demux_framed_and_raw():
    framed = b"\x01\0\0\0\0\0\0\x06hello\n" + b"\x02\0\0\0\0\0\0\x04err\n"
    assert demux(framed) == "hello\nerr\n"
    assert demux(b"plain tty output\n") == "plain tty output\n"


@pytest.mark.parametrize("c, expected", [
    (rec(state="restarting"), "restarting"),
    (rec(state="paused"), "paused"),
    (rec(state="exited"), "stopped"),
    (rec(state="created"), "stopped"),
    (rec(health="unhealthy"), "unhealthy"),
    (rec(restarts=5, started=JUST_NOW), "looping"),
    (rec(restarts=5, started=LONG_AGO), None),
    (rec(restarts=1, started=JUST_NOW), None),
    (rec(health="healthy"), None),
    (rec(health="starting"), None),
])
def test_problem_of(c, expected):
    assert problem_of(c, NOW, 3, 60) == expected


def test_verdict_healthy_project_acts_on_nothing():
    v = service_verdict([rec(), rec("shop_redis_1", "redis", health="healthy")], None, {}, NOW)
    assert v["healthy"] and not v["act"] and v["problem"] is None
    assert v["summary"] == "every container running and healthy"
    assert v["services"] == {"api": ["shop_api_1"], "redis": ["shop_redis_1"]}


def test_verdict_starts_stopped_and_restarts_looping_once():
    cs = [rec(state="exited"), rec("shop_worker_1", "worker", state="restarting", oom=True)]
    v = service_verdict(cs, None, {}, NOW)
    assert v["to_start"] == ["shop_api_1"] and v["to_restart"] == ["shop_worker_1"] and v["act"]
    assert v["services_to_start"] == ["api"] and v["services_to_restart"] == ["worker"]
    assert v["oom_killed"] == ["shop_worker_1"] and "OOM-killed: shop_worker_1" in v["summary"]
    # The same incident, after the runbook acted: report, never act twice.
    v2 = service_verdict(cs, None, {"restart": ["shop_worker_1"], "start": ["shop_api_1"]}, NOW)
    assert v2["to_start"] == [] and v2["to_restart"] == [] and not v2["act"]
    assert v2["report"] == ["shop_api_1", "shop_worker_1"]


def test_verdict_restarted_stopped_container_is_reported():
    v = service_verdict([rec(state="exited")], None, {"restart": ["shop_api_1"]}, NOW)
    assert v["report"] == ["shop_api_1"] and not v["act"]


def test_verdict_unhealthy_and_paused():
    v = service_verdict([rec(health="unhealthy"), rec("shop_redis_1", "redis", state="paused")], None, {}, NOW)
    assert v["to_restart"] == ["shop_api_1"] and v["report"] == ["shop_redis_1"]
    assert v["problems"] == {"shop_api_1": "unhealthy", "shop_redis_1": "paused"}


def test_verdict_scope_ignores_other_services_and_oneoffs():
    cs = [rec(state="exited"), rec("shop_worker_1", "worker", state="exited"),
          rec("shop_api_run_1", "api", state="exited", oneoff=True)]
    v = service_verdict(cs, ["worker"], {}, NOW)
    assert v["to_start"] == ["shop_worker_1"] and v["services"] == {"worker": ["shop_worker_1"]}


def test_verdict_unknown_service_is_a_problem():
    v = service_verdict([rec()], ["api", "payments"], {}, NOW)
    assert not v["act"] and "payments" in v["problem"] and "found: api" in v["problem"]


def test_verdict_max_actions_guardrail():
    cs = [rec(f"shop_api_{i}", number=i, state="exited") for i in range(1, 4)]
    v = service_verdict(cs, None, {}, NOW, max_actions=2)
    assert not v["act"] and v["to_start"] == [] and "guardrail max_actions" in v["problem"]


def test_acted_containers_from_events():
    events = [
        {"Action": "restart", "Actor": {"Attributes": {"name": "shop_api_1"}}},
        {"status": "start", "Actor": {"Attributes": {"name": "shop_worker_1"}}},
        {"Action": "die", "Actor": {"Attributes": {"name": "shop_redis_1"}}},
        {"Action": "restart", "Actor": {}},
    ]
    assert acted_containers(events) == {"restart": ["shop_api_1"], "start": ["shop_worker_1"]}


def test_plan_unknown_service_and_service_without_container():
    p = plan_service_action([], ["payments"], ["api"], "started", {}, 5, None)
    assert p["act"] == [] and "payments" in p["problem"] and "nothing was changed" in p["problem"]
    p = plan_service_action([], ["api"], ["api"], "started", {}, 5, None)
    assert "no container" in p["problem"]


def test_plan_started():
    cs = [rec(state="exited"), rec("shop_api_2", number=2), rec("shop_api_3", number=3, state="restarting"),
          rec("shop_api_4", number=4, state="paused")]
    p = plan_service_action(cs, ["api"], ["api"], "started", {}, 5, None)
    assert p["problem"] is None and p["act"] == ["shop_api_1"]
    assert set(p["skipped"]) == {"shop_api_2", "shop_api_3", "shop_api_4"}
    assert "back-off" in p["skipped"]["shop_api_3"] and "paused" in p["skipped"]["shop_api_4"]


def test_plan_restarted_once():
    cs = [rec(), rec("shop_api_2", number=2)]
    p = plan_service_action(cs, ["api"], ["api"], "restarted", {"restart": ["shop_api_1"]}, 5, "2026-05-01T03:00:00Z")
    assert p["act"] == ["shop_api_2"] and "2026-05-01T03:00:00Z" in p["skipped"]["shop_api_1"]


def test_plan_max_containers_guardrail():
    cs = [rec(f"shop_api_{i}", number=i) for i in range(1, 4)]
    p = plan_service_action(cs, ["api"], ["api"], "restarted", {}, 2, None)
    assert p["act"] == [] and "guardrail max_containers" in p["problem"] and "raise max_containers" in p["problem"]


def test_bad_docker_host_and_unreachable_engine(tmp_path):
    with pytest.raises(DockerError, match="not unix"):
        DockerAPI("ssh://somewhere")
    api = DockerAPI(f"unix://{tmp_path}/no.sock", timeout=2)
    with pytest.raises(DockerError, match="is dockerd running"):
        api.containers("shop")


def test_plan_only_named_containers():
    cs = [rec(), rec("shop_api_2", number=2)]
    p = plan_service_action(cs, ["api"], ["api"], "restarted", {}, 5, None, ["shop_api_2"])
    assert p["act"] == ["shop_api_2"] and p["problem"] is None
    p = plan_service_action(cs, ["api"], ["api"], "restarted", {}, 5, None, ["shop_worker_1"])
    assert p["act"] == [] and "do not belong" in p["problem"]


def test_oom_kills_counts_oom_events_per_container():
    def event(action, name):
        return {"Type": "container", "Action": action, "Actor": {"Attributes": {"name": name}}}
    events = [event("oom", "shop_worker_1"), event("die", "shop_worker_1"), event("start", "shop_worker_1"),
              event("oom", "shop_worker_1"), {"status": "oom", "Actor": {"Attributes": {"name": "shop_api_1"}}},
              {"Action": "oom", "Actor": {}}]
    assert oom_kills(events) == {"shop_worker_1": 2, "shop_api_1": 1}
    assert oom_kills([]) == {}
