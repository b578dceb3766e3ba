"""The incident drill, a stopped service on a real systemd host: assess.yml names the unit and
picks service_down; it heals; report.yml's timeline holds detection, the restart and recovery,
in order, within the drill's wall clock."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

import sre_testlib
import yaml

REPO = sre_testlib.REPO
ASSESS = REPO / "playbooks" / "outage" / "assess.yml"
REPORT = REPO / "playbooks" / "incident" / "report.yml"
VERDICT_TASK = "sre.runbooks.incident : Decide | the triage verdict (read-only; decided in Python)"


def utc(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def verdict_of(report):
    return next(iter(sre_testlib.task_results(report, VERDICT_TASK).values()))["ansible_facts"]["incident_verdict"]


def test_service_down_drill_from_assessment_to_postmortem(lab_host, lab_services_restored, tmp_path):
    inv = sre_testlib.lab_inventory_of(tmp_path, "systemd_hosts")
    # A lab host is a container: its load average is the whole test machine's, which a loaded CI
    # run pushes over the threshold. The drill is about the unit; load is not part of it.
    defaults = yaml.safe_load((REPO / "roles" / "incident" / "defaults" / "main.yml").read_text())
    thresholds = {**defaults["incident_triage_thresholds"], "host_load_per_cpu": 1000}
    incident = f"drill-svc-{uuid.uuid4().hex[:6]}"
    assess_vars = {"incident_id": incident, "incident_triage_thresholds": thresholds}
    begin = datetime.datetime.now(datetime.timezone.utc)
    lab_host.sh("systemctl kill --signal=SIGKILL nginx.service")
    assert lab_host.wait_unit("nginx.service", ("failed",)) == "failed"

    rc, report, err = sre_testlib.run_playbook(ASSESS, inventory=inv, extra_vars=assess_vars)
    assert rc == 0, err
    verdict = verdict_of(report)
    assert verdict["act"] and [s["playbook"] for s in verdict["next"]] == ["service_down"], verdict
    step = verdict["next"][0]
    assert step["extra_vars"]["target"] == lab_host.name

    rc, report, err = sre_testlib.run_playbook(REPO / step["path"], inventory=inv,
                                               extra_vars={**step["extra_vars"], "incident_id": incident})
    assert rc == 0, err
    assert lab_host.unit("nginx.service", "ActiveState") == "active"

    rc, report, err = sre_testlib.run_playbook(ASSESS, inventory=inv, extra_vars=assess_vars)
    assert verdict_of(report)["healthy"], verdict_of(report)

    rc, report, err = sre_testlib.run_playbook(REPORT, extra_vars={"incident_id": incident})
    assert rc == 0, err
    written = next(iter(sre_testlib.task_results(report, "Record | write the postmortem").values()))
    end = datetime.datetime.now(datetime.timezone.utc)

    detected, mitigated, resolved = (utc(written[k]) for k in ("detected_at", "mitigated_at", "resolved_at"))
    assert begin <= detected < mitigated < resolved <= end, written
    timeline = sre_testlib.incident_timeline(incident)
    # The restart is an act task that changed the host, on the timeline when it happened.
    restarts = [line for line in timeline if line.get("type") == "task" and line.get("phase") == "act"
                and line.get("status") == "changed"]
    assert restarts, [line.get("task") for line in timeline if line.get("type") == "task"]
    assert all(detected <= utc(line["end"]) <= resolved for line in restarts), restarts
    postmortem = Path(written["dest"]).read_text()
    assert postmortem.startswith(f"# Incident Post-Mortem: service_down on {lab_host.name}")
    assert "## Lessons Learned" in postmortem
