"""playbooks/outage/service_down.yml on the lab's compose host (outage_platform: compose):
the real engine, the real project, the real faults."""

from __future__ import annotations

import time

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "service_down.yml"
RECORD = "sre.runbooks.service_down : Record | structured result for the incident timeline"
HOST = "lab-compose"


def run(check=False, **extra):
    return sre_testlib.run_playbook(PLAYBOOK, extra_vars={"target": "compose_hosts", **extra}, check=check)


def record(report):
    return sre_testlib.task_results(report, RECORD)[HOST]["ansible_facts"]["service_down_result"]


def failures(report):
    return [f"{task['task']['name']}: {task['hosts'][HOST].get('msg')}" for play in report.get("plays", [])
            for task in play["tasks"] if task["hosts"].get(HOST, {}).get("failed")]


def changed_tasks(report):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(HOST, {}).get("changed")]


def test_healthy_project_is_left_alone(compose):
    """No-fault control: nothing starts, nothing restarts, the record says so."""
    started = {s: compose.inspect(s)["State"]["StartedAt"] for s in compose.services}
    rc, report, err = run()
    assert rc == 0, (failures(report), err[-3000:])
    assert changed_tasks(report) == []
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["healthy"] is True and rec["actions"] == []
    assert {s: compose.inspect(s)["State"]["StartedAt"] for s in compose.services} == started


def test_stopped_api_is_started_check_mode_first_and_second_run_changes_nothing(compose):
    compose.docker("stop", "-t", "2", compose.name("api"))
    rc, report, err = run(check=True)
    assert rc == 0, (failures(report), err[-3000:])
    rec = record(report)
    assert rec["outcome"].startswith("check mode: would") and rec["containers_started"] == [compose.name("api")]
    assert compose.inspect("api")["State"]["Status"] == "exited"

    rc, report, err = run()
    assert rc == 0, (failures(report), err[-3000:])
    rec = record(report)
    assert rec["outcome"] == "healed" and rec["containers_started"] == [compose.name("api")] and rec["containers_restarted"] == []
    assert [a["action"] for a in rec["actions"]] == ["start"]
    assert compose.inspect("api")["State"]["Health"]["Status"] == "healthy"

    rc, report, err = run()
    assert rc == 0, (failures(report), err[-3000:])
    assert changed_tasks(report) == [] and record(report)["outcome"] == "no action needed"


def test_crash_looping_worker_is_restarted_once_then_reported(compose):
    since = time.time() - 1
    (compose.trigger / "crash").touch()
    compose.wait_for("worker", lambda s: s["RestartCount"] >= 2, "crash-looping")
    rc, report, err = run(service_down_probe_timeout=5)
    assert rc != 0  # still crashing after the one restart: a human must read the logs
    rec = record(report)
    assert rec["containers_restarted"] == [compose.name("worker")] and rec["outcome"] == "failed"
    assert compose.name("worker") in rec["still_down"]
    assert "lab-queue-password" not in str(report) + err

    rc, report, err = run(service_down_probe_timeout=5)
    assert rc != 0
    rec = record(report)
    assert rec["containers_restarted"] == [] and rec["crash_looping"] == [compose.name("worker")]
    assert rec["outcome"].startswith("failed") or rec["outcome"].startswith("reported")
    assert compose.restart_events(since, "worker") == 1
