"""The triage verdict on results the real modules return on this machine (no lab needed):
host_resources_info reads /proc for real; systemd_unit_info fails for real where systemd is not
PID 1, which must be a gap in the assessment, never "healthy"."""

from __future__ import annotations

import pytest
from sre_testlib import run_module

from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage


@pytest.fixture(scope="module")
def host_result():
    result = run_module("host_resources_info", {"top_processes": 3, "cpu_sample_seconds": 0})
    assert result.get("failed") is not True, result.get("msg")
    return result


def test_real_host_below_thresholds_is_healthy(host_result):
    never = {"host_memory_percent": 101, "host_disk_percent": 101, "host_load_per_cpu": 1e9}
    result = dict(host_result, oom={**host_result["oom"], "kills": []})  # kills of earlier tests are history
    v = _triage.verdict([{"source": "host_resources_info", "host": "controller", "result": result}], thresholds=never)
    assert v["status"] == "healthy" and v["summary"] == "healthy, nothing to do" and v["next"] == []


def test_real_host_over_thresholds_is_found(host_result):
    always = {"host_memory_percent": 0, "host_disk_percent": 0, "host_load_per_cpu": 0}
    v = _triage.verdict([{"source": "host_resources_info", "host": "controller", "result": host_result}], thresholds=always)
    kinds = {f["kind"] for f in v["findings"]}
    assert {"host_memory", "host_disk", "host_load"} <= kinds
    # A full disk has a playbook (disk_full); memory and load alone are context to investigate.
    assert v["suspected_component"] == "host/controller" and v["severity"] == "P3"
    assert v["act"] is True and [n["playbook"] for n in v["next"]] == ["disk_full"], v["next"]


def test_a_real_failed_assessment_is_a_gap(host_result):
    units = run_module("systemd_unit_info", {"units": ["cron.service"]})
    if units.get("failed") is not True:
        pytest.skip("systemd runs here: this machine cannot produce the failure")
    quiet = dict(host_result, oom={**host_result["oom"], "kills": []})
    v = _triage.verdict([{"source": "systemd_unit_info", "host": "controller", "result": units},
                         {"source": "host_resources_info", "host": "controller", "result": quiet}],
                        thresholds={"host_memory_percent": 101, "host_disk_percent": 101, "host_load_per_cpu": 1e9})
    assert v["healthy"] is False and v["status"] == "unassessed"
    assert v["unassessed"][0]["source"] == "systemd_unit_info" and "systemd" in v["unassessed"][0]["msg"]
