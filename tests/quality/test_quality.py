"""Quality gates: ansible-test sanity, ansible-lint (production), the Galaxy build, ansible-doc,
the changelog, and the playbooks' FQCN form. Each runs the real tool on the whole tree."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

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


def gate(name: str, timeout: float) -> subprocess.CompletedProcess:
    """Run scripts/<name>.sh, or take the result of the run scripts/test.sh started in the
    background for the whole suite (SRE_QUALITY_DIR), waiting for it to finish."""
    qdir = os.environ.get("SRE_QUALITY_DIR")
    pidfile = Path(qdir, f"{name}.pid") if qdir else None
    if pidfile is None or not pidfile.exists():
        return run([str(REPO / "scripts" / f"{name}.sh")], timeout=timeout)
    rc_file, log = Path(qdir, f"{name}.rc"), Path(qdir, f"{name}.log")
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + timeout
    while not rc_file.exists():
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = rc_file.exists()
        if not alive:
            pytest.fail(f"the background {name} run (pid {pid}) ended without a result; log:\n"
                        f"{log.read_text(errors='replace')[-12000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the background {name} run did not finish within {timeout} s")
        time.sleep(1)
    output = log.read_text(errors="replace")
    return subprocess.CompletedProcess([name], int(rc_file.read_text()), output, "")


def test_ansible_test_sanity():
    # In the whole suite sanity runs in the background at a low priority beside the lab lanes; on
    # a new machine (its test venvs to install, load 17) it took over 30 minutes. An hour bounds a
    # hung run; a slow one is not a failure.
    proc = gate("sanity", timeout=3600)
    assert proc.returncode == 0, explain(proc)


def test_ansible_lint_production_profile():
    proc = gate("lint", timeout=3600)
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


def ansible_doc(*modules: str) -> subprocess.CompletedProcess:
    return run([str(VENV_BIN / "ansible-doc"), *(f"sre.runbooks.{m}" for m in modules)])


def syntax_check(*playbooks: str) -> subprocess.CompletedProcess:
    return run([str(VENV_BIN / "ansible-playbook"), *(f"sre.runbooks.outage.{p}" for p in playbooks),
                "-i", str(REPO / "inventories" / "lab"), "--syntax-check"])


@pytest.fixture(scope="module")
def doc_pages() -> dict[str, str]:
    """Every module's ansible-doc page from one ansible-doc run (a run per module cost about a
    second of CPU each); a module missing here (its page failed) is run on its own by its test."""
    pages = {}
    for chunk in re.split(r"^> MODULE ", ansible_doc(*MODULES).stdout, flags=re.MULTILINE)[1:]:
        name = re.sub(r"\x1b\[[0-9;]*m", "", chunk.split(None, 1)[0])
        pages[name] = chunk
    return pages


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module, doc_pages):
    page = doc_pages.get(f"sre.runbooks.{module}")
    if page is None:
        proc = ansible_doc(module)
        assert proc.returncode == 0, explain(proc)
        page = proc.stdout
    for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
        assert section in page, f"ansible-doc sre.runbooks.{module} lacks {section}"


@pytest.fixture(scope="module")
def syntax_of_all_playbooks() -> subprocess.CompletedProcess:
    """One --syntax-check of every outage playbook by its FQCN (a run per playbook cost about
    1.5 s of CPU each); when it fails, each playbook's test checks its own to say which."""
    return syntax_check(*PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_callable_by_fqcn(playbook, syntax_of_all_playbooks):
    proc = syntax_of_all_playbooks if syntax_of_all_playbooks.returncode == 0 else syntax_check(playbook)
    assert proc.returncode == 0, explain(proc)
    assert f"/playbooks/outage/{playbook}.yml" in proc.stdout, explain(proc)
