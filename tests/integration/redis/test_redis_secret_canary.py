"""Secret canary for redis_unavailable: the lab's Redis password is in the inventory. At -vvv (the
most a user prints), healthy and with a dead replica, in check mode and for real, it appears in no
output and no registered result."""

from __future__ import annotations

import pytest

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "redis_unavailable.yml"


@pytest.mark.parametrize("fault", ["healthy", "dead replica"])
def test_redis_unavailable_never_prints_the_password(fault, lab_nodes, tmp_path):
    if fault == "dead replica":
        lab_nodes.kill(lab_nodes.ports[2])
    inv = lab_nodes.inventory(tmp_path)
    for check in (True, False):
        rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, check=check, diff=True,
                                                   env={"ANSIBLE_VERBOSITY": "3"})
        text = str(report) + err
        assert "lab-redis" in text, text[-3000:]
        leaked = str(sre_testlib.leaking_tasks(report, lab_nodes.password)) + "\n"
        assert lab_nodes.password not in text, leaked + sre_testlib.leaks(text, lab_nodes.password)
