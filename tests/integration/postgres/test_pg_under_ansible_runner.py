"""db_exhaustion, lock_contention and slow_queries under ansible-runner, as AWX runs them (tests/lib/runner_lab.py),
against the healthy lab PostgreSQL: the outcome the plain runs' no-fault controls assert
(test_db_exhaustion_no_fault.py, test_lock_contention_cases.py), read from the job events."""

from __future__ import annotations

import json
import os
import subprocess

from runner_lab import COVERED, RECORD_TASK, Job, assert_no_action_needed, run_all
from sre_testlib import LAB_INVENTORY, REPO, VENV_BIN, task_results


def test_postgres_playbooks_under_ansible_runner(pg_lab, tmp_path):
    jobs = run_all([Job(tmp_path, name, LAB_INVENTORY, {"target": "lab-postgres"}) for name in COVERED["postgres"]])
    for job in jobs:
        result = assert_no_action_needed(job, "lab-postgres")
        assert result["healthy"] is True and result["verdict"].startswith("healthy, nothing to do"), result


def test_db_exhaustion_from_a_plain_checkout(pg_lab):
    """The design's own example: `cd playbooks && ansible-playbook outage/db_exhaustion.yml -i
    ../inventories/lab`, with no ansible.cfg and no ANSIBLE_* variable pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "outage/db_exhaustion.yml", "-i", "../inventories/lab",
                           "--limit", "lab-postgres"], cwd=REPO / "playbooks", env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    result = task_results(report, f"sre.runbooks.db_exhaustion : {RECORD_TASK}")["lab-postgres"]["ansible_facts"][
        "db_exhaustion_result"]
    assert result["outcome"] == "no action needed" and result["actions"] == [], result
    assert report["stats"]["lab-postgres"]["changed"] == 0
