"""db_down under ansible-runner, as AWX runs it (tests/lib/runner_lab.py), against the healthy lab
pair: the outcome test_db_down_playbook.py's no-fault control asserts of the plain run, read from
the job events."""

from __future__ import annotations

from pg_pair import sql
from runner_lab import COVERED, Job, assert_no_action_needed, run_all
from sre_testlib import LAB_INVENTORY

HOST = "lab-postgres-pair"


def test_pgrepl_playbook_under_ansible_runner(healthy_pair, tmp_path):
    jobs = run_all([Job(tmp_path, name, LAB_INVENTORY, {"target": HOST, "db_down_min_primary_down_seconds": 2})
                    for name in COVERED["pgrepl"]])
    for job in jobs:
        result = assert_no_action_needed(job, HOST)
        assert result["state"] == "healthy", result
    assert not sql(healthy_pair, healthy_pair.primary_port, "SELECT pg_is_in_recovery()")
