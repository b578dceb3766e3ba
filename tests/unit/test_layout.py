"""The test tree's own rules."""

from __future__ import annotations

import collections

from sre_testlib import REPO


def test_test_modules_have_unique_names():
    """pytest imports test files by basename (no __init__.py): two test_x.py in two folders stop
    the whole run at collection."""
    names = collections.Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]


def test_action_groups_name_existing_modules_that_share_their_connection_options():
    """module_defaults: group/sre.runbooks.<group> passes its keys to every member, and a member
    that lacks one fails with 'Unsupported parameters': members must exist and share the options
    of the group's first member that are about where and how to connect."""
    import ast

    import yaml

    groups = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]

    def options(name):
        tree = ast.parse((REPO / "plugins" / "modules" / f"{name}.py").read_text())
        doc = next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", "") == "DOCUMENTATION")
        return set((yaml.safe_load(doc) or {}).get("options") or {})

    connection = ("login_", "bootstrap_servers", "sasl_", "ssl_", "security_protocol", "docker_host",
                  "api_", "kubeconfig", "context", "host", "port", "password", "username")
    for group, members in groups.items():
        assert members, group
        first = options(members[0])
        shared = {o for o in first if o.startswith(connection)}
        for member in members[1:]:
            missing = shared - options(member)
            assert not missing, f"action group {group}: {member} lacks {sorted(missing)} of {members[0]}"


def _conftest():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sre_tests_root_conftest", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_drill_and_integration_area_has_a_lane():
    """scripts/test.sh runs lanes side by side: a drill or an integration folder the lane map does
    not name would run in `cross` (safe, but after everything else: slower). A new one must be
    put in the lane of the lab components it uses."""
    conftest = _conftest()
    drills = {p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml")}
    assert drills <= set(conftest._LANE_OF_DRILL), sorted(drills - set(conftest._LANE_OF_DRILL))
    areas = {p.name for p in (REPO / "tests" / "integration").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert areas <= set(conftest._LANE_OF_AREA), sorted(areas - set(conftest._LANE_OF_AREA))
    assert set(conftest._LANE_OF_DRILL.values()) | set(conftest._LANE_OF_AREA.values()) <= set(conftest.LANES)
    named = {p.name for p in (REPO / "tests").rglob("test_*.py")}
    assert set(conftest._LANE_OF_FILE) <= named, sorted(set(conftest._LANE_OF_FILE) - named)


def test_drills_that_boot_the_systemd_hosts_run_in_the_hosts_lane_or_cross():
    """Only one lane may use the systemd hosts: a drill without a create playbook of its own
    boots them (molecule/shared/create.yml)."""
    import re

    conftest = _conftest()
    for path in (REPO / "molecule").glob("*/molecule.yml"):
        boots_hosts = not re.search(r"^\s+create:", path.read_text(), re.M)
        if boots_hosts:
            assert conftest._LANE_OF_DRILL[path.parent.name] in ("hosts", "cross"), path.parent.name


def test_a_lane_collects_only_its_own_tests():
    import os
    import subprocess
    import sys

    counts = {}
    for lane in ("pg", "cross"):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                               "tests/integration", "tests/drills"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "SRE_TEST_LANE": lane}, check=False, timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        ids = [line for line in proc.stdout.splitlines() if "::" in line]
        counts[lane] = ids
    assert ids and all("test_drills.py::test_drill[" not in i or "kafka_lag" in i for i in counts["cross"])
    assert any("/postgres/" in i for i in counts["pg"]) and not any("/redis/" in i for i in counts["pg"])
    assert "tests/drills/test_drills.py::test_drill[db_down]" in counts["pg"]
    bad = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "tests/unit/test_layout.py"], cwd=REPO, capture_output=True, text=True, check=False,
                         timeout=120, env={**os.environ, "SRE_TEST_LANE": "nosuchlane"})
    assert bad.returncode != 0 and "unknown lane" in bad.stdout + bad.stderr
