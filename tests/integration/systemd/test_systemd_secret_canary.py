"""Secret canary for service_down on a real systemd host: a unit runs with a password on its
command line and in its environment and writes it to its journal (as careless services do). At
-vvv, in check mode and for real, the value appears in no output and no registered result."""

from __future__ import annotations

import sre_testlib

CANARY = "Canary-sd-0b5e55ed"
PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "service_down.yml"


def test_service_down_never_prints_a_secret(lab_host, transient_units):
    unit = transient_units(
        f"echo connecting with password={CANARY} >&2; exec sleep 600 --password={CANARY}",
        f"Environment=DB_PASSWORD={CANARY}")
    lab_host.sh(f"systemctl kill --signal=SIGKILL {unit}")
    lab_host.wait_unit(unit, ("failed", "inactive"))
    for check in (True, False):
        rc, report, err = sre_testlib.run_playbook(
            PLAYBOOK, check=check, diff=True, env={"ANSIBLE_VERBOSITY": "3"},
            extra_vars={"target": lab_host.name, "service_down_units": [unit]})
        text = str(report) + err
        assert lab_host.name in text, text[-3000:]
        assert CANARY not in text, str(sre_testlib.leaking_tasks(report, CANARY)) + "\n" + sre_testlib.leaks(text, CANARY)
