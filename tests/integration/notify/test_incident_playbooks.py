"""playbooks/incident/{open,update,resolve}.yml and the incident role's triage entry point, run
with ansible-playbook exactly as a user would, Slack and PagerDuty pointed at a local receiver."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import ROUTING_KEY, WEBHOOK_SECRET_PATH
from sre_testlib import REPO, VENV_BIN, ansible_env, run_playbook

from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage

PLAYBOOKS = REPO / "playbooks" / "incident"
PG_DOWN = _triage.verdict([{"source": "pg_activity_info", "host": "lab-postgres",
                            "result": {"utilisation_percent": 100.0, "client_backends": 97, "usable_connections": 97}}],
                          components=[{"name": "postgresql", "match": ["postgresql"], "impact": "critical"}])


def settings(receiver, **extra):
    return {"incident_slack_webhook_url": receiver.webhook_url, "incident_pagerduty_routing_key": ROUTING_KEY,
            "incident_pagerduty_url": receiver.pagerduty_url, "incident_notify_retry_delay": 0.05, **extra}


def assert_no_secret(*texts):
    for text in texts:
        text = text if isinstance(text, str) else json.dumps(text)
        assert "hookSecretXq7Zp2" not in text and WEBHOOK_SECRET_PATH not in text
        assert ROUTING_KEY not in text


def role_task(report, name):
    """Per-host results of the last task whose name ends with `name` (role tasks carry a prefix)."""
    found = {}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"].endswith(name):
                found = task["hosts"]
    return found


def notify_result(report):
    found = role_task(report, "Incident | record what was sent")
    if not found or next(iter(found.values())).get("skipped"):
        found = role_task(report, "Incident | a notification failure never fails the run")
    return next(iter(found.values()))["ansible_facts"]["incident_notify_result"]


def test_open_update_resolve_one_alert(receiver):
    base = settings(receiver, incident_id="db_exhaustion--lab-postgres")
    rc, report, err = run_playbook(PLAYBOOKS / "open.yml", extra_vars={**base, "incident_verdict": PG_DOWN})
    assert rc == 0, err
    rc, _report, err = run_playbook(PLAYBOOKS / "update.yml", extra_vars={**base, "incident_verdict": PG_DOWN,
                                                                          "incident_note": "terminated 80 idle sessions"})
    assert rc == 0, err
    rc, report_resolve, err = run_playbook(PLAYBOOKS / "resolve.yml", extra_vars={
        **base, "incident_severity": "P1", "incident_note": "PostgreSQL connection exhaustion",
        "incident_root_cause": "a worker leaking connections", "incident_resolution": "db_exhaustion playbook"})
    assert rc == 0, err

    slack = [r["json"] for r in receiver.requests if r["path"] == WEBHOOK_SECRET_PATH]
    pager = [r["json"] for r in receiver.requests if r["path"] == "/v2/enqueue"]
    assert len(slack) == 3 and len(pager) == 3
    assert [p["event_action"] for p in pager] == ["trigger", "acknowledge", "resolve"]
    assert {p["dedup_key"] for p in pager} == {"sre-runbooks/db_exhaustion--lab-postgres"}
    assert all(p["routing_key"] == ROUTING_KEY for p in pager)
    trigger = pager[0]["payload"]
    assert trigger["severity"] == "error" and trigger["component"] == "postgresql" and trigger["source"] == "lab-postgres"
    assert trigger["summary"].startswith("[P1] postgresql down")
    assert trigger["custom_details"]["next"][0].startswith("ansible-playbook playbooks/outage/db_exhaustion.yml")
    assert slack[0]["text"].startswith(":rotating_light: *[P1] Incident db_exhaustion--lab-postgres opened*")
    assert "```\nTRIAGE  FAILING  severity P1" in slack[0]["text"]
    # Minutes since the open: 0 on a quiet machine, 1 or more when the test lanes load it.
    assert re.search(r"update\* \(\+\d+ min\): terminated 80 idle sessions", slack[1]["text"]), slack[1]["text"]
    assert "resolved* after" in slack[2]["text"] and "*Root cause* a worker leaking connections" in slack[2]["text"]
    result = notify_result(report_resolve)
    assert result["slack"]["delivered"] is True and result["pagerduty"]["delivered"] is True
    assert result["warnings"] == []
    assert_no_secret(report, report_resolve, err)


def test_delivery_failure_is_a_warning_and_the_run_succeeds(receiver):
    receiver.fail_first = 100
    rc, report, err = run_playbook(PLAYBOOKS / "open.yml", extra_vars={
        **settings(receiver, incident_notify_retries=1), "incident_verdict": PG_DOWN, "incident_id": "x1"})
    assert rc == 0, err
    assert len(receiver.requests) == 4  # two attempts each
    result = notify_result(report)
    assert result["slack"]["delivered"] is False and result["pagerduty"]["delivered"] is False
    assert len(result["warnings"]) == 2 and all("not delivered after 2 attempt(s)" in w for w in result["warnings"])
    assert report["stats"]["localhost"]["failures"] == 0
    assert_no_secret(report, err)


def test_a_broken_setting_is_rescued_not_fatal(receiver):
    # A severity PagerDuty does not know makes pagerduty_event fail its argument check: still no failure.
    rc, report, err = run_playbook(PLAYBOOKS / "open.yml", extra_vars={
        **settings(receiver, incident_pagerduty_severity={"P1": "urgent"}), "incident_id": "x2",
        "incident_verdict": PG_DOWN})
    assert rc == 0, err
    result = notify_result(report)
    assert "urgent" in result["error"] and "notification failed" in result["warnings"][0]
    assert [r["path"] for r in receiver.requests] == [WEBHOOK_SECRET_PATH]  # Slack went out before
    assert report["stats"]["localhost"]["failures"] == 0 and report["stats"]["localhost"]["rescued"] == 1


def test_check_mode_sends_nothing(receiver):
    rc, report, err = run_playbook(PLAYBOOKS / "open.yml", check=True,
                                   extra_vars={**settings(receiver), "incident_verdict": PG_DOWN, "incident_id": "x3"})
    assert rc == 0, err
    assert receiver.requests == []
    assert notify_result(report)["slack"]["payload"]["text"].startswith(":rotating_light:")


def test_nothing_configured_sends_nothing(receiver):
    rc, report, err = run_playbook(PLAYBOOKS / "open.yml", extra_vars={"incident_id": "x4", "incident_verdict": PG_DOWN})
    assert rc == 0, err
    result = notify_result(report)
    assert "empty" in result["slack"]["skipped"] and "empty" in result["pagerduty"]["skipped"]
    assert receiver.requests == []


def test_secrets_never_in_verbose_output(receiver):
    receiver.fail_first = 1  # the retry path prints too
    extra = {**settings(receiver), "incident_verdict": PG_DOWN, "incident_id": "x5"}
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(PLAYBOOKS / "open.yml"), "-vvv", "-e", json.dumps(extra)],
                          capture_output=True, text=True, cwd=REPO, env=ansible_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out = proc.stdout
    assert "TRIAGE  FAILING" in out and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out
    assert_no_secret(out, proc.stderr)
    assert len(receiver.requests) == 3


def test_triage_entry_point_registers_the_verdict_and_prints_the_table(tmp_path):
    playbook = tmp_path / "triage.yml"
    playbook.write_text("""
- name: Triage
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Triage | verdict
      ansible.builtin.include_role:
        name: sre.runbooks.incident
        tasks_from: triage
""")
    observations = [{"source": "systemd_unit_info", "host": "web1",
                     "result": {"units": {"nginx.service": {"active_state": "failed", "sub_state": "failed"}},
                                "failed_units": ["nginx.service"]}}]
    rc, report, err = run_playbook(playbook, extra_vars={"incident_observations": observations})
    assert rc == 0, err
    verdict = next(iter(role_task(report, "Decide | the triage verdict (read-only; decided in Python)").values()))["ansible_facts"]["incident_verdict"]
    assert verdict["suspected_component"] == "nginx" and verdict["next"][0]["playbook"] == "service_down"
    table = next(iter(role_task(report, "Triage | the table").values()))["msg"]
    assert table[0].startswith("TRIAGE  FAILING  severity P2") and any(line.startswith("NEXT") for line in table)
