"""The incident drill, PostgreSQL exhaustion: a real fault; assess.yml names the component and picks
the playbook; that playbook heals it; report.yml writes the postmortem, whose timeline holds the
detection, each remediation action and the recovery, in order, within the drill's wall clock."""

from __future__ import annotations

import datetime
import subprocess
import time
import uuid
from pathlib import Path

import sre_testlib

REPO = sre_testlib.REPO
ASSESS = REPO / "playbooks" / "outage" / "assess.yml"
REPORT = REPO / "playbooks" / "incident" / "report.yml"
INJECT = REPO / "lab" / "pg" / "inject"


def utc(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def fact(report, task: str, name: str):
    hosts = sre_testlib.task_results(report, task)
    assert hosts, f"no task {task!r} in the report"
    return next(iter(hosts.values()))["ansible_facts"][name]


def test_db_exhaustion_drill_from_assessment_to_postmortem(pg_lab, tmp_path):
    inv = sre_testlib.lab_inventory_of(tmp_path, "postgresql")
    incident = f"drill-pg-{uuid.uuid4().hex[:6]}"
    begin = datetime.datetime.now(datetime.timezone.utc)
    subprocess.run([str(INJECT), "1000", "100"], check=True, capture_output=True, text=True)
    try:
        rc, report, err = sre_testlib.run_playbook(ASSESS, inventory=inv, extra_vars={"incident_id": incident})
        assert rc == 0, err
        verdict = fact(report, "sre.runbooks.incident : Decide | the triage verdict (read-only; decided in Python)",
                       "incident_verdict")
        # The fault is really there, and the assessment names it and one playbook.
        assert verdict["act"] and not verdict["healthy"], verdict
        assert [step["playbook"] for step in verdict["next"]] == ["db_exhaustion"], verdict
        step = verdict["next"][0]
        assert step["extra_vars"]["target"] == "lab-postgres"

        time.sleep(2.5)  # the held sessions grow older than the drill's min_idle
        extra = {**step["extra_vars"], "incident_id": incident, "db_exhaustion_min_idle": "2s",
                 "db_exhaustion_min_idle_in_transaction": "2s"}
        rc, report, err = sre_testlib.run_playbook(REPO / step["path"], inventory=inv, extra_vars=extra)
        assert rc == 0, err
        healed = datetime.datetime.now(datetime.timezone.utc)

        # The healed system, assessed again in the same incident: healthy.
        rc, report, err = sre_testlib.run_playbook(ASSESS, inventory=inv, extra_vars={"incident_id": incident})
        verdict = fact(report, "sre.runbooks.incident : Decide | the triage verdict (read-only; decided in Python)",
                       "incident_verdict")
        assert verdict["healthy"] and not verdict["next"], verdict

        rc, report, err = sre_testlib.run_playbook(REPORT, extra_vars={"incident_id": incident})
        assert rc == 0, err
        written = next(iter(sre_testlib.task_results(report, "Record | write the postmortem").values()))
        end = datetime.datetime.now(datetime.timezone.utc)
    finally:
        subprocess.run([str(INJECT), "stop"], check=False, capture_output=True, text=True)

    detected, mitigated, resolved = (utc(written[k]) for k in ("detected_at", "mitigated_at", "resolved_at"))
    assert begin <= detected < mitigated < resolved <= end, written
    assert mitigated <= healed

    # Every termination the playbook did is on the timeline, stamped between detection and recovery.
    timeline = sre_testlib.incident_timeline(incident)
    actions = [a for line in timeline if line.get("type") == "task" for a in line.get("actions") or []]
    terminations = [a for a in actions if "terminat" in str(a.get("action"))]
    assert terminations, actions
    assert all(detected <= utc(a["timestamp"]) <= resolved for a in terminations)
    runs = [line["playbook"] for line in timeline if line.get("type") == "run_start"]
    assert [Path(p).name for p in runs] == ["assess.yml", "db_exhaustion.yml", "assess.yml"], runs

    postmortem = Path(written["dest"]).read_text()
    for section in ("Summary", "Timeline", "Root Cause", "Impact", "Resolution", "Action Items", "Lessons Learned"):
        assert f"## {section}" in postmortem, section
    assert postmortem.startswith("# Incident Post-Mortem: db_exhaustion on lab-postgres")
    assert "```mermaid" in postmortem
