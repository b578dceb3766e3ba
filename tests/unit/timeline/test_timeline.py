"""The incident timeline's logic (plugin_utils/_timeline): lines, masking, locking, milestones, report."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os

import pytest

from ansible_collections.sre.runbooks.plugins.plugin_utils import _timeline as tl

T0 = datetime.datetime(2026, 1, 31, 3, 0, tzinfo=datetime.timezone.utc)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def task(run, name, start, end, status="ok", host="db1", result=None, no_log=False, check=False, tags=()):
    return tl.task_event(incident_id="inc", run_id=run, play="p", task_name=name, tags=list(tags), host=host,
                         status=status, start=at(start), end=at(end), result=result or {}, no_log=no_log,
                         check_mode=check)


def run_start(run, second, check=False, playbook="playbooks/outage/db_exhaustion.yml"):
    return tl.run_start_event(incident_id="inc", run_id=run, timestamp=at(second), playbook=playbook, check_mode=check)


def run_end(run, second, started, failures=0, check=False):
    return tl.run_end_event(incident_id="inc", run_id=run, timestamp=at(second), started=at(started),
                            playbook="playbooks/outage/db_exhaustion.yml", check_mode=check,
                            stats={"db1": {"ok": 3, "failures": failures, "unreachable": 0}})


def roundtrip(events):
    raw = b"".join(tl.encode(e) for e in events).decode()
    parsed, bad = tl.parse_lines(raw)
    assert bad == 0
    return parsed


def action(second, result="done", name="terminate"):
    return {"timestamp": tl.iso(at(second)), "action": name, "target": "db1", "result": result, "pid": 42}


# ---------------------------------------------------------------- phases and names
@pytest.mark.parametrize("name,tags,phase", [
    ("Assess | connection usage", [], "assess"),
    ("db_exhaustion : Act | terminate", [], "act"),
    ("  verify|fresh connection", [], "verify"),
    ("Decide | act when", ["always"], "decide"),
    ("Record | summary", [], "record"),
    ("Incident | which incident", ["always"], None),
    ("terminate sessions", ["act"], "act"),
    ("terminate sessions", ["always", "other"], None),
    ("Assessment of things", [], None),
])
def test_phase_from_prefix_then_tags(name, tags, phase):
    assert tl.phase_of(name, tags) == phase


def test_role_prefix_is_split():
    assert tl.split_role("db_exhaustion : Assess | x") == ("db_exhaustion", "Assess | x")
    assert tl.split_role("Assess | x: y") == (None, "Assess | x: y")
    assert tl.split_role("sre.runbooks.crashloop : Act | y") == ("sre.runbooks.crashloop", "Act | y")


# ---------------------------------------------------------------- task lines
def test_task_line_has_times_status_phase_and_actions_in_order():
    event = task("r1", "db_exhaustion : Act | terminate", 10, 12, status="changed",
                 result={"changed": True, "actions": [action(11.5, name="second"), action(11.0, name="first")]})
    assert event["start"] == "2026-01-31T03:00:10.000Z" and event["end"] == "2026-01-31T03:00:12.000Z"
    assert event["phase"] == "act" and event["role"] == "db_exhaustion" and event["task"] == "Act | terminate"
    assert [a["action"] for a in event["actions"]] == ["first", "second"]


def test_loop_items_actions_are_collected_and_no_log_items_dropped():
    result = {"results": [{"actions": [action(1)]}, {"_ansible_no_log": True, "actions": [action(2, name="hidden")]},
                          {"censored": "x", "actions": [action(3, name="hidden")]}, "junk"]}
    assert [a["action"] for a in tl.actions_of(result)] == ["terminate"]


def test_no_log_task_keeps_only_that_it_ran():
    result = {"actions": [action(1)], "msg": "password is hunter2", "healthy": False, "incident_id": "x",
              "started_at": "2026-01-31T03:00:00Z"}
    event = task("r1", "Act | secret", 1, 2, status="changed", result=result, no_log=True)
    assert event["censored"] is True
    for key in ("actions", "msg", "signal", "incident"):
        assert key not in event
    assert "hunter2" not in json.dumps(event)


def test_censored_result_is_treated_as_no_log():
    event = task("r1", "Act | x", 1, 2, result={"censored": "hidden", "changed": False})
    assert event["censored"] is True


def test_secrets_are_masked_in_messages_and_actions():
    result = {"msg": "psql postgresql://app:TopSecret1@db1/app failed", "actions": [
        {"timestamp": tl.iso(at(1)), "action": "restart", "target": "pgbouncer", "result": "done",
         "password": "TopSecret2", "command": "redis-cli -a x --requirepass=TopSecret3"}]}
    line = tl.encode(task("r1", "Act | x", 0, 2, status="failed", result=result)).decode()
    for secret in ("TopSecret1", "TopSecret2", "TopSecret3"):
        assert secret not in line
    assert line.endswith("\n") and line.count("\n") == 1


def test_encode_masks_again_whatever_the_event_holds():
    line = tl.encode({"type": "task", "msg": "token=abcdefgh12345678", "api_token": "zzz"}).decode()
    assert "abcdefgh12345678" not in line and "zzz" not in line


def test_long_text_is_truncated():
    event = task("r1", "Assess | x", 0, 1, status="failed", result={"msg": "x" * 5000})
    assert len(event["msg"]) == tl.MAX_TEXT and event["msg"].endswith("...")


def test_unknown_status_counts_as_failed_and_end_never_before_start():
    event = task("r1", "Act | x", 5, 4, status="weird")
    assert event["status"] == "failed" and event["end"] == event["start"] and event["duration_seconds"] == 0


def test_skip_reason_and_rc():
    skipped = task("r1", "Act | x", 0, 1, status="skipped",
                   result={"skip_reason": "Conditional result was False", "msg": "ignored"})
    assert skipped["skip_reason"] == "Conditional result was False" and "msg" not in skipped
    failed = task("r1", "Act | x", 0, 1, status="failed", result={"rc": 2, "msg": "boom"})
    assert failed["rc"] == 2 and failed["msg"] == "boom"


def test_incident_start_result_is_kept():
    event = task("r1", "Incident | which", 0, 1,
                 result={"incident_id": "inc", "started_at": "2026-01-31T02:50:00.000Z", "source": "record", "runs": 2,
                         "record_path": "/x"})
    assert event["incident"] == {"incident_id": "inc", "started_at": "2026-01-31T02:50:00.000Z", "source": "record",
                                 "runs": 2}


# ---------------------------------------------------------------- signals
@pytest.mark.parametrize("result,phase,signal", [
    ({"healthy": False}, "assess", {"healthy": False}),
    ({"healthy": True, "verdict": {"healthy": False}}, "assess", {"healthy": False}),
    ({"verdict": {"act": True, "summary": "2 units down", "severity": "P1"}}, "assess",
     {"act": True, "summary": "2 units down", "severity": "P1"}),
    ({"verdict": {"act": False, "problem": "7 units down: over the cap"}}, "assess",
     {"act": False, "problem": "7 units down: over the cap"}),
    ({"ansible_facts": {"db_exhaustion_act": True, "other": 1}}, "decide", {"act": True}),
    ({"ansible_facts": {"db_exhaustion_act": True}}, "assess", {}),
    ({"results": [{"healthy": True}, {"healthy": False}]}, "verify", {"healthy": False}),
    ({"severity": "P2"}, "assess", {"severity": "P2"}),
    ({}, "assess", {}),
])
def test_signal_of(result, phase, signal):
    assert tl.signal_of(result, phase) == signal


@pytest.mark.parametrize("signal,is_unhealthy,is_healthy", [
    ({"healthy": False}, True, False),
    ({"act": True}, True, False),
    ({"act": False, "problem": "ambiguous"}, True, False),
    ({"healthy": True}, False, True),
    ({"act": False}, False, True),
    ({"summary": "x"}, False, False),
    (None, False, False),
])
def test_health_of_a_signal(signal, is_unhealthy, is_healthy):
    assert tl.unhealthy(signal) is is_unhealthy and tl.healthy(signal) is is_healthy


# ---------------------------------------------------------------- run lines
@pytest.mark.parametrize("stats,outcome", [
    ({"a": {"failures": 0, "unreachable": 0}}, "ok"),
    ({"a": {"failures": 1, "unreachable": 0}, "b": {}}, "failed"),
    ({"a": {"failures": 1}, "b": {"unreachable": 1}}, "unreachable"),
    ({}, "ok"),
])
def test_run_outcome(stats, outcome):
    assert tl.run_outcome(stats) == outcome


def test_run_lines():
    start = run_start("r1", 0, check=True)
    assert start["check_mode"] is True and start["type"] == "run_start"
    end = run_end("r1", 30, 0, failures=1)
    assert end["outcome"] == "failed" and end["duration_seconds"] == 30


def test_generated_id_is_valid_and_path_is_beside_the_record(tmp_path):
    from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident
    generated = tl.generated_incident_id(T0)
    assert generated.startswith("run-20260131t030000z-") and _incident.validate_incident_id(generated) == generated
    assert tl.timeline_path(str(tmp_path), "inc") == str(tmp_path / "inc.jsonl")


# ---------------------------------------------------------------- the file
def test_append_creates_private_file_and_closes_a_torn_line(tmp_path):
    path = str(tmp_path / "sub" / "inc.jsonl")
    tl.append_lines(path, [tl.encode({"type": "run_start", "n": 1})])
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path, "ab") as fh:
        fh.write(b'{"type": "task", "torn')  # a crash inside a write
    tl.append_lines(path, [tl.encode({"type": "run_end", "n": 2})], fsync=True)
    events, bad = tl.read_timeline(path)
    assert [e["type"] for e in events] == ["run_start", "run_end"] and bad == 1
    tl.append_lines(path, [])


def _writer(path, number):
    for i in range(200):
        tl.append_lines(path, [tl.encode({"type": "task", "writer": number, "i": i, "pad": "x" * 3000})])


def test_concurrent_appends_never_interleave(tmp_path):
    path = str(tmp_path / "inc.jsonl")
    procs = [multiprocessing.Process(target=_writer, args=(path, n)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    events, bad = tl.read_timeline(path)
    assert bad == 0 and len(events) == 800
    for n in range(4):
        assert [e["i"] for e in events if e["writer"] == n] == list(range(200))


def test_parse_lines_skips_junk():
    events, bad = tl.parse_lines('{"type": "task"}\n\nnot json\n[1]\n{"type": "other"}\n')
    assert len(events) == 1 and bad == 3


# ---------------------------------------------------------------- milestones
def incident_timeline(check_first=True):
    """check-mode assessment, a live run that detects, acts and verifies, a healthy re-run."""
    events = []
    if check_first:
        events += [run_start("r0", 0, check=True),
                   task("r0", "Incident | which", 0.1, 0.2,
                        result={"incident_id": "inc", "started_at": tl.iso(at(0)), "source": "new", "runs": 1}),
                   task("r0", "Assess | usage", 1, 2, result={"verdict": {"act": True, "summary": "95% used"}}, check=True),
                   task("r0", "Act | terminate", 3, 4, status="changed", check=True,
                        result={"actions": [action(3.5, result="check mode")]}),
                   run_end("r0", 5, 0, check=True)]
    events += [run_start("r1", 60),
               task("r1", "Incident | which", 60.1, 60.2,
                    result={"incident_id": "inc", "started_at": tl.iso(at(0)), "source": "record", "runs": 2}),
               task("r1", "Assess | usage", 61, 62, result={"verdict": {"act": True, "summary": "95% used"}}),
               task("r1", "Act | terminate", 63, 66, status="changed",
                    result={"actions": [action(64), action(65, result="failed")]}),
               task("r1", "Verify | fresh connection", 67, 68),
               task("r1", "Verify | under the threshold", 68, 69),
               run_end("r1", 70, 60),
               run_start("r2", 100),
               task("r2", "Assess | usage", 101, 102, result={"verdict": {"act": False, "summary": "healthy"}}),
               task("r2", "Act | terminate", 103, 104, status="skipped"),
               run_end("r2", 105, 100)]
    return roundtrip(events)


def test_milestones_of_a_whole_incident():
    analysis = tl.analyse(incident_timeline())
    marks = analysis["marks"]
    assert marks["detected"][0] == at(2)  # the check-mode assessment counts: it is read-only
    assert marks["mitigated"][0] == at(64)  # the live action's own timestamp; check mode does not count
    assert marks["resolved"][0] == at(69)  # the end of run r1's verify tasks
    assert (analysis["time_to_detect"], analysis["time_to_mitigate"], analysis["time_to_resolve"]) == (2, 64, 69)
    assert [r["number"] for r in analysis["runs"]] == [1, 2, 3] and analysis["runs"][0]["check_mode"]


def test_a_failed_verify_is_not_resolution_a_later_healthy_assessment_is():
    events = roundtrip([
        run_start("r1", 0),
        task("r1", "Assess | usage", 1, 2, result={"healthy": False}),
        task("r1", "Act | restart", 3, 4, status="changed"),  # changed, no actions: the task's end
        task("r1", "Verify | fresh connection", 5, 6),
        task("r1", "Verify | under the threshold", 6, 7, status="failed", result={"msg": "still 96%"}),
        run_end("r1", 8, 0, failures=1),
        run_start("r2", 20),
        task("r2", "Assess | usage", 21, 22, result={"healthy": True}),
        run_end("r2", 23, 20)])
    marks = tl.milestones(events, tl.analyse(events)["runs"])
    assert marks["mitigated"][0] == at(4)
    assert marks["resolved"][0] == at(22) and marks["resolved"][1]["run_id"] == "r2"


def test_an_assessment_without_health_evidence_does_not_resolve():
    events = roundtrip([run_start("r1", 0), task("r1", "Assess | usage", 1, 2, status="failed"),
                        task("r1", "Act | restart", 3, 4, status="changed"),
                        run_start("r2", 10), task("r2", "Assess | usage", 11, 12), run_end("r2", 13, 10)])
    marks = tl.analyse(events)["marks"]
    assert marks["detected"][0] == at(2) and marks["mitigated"][0] == at(4) and marks["resolved"] is None


def test_no_mitigation_then_resolution_after_detection_by_verify_only():
    events = roundtrip([run_start("r1", 0), task("r1", "Decide | act", 1, 2, result={"ansible_facts": {"x_act": True}}),
                        task("r1", "Verify | up", 3, 4), run_end("r1", 5, 0)])
    marks = tl.analyse(events)["marks"]
    assert marks["detected"][0] == at(2) and marks["mitigated"] is None and marks["resolved"][0] == at(4)


def test_healthy_system_has_no_milestones():
    events = roundtrip([run_start("r1", 0), task("r1", "Assess | usage", 1, 2, result={"healthy": True}),
                        task("r1", "Act | x", 3, 4, status="skipped"), task("r1", "Verify | y", 5, 6, status="skipped"),
                        run_end("r1", 7, 0)])
    analysis = tl.analyse(events)
    assert analysis["marks"] == {"detected": None, "mitigated": None, "resolved": None}
    assert analysis["time_to_detect"] is None and analysis["affected"] == {}


def test_actions_already_done_or_in_unchanged_act_tasks_do_not_mitigate():
    events = roundtrip([run_start("r1", 0), task("r1", "Act | rollout", 1, 2, result={
        "actions": [action(1.5, result="already done"), action(1.6, result="check mode")]}),
        task("r1", "Act | noop", 3, 4), task("r1", "Assess | changed?", 4, 5, status="changed"), run_end("r1", 6, 0)])
    assert tl.analyse(events)["marks"]["mitigated"] is None


@pytest.mark.parametrize("result,done", [("done", True), ("terminated", True), ("started", True),
                                         ("check mode", False), ("failed", False), ("already done", False),
                                         ("", False), (None, False), ("would terminate", False)])
def test_action_done(result, done):
    assert tl.action_done({"result": result}) is done


def test_incident_start_given_wins_then_earliest_record_then_first_run():
    given = [{"incident": {"started_at": "2026-01-31T02:00:00Z", "source": "variable"}},
             {"incident": {"started_at": "2026-01-31T01:00:00Z", "source": "record"}}]
    assert tl.incident_start(given, [])[0] == at(-3600)
    recorded = [{"incident": {"started_at": "2026-01-31T02:00:00Z", "source": "record"}},
                {"incident": {"started_at": "2026-01-31T01:00:00Z", "source": "new"}}]
    assert tl.incident_start(recorded, [])[0] == at(-7200)
    assert tl.incident_start([], [{"started": at(5)}]) == (at(5), "first run of the timeline")
    assert tl.incident_start([], []) == (None, "empty timeline")


def test_killed_run_is_interrupted_and_its_end_is_its_last_event():
    events = roundtrip([run_start("r1", 0), task("r1", "Act | slow", 1, 9, status="changed")])
    run = tl.analyse(events)["runs"][0]
    assert run["outcome"] == "interrupted" and run["last"] == at(9) and run["ended"] is None


def test_run_without_start_line_uses_first_event():
    events = roundtrip([task("r1", "Assess | x", 3, 4), run_end("r1", 5, 3)])
    run = tl.analyse(events)["runs"][0]
    assert run["started"] == at(3) and run["outcome"] == "ok"


# ---------------------------------------------------------------- durations and rendering
@pytest.mark.parametrize("seconds,text", [(None, "n/a"), (0.25, "250 ms"), (1.44, "1.4s"), (59.96, "1m 00s"),
                                          (61, "1m 01s"), (3723, "1h 02m 03s"), (-5, "-5.0s")])
def test_duration(seconds, text):
    assert tl.duration(seconds) == text


def test_report_has_every_section_and_the_milestones_in_order():
    events = incident_timeline()
    analysis = tl.analyse(events)
    md = tl.render_markdown("inc", analysis, record={"scenario": "db_exhaustion", "target": "db1"},
                            source="/x/inc.jsonl", unreadable=2, generated=at(200))
    sections = ["# Incident Post-Mortem: db_exhaustion on db1", "## Summary", "## Timeline", "```mermaid",
                "### Runs", "## Root Cause", "## Impact", "## Resolution", "## Action Items", "## Lessons Learned"]
    positions = [md.index(s) for s in sections]
    assert positions == sorted(positions)
    assert md.index("**Detected**") < md.index("**Mitigated**") < md.index("**Resolved**")
    assert "| Detected | 2026-01-31T03:00:02.000Z | 2.0s |" in md
    assert "| Mitigated | 2026-01-31T03:01:04.000Z | 1m 04s |" in md
    assert "| Resolved | 2026-01-31T03:01:09.000Z | 1m 09s |" in md
    assert "(check mode) terminate db1: check mode" in md  # a preview is in the timeline, labelled
    assert "1. 03:01:04.000 terminate db1: done (pid=42) on db1" in md  # the resolution lists only what was done
    assert "terminate db1: failed" not in md.split("## Resolution")[1].split("## Action Items")[0]
    assert "2 unreadable line(s) skipped" in md
    assert "Assess \\| usage" in md  # pipes in task names do not break the table
    assert "- db1: 95% used" in md
    assert "Incident inc: run 2, incident started 2026-01-31T03:00:00.000Z (record)" in md


def test_report_of_an_unresolved_interrupted_incident_lists_follow_ups():
    events = roundtrip([run_start("r1", 0), task("r1", "Assess | x", 1, 2, status="failed", result={"msg": "refused"}),
                        task("r1", "Act | y", 3, 4, status="unreachable")])
    md = tl.render_markdown("inc", tl.analyse(events), generated=at(10))
    assert "ongoing" in md and "Confirm recovery" in md and "has no end" in md
    assert "Follow up: Assess \\| x failed on db1" in md and "Follow up: Act \\| y unreachable on db1" in md
    assert "No remediation action is recorded" in md and "[to fill: P0-P3]" in md


def test_report_all_detail_lists_every_task():
    events = incident_timeline(check_first=False)
    notable = tl.render_markdown("inc", tl.analyse(events), generated=at(1))
    every = tl.render_markdown("inc", tl.analyse(events), detail="all", generated=at(1))
    assert "Act \\| terminate: skipped" not in notable and "Act \\| terminate: skipped" in every


def test_empty_timeline_report():
    md = tl.render_markdown("inc", tl.analyse([]), generated=at(0))
    assert "The timeline is empty." in md and "**Date**: unknown" in md


def test_severity_is_the_worst_seen():
    events = roundtrip([task("r1", "Assess | a", 1, 2, result={"verdict": {"act": True, "severity": "P2"}}),
                        task("r1", "Assess | b", 2, 3, result={"verdict": {"act": True, "severity": "P1"}})])
    assert tl.analyse(events)["severity"] == "P1"


def test_mermaid_gantt_shape():
    events = incident_timeline()
    analysis = tl.analyse(events)
    chart = tl.mermaid_gantt("inc|bad:id", analysis["events"], analysis["runs"], analysis["marks"])
    lines = chart.splitlines()
    assert lines[0] == "gantt" and "dateFormat YYYY-MM-DDTHH:mm:ss.SSS" in chart
    assert "title Incident inc bad id (UTC)" in chart
    assert any(line.strip().startswith("section Run 1 db_exhaustion.yml check") for line in lines)
    assert "Assess :active, " in chart  # check-mode runs are drawn apart
    assert "Verify :done, " in chart
    assert "Detected :milestone, " in chart and "Resolved :milestone, " in chart
    assert "Incident :" in chart  # the Incident | task's own prefix names its bar
    for line in lines[4:]:
        if ":" in line:
            start, end = [tl.parse_time(x.strip()) for x in line.split(",")[-2:]]
            assert end > start


def test_mermaid_marks_failed_phase_as_crit():
    events = roundtrip([run_start("r1", 0), task("r1", "Verify | x", 1, 1, status="failed"), run_end("r1", 2, 0)])
    analysis = tl.analyse(events)
    assert "Verify :crit, " in tl.mermaid_gantt("inc", analysis["events"], analysis["runs"], analysis["marks"])


def test_consecutive_actions_of_one_kind_are_one_row():
    actions = [action(1, name="terminate"), dict(action(1.2, name="terminate"), pid=43), action(2, name="restart"),
               action(3, result="check mode", name="terminate")]
    rows = tl.action_groups(actions, False)
    assert [r[1] for r in rows] == [
        "terminate db1: done x2 (pid=42, 43), the last at 2026-01-31T03:00:01.200Z",
        "restart db1: done (pid=42)", "terminate db1: check mode (pid=42)"]
    assert rows[0][0] == at(1)
    many = [dict(action(1), pid=n) for n in range(12)]
    assert tl.action_groups(many, True)[0][1] == ("(check mode) terminate db1: done x12 "
                                                  "(pid=0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...)")
    assert [r[1] for r in tl.action_groups(actions, False, only_done=True)] == [
        "terminate db1: done x2 (pid=42, 43), the last at 2026-01-31T03:00:01.200Z", "restart db1: done (pid=42)"]
