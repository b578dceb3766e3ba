"""Every branch of the stripe_webhooks role's decide step (plugins/filter/stripe_webhooks_verdict.py)."""

from __future__ import annotations

from ansible_collections.sre.runbooks.plugins.filter.stripe_webhooks_verdict import stripe_webhooks_verdict

HEALTHY = {"all_ok": True, "failing": [], "endpoints": [{"name": "processor", "ok": True}]}
SICK = {"all_ok": False, "failing": ["processor"],
        "endpoints": [{"name": "processor", "ok": False, "error": "http_status: status 503"}]}


def check(ids, act=True):
    return {"would_replay": ids, "too_old": [{"id": "evt_old"}],
            "verdict": {"act": act, "summary": f"{len(ids)} event(s) failed delivery"}}


def test_acts_when_events_failed_and_processor_healthy():
    v = stripe_webhooks_verdict(check(["evt_1", "evt_2"]), HEALTHY)
    assert v["act"] and not v["problem"] and v["would_replay"] == ["evt_1", "evt_2"] and v["processor_ok"]
    assert v["too_old"] == ["evt_old"]


def test_nothing_failed_is_healthy():
    v = stripe_webhooks_verdict(check([], act=False), HEALTHY)
    assert not v["act"] and v["healthy"] and v["problem"] is None


def test_refuses_when_processor_unhealthy():
    v = stripe_webhooks_verdict(check(["evt_1"]), SICK)
    assert not v["act"] and "processor is unhealthy (processor: http_status: status 503)" in v["problem"]


def test_refusal_of_the_module_is_a_problem():
    v = stripe_webhooks_verdict({"failed": True, "msg": "guardrail 'max_events' tripped", "verdict": {"summary": "refused: 5"}}, HEALTHY)
    assert not v["act"] and v["problem"].startswith("guardrail") and v["summary"] == "refused: refused: 5"
    assert stripe_webhooks_verdict({"failed": True}, None)["problem"] == "listing the failed events failed"


def test_skipped_assessment_is_a_problem():
    assert stripe_webhooks_verdict({"skipped": True}, HEALTHY)["problem"]


def test_health_not_checked_does_not_block():
    v = stripe_webhooks_verdict(check(["evt_1"]), {})
    assert v["act"] and v["processor_ok"] is None
    assert stripe_webhooks_verdict(check(["evt_1"]), {"skipped": True})["act"]
    assert stripe_webhooks_verdict(None)["summary"] == "nothing to replay"


def test_module_verdict_no_act_with_ids_does_not_act():
    assert not stripe_webhooks_verdict(check(["evt_1"], act=False), HEALTHY)["act"]


def test_refusal_seen_through_failed_when_false():
    v = stripe_webhooks_verdict({"failed": False, "verdict": {"act": False, "problem": "secret missing"}}, HEALTHY)
    assert not v["act"] and v["problem"] == "secret missing"
