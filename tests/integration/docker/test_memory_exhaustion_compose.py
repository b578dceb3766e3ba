"""playbooks/outage/memory_exhaustion.yml on the lab's compose host (outage_platform: compose):
the worker (64 MB mem_limit) loads its backlog into memory and the kernel OOM-kills it."""

from __future__ import annotations

import time

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "memory_exhaustion.yml"
RECORD = "sre.runbooks.memory_exhaustion : Record | structured result for the incident timeline"
HOST = "lab-compose"


def run(check=False, **extra):
    return sre_testlib.run_playbook(PLAYBOOK, check=check, extra_vars={
        "target": "compose_hosts", "memory_exhaustion_compose_wait_timeout": 10, **extra})


def record(report):
    return sre_testlib.task_results(report, RECORD)[HOST]["ansible_facts"]["memory_exhaustion_result"]


def changed_tasks(report):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(HOST, {}).get("changed")]


def oom_loop(compose):
    (compose.trigger / "oom").touch()
    compose.wait_for("worker", lambda s: s["State"]["OOMKilled"] and s["RestartCount"] >= 3, "OOM-killed 3 times")


def test_healthy_project_is_left_alone(compose):
    """No-fault control: no OOM kill, nothing near its limit, nothing restarted."""
    started = {s: compose.inspect(s)["State"]["StartedAt"] for s in compose.services}
    rc, report, err = run()
    assert rc == 0, err[-3000:]
    assert changed_tasks(report) == []
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["oom_killed"] == [] and rec["actions"] == []
    assert {s: compose.inspect(s)["State"]["StartedAt"] for s in compose.services} == started


def test_oom_loop_check_mode_then_restarted_once_then_reported_with_the_limit(compose):
    since = time.time() - 1
    oom_loop(compose)
    rc, report, err = run(check=True)
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert rec["outcome"] == "check mode: would restart once" and rec["containers_restarted"] == [compose.name("worker")]
    assert compose.restart_events(since, "worker") == 0

    rc, report, err = run()
    assert rc != 0  # OOM-killed again after the one restart: the limit is a human's change
    rec = record(report)
    assert rec["outcome"] == "failed" and rec["containers_restarted"] == [compose.name("worker")]
    assert rec["still_down"] == [compose.name("worker")] and "mem_limit" in rec["error"]
    worker = rec["oom_killed"][0]
    assert worker["name"] == compose.name("worker") and worker["memory_limit_bytes"] == 64 << 20
    assert compose.inspect("worker")["HostConfig"]["Memory"] == 64 << 20  # never changed

    rc, report, err = run()
    assert rc != 0
    rec = record(report)
    assert rec["containers_restarted"] == [] and "not restarted twice" in rec["error"]
    assert "limit 64 MiB" in rec["reported_containers"][compose.name("worker")]
    assert compose.restart_events(since, "worker") == 1


def test_transient_oom_is_healed_by_one_restart_and_a_second_run_changes_nothing(compose):
    """A backlog spike OOM-killed the worker three times; the spike is gone, but the restart loop
    it left is what the runbook sees: one restart, then it runs within its limit."""
    oom_loop(compose)
    (compose.trigger / "oom").unlink()
    rc, report, err = run()
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert rec["outcome"] == "healed" and rec["containers_restarted"] == [compose.name("worker")] and rec["still_down"] == []
    worker = compose.inspect("worker")
    assert worker["State"]["Running"] and worker["RestartCount"] == 0

    rc, report, err = run()
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert changed_tasks(report) == [] and rec["containers_restarted"] == []
    # Docker may keep State.OOMKilled of the last kill on a running container: reported, not acted on.
    assert rec["outcome"] == "no action needed" or "serving again" in rec["outcome"], rec["outcome"]
