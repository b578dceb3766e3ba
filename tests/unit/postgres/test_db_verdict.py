"""Unit tests for the db_exhaustion decisions (plugins/filter/db_verdict.py): every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.db_verdict import FilterModule, db_verdict


def reading(percent, **extra):
    return {"utilisation_percent": percent, "client_backends": 1, "by_application": {"leaky": 90}, **extra}


def terminated(percent):
    return {"changed": True, "acted": 3, "server": {"utilisation_percent": percent}}


@pytest.mark.parametrize("percent, threshold, force, act, healthy", [
    (10.0, 80, False, False, True),
    (79.9, 80, False, False, True),
    (80.0, 80, False, True, False),
    (97.0, "80", False, True, False),      # inventory values arrive as strings
    (10.0, 80, True, True, False),
    (10.0, 80, "true", True, False),
])
def test_act_at_or_over_the_threshold_or_forced(percent, threshold, force, act, healthy):
    verdict = db_verdict(reading(percent), threshold=threshold, force=force)
    assert (verdict["act"], verdict["healthy"]) == (act, healthy)
    assert verdict["pooler"] is None and verdict["healed"] is None
    if healthy:
        assert verdict["summary"].startswith("healthy, nothing to do")


def test_unknown_usage_never_acts():
    verdict = db_verdict({}, threshold=80)
    assert verdict["act"] is False and verdict["healthy"] is False
    assert "unknown" in verdict["reason"]


def test_a_bad_threshold_is_named():
    with pytest.raises(AnsibleFilterError, match="threshold"):
        db_verdict(reading(90), threshold="lots")


def test_terminating_was_enough():
    pooler = db_verdict(reading(95), terminated=terminated(20))["pooler"]
    assert pooler == {"needed": False, "restart": False, "skipped": None, "utilisation_after_terminating": 20.0}


def test_still_exhausted_after_terminating_restarts_the_pooler():
    verdict = db_verdict(reading(95), terminated=terminated(90))
    assert verdict["pooler"]["needed"] is True and verdict["pooler"]["restart"] is True
    assert "restart the pooler" in verdict["summary"]


def test_pooler_restart_disabled_is_skipped_with_the_reason():
    pooler = db_verdict(reading(95), terminated=terminated(90), restart_pooler=False)["pooler"]
    assert pooler["needed"] is True and pooler["restart"] is False
    assert "disabled" in pooler["skipped"]


def test_a_pooler_unit_the_host_does_not_have_is_skipped_not_failed():
    unit_info = {"missing_units": ["no-pooler.service"], "units": {"no-pooler.service": {"exists": False}}}
    verdict = db_verdict(reading(95), terminated=terminated(90), pooler_unit=unit_info)
    assert verdict["pooler"]["restart"] is False
    assert "pooler unit no-pooler.service not found on this host; skipped" in verdict["pooler"]["skipped"]
    assert "skipped" in verdict["summary"]


def test_an_existing_pooler_unit_is_restarted():
    unit_info = {"missing_units": [], "units": {"pgbouncer.service": {"exists": True}}}
    assert db_verdict(reading(95), terminated=terminated(90), pooler_unit=unit_info)["pooler"]["restart"] is True


def test_no_pooler_decision_when_not_acting():
    assert db_verdict(reading(10), terminated=terminated(90))["pooler"] is None


@pytest.mark.parametrize("after, healed", [(12.0, True), (79.0, True), (80.0, False), (None, False)])
def test_healed_when_a_fresh_connection_sees_utilisation_under_the_threshold(after, healed):
    verdict = db_verdict(reading(95), terminated=terminated(10), after=reading(after))
    assert verdict["healed"] is healed
    if healed:
        assert verdict["verify_message"].endswith("a fresh connection works")
    else:
        assert "Escalate" in verdict["verify_message"] and "leaky" in verdict["verify_message"]


def test_not_healed_names_the_skipped_pooler():
    unit_info = {"missing_units": ["no-pooler.service"]}
    verdict = db_verdict(reading(95), terminated=terminated(90), pooler_unit=unit_info, after=reading(90))
    assert verdict["healed"] is False
    assert "no-pooler.service not found" in verdict["verify_message"]


def test_the_filter_is_registered():
    assert FilterModule().filters()["db_verdict"] is db_verdict
