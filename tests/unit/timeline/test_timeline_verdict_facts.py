"""A decide step's verdict fact (<role>_verdict, incident_verdict) is a health signal of the timeline."""

from __future__ import annotations

from ansible_collections.sre.runbooks.plugins.plugin_utils import _timeline


def test_verdict_fact_in_decide_phase_is_a_signal():
    result = {"ansible_facts": {"incident_verdict": {"healthy": False, "act": True, "summary": "postgresql degraded"}}}
    signal = _timeline.signal_of(result, "decide")
    assert _timeline.unhealthy(signal) and signal["summary"] == "postgresql degraded"


def test_healthy_verdict_fact_is_healthy():
    result = {"ansible_facts": {"service_down_verdict": {"healthy": True, "act": False}}}
    assert _timeline.healthy(_timeline.signal_of(result, "decide"))


def test_verdict_fact_outside_decide_is_no_signal():
    result = {"ansible_facts": {"incident_verdict": {"healthy": False, "act": True}}}
    assert _timeline.signal_of(result, "record") == {}
