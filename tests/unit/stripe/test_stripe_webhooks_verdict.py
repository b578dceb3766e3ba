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


# The signing secret in the app's Kubernetes configuration (stripe_webhooks_k8s_secret), and the
# verdict's use of it.
from ansible_collections.sre.runbooks.plugins.filter.stripe_webhooks_k8s_secret import (  # noqa: E402
    stripe_webhooks_k8s_secret,
)


def ref(**kw):
    base = {"kind": "Secret", "name": "stripe", "key": "signing-secret", "via": "env STRIPE_WEBHOOK_SECRET",
            "container": "worker", "optional": False, "exists": True, "key_exists": True, "length": 38,
            "empty": False, "workload": "Deployment/webhook-worker", "description": "Secret stripe key signing-secret is set"}
    base.update(kw)
    return base


def config(*refs):
    return {"ok": True, "workloads": ["Deployment/webhook-worker"], "references": list(refs)}


def test_k8s_secret_from_secret_key_ref():
    info = stripe_webhooks_k8s_secret(config(ref(), ref(kind="ConfigMap", via="env OTHER")))
    assert info["present"] and info["length"] == 38 and info["sha256_prefix"] is None
    assert info["source"] == ("Kubernetes Secret stripe key signing-secret "
                              "(env STRIPE_WEBHOOK_SECRET of Deployment/webhook-worker container worker)")
    assert info["references"] == ["Secret stripe key signing-secret is set"]


def test_k8s_secret_missing_secret_key_or_empty():
    for bad in (ref(exists=False, key_exists=None, length=None), ref(key_exists=False, length=None),
                ref(length=0, empty=True)):
        info = stripe_webhooks_k8s_secret(config(bad))
        assert not info["present"] and info["length"] == 0 and "Secret stripe" in info["source"]


def test_k8s_secret_every_container_needs_it():
    info = stripe_webhooks_k8s_secret(config(ref(), ref(container="sidecar", exists=False)))
    assert not info["present"]
    assert stripe_webhooks_k8s_secret(config(ref(), ref(container="sidecar", exists=False)), container="worker")["present"]


def test_k8s_secret_from_env_from():
    whole = ref(key=None, via="envFrom", keys=["STRIPE_WEBHOOK_SECRET", "API_KEY"], length=None)
    info = stripe_webhooks_k8s_secret(config(whole))
    assert info["present"] and info["length"] is None and "key STRIPE_WEBHOOK_SECRET" in info["source"]
    other = ref(key=None, via="envFrom", keys=["API_KEY"], length=None)
    assert not stripe_webhooks_k8s_secret(config(other))["present"]


def test_k8s_secret_not_referenced_names_a_missing_env_from_secret():
    info = stripe_webhooks_k8s_secret(config(ref(key=None, via="envFrom", exists=False, name="payments-env")))
    assert not info["present"] and "has no Secret behind env STRIPE_WEBHOOK_SECRET" in info["source"]
    assert "envFrom Secret payments-env does not exist" in info["source"]
    assert "envFrom" not in stripe_webhooks_k8s_secret(config())["source"]
    assert stripe_webhooks_k8s_secret(config(ref()), env="OTHER_SECRET")["present"] is False


def test_k8s_secret_check_failed_or_skipped():
    info = stripe_webhooks_k8s_secret({"failed": True, "msg": "no Deployment named webhook-worker in namespace payments"})
    assert not info["present"] and "no Deployment named webhook-worker" in info["source"]
    assert stripe_webhooks_k8s_secret({"failed": True})["source"] == "Kubernetes: the configuration check failed"
    assert stripe_webhooks_k8s_secret({"skipped": True})["source"] == "Kubernetes (not checked)"
    assert not stripe_webhooks_k8s_secret(None)["present"]


def test_verdict_refuses_when_the_k8s_secret_is_missing():
    missing = stripe_webhooks_k8s_secret(config(ref(exists=False, key_exists=None, length=None)))
    v = stripe_webhooks_verdict(check(["evt_1"]), HEALTHY, secret=missing)
    assert not v["act"] and "not set in the app's configuration (Kubernetes Secret stripe" in v["problem"]
    assert v["webhook_secret"] is missing and v["summary"] == "refused: webhook secret missing in Kubernetes"


def test_verdict_acts_with_the_k8s_secret_and_reports_it():
    present = stripe_webhooks_k8s_secret(config(ref()))
    v = stripe_webhooks_verdict(dict(check(["evt_1"]), webhook_secret={"present": False}), HEALTHY, secret=present)
    assert v["act"] and v["webhook_secret"] is present
    # Without the Kubernetes source, the module's own view of the secret is reported.
    assert stripe_webhooks_verdict(dict(check([]), webhook_secret={"present": True}), HEALTHY)["webhook_secret"] == {"present": True}


def test_events_not_replayed_do_not_read_as_a_skipped_assessment():
    # The module lists them in skipped_events; only Ansible's skipped: true means "not assessed".
    v = stripe_webhooks_verdict(dict(check(["evt_1"]), skipped_events=[{"id": "evt_2", "reason": "in skip_event_ids"}]),
                                HEALTHY)
    assert v["act"] and v["problem"] is None


def test_a_module_stopped_before_its_verdict_refuses_under_failed_when_false():
    # The events could not be listed: failed_when: false clears `failed`, the msg stays, no verdict.
    listing = {"failed": False, "failed_when_result": False, "msg": "cannot list the failed events: refused",
               "would_replay": [], "verdict": {}}
    v = stripe_webhooks_verdict(listing, HEALTHY)
    assert not v["act"] and v["problem"] == "cannot list the failed events: refused" and not v.get("healthy")
