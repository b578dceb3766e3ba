"""playbooks/outage/stripe_webhooks.yml against the Stripe lab: --tags assess, --check, a real run,
a second run, the no-fault control, a refusal (processor down) and the secret canary (-vvv)."""

from __future__ import annotations

import json

from sre_testlib import leaking_tasks, leaks, run_playbook, task_results

PLAYBOOK = "playbooks/outage/stripe_webhooks.yml"
HOST = "lab-stripe"
RECORD = "sre.runbooks.stripe_webhooks : Record | structured result for the incident timeline"


def extra(lab, endpoint, **more):
    values = {"stripe_webhooks_api_key": lab.api_key, "stripe_webhooks_endpoint_id": endpoint["id"],
              "stripe_webhooks_secret": endpoint["secret"], "stripe_webhooks_verify_timeout": 20}
    values.update(more)
    return values


def record(report):
    return task_results(report, RECORD)[HOST]["ansible_facts"]["stripe_webhooks_result"]


def changed_tasks(report):
    return [task["task"]["name"] for play in report.get("plays", []) for task in play["tasks"]
            if task["hosts"].get(HOST, {}).get("changed")]


def test_assess_check_heal_and_second_run(stripe_lab, failed_events):
    endpoint, failed = failed_events
    rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint), tags="assess")
    assert rc == 0, err + json.dumps(report)[-3000:]
    assessed = record(report)
    assert sorted(assessed["would_replay"]) == failed and assessed["replayed"] == [] and changed_tasks(report) == []
    assert assessed["webhook_secret"]["present"] and assessed["processor_ok"] is True

    rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint), check=True)
    assert rc == 0, err
    assert record(report)["outcome"] == "check mode: would replay the failed events" and changed_tasks(report) == []
    assert not set(failed) & set(stripe_lab.receiver_control()["acks"])

    rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint))
    assert rc == 0, err + json.dumps(report)[-3000:]
    healed = record(report)
    assert healed["outcome"] == "healed" and sorted(healed["acknowledged"]) == failed and healed["unacknowledged"] == []
    assert len(healed["actions"]) == 3 and healed["scenario"] == "stripe_webhooks"
    assert set(failed) <= set(stripe_lab.receiver_control()["acks"])

    rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint))
    assert rc == 0, err
    assert record(report)["outcome"] == "no action needed" and changed_tasks(report) == []


def test_no_fault_control(stripe_lab):
    endpoint = stripe_lab.create_endpoint()
    stripe_lab.create_customers(2)
    assert all(d[endpoint["id"]] for d in stripe_lab.wait_deliveries(2).values())
    rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint))
    assert rc == 0, err
    result = record(report)
    assert result["outcome"] == "no action needed" and result["failed_events"] == [] and changed_tasks(report) == []


def test_refuses_while_the_processor_is_down(stripe_lab, failed_events):
    endpoint, failed = failed_events
    stripe_lab.receiver_control(failing=True)
    rc, report, _err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint))
    assert rc != 0
    result = record(report)
    assert result["outcome"] == "failed" and "processor is unhealthy" in result["error"] and result["replayed"] == []
    assert changed_tasks(report) == []


def test_refuses_without_the_signing_secret(stripe_lab, failed_events):
    endpoint, _failed = failed_events
    rc, report, _err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint, stripe_webhooks_secret=""))
    assert rc != 0
    result = record(report)
    assert "not configured" in result["error"] and result["replayed"] == [] and not result["webhook_secret"]["present"]


def test_secret_canary(stripe_lab, failed_events):
    endpoint, _failed = failed_events
    for check in (True, False):
        rc, report, err = run_playbook(PLAYBOOK, extra_vars=extra(stripe_lab, endpoint), check=check,
                                       env={"ANSIBLE_VERBOSITY": "3"})
        assert rc == 0, err[-2000:]
        text = json.dumps(report) + err
        for secret in (stripe_lab.api_key, endpoint["secret"]):
            assert secret not in text, str(leaking_tasks(report, secret)) + "\n" + leaks(text, secret)
