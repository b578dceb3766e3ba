"""Unit tests for k8s_memory_limit's rule: a recorded baseline belongs to one incident."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.modules.k8s_memory_limit import baselines_for_incident

RECORDED = {"containers": {"app": "256Mi"}, "incident_id": "INC-1", "raised_at": "2026-01-01T10:00:00Z"}


def test_nothing_recorded_starts_from_the_current_limit():
    assert baselines_for_incident({}, "2026-01-01T09:00:00Z", None)[0] == {}


def test_without_incident_options_the_recorded_baseline_is_used():
    assert baselines_for_incident(RECORDED, None, None)[0] == {"app": "256Mi"}
    assert baselines_for_incident({"app": "128Mi"}, None, None)[0] == {"app": "128Mi"}  # the old format


def test_same_incident_reuses_the_baseline():
    assert baselines_for_incident(RECORDED, "2026-01-01T09:59:00Z", "INC-1")[0] == {"app": "256Mi"}
    assert baselines_for_incident(RECORDED, "2026-01-01T10:00:00.5Z", None)[0] == {"app": "256Mi"}


def test_a_later_incident_starts_from_the_current_limit():
    baselines, note = baselines_for_incident(RECORDED, "2026-02-01T00:00:00Z", None)
    assert baselines == {} and "before this incident" in note


def test_another_incident_id_starts_from_the_current_limit():
    baselines, note = baselines_for_incident(RECORDED, None, "INC-2")
    assert baselines == {} and "INC-1" in note


def test_old_format_with_an_incident_given_starts_from_the_current_limit():
    assert baselines_for_incident({"app": "128Mi"}, "2026-01-01T00:00:00Z", None)[0] == {}


def test_bad_timestamp_raises():
    with pytest.raises(ValueError):
        baselines_for_incident(RECORDED, "yesterday", None)
