"""redis_unavailable under ansible-runner, as AWX runs it (tests/lib/runner_lab.py), against the
pristine lab group with its sentinels: the outcome test_redis_playbook.py's no-fault control
asserts of the plain run, read from the job events."""

from __future__ import annotations

from runner_lab import COVERED, Job, assert_no_action_needed, run_all


def test_redis_playbook_under_ansible_runner(lab, tmp_path):
    before = lab.roles()
    (job,) = run_all([Job(tmp_path, name, lab.inventory(tmp_path, with_sentinels=True)) for name in COVERED["redis"]])
    result = assert_no_action_needed(job, "lab-redis")
    assert result["master"] == lab.nodes[0] and result["verdict"] == "healthy", result
    assert result["reason"].startswith("healthy, nothing to do") and result["restarted"] == [], result
    assert lab.roles() == before
