"""The #incidents message and PagerDuty fields (plugin_utils/_triage.incident_message) and the
filter plugin's wrappers (plugins/filter/triage.py)."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter import triage as F
from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage as T

START = "2026-01-31T03:00:00Z"


def at(minutes):
    return datetime.datetime(2026, 1, 31, 3, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=minutes)


PG_DOWN = T.verdict([{"source": "pg_activity_info", "host": "db1",
                      "result": {"utilisation_percent": 100, "client_backends": 97, "usable_connections": 97}}],
                    components=[{"name": "postgresql", "match": ["postgresql"], "impact": "critical"}])


def test_open_message_names_severity_suspect_next_and_who_is_paged():
    m = T.incident_message(PG_DOWN, "open", "db_exhaustion--db1", START, now=at(0))
    text = m["slack"]["text"]
    assert text.startswith(":rotating_light: *[P1] Incident db_exhaustion--db1 opened*")
    assert "*Suspected component* postgresql" in text
    assert "playbooks/outage/db_exhaustion.yml" in text
    assert "*Paging* On-call engineer; then Lead backend engineer / secondary on-call (L2) at +15 min" in text
    assert "I am taking ownership of this incident" in text
    assert "```\nTRIAGE  FAILING  severity P1" in text
    pd = m["pagerduty"]
    assert pd["action"] == "trigger" and pd["severity"] == "error" and pd["source"] == "db1"
    assert pd["component"] == "postgresql" and pd["class"] == "pg_exhausted"
    assert pd["custom_details"]["next"][0].startswith("ansible-playbook playbooks/outage/db_exhaustion.yml")
    assert m["dedup_key"] == "sre-runbooks/db_exhaustion--db1"


def test_update_message_escalates_with_elapsed_time():
    m = T.incident_message(PG_DOWN, "update", "db_exhaustion--db1", START, now=at(20), note="pooler restarted")
    text = m["slack"]["text"]
    assert "update* (+20 min): pooler restarted" in text
    assert "*Escalation* L2 reached: page On-call engineer, Lead backend engineer / secondary on-call" in text
    assert "next CTO / Engineering Manager (L3) in 40 min" in text
    assert m["pagerduty"]["action"] == "acknowledge" and m["pagerduty"]["summary"] == "[P1] pooler restarted"


def test_resolve_message_is_the_post_incident_summary():
    healthy = T.verdict([{"source": "pg_activity_info", "host": "db1", "result": {"utilisation_percent": 5}}])
    m = T.incident_message(healthy, "resolve", "db_exhaustion--db1", START, now=at(75), severity="P1",
                           note="idle sessions exhausted PostgreSQL", root_cause="a leaking worker",
                           resolution="terminated idle sessions", detected_at="2026-01-31T03:04:00Z")
    text = m["slack"]["text"]
    assert ":white_check_mark: *[P1] Incident db_exhaustion--db1 resolved* after 1 h 15 min" in text
    assert "*Root cause* a leaking worker" in text and "*How it was resolved* terminated idle sessions" in text
    assert "*Time to detection* 4 min; *time to resolution* 1 h 15 min" in text
    assert m["escalation"]["page"] == []
    assert m["pagerduty"]["action"] == "resolve"
    assert m["dedup_key"] == T.incident_message(None, "open", "db_exhaustion--db1")["dedup_key"]


def test_resolve_without_details_leaves_placeholders():
    text = T.incident_message({}, "resolve", "x", START, now=at(5))["slack"]["text"]
    assert "[to fill in the post-mortem]" in text and "*Time to resolution* 5 min" in text


def test_slack_text_is_escaped():
    text = T.incident_message({}, "open", "x", START, now=at(0), note="a <b> & c")["slack"]["text"]
    assert "a &lt;b&gt; &amp; c" in text and "<b>" not in text


def test_unknown_event_and_dedup_prefix():
    with pytest.raises(T.TriageError):
        T.incident_message({}, "close", "x")
    assert T.dedup_key("x", "") == "x" and len(T.dedup_key("y" * 400)) == 255


# --- filter wrappers ---

def test_filters_are_registered():
    assert set(F.FilterModule().filters()) == {"triage_verdict", "triage_table", "incident_escalation", "incident_message"}


def test_triage_verdict_filter_turns_bad_input_into_filter_error():
    with pytest.raises(AnsibleFilterError, match="triage_verdict"):
        F.triage_verdict("nonsense")
    assert F.triage_verdict([])["status"] == "healthy"


def test_triage_table_filter():
    assert F.triage_table(PG_DOWN).startswith("TRIAGE  FAILING")
    slack = F.triage_table(PG_DOWN, slack=True)
    assert slack.startswith("```\n") and slack.endswith("\n```")
    with pytest.raises(AnsibleFilterError):
        F.triage_table("x")


def test_incident_escalation_filter_from_start_time():
    e = F.incident_escalation("P0", started_at=START, now="2026-01-31T03:31:00Z")
    assert e["current"]["level"] == "L3"
    e = F.incident_escalation("P0", started_at=START, now=datetime.datetime(2026, 1, 31, 3, 16))
    assert e["current"]["level"] == "L2"
    assert F.incident_escalation("P2", 0)["current"]["level"] == "L1"
    with pytest.raises(AnsibleFilterError, match="elapsed_minutes or started_at"):
        F.incident_escalation("P0")
    with pytest.raises(AnsibleFilterError):
        F.incident_escalation("P0", started_at="not a time")


def test_incident_message_filter():
    m = F.incident_message(PG_DOWN, "open", "abc", started_at=START, now="2026-01-31T03:00:00Z")
    assert m["severity"] == "P1"
    assert F.incident_message("", "open", "abc")["severity"] is None
    with pytest.raises(AnsibleFilterError, match="incident_id is empty"):
        F.incident_message(PG_DOWN, "open", "")
    with pytest.raises(AnsibleFilterError):
        F.incident_message(PG_DOWN, "reopen", "abc")
