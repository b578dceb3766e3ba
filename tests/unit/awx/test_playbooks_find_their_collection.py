"""The playbooks find sre.runbooks from a plain checkout (playbook-adjacent collections/ links),
without the repository's ansible.cfg or any ANSIBLE_* variable pointing at the checkout: as a
user runs them from playbooks/, and as an AWX project or ansible-runner does."""

from __future__ import annotations

import os
import subprocess

import pytest

from sre_testlib import REPO, VENV_BIN

PLAYBOOKS = REPO / "playbooks"


def bare_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("folder", [".", "outage", "incident"])
def test_every_playbook_resolves_from_playbooks_dir_without_ansible_cfg(folder):
    books = sorted(str(p.relative_to(PLAYBOOKS)) for p in (PLAYBOOKS / folder).glob("*.yml"))
    assert books
    assert not (PLAYBOOKS / "ansible.cfg").exists()
    # One ansible-playbook per folder: it loads every role and module reference of them. (Ansible
    # looks next to every playbook it is given, so one call for all folders would let one
    # folder's link cover for another's.)
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), *books, "-i", "../inventories/lab", "--syntax-check"],
                          cwd=PLAYBOOKS, env=bare_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_links_point_at_this_checkout():
    for folder in (".", "outage", "incident"):
        link = PLAYBOOKS / folder / "collections" / "ansible_collections" / "sre" / "runbooks"
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.resolve() == REPO.resolve()
