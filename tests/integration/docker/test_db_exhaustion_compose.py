"""playbooks/outage/db_exhaustion.yml on the lab's compose host (outage_platform: compose): the
project's real PostgreSQL exhausted through its real pgbouncer container. Terminating idle
sessions cannot help (they are seconds old), so the pooler is the problem: its container is
restarted once per incident (docker-compose restart pgbouncer), and --check restarts nothing."""

from __future__ import annotations

import contextlib
import time
import typing as t

import psycopg2
import pytest

import sre_testlib
from sre_testlib import lab_var

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
RECORD = "sre.runbooks.db_exhaustion : Record | structured result for the incident timeline"
HOST = "lab-compose"


def run(check=False, **extra):
    return sre_testlib.run_playbook(PLAYBOOK, extra_vars={"target": HOST, **extra}, check=check)


def record(report):
    return sre_testlib.task_results(report, RECORD)[HOST]["ansible_facts"]["db_exhaustion_result"]


def failures(report):
    return [f"{task['task']['name']}: {task['hosts'][HOST].get('msg')}" for play in report.get("plays", [])
            for task in play["tasks"] if task["hosts"].get(HOST, {}).get("failed")]


def connect(via: str, **kw: t.Any):
    port = lab_var("lab_docker_pgbouncer_port" if via == "pgbouncer" else "lab_docker_pg_port")
    return psycopg2.connect(host=lab_var("lab_bind_address"), port=port, user=lab_var("lab_pg_app_user"),
                            password=lab_var("lab_pg_app_password"), dbname=lab_var("lab_pg_app_user"),
                            connect_timeout=10, application_name="leaky-shop", **kw)


def usable() -> int:
    return int(lab_var("lab_docker_pg_max_connections")) - 3


@contextlib.contextmanager
def leak(via: str, in_transaction: bool) -> t.Iterator[list]:
    """An application that leaks every usable slot: through the pooler, each one a transaction left
    open (transaction pooling keeps a server connection only inside a transaction)."""
    held: list = []
    try:
        for _slot in range(usable()):
            try:
                conn = connect(via)
            except psycopg2.OperationalError:
                if via == "pgbouncer" or not held:
                    raise
                break  # straight to PostgreSQL: every slot left is taken (pooled connections hold the rest)
            conn.cursor().execute("SELECT 1")
            if not in_transaction:
                conn.commit()
            held.append(conn)
        yield held
    finally:
        for conn in held:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


def app_login_works() -> bool:
    """The application's symptom: a fresh login through pgbouncer that runs a query (with the pool
    full, pgbouncer fails it after its query_wait_timeout)."""
    try:
        with contextlib.closing(connect("pgbouncer")) as conn:
            conn.cursor().execute("SELECT 1")
        return True
    except psycopg2.Error:
        return False


def started(compose, *services: str) -> dict[str, str]:
    return {s: compose.inspect(s)["State"]["StartedAt"] for s in services}


def test_exhausted_through_the_pooler_check_restarts_nothing_act_heals_once(compose):
    incident = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    since = time.time() - 1
    before = started(compose, "postgres", "pgbouncer", "api")
    with leak("pgbouncer", in_transaction=True):
        # The fault is real: every usable slot is held through the pooler, a direct application
        # login is refused, and (pgbouncer's pool being full) an application query times out.
        with pytest.raises(psycopg2.OperationalError, match="reserved"):
            connect("postgres").close()
        with contextlib.closing(psycopg2.connect(
                host=lab_var("lab_bind_address"), port=lab_var("lab_docker_pgbouncer_port"), user=lab_var("lab_pg_app_user"),
                password=lab_var("lab_pg_app_password"), dbname=lab_var("lab_pg_app_user"), connect_timeout=5)) as probe:
            probe.autocommit = True
            with pytest.raises(psycopg2.Error):
                probe.cursor().execute("SELECT 1")  # waits query_wait_timeout (5 s), then an error

        rc, report, err = run(check=True, incident_started_at=incident)
        assert rc == 0, (failures(report), err[-3000:])
        rec = record(report)
        assert rec["outcome"].startswith("check mode"), rec
        assert rec["platform"] == "compose" and rec["before"]["utilisation_percent"] >= 100
        assert rec["pooler_restarted"] is False and rec["terminated"] == 0
        assert compose.restart_events(since, "pgbouncer") == 0 and started(compose, "postgres", "pgbouncer", "api") == before

        rc, report, err = run(incident_started_at=incident)
        assert rc == 0, (failures(report), err[-3000:])
        rec = record(report)
        assert rec["outcome"] == "healed", rec
        assert rec["pooler_restarted"] is True and rec["terminated"] == 0, rec
        assert [(a["action"], a["result"]) for a in rec["actions"]] == [("restart", "restarted")], rec["actions"]
        assert rec["after"]["utilisation_percent"] < 80, rec["after"]
    # Healed, as the application sees it: a login through the pooler runs a query.
    assert app_login_works()
    assert compose.restart_events(since, "pgbouncer") == 1
    after = started(compose, "postgres", "pgbouncer", "api")
    assert after["postgres"] == before["postgres"] and after["api"] == before["api"]
    assert after["pgbouncer"] != before["pgbouncer"]
    assert lab_var("lab_pg_password") not in str(report) + err and lab_var("lab_pg_app_password") not in str(report) + err

    # The same incident again: healthy now, nothing to do, the pooler not restarted twice.
    rc, report, err = run(incident_started_at=incident)
    assert rc == 0, (failures(report), err[-3000:])
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["actions"] == [], rec
    assert compose.restart_events(since, "pgbouncer") == 1


def test_old_idle_sessions_are_terminated_and_the_pooler_left_alone(compose):
    """When terminating is enough (the leak is old idle sessions, straight to PostgreSQL), the
    decision never reaches the pooler: its container keeps running."""
    since = time.time() - 1
    before = started(compose, "pgbouncer", "postgres")
    with leak("postgres", in_transaction=False) as held:
        time.sleep(1.5)  # older than db_exhaustion_min_idle below
        rc, report, err = run(db_exhaustion_min_idle="1s")
        assert rc == 0, (failures(report), err[-3000:])
        rec = record(report)
    assert rec["outcome"] == "healed" and rec["terminated"] >= len(held), rec
    assert rec["pooler_restarted"] is False and rec["pooler_skipped"] is None
    assert compose.restart_events(since, "pgbouncer") == 0 and started(compose, "pgbouncer", "postgres") == before


def test_healthy_project_database_is_left_alone(compose):
    """No-fault control: a healthy compose database - nothing terminated, nothing restarted."""
    since = time.time() - 1
    before = started(compose, *compose.services)
    rc, report, err = run()
    assert rc == 0, (failures(report), err[-3000:])
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["healthy"] is True and rec["actions"] == [], rec
    assert started(compose, *compose.services) == before
    assert compose.restart_events(since, "pgbouncer") == 0
