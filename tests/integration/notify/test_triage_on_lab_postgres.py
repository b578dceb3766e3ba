"""The triage verdict on real sre.runbooks.pg_activity_info results from the lab PostgreSQL:
healthy says "healthy, nothing to do"; real idle sessions over the utilisation threshold make
PostgreSQL the suspect and pick db_exhaustion for that host. (The lab allows 1200 connections;
the threshold is data, so a few dozen real sessions and a low threshold exercise the same path.)"""

from __future__ import annotations

import typing as t

import psycopg2
import pytest
import sre_testlib
from sre_testlib import run_module

from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage

SESSIONS = 30


@pytest.fixture(scope="module")
def pg() -> t.Iterator[dict[str, t.Any]]:
    with sre_testlib.lab_running("pg"):
        v = sre_testlib.lab_vars()
        yield {"login_host": v["lab_bind_address"], "login_port": int(v["lab_pg_port"]),
               "login_user": v["lab_pg_superuser"], "login_password": v["lab_pg_password"], "login_db": "postgres",
               "app_user": v["lab_pg_app_user"], "app_password": v["lab_pg_app_password"]}


def assess(pg: dict[str, t.Any]) -> dict[str, t.Any]:
    result = run_module("pg_activity_info", {k: pg[k] for k in ("login_host", "login_port", "login_user", "login_password", "login_db")})
    assert result.get("failed") is not True, result.get("msg")
    return result


def test_healthy_lab_postgres_is_nothing_to_do(pg):
    result = assess(pg)
    v = _triage.verdict([{"source": "sre.runbooks.pg_activity_info", "host": "lab-postgres", "result": result}])
    assert v["status"] == "healthy" and v["summary"] == "healthy, nothing to do" and v["next"] == []


def test_sessions_over_the_threshold_pick_db_exhaustion(pg):
    conns = [psycopg2.connect(host=pg["login_host"], port=pg["login_port"], user=pg["app_user"], password=pg["app_password"],
                              dbname=pg["app_user"], application_name="sre-triage-it", connect_timeout=10)
             for _session in range(SESSIONS)]
    try:
        result = assess(pg)
    finally:
        for conn in conns:
            conn.close()
    assert result["client_backends"] >= SESSIONS
    threshold = 100.0 * SESSIONS / result["usable_connections"]  # our sessions alone cross it
    v = _triage.verdict([{"source": "pg_activity_info", "host": "lab-postgres", "result": result}],
                        components=[{"name": "postgresql", "match": ["postgresql"], "impact": "critical"}],
                        thresholds={"pg_utilisation_percent": threshold})
    assert v["findings"][0]["kind"] == "pg_saturated" and v["findings"][0]["status"] == "degraded"
    assert v["suspected_component"] == "postgresql" and v["act"] is True
    assert v["next"][0]["playbook"] == "db_exhaustion" and v["next"][0]["extra_vars"] == {"target": "lab-postgres"}
    assert v["severity"] == "P3"  # saturated, not yet refusing connections
    assert f"{result['client_backends']}/{result['usable_connections']} connections" in v["findings"][0]["detail"]
