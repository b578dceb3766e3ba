"""compose_service_info and compose_service against the lab's real Docker engine and compose
project (lab/docker): api (with a healthcheck), redis, worker (64 MB limit), postgres, pgbouncer."""

from __future__ import annotations

import time

from sre_testlib import run_module


def info(lab, **args):
    return run_module("compose_service_info", {"docker_host": lab.host, "project": lab.project, **args})


def act(lab, check=False, diff=False, **args):
    return run_module("compose_service", {"docker_host": lab.host, "project": lab.project, **args}, check=check, diff=diff)


def test_healthy_project_is_read_and_judged_healthy(compose):
    r = info(compose)
    assert not r.get("failed"), r
    assert r["changed"] is False and r["projects"] == [compose.project]
    assert set(r["services"]) == {"api", "redis", "worker", "postgres", "pgbouncer"}
    api, worker = r["services"]["api"][0], r["services"]["worker"][0]
    assert api["state"] == "running" and api["health"] == "healthy" and api["problem"] is None
    assert worker["memory_limit_bytes"] == 64 << 20 and worker["memory_usage_bytes"] > 0
    assert 0 < worker["memory_percent"] < 100 and worker["cpu_percent"] is not None
    assert r["verdict"]["healthy"] and not r["verdict"]["act"]
    assert "logs" not in api  # logs only for failing containers


def test_unknown_project_and_service_change_nothing(compose):
    r = info(compose, project="no-such-project")
    assert r["projects"] == [] and r["services"] == {}
    r = act(compose, project="no-such-project", services=["api"], state="restarted")
    assert r["failed"] and "no container of compose project 'no-such-project'" in r["msg"]
    before = compose.inspect("api")["State"]["StartedAt"]
    r = act(compose, services=["api", "payments"], state="restarted")
    assert r["failed"] and "payments" in r["msg"] and "nothing was changed" in r["msg"]
    assert compose.inspect("api")["State"]["StartedAt"] == before


def test_stopped_container_is_started_and_a_second_run_changes_nothing(compose):
    compose.docker("stop", "-t", "2", compose.name("api"))
    r = info(compose, services=["api"])
    assert r["verdict"]["to_start"] == [compose.name("api")] and r["verdict"]["problems"] == {compose.name("api"): "stopped"}
    assert r["services"]["api"][0]["exit_code"] is not None and "logs" in r["services"]["api"][0]
    check = act(compose, check=True, services=["api"], state="started")
    assert check["changed"] and check["started"] == [compose.name("api")]
    assert check["actions"][0]["result"] == "would start"
    assert compose.inspect("api")["State"]["Status"] == "exited"
    r = act(compose, diff=True, services=["api"], state="started")
    assert r["changed"] and r["started"] == [compose.name("api")] and r["not_ready"] == []
    assert r["diff"]["before"][compose.name("api")]["state"] == "exited"
    assert r["diff"]["after"][compose.name("api")]["health"] == "healthy"
    assert compose.inspect("redis")["RestartCount"] == 0  # the service not named is untouched
    again = act(compose, services=["api"], state="started")
    assert again["changed"] is False and again["left_alone"] == {compose.name("api"): "running"}


def test_restart_once_per_incident(compose):
    incident_start = time.time()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(incident_start - 1))
    r = act(compose, services=["worker"], state="restarted", restarted_after=since)
    assert r["changed"] and r["restarted"] == [compose.name("worker")], r
    assert r["actions"][0]["action"] == "restart"
    again = act(compose, services=["worker"], state="restarted", restarted_after=since)
    assert again["changed"] is False and compose.name("worker") in again["left_alone"]
    assert compose.restart_events(incident_start - 1, "worker") == 1
    seen = info(compose, restarted_after=since, stats=False)
    assert seen["acted"]["restart"] == [compose.name("worker")]


def test_oom_killed_worker_is_reported_with_its_limit_and_logs(compose):
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    (compose.trigger / "oom").touch()
    state = compose.wait_for("worker", lambda s: s["State"]["OOMKilled"] and s["RestartCount"] >= 1, "OOM-killed")
    # The restart policy starts it again a moment after each kill (State.OOMKilled and the exit
    # code then describe the new run: 137 while it is down, 0 once running again): the module
    # keeps the evidence from Docker's oom events.
    assert state["State"]["ExitCode"] == 137 or state["State"]["Running"], state["State"]
    r = info(compose, services=["worker"], log_lines=5, restarted_after=since)
    w = r["services"]["worker"][0]
    assert w["oom_killed"] is True and w["oom_kills"] >= 1 and w["memory_limit_bytes"] == 64 << 20, w
    assert w["exit_code"] == 137 or w["running"], w
    assert r["verdict"]["oom_killed"] == [compose.name("worker")] and "OOM-killed" in r["verdict"]["summary"]
    assert any("backlog" in line for line in w["logs"])


def test_crash_loop_logs_are_masked(compose):
    (compose.trigger / "crash").touch()
    compose.wait_for("worker", lambda s: s["RestartCount"] >= 2, "crash-looping")
    r = info(compose, services=["worker"], restart_loop_threshold=2)
    w = r["services"]["worker"][0]
    assert r["verdict"]["to_restart"] == [compose.name("worker")] and w["problem"] in ("restarting", "looping")
    text = "\n".join(w["logs"])
    assert "cannot authenticate" in text and "lab-queue-password" not in text
