"""Molecule drills: inject the real fault into a real lab host, run the outage playbook as a user
would, verify recovery (scripts/drill.sh does the whole Molecule sequence)."""

from __future__ import annotations

import subprocess

import pytest
from sre_testlib import REPO

DRILL = str(REPO / "scripts" / "drill.sh")
DRILLS = subprocess.run([DRILL, "list"], capture_output=True, text=True, check=True).stdout.split()


def test_every_drill_scenario_is_listed():
    expected = {p.name for p in (REPO / "molecule").iterdir() if (p / "molecule.yml").is_file()}
    assert set(DRILLS) == expected


@pytest.mark.slow
@pytest.mark.parametrize("drill", DRILLS)
def test_drill(drill):
    proc = subprocess.run([DRILL, drill], cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
