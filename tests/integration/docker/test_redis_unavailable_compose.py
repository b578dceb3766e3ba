"""playbooks/outage/redis_unavailable.yml on the lab's compose host (outage_platform: compose):
the project's Redis container killed (started again) or hung (restarted once), against the real
engine; a healthy project and a project in another scenario's fault are left alone."""

from __future__ import annotations

import os
import socket
import time

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "redis_unavailable.yml"
RECORD = "sre.runbooks.redis_unavailable : Record | structured result for the incident timeline"
HOST = "lab-compose"


def run(check=False, **extra):
    return sre_testlib.run_playbook(PLAYBOOK, check=check, extra_vars={
        "target": "compose_hosts", "redis_unavailable_compose_stop_timeout": 2, **extra})


def record(report):
    return sre_testlib.task_results(report, RECORD)[HOST]["ansible_facts"]["redis_unavailable_result"]


def changed_tasks(report):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(HOST, {}).get("changed")]


def ping() -> bytes:
    """A real client's PING (RESP inline command), not our module's."""
    address = (sre_testlib.lab_var("lab_bind_address"), int(sre_testlib.lab_var("lab_docker_redis_port")))
    try:
        with socket.create_connection(address, timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError as exc:
        return str(exc).encode()


def events(compose, since: float, event: str) -> list[str]:
    out = compose.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                         "--filter", f"event={event}", "--filter", f"label=com.docker.compose.project={compose.project}",
                         "--format", "{{.Actor.Attributes.name}}").stdout
    return out.split()


def test_healthy_project_and_another_fault_are_left_alone(compose):
    """No-fault control: a healthy project, then one whose api is stopped (service_down's fault):
    PING answers, nothing is started or restarted."""
    since = time.time() - 1
    rc, report, err = run()
    assert rc == 0, err[-3000:]
    assert changed_tasks(report) == []
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["ping"] == "ok" and rec["actions"] == []
    compose.docker("stop", "-t", "2", compose.name("api"))
    try:
        rc, report, err = run()
        assert rc == 0, err[-3000:]
        assert changed_tasks(report) == [] and record(report)["outcome"] == "no action needed"
        assert compose.inspect("api")["State"]["Status"] == "exited"
        assert events(compose, since, "start") == [] and events(compose, since, "restart") == []
    finally:
        compose.docker("start", compose.name("api"))


def test_killed_redis_check_mode_then_started_then_second_run_changes_nothing(compose):
    since = time.time() - 1
    compose.docker("kill", compose.name("redis"))
    compose.wait_for("redis", lambda s: s["State"]["Status"] == "exited", "exited")
    assert ping() != b"+PONG\r\n"

    rc, report, err = run(check=True)
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert rec["outcome"] == "check mode: would start or restart the Redis container", rec
    assert rec["containers_started"] == [compose.name("redis")] and rec["ping"] == "unreachable"
    assert compose.inspect("redis")["State"]["Status"] == "exited" and events(compose, since, "start") == []

    rc, report, err = run()
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert rec["outcome"] == "healed" and rec["containers_started"] == [compose.name("redis")]
    assert rec["containers_restarted"] == [] and rec["write_check"]["ok"]
    assert [a["action"] for a in rec["actions"]] == ["start"]
    assert ping() == b"+PONG\r\n"

    rc, report, err = run()
    assert rc == 0, err[-3000:]
    assert changed_tasks(report) == [] and record(report)["outcome"] == "no action needed"
    assert events(compose, since, "start") == [compose.name("redis")] and events(compose, since, "restart") == []


def test_hung_redis_is_restarted_once(compose):
    """SIGSTOP: the port accepts, PING times out, Docker's healthcheck turns unhealthy; its restart
    policy does nothing. One restart heals it (the run after a heal is the killed test's)."""
    since = time.time() - 1
    pid = compose.inspect("redis")["State"]["Pid"]
    os.kill(pid, 19)  # SIGSTOP
    try:
        compose.wait_for("redis", lambda s: (s["State"].get("Health") or {}).get("Status") == "unhealthy", "unhealthy")
        rc, report, err = run(redis_unavailable_connect_timeout=1)
        assert rc == 0, err[-3000:]
        rec = record(report)
        assert rec["outcome"] == "healed" and rec["containers_restarted"] == [compose.name("redis")], rec
        assert rec["ping"] == "unreachable" and rec["containers_started"] == []
    finally:
        try:
            os.kill(pid, 18)  # SIGCONT, in case the restart did not happen
        except ProcessLookupError:
            pass
    assert compose.inspect("redis")["State"]["Pid"] != pid and ping() == b"+PONG\r\n"
    assert events(compose, since, "restart") == [compose.name("redis")]
