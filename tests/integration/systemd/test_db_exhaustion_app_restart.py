"""db_exhaustion's opt-in application restart (issue 12, runbook 001 "restart the application to
refresh connections") on a real systemd lab host: an application unit that holds HELD young idle
sessions (too young for the idle step), so terminating is not enough. Default off: never
restarted. --check: says it would restart, restarts nothing. Opt-in: restarted through systemd,
once - the application leaks again at once, the run says so (Escalate), and a second run of the
same incident does not restart it again."""

from __future__ import annotations

import json
import shlex
import time
import typing as t

import pytest

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
UNIT = "sre-it-dbx-app.service"
APP = "sre-it-dbx-app"
HELD = 60  # of the lab host's 297 usable slots: ~20 %
RECORD = "sre.runbooks.db_exhaustion : Record | structured result for the incident timeline"
APP_CODE = f"""
import os, signal, sys, time
import psycopg2
conns = [psycopg2.connect(host="127.0.0.1", port=5432, user=os.environ["APP_USER"], dbname=os.environ["APP_USER"],
                          password=os.environ["APP_PASSWORD"], application_name="{APP}", connect_timeout=5)
         for _ in range({HELD})]
open("/run/{APP}.ready", "w").write(str(os.getpid()))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
"""


def app_sessions(lab_host) -> int:
    out = lab_host.sh("runuser -u postgres -- psql -XtAc "
                      f"\"select count(*) from pg_stat_activity where application_name = '{APP}'\"").stdout
    return int(out.strip())


def wait_held(lab_host, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while app_sessions(lab_host) < HELD:
        assert time.monotonic() < deadline, f"{UNIT} did not open its {HELD} sessions"
        time.sleep(0.2)


@pytest.fixture
def leaking_app(lab_host) -> t.Iterator[None]:
    user, password = sre_testlib.lab_var("lab_pg_app_user"), sre_testlib.lab_var("lab_pg_app_password")
    env = f"APP_USER={user}\nAPP_PASSWORD={password}\n"
    # Started means connected: ExecStartPost waits for the sessions, so a restart returns once the
    # application holds them again (as an application with a connection pool does) - no race
    # between the restart and the playbook's verify.
    unit = (f"[Service]\nEnvironmentFile=/etc/{APP}.env\nExecStartPre=/bin/rm -f /run/{APP}.ready\n"
            f"ExecStart=/usr/bin/python3 /usr/local/bin/{APP}\n"
            f"ExecStartPost=/bin/sh -c 'until [ -s /run/{APP}.ready ]; do sleep 0.1; done'\n")
    lab_host.sh(f"umask 077 && printf %s {shlex.quote(env)} > /etc/{APP}.env && "
                f"printf %s {shlex.quote(APP_CODE)} > /usr/local/bin/{APP} && "
                f"printf %s {shlex.quote(unit)} > /etc/systemd/system/{UNIT} "
                f"&& systemctl daemon-reload && systemctl start {UNIT}")
    try:
        wait_held(lab_host)
        yield
    finally:
        lab_host.sh(f"systemctl stop {UNIT}; rm -f /etc/systemd/system/{UNIT} /usr/local/bin/{APP} /run/{APP}.ready /etc/{APP}.env; "
                    "systemctl daemon-reload; systemctl reset-failed", check=False)


def run(lab_host, extra: dict[str, t.Any] | None = None, **kwargs) -> tuple[int, dict[str, t.Any]]:
    extra_vars = {"target": lab_host.name, "db_exhaustion_utilisation_threshold": 15,
                  "db_exhaustion_min_idle": "1h", "db_exhaustion_min_idle_in_transaction": "1h",
                  "db_exhaustion_restart_pooler": False, "db_exhaustion_app_unit": UNIT,
                  "db_exhaustion_app_applications": [APP], **(extra or {})}
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars=extra_vars, **kwargs)
    assert sre_testlib.lab_var("lab_pg_app_password") not in json.dumps(report) + stderr
    found = sre_testlib.task_results(report, RECORD).get(lab_host.name)
    assert found is not None, f"no record (rc={rc}): {stderr[-2000:]}"
    return rc, found["ansible_facts"]["db_exhaustion_result"]


def test_app_restart_is_opt_in_truthful_in_check_mode_and_once_per_incident(lab_host, leaking_app):
    since = lab_host.unit(UNIT, "ActiveEnterTimestamp")
    pid = lab_host.unit(UNIT, "MainPID")
    time.sleep(1.1)  # ActiveEnterTimestamp has a one-second resolution
    incident = {"incident_started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # Default off: the slots stay taken, the application is not restarted, the record says so.
    rc, result = run(lab_host, incident)
    assert rc != 0 and result["outcome"] == "failed", result
    assert result["app_restarted"] is False and result["actions"] == []
    assert lab_host.unit(UNIT, "MainPID") == pid and lab_host.unit(UNIT, "ActiveEnterTimestamp") == since

    opt_in = {**incident, "db_exhaustion_restart_app": True}
    # Check mode: would restart (the evidence: its sessions are nearly all the clients), does not.
    rc, result = run(lab_host, opt_in, check=True)
    assert rc == 0, (result["error"], result["verdict"])
    assert result["outcome"] == "check mode: would act"
    assert [(a["action"], a["target"], a["result"]) for a in result["actions"]] == \
        [("restart", f"systemd unit {UNIT}", "check mode")]
    assert f"restart {UNIT}" in result["verdict"]
    assert lab_host.unit(UNIT, "MainPID") == pid and lab_host.unit(UNIT, "ActiveEnterTimestamp") == since

    # Opt-in: restarted through systemd. It leaks again at once, so the run escalates.
    rc, result = run(lab_host, opt_in)
    assert result["app_restarted"] is True, result
    assert [(a["action"], a["target"], a["result"]) for a in result["actions"]] == \
        [("restart", f"systemd unit {UNIT}", "done")]
    assert rc != 0 and "Escalate" in result["error"], result
    restarted_pid = lab_host.unit(UNIT, "MainPID")
    assert restarted_pid != pid and lab_host.unit(UNIT, "ActiveEnterTimestamp") != since
    wait_held(lab_host)

    # The same incident again: not restarted a second time.
    rc, result = run(lab_host, opt_in)
    assert result["app_restarted"] is False, result
    assert [(a["action"], a["result"].split(" (")[0]) for a in result["actions"]] == [("restart", "already done")]
    assert "already restarted during this incident" in result["verdict"]
    assert lab_host.unit(UNIT, "MainPID") == restarted_pid
