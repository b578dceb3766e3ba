"""The incident timeline, for real: ansible-playbook runs with the incident_timeline callback
(enabled in ansible.cfg) append to one JSONL file per incident; report.yml turns it into the
postmortem. Runs on localhost; no lab component."""

from __future__ import annotations

import os
import signal
import time

from conftest import DRILL, NO_INCIDENT, REPORT, SECRET, run, start, timeline

from ansible_collections.sre.runbooks.plugins.plugin_utils._timeline import parse_time

TASKS = ["Incident | which incident this run belongs to, and when it started", "Assess | is the fault there",
         "Decide | act when the probe found the fault", "Act | remove the fault", "Act | a step whose output is secret",
         "Act | a slow step", "Verify | the fault is gone", "Record | summary"]


def drill(incident_id, fault_dir, check=False, **extra):
    proc = run(DRILL, extra={"incident_id": incident_id, "timeline_fault_dir": str(fault_dir),
                             "timeline_secret": SECRET, **extra}, check=check)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def runs_of(events):
    order = []
    for event in events:
        if event["run_id"] not in order:
            order.append(event["run_id"])
    return order


def test_assess_remediate_rerun_build_one_timeline_and_report(fault_dir, tmp_path):
    (fault_dir / "localhost.fault").touch()
    drill("tl-one", fault_dir, check=True)  # the read-only assessment first
    assert (fault_dir / "localhost.fault").exists()
    drill("tl-one", fault_dir)  # remediation
    assert not (fault_dir / "localhost.fault").exists()
    drill("tl-one", fault_dir)  # re-run on a healed system

    events, lines = timeline("tl-one")
    run_ids = runs_of(events)
    assert len(run_ids) == 3
    for number, run_id in enumerate(run_ids):
        mine = [e for e in events if e["run_id"] == run_id]
        assert mine[0]["type"] == "run_start" and mine[-1]["type"] == "run_end", "run lines frame each run"
        assert mine[0]["check_mode"] is (number == 0) and mine[-1]["outcome"] == "ok"
        assert mine[0]["playbook"].endswith("outage_drill.yml")
        tasks = [e for e in mine if e["type"] == "task"]
        assert [t["task"] for t in tasks] == TASKS  # skipped tasks too
        assert {t["incident_id"] for t in mine} == {"tl-one"}
        previous_end = parse_time(mine[0]["timestamp"])
        for task in tasks:  # UTC, ordered, each task after the one before it
            begin, end = parse_time(task["start"]), parse_time(task["end"])
            assert task["start"].endswith("Z") and previous_end <= begin <= end
            previous_end = end
        assert parse_time(mine[-1]["timestamp"]) >= previous_end
        phases = [t["phase"] for t in tasks]
        assert phases[1:3] == ["assess", "decide"] and phases[-1] == "record"

    check_run, live_run, rerun = ([e for e in events if e["run_id"] == r and e["type"] == "task"] for r in run_ids)
    by_name = {t["task"]: t for t in live_run}
    act = by_name["Act | remove the fault"]
    assert act["status"] == "changed" and [a["result"] for a in act["actions"]] == ["done", "done"]
    stamps = [parse_time(a["timestamp"]) for a in act["actions"]]
    assert parse_time(act["start"]) <= stamps[0] < stamps[1] <= parse_time(act["end"]), "actions keep their own time"
    assert {t["task"]: t for t in check_run}["Act | remove the fault"]["actions"][0]["result"] == "check mode"
    assert {t["task"]: t for t in check_run}["Verify | the fault is gone"]["status"] == "skipped"
    assert by_name["Assess | is the fault there"]["signal"]["healthy"] is False
    assert {t["task"]: t for t in rerun}["Assess | is the fault there"]["signal"]["healthy"] is True
    assert {t["task"]: t for t in rerun}["Act | remove the fault"]["status"] == "skipped"

    # no_log: the task is there, its result is not; the callback's masking catches the rest
    secret_task = by_name["Act | a step whose output is secret"]
    assert secret_task["censored"] is True and set(secret_task) & {"msg", "actions", "signal"} == set()
    raw = "\n".join(lines)
    assert SECRET not in raw and "S3cretPassw0rd" not in raw and "password=********" in raw

    # the report: its own run is not part of the incident
    dest = tmp_path / "postmortem.md"
    proc = run(REPORT, extra={"incident_id": "tl-one", "incident_report_path": str(dest)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(timeline("tl-one")[1]) == len(lines)
    report = dest.read_text()
    for section in ("## Summary", "## Timeline", "```mermaid", "## Root Cause", "## Impact", "## Resolution",
                    "## Action Items", "## Lessons Learned"):
        assert section in report
    assert report.index("**Detected**") < report.index("**Mitigated**") < report.index("**Resolved**")
    check_assess = {t["task"]: t for t in check_run}["Assess | is the fault there"]
    verify = by_name["Verify | the fault is gone"]
    assert f"| Detected | {check_assess['end']} |" in report  # a check-mode assessment detects
    assert f"| Mitigated | {act['actions'][0]['timestamp']} |" in report  # the action's own time, not the preview's
    assert f"| Resolved | {verify['end']} |" in report
    assert "| 3 (1 in check mode): outage_drill.yml" in report.replace("**Runs**:", "|")
    assert SECRET not in report
    # the same timeline again: unchanged
    again = run(REPORT, extra={"incident_id": "tl-one", "incident_report_path": str(dest)})
    assert again.returncode == 0 and "changed=0" in again.stdout


def test_concurrent_runs_never_interleave_lines(fault_dir, hosts_inventory):
    inventory = hosts_inventory(12)
    for n in range(1, 13):
        (fault_dir / f"h{n:02d}.fault").touch()
    extra = {"incident_id": "tl-pair", "timeline_fault_dir": str(fault_dir), "timeline_secret": SECRET,
             "target": "drill", "timeline_slow": 0.5}
    procs = [start(DRILL, inventory=inventory, extra=extra, forks=12) for _run in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode in (0, 2), out + err  # two runs may race for the same fault file

    events, lines = timeline("tl-pair")
    run_ids = runs_of(events)
    assert len(run_ids) == 2
    spans = []
    for run_id in run_ids:
        mine = [e for e in events if e["run_id"] == run_id]
        assert sum(e["type"] == "run_start" for e in mine) == 1 and sum(e["type"] == "run_end" for e in mine) == 1
        tasks = [e for e in mine if e["type"] == "task"]
        assert len(tasks) >= 12 * 6 and {t["host"] for t in tasks} == {f"h{n:02d}" for n in range(1, 13)}
        spans.append((min(parse_time(t["start"]) for t in tasks), max(parse_time(t["end"]) for t in tasks)))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the two runs really overlapped"
    # every fault was removed exactly once across both runs, each removal recorded once
    removals = [a for e in events if e["type"] == "task" for a in e.get("actions", []) if a["result"] == "done"
                and a["action"] == "remove fault"]
    assert sorted(a["target"] for a in removals) == sorted(str(fault_dir / f"h{n:02d}.fault") for n in range(1, 13))


def test_a_killed_run_leaves_a_readable_timeline(fault_dir, tmp_path):
    (fault_dir / "localhost.fault").touch()
    proc = start(DRILL, extra={"incident_id": "tl-kill", "timeline_fault_dir": str(fault_dir),
                               "timeline_secret": SECRET, "timeline_slow": 120})
    path = os.path.join(os.environ["SRE_RUNBOOKS_STATE_DIR"], "tl-kill.jsonl")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # until the task before the slow one is written
            if os.path.exists(path) and "Act | a step whose output is secret" in open(path).read():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError("the run never reached its slow step")
        time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    events, _lines = timeline("tl-kill")
    assert events[0]["type"] == "run_start" and not any(e["type"] == "run_end" for e in events)
    assert [e["task"] for e in events if e["type"] == "task"][-1] == "Act | a step whose output is secret"

    drill("tl-kill", fault_dir)  # the next run appends after the killed one
    events, _lines = timeline("tl-kill")
    assert [e["type"] for e in events].count("run_start") == 2 and events[-1]["type"] == "run_end"
    dest = tmp_path / "pm.md"
    report = run(REPORT, extra={"incident_id": "tl-kill", "incident_report_path": str(dest)})
    assert report.returncode == 0, report.stdout + report.stderr
    text = dest.read_text()
    assert "| interrupted |" in text and "Run 1 (" in text and "has no end" in text


def test_a_run_that_names_no_incident_gets_one_and_says_so():
    proc = run(NO_INCIDENT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [x for x in proc.stderr.splitlines() if "incident_timeline: this run named no incident" in x]
    assert line, proc.stderr
    incident_id = line[0].split("incident id ")[1].split(";")[0]
    events, _lines = timeline(incident_id)
    assert [e["type"] for e in events] == ["run_start", "task", "run_end"]
    assert "incident_timeline" not in proc.stdout


def test_report_without_an_incident_id_says_how_to_give_one():
    proc = run(REPORT)
    assert proc.returncode != 0
    assert "-e incident_id=ID" in proc.stdout + proc.stderr
    missing = run(REPORT, extra={"incident_id": "no-such-incident"})
    assert missing.returncode != 0 and "no timeline for incident no-such-incident" in missing.stdout + missing.stderr
