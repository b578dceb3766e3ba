"""Quality gates: ansible-test sanity, ansible-lint (production), the Galaxy build, ansible-doc,
the changelog, and the playbooks' FQCN form. Each runs the real tool on the whole tree."""

from __future__ import annotations

import subprocess
import tarfile

import pytest
from sre_testlib import REPO, VENV_BIN, ansible_env

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks" / "outage").glob("*.yml"))


def run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=ansible_env(), check=False)


def explain(proc: subprocess.CompletedProcess) -> str:
    out = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                    if "is ignored: it is neither a file" not in line)
    return f"exit {proc.returncode}\n{out[-12000:]}"


def test_ansible_test_sanity():
    proc = run([str(REPO / "scripts" / "sanity.sh")], timeout=1800)
    assert proc.returncode == 0, explain(proc)


def test_ansible_lint_production_profile():
    proc = run([str(REPO / "scripts" / "lint.sh")])
    assert proc.returncode == 0, explain(proc)
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_changelog_fragments_lint():
    proc = run([str(VENV_BIN / "antsibull-changelog"), "lint"])
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.strip() == "", proc.stdout


def test_galaxy_build_ships_plugins_roles_playbooks_and_not_the_lab(tmp_path):
    proc = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)])
    assert proc.returncode == 0, explain(proc)
    tarball = tmp_path / "sre-runbooks-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert "plugins/modules/pg_backends.py" in names
    for role in (REPO / "roles").iterdir():
        assert f"roles/{role.name}/tasks/main.yml" in names
        assert f"roles/{role.name}/meta/argument_specs.yml" in names
    assert "playbooks/outage/db_exhaustion.yml" in names
    assert "meta/runtime.yml" in names
    assert not any(n.startswith(("lab/", ".venv/", "build/", "tests/output/", "benchmarks/")) for n in names)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    proc = run([str(VENV_BIN / "ansible-doc"), f"sre.runbooks.{module}"])
    assert proc.returncode == 0, explain(proc)
    for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
        assert section in proc.stdout, f"ansible-doc sre.runbooks.{module} lacks {section}"


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_callable_by_fqcn(playbook):
    proc = run([str(VENV_BIN / "ansible-playbook"), f"sre.runbooks.outage.{playbook}",
                "-i", str(REPO / "inventories" / "lab"), "--syntax-check"])
    assert proc.returncode == 0, explain(proc)
