"""Every outage playbook runs under ansible-runner in some area's integration test
(tests/lib/runner_lab.py COVERED), and each area's test uses its list."""

from __future__ import annotations

from runner_lab import COVERED
from sre_testlib import REPO


def test_every_outage_playbook_runs_under_ansible_runner():
    covered = [name for names in COVERED.values() for name in names]
    assert sorted(covered) == sorted(p.stem for p in (REPO / "playbooks" / "outage").glob("*.yml"))
    assert len(covered) == len(set(covered))


def test_each_area_has_its_runner_test():
    for area in COVERED:
        tests = list((REPO / "tests" / "integration" / area).glob("test_*under_ansible_runner.py"))
        assert len(tests) == 1, area
        assert f'COVERED["{area}"]' in tests[0].read_text(), tests[0]
