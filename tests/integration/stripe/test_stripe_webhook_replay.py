"""stripe_webhook_replay against real localstripe behind the stand-in, with the receiver playing
the payment processor (tests/lib/stripe_lab.py). The receiver verifies every signature."""

from __future__ import annotations

import json

from sre_testlib import run_module


def args(lab, endpoint, **extra):
    base = {"api_key": lab.api_key, "api_base": lab.api_base, "webhook_endpoint": endpoint["id"],
            "webhook_secret": endpoint["secret"], "webhook_secret_source": "test", "verify_timeout": 20}
    base.update(extra)
    return base


def no_secret_in(result, *secrets):
    text = json.dumps(result)
    for secret in secrets:
        assert secret not in text


def test_check_mode_lists_and_replays_nothing(stripe_lab, failed_events):
    endpoint, failed = failed_events
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint), check=True)
    assert not result.get("failed"), result.get("msg")
    assert not result["changed"] and sorted(result["would_replay"]) == failed and result["replayed"] == []
    assert result["webhook_secret"] == {**result["webhook_secret"], "present": True, "format_ok": True,
                                        "length": len(endpoint["secret"]), "source": "test"}
    assert stripe_lab.receiver_control()["acks"] == [e for e in stripe_lab.receiver_control()["acks"] if e not in failed]
    no_secret_in(result, stripe_lab.api_key, endpoint["secret"])


def test_retry_replays_every_failed_event_and_a_rerun_changes_nothing(stripe_lab, failed_events):
    endpoint, failed = failed_events
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and sorted(result["replayed"]) == failed
    assert sorted(result["acknowledged"]) == failed and result["unacknowledged"] == []
    assert [a["action"] for a in result["actions"]] == ["stripe_event_retry"] * 3
    acks = stripe_lab.receiver_control()["acks"]
    assert set(failed) <= set(acks) and stripe_lab.receiver_control()["rejected"] == 0
    no_secret_in(result, stripe_lab.api_key, endpoint["secret"])

    again = run_module("stripe_webhook_replay", args(stripe_lab, endpoint))
    assert not again["changed"] and again["would_replay"] == [] and again["verdict"]["healthy"]


def test_no_fault_nothing_failed_nothing_replayed(stripe_lab):
    endpoint = stripe_lab.create_endpoint()
    stripe_lab.create_customers(2)
    assert all(d[endpoint["id"]] for d in stripe_lab.wait_deliveries(2).values())
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint))
    assert not result["changed"] and result["failed_events"] == [] and result["verdict"]["healthy"]
    assert "nothing to replay" in result["verdict"]["summary"]


def test_direct_mode_posts_signed_events_and_skips_acknowledged(stripe_lab, failed_events):
    endpoint, failed = failed_events
    direct = args(stripe_lab, endpoint, mode="direct", processor_url=f"{stripe_lab.receiver}/webhook")
    direct.pop("webhook_endpoint")
    result = run_module("stripe_webhook_replay", direct)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and sorted(result["acknowledged"]) == failed
    assert stripe_lab.receiver_control()["rejected"] == 0  # the receiver verified our signatures
    # Stripe did not deliver them itself, so it still lists them: the acknowledged ids are skipped.
    again = run_module("stripe_webhook_replay", dict(direct, skip_event_ids=result["acknowledged"]))
    assert not again["changed"] and again["would_replay"] == [] and len(again["skipped_events"]) == 3 and "skipped" not in again


def test_direct_mode_with_a_wrong_secret_is_unacknowledged(stripe_lab, failed_events):
    endpoint, failed = failed_events
    direct = args(stripe_lab, endpoint, mode="direct", processor_url=f"{stripe_lab.receiver}/webhook",
                  webhook_secret="whsec_wrongwrongwrongwrong")
    direct.pop("webhook_endpoint")
    result = run_module("stripe_webhook_replay", direct)
    assert sorted(result["unacknowledged"]) == failed and result["acknowledged"] == []
    assert all("HTTP 400" in e["error"] for e in result["errors"])
    assert stripe_lab.receiver_control()["rejected"] == 3
    no_secret_in(result, "whsec_wrongwrongwrongwrong")


def test_missing_secret_refuses(stripe_lab, failed_events, tmp_path):
    endpoint, failed = failed_events
    env_file = tmp_path / "env"
    env_file.write_text("OTHER=1\n")
    module_args = args(stripe_lab, endpoint, webhook_secret_file=str(env_file))
    module_args.pop("webhook_secret")
    module_args.pop("webhook_secret_source")
    result = run_module("stripe_webhook_replay", module_args)
    assert result["failed"] and "not configured" in result["msg"] and result["replayed"] == []
    assert result["webhook_secret"]["present"] is False and str(env_file) in result["webhook_secret"]["source"]
    assert not set(failed) & set(stripe_lab.receiver_control()["acks"])


def test_secret_from_an_environment_file(stripe_lab, failed_events, tmp_path):
    endpoint, failed = failed_events
    env_file = tmp_path / "env"
    env_file.write_text(f"# app\nSTRIPE_WEBHOOK_SECRET=\"{endpoint['secret']}\"\n")
    module_args = args(stripe_lab, endpoint, webhook_secret_file=str(env_file))
    module_args.pop("webhook_secret")
    module_args.pop("webhook_secret_source")
    result = run_module("stripe_webhook_replay", module_args, check=True)
    assert result["webhook_secret"]["present"] and result["webhook_secret"]["length"] == len(endpoint["secret"])
    assert "STRIPE_WEBHOOK_SECRET" in result["webhook_secret"]["source"]
    no_secret_in(result, endpoint["secret"], stripe_lab.api_key)


def test_max_events_guardrail_refuses(stripe_lab, failed_events):
    endpoint, failed = failed_events
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint, max_events=2))
    assert result["failed"] and "guardrail 'max_events'" in result["msg"] and result["replayed"] == []
    assert not set(failed) & set(stripe_lab.receiver_control()["acks"])


def test_pagination_and_429_backoff(stripe_lab, failed_events):
    endpoint, failed = failed_events
    stripe_lab.throttle(2)
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint, page_size=1), check=True)
    assert not result.get("failed"), result.get("msg")
    assert sorted(result["would_replay"]) == failed
    assert result["requests"]["throttled"] == 2 and result["requests"]["count"] >= 5


def test_max_pages_guardrail(stripe_lab, failed_events):
    endpoint, _failed = failed_events
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint, page_size=1, max_pages=2))
    assert result["failed"] and "guardrail 'max_pages'" in result["msg"] and result["replayed"] == []


def test_wrong_api_key_error_is_masked(stripe_lab, failed_events):
    endpoint, _failed = failed_events
    result = run_module("stripe_webhook_replay", args(stripe_lab, endpoint, api_key="sk_test_nope", api_base="http://127.0.0.1:9"))
    assert result["failed"] and "no answer" in result["msg"] and "sk_test_nope" not in json.dumps(result)
