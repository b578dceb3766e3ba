"""db_exhaustion's Kubernetes branch end to end: the real lab PostgreSQL stays exhausted after the
idle sessions are dealt with, so the role restarts the pooler Deployment with a rollout restart on
the real lab control plane, once per incident, and says that the server is still full."""

from __future__ import annotations

import subprocess
import time
import typing as t

import pytest

import sre_testlib
from k8s_integration import apply, deployment, get, inventory, pods, role_result, rollout_done, wait_for

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
INJECT = sre_testlib.REPO / "lab" / "pg" / "inject"
HELD = 300  # idle sessions a leaking application holds: ~25 % of the lab's usable slots


@pytest.fixture
def exhausted_postgres() -> t.Iterator[None]:
    """The lab PostgreSQL with HELD idle sessions that the run must not terminate (they are
    younger than db_exhaustion_min_idle), so utilisation stays over the threshold."""
    with sre_testlib.lab_running("pg"):
        subprocess.run([str(INJECT), str(HELD), "0"], check=True, capture_output=True, text=True)
        try:
            yield
        finally:
            subprocess.run([str(INJECT), "stop"], check=False, capture_output=True, text=True)


def pooler_pods(namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in pods(namespace, "app=pgbouncer")}


@pytest.mark.parametrize("incident_start_given", [True, False], ids=["incident_started_at", "derived"])
def test_pooler_rollout_restart_runs_once_per_incident(namespace, tmp_path, exhausted_postgres,
                                                       incident_start_given):
    """Once per incident, with incident_started_at given or derived from the incident's first run
    (sre.runbooks.incident_start): before, a re-run without it was a new incident and restarted again."""
    apply(deployment("pgbouncer", namespace, replicas=2))
    rollout_done("pgbouncer", namespace)
    before = pooler_pods(namespace)
    time.sleep(1.1)  # pod start times have a one-second resolution
    incident = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lab = sre_testlib.lab_var
    inv = inventory(
        tmp_path, namespace,
        postgresql_login_host=lab("lab_bind_address"), postgresql_login_port=lab("lab_pg_port"),
        postgresql_login_user=lab("lab_pg_superuser"), postgresql_login_password=lab("lab_pg_password"),
        postgresql_login_db="postgres")
    extra = {"target": "lab-k8s",
             "db_exhaustion_utilisation_threshold": 20, "db_exhaustion_min_idle": "1h",
             "db_exhaustion_min_idle_in_transaction": "1h"}
    if incident_start_given:
        extra["incident_started_at"] = incident

    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra, check=True)
    assert rc == 0, err
    assert pooler_pods(namespace) == before, "--check restarted the pooler"
    assert "restartedAt" not in str(get("deployment", "pgbouncer", namespace)["spec"]["template"])

    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra)
    result = role_result(report, "db_exhaustion_result")
    # Terminating nothing (every session is younger than 1h) and restarting a pooler that is not
    # in the path of these sessions leaves the server full: the run says so and fails.
    assert rc != 0 and result["outcome"] == "failed", result
    assert "Escalate" in result["error"], result
    assert result["pooler_restarted"] is True and result["platform"] == "kubernetes"
    assert [(a["action"], a["result"]) for a in result["actions"]] == [("rollout restart", "done")], result["actions"]
    wait_for(lambda: not pooler_pods(namespace) & before and len(pooler_pods(namespace)) == 2,
             "the pooler's old pods to be replaced")
    restarted = pooler_pods(namespace)
    assert lab("lab_pg_password") not in str(report) + err

    # The same incident again (a re-run of the playbook): the pooler is not restarted twice.
    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra)
    again = role_result(report, "db_exhaustion_result")
    assert again["pooler_restarted"] is False, again
    assert [(a["action"], a["result"]) for a in again["actions"]] == [("rollout restart", "already done")], again
    assert pooler_pods(namespace) == restarted


def test_app_rollout_restart_is_opt_in_and_once_per_incident(namespace, tmp_path, exhausted_postgres):
    """Issue 12, runbook 001 "restart the application to refresh connections": the application
    that holds the sessions (the injector's application_name) is a Deployment; restarted with a
    rollout restart only when asked, once per incident; --check restarts nothing."""
    apply(deployment("shop", namespace, replicas=1))
    rollout_done("shop", namespace)
    before = {p["metadata"]["name"] for p in pods(namespace, "app=shop")}
    time.sleep(1.1)  # pod start times have a one-second resolution
    lab = sre_testlib.lab_var
    inv = inventory(
        tmp_path, namespace,
        postgresql_login_host=lab("lab_bind_address"), postgresql_login_port=lab("lab_pg_port"),
        postgresql_login_user=lab("lab_pg_superuser"), postgresql_login_password=lab("lab_pg_password"),
        postgresql_login_db="postgres")
    extra = {"target": "lab-k8s", "incident_started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "db_exhaustion_utilisation_threshold": 20, "db_exhaustion_min_idle": "1h",
             "db_exhaustion_min_idle_in_transaction": "1h", "db_exhaustion_restart_pooler": False,
             "db_exhaustion_restart_app": True, "db_exhaustion_app_deployment": "shop",
             "db_exhaustion_app_applications": ["fault-injector"]}

    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra, check=True)
    result = role_result(report, "db_exhaustion_result")
    assert rc == 0, err
    assert [(a["action"], a["result"]) for a in result["actions"]] == [("rollout restart", "check mode")], result
    assert {p["metadata"]["name"] for p in pods(namespace, "app=shop")} == before, "--check restarted the app"
    assert "restartedAt" not in str(get("deployment", "shop", namespace)["spec"]["template"])

    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra)
    result = role_result(report, "db_exhaustion_result")
    # The injector is not in the Deployment: it holds its sessions still, and the run escalates.
    assert rc != 0 and "Escalate" in result["error"], result
    assert result["app_restarted"] is True and result["pooler_restarted"] is False
    assert [(a["action"], a["result"]) for a in result["actions"]] == [("rollout restart", "done")], result["actions"]
    wait_for(lambda: not {p["metadata"]["name"] for p in pods(namespace, "app=shop")} & before,
             "the application's old pod to be replaced")
    restarted = {p["metadata"]["name"] for p in pods(namespace, "app=shop")}

    rc, report, err = sre_testlib.run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra)
    again = role_result(report, "db_exhaustion_result")
    assert again["app_restarted"] is False, again
    assert [(a["action"], a["result"]) for a in again["actions"]] == [("rollout restart", "already done")], again
    assert {p["metadata"]["name"] for p in pods(namespace, "app=shop")} == restarted
    assert lab("lab_pg_password") not in str(report) + err
