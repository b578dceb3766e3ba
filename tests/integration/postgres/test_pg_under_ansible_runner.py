"""db_exhaustion and lock_contention under ansible-runner, as AWX runs them (tests/lib/runner_lab.py),
against the healthy lab PostgreSQL: the outcome the plain runs' no-fault controls assert
(test_db_exhaustion_no_fault.py, test_lock_contention_cases.py), read from the job events."""

from __future__ import annotations

from runner_lab import COVERED, Job, assert_no_action_needed, run_all
from sre_testlib import LAB_INVENTORY


def test_postgres_playbooks_under_ansible_runner(pg_lab, tmp_path):
    jobs = run_all([Job(tmp_path, name, LAB_INVENTORY, {"target": "lab-postgres"}) for name in COVERED["postgres"]])
    for job in jobs:
        result = assert_no_action_needed(job, "lab-postgres")
        assert result["healthy"] is True and result["verdict"].startswith("healthy, nothing to do"), result
