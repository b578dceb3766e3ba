"""service_down, disk_full, network_partition and assess under ansible-runner, as AWX runs them
(tests/lib/runner_lab.py), side by side on the healthy lab host: the outcome the plain runs'
no-fault controls assert (test_no_fault_controls.py, test_disk_full_playbook.py,
test_network_partition.py, the assess step of test_service_incident_drill.py), from the job events."""

from __future__ import annotations

import yaml

import sre_testlib
from runner_lab import COVERED, Job, assert_no_action_needed, run_all


def test_systemd_playbooks_under_ansible_runner(lab_host, lab_services_restored, tmp_path):
    units = ("postgresql@15-main.service", "pgbouncer.service", "redis-server.service", "nginx.service")
    before = {u: lab_host.unit(u, "MainPID") for u in units}
    inv = sre_testlib.lab_inventory_of(tmp_path, "systemd_hosts")
    # A lab host is a container: its load average is the whole (busy) test machine's (see the drill).
    defaults = yaml.safe_load((sre_testlib.REPO / "roles" / "incident" / "defaults" / "main.yml").read_text())
    thresholds = {**defaults["incident_triage_thresholds"], "host_load_per_cpu": 1000}
    extra = {
        "service_down": {"target": lab_host.name},
        "disk_full": {"target": lab_host.name},
        # a dependency every side reaches: the host's own SSH port, from the host and the controller
        "network_partition": {"target": lab_host.name, "network_partition_dependencies": [
            {"name": "ssh", "host": lab_host.address, "port": 22}]},
        "assess": {"incident_triage_thresholds": thresholds},
    }
    jobs = {job.name: job for job in run_all([Job(tmp_path, name, inv, extra[name]) for name in COVERED["systemd"]])}
    for name in ("service_down", "disk_full", "network_partition"):
        assert_no_action_needed(jobs[name], lab_host.name)
    service = jobs["service_down"].record(lab_host.name)
    assert service["restarted"] == [] and service["down"] == [] and service["verdict"].startswith("healthy, nothing to do")
    assert jobs["network_partition"].record(lab_host.name)["healthy"] is True

    assess = jobs["assess"]
    assess.assert_successful_with_events()
    verdicts = [e["event_data"]["res"]["ansible_facts"]["incident_verdict"] for e in assess.events()
                if e.get("event") == "runner_on_ok"
                and "incident_verdict" in ((e["event_data"].get("res") or {}).get("ansible_facts") or {})]
    assert verdicts and verdicts[-1]["healthy"] is True and not verdicts[-1]["act"], verdicts[-1:]
    assert assess.changed() == []
    assert before == {u: lab_host.unit(u, "MainPID") for u in before}
