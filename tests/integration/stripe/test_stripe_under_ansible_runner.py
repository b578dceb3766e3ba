"""stripe_webhooks under ansible-runner, as AWX runs it (tests/lib/runner_lab.py), against the Stripe
lab with every event delivered: the outcome test_stripe_webhooks_playbook.py's no-fault control
asserts of the plain run, read from the job events. The API key and the signing secret go in as
extra vars here; in AWX they come from a credential."""

from __future__ import annotations

from runner_lab import COVERED, Job, assert_no_action_needed, run_all
from sre_testlib import LAB_INVENTORY


def test_stripe_playbook_under_ansible_runner(stripe_lab, tmp_path):
    endpoint = stripe_lab.create_endpoint()
    stripe_lab.create_customers(2)
    assert all(d[endpoint["id"]] for d in stripe_lab.wait_deliveries(2).values())
    extra = {"target": "lab-stripe", "stripe_webhooks_api_key": stripe_lab.api_key,
             "stripe_webhooks_endpoint_id": endpoint["id"], "stripe_webhooks_secret": endpoint["secret"],
             "stripe_webhooks_verify_timeout": 20}
    (job,) = run_all([Job(tmp_path, name, LAB_INVENTORY, extra) for name in COVERED["stripe"]])
    result = assert_no_action_needed(job, "lab-stripe")
    assert result["failed_events"] == [], result
    assert stripe_lab.api_key not in job.output and endpoint["secret"] not in job.output
