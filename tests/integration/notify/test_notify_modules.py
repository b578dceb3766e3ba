"""sre.runbooks.slack_webhook and sre.runbooks.pagerduty_event against a local receiver: payloads,
retries on 5xx/429, no retry on 400, nothing sent in check mode, secrets never returned, and a
failed delivery is a warning, never a failure."""

from __future__ import annotations

import json

from conftest import INVALID_ROUTING_KEY, ROUTING_KEY, WEBHOOK_SECRET_PATH
from sre_testlib import run_module


def no_secret(result):
    text = json.dumps(result)
    assert WEBHOOK_SECRET_PATH not in text and "hookSecretXq7Zp2" not in text
    assert ROUTING_KEY not in text


def test_slack_message_delivered(receiver):
    r = run_module("slack_webhook", {"webhook_url": receiver.webhook_url, "text": "*[P1]* db down", "channel": "#incidents"})
    assert r.get("failed") is not True and r["delivered"] is True and r["changed"] is True and r["status"] == 200
    assert [x["path"] for x in receiver.requests] == [WEBHOOK_SECRET_PATH]
    assert receiver.requests[0]["json"] == {"text": "*[P1]* db down", "channel": "#incidents"}
    assert receiver.requests[0]["headers"]["Content-Type"] == "application/json"
    assert r["endpoint"] == receiver.base
    no_secret(r)


def test_slack_retries_5xx_then_delivers(receiver):
    receiver.fail_first = 2
    r = run_module("slack_webhook", {"webhook_url": receiver.webhook_url, "text": "x", "retry_delay": 0.05})
    assert r["delivered"] is True and len(receiver.requests) == 3
    assert [a["status"] for a in r["attempts"]] == [500, 500, 200]
    assert r["attempts"][0]["retry_in_seconds"] == 0.05 and r["attempts"][1]["retry_in_seconds"] == 0.1
    assert not r.get("warnings")


def test_slack_429_honours_retry_after(receiver):
    receiver.fail_first, receiver.fail_status, receiver.retry_after = 1, 429, "0"
    r = run_module("slack_webhook", {"webhook_url": receiver.webhook_url, "text": "x", "retry_delay": 5})
    assert r["delivered"] is True and len(receiver.requests) == 2
    assert r["attempts"][0]["status"] == 429 and r["attempts"][0]["retry_in_seconds"] == 0.0


def test_slack_gives_up_with_a_warning_never_a_failure(receiver):
    receiver.fail_first = 10
    r = run_module("slack_webhook", {"webhook_url": receiver.webhook_url, "text": "x", "retries": 2, "retry_delay": 0.01})
    assert r.get("failed") is not True and r["delivered"] is False and r["changed"] is False
    assert len(receiver.requests) == 3
    assert "not delivered after 3 attempt(s)" in r["error"] and receiver.base in r["error"]
    assert "Slack webhook at " + receiver.base in json.dumps(r["warnings"])
    no_secret(r)


def test_slack_nothing_listening(closed_port):
    url = f"http://127.0.0.1:{closed_port}{WEBHOOK_SECRET_PATH}"
    r = run_module("slack_webhook", {"webhook_url": url, "text": "x", "retries": 1, "retry_delay": 0.01, "timeout": 2})
    assert r.get("failed") is not True and r["delivered"] is False and r["status"] is None
    assert len(r["attempts"]) == 2 and r["attempts"][0]["status"] is None
    no_secret(r)


def test_slack_not_a_url_is_a_warning(receiver):
    r = run_module("slack_webhook", {"webhook_url": "hookSecretXq7Zp2", "text": "x"})
    assert r.get("failed") is not True and r["delivered"] is False and receiver.requests == []
    assert "http(s) URL" in r["error"]
    no_secret(r)


def test_slack_check_mode_sends_nothing(receiver):
    r = run_module("slack_webhook", {"webhook_url": receiver.webhook_url, "text": "x"}, check=True)
    assert r["delivered"] is False and r["payload"] == {"text": "x"} and receiver.requests == []


def test_pagerduty_trigger_payload(receiver):
    r = run_module("pagerduty_event", {
        "routing_key": ROUTING_KEY, "url": receiver.pagerduty_url, "action": "trigger",
        "dedup_key": "sre-runbooks/db_exhaustion--db1", "summary": "[P1] postgresql down", "severity": "error",
        "source": "db1", "component": "postgresql", "group": "db_exhaustion", "class": "pg_exhausted",
        "custom_details": {"severity": "P1"}})
    assert r["delivered"] is True and r["status"] == 202 and r["response"]["status"] == "success"
    sent = receiver.requests[0]["json"]
    assert sent == {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "sre-runbooks/db_exhaustion--db1",
                    "client": "sre.runbooks",
                    "payload": {"summary": "[P1] postgresql down", "source": "db1", "severity": "error",
                                "component": "postgresql", "group": "db_exhaustion", "class": "pg_exhausted",
                                "custom_details": {"severity": "P1"}}}
    assert r["payload"]["routing_key"] == "********"
    no_secret(r)


def test_pagerduty_resolve_is_minimal_and_retries_429(receiver):
    receiver.fail_first, receiver.fail_status, receiver.retry_after = 1, 429, "0"
    r = run_module("pagerduty_event", {"routing_key": ROUTING_KEY, "url": receiver.pagerduty_url,
                                       "action": "resolve", "dedup_key": "k"})
    assert r["delivered"] is True and len(receiver.requests) == 2
    assert receiver.requests[1]["json"] == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "k"}


def test_pagerduty_400_is_not_retried(receiver):
    r = run_module("pagerduty_event", {"routing_key": INVALID_ROUTING_KEY, "url": receiver.pagerduty_url, "action": "acknowledge",
                                       "dedup_key": "k", "retry_delay": 0.01})
    assert r.get("failed") is not True and r["delivered"] is False and len(receiver.requests) == 1
    assert "not retried" in r["error"] and r["response"]["status"] == "invalid event"


def test_pagerduty_trigger_needs_a_summary_and_a_short_key(receiver):
    r = run_module("pagerduty_event", {"routing_key": ROUTING_KEY, "url": receiver.pagerduty_url,
                                       "action": "trigger", "dedup_key": "k"})
    assert r["failed"] is True and "summary" in r["msg"]
    r = run_module("pagerduty_event", {"routing_key": ROUTING_KEY, "url": receiver.pagerduty_url,
                                       "action": "resolve", "dedup_key": "k" * 300})
    assert r["failed"] is True and "255" in r["msg"] and receiver.requests == []
    no_secret(r)


def test_pagerduty_check_mode_sends_nothing(receiver):
    r = run_module("pagerduty_event", {"routing_key": ROUTING_KEY, "url": receiver.pagerduty_url, "action": "trigger",
                                       "dedup_key": "k", "summary": "s"}, check=True)
    assert r["delivered"] is False and receiver.requests == [] and r["payload"]["routing_key"] == "********"
    no_secret(r)
