"""stripe_webhook_replay under Ansible: `failed_when: false` on its refusals is honoured. The module
returned a list named `skipped` (events not replayed); ansible-core reads a result key `skipped` as
"the task was skipped" and then evaluates neither failed_when nor changed_when, so every refusal
failed the task and the stripe_webhooks role went through its rescue instead of its verdict.
The Stripe API here is a closed port (a real connection refused, nothing mocked): the module
refuses after building its whole result, as it does for a missing secret or a guardrail."""

from __future__ import annotations

import socket

import pytest
from sre_testlib import run_module, run_playbook, task_results

RESERVED = {"skipped", "failed_when_result", "changed_when_result", "unreachable", "exception", "results"}
RECORD = "sre.runbooks.stripe_webhooks : Record | structured result for the incident timeline"


@pytest.fixture(scope="module")
def closed_api():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def test_a_refusal_returns_no_key_ansible_reserves(closed_api):
    result = run_module("stripe_webhook_replay", {"api_key": "sk_test_canary", "api_base": closed_api,
                                                  "webhook_endpoint": "we_1", "max_retries": 0, "timeout": 2},
                        check=True)
    assert result["failed"] is True and result["msg"].startswith("cannot list the failed events")
    assert not RESERVED & set(result), sorted(RESERVED & set(result))
    assert result["skipped_events"] == [] and result["would_replay"] == []


def test_failed_when_false_is_honoured_and_the_role_refuses_through_its_verdict(closed_api):
    # The Assess task (failed_when: false) keeps the refusal as evidence, the verdict refuses
    # (Decide), the record names that task - before the fix the Assess task itself failed and the
    # rescue named it; and "could not list" must never read as "nothing to replay".
    extra = {"stripe_webhooks_api_key": "sk_test_canary", "stripe_webhooks_api_base": closed_api,
             "stripe_webhooks_endpoint_id": "we_1", "stripe_webhooks_secret": "whsec_canarycanarycanary",
             "stripe_webhooks_processor_health_url": ""}
    rc, report, err = run_playbook("playbooks/outage/stripe_webhooks.yml", extra_vars=extra)
    assert rc != 0
    record = task_results(report, RECORD)["lab-stripe"]["ansible_facts"]["stripe_webhooks_result"]
    assert record["outcome"] == "failed" and record["replayed"] == []
    assert "(task: Decide | refuse and report" in record["error"], record["error"]
    assert "cannot list the failed events" in record["error"]
