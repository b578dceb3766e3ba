"""Secret canary for db_exhaustion: the lab passwords are in the inventory, and idle sessions' last
queries carry a password in a connection string and a DSN. At -vvv (the most a user prints), in
every mode, neither appears in any output or registered result."""

from __future__ import annotations

import psycopg2
import pytest

import sre_testlib

CANARY = "Canary-pg-51c0ffee"
PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
QUERIES = [
    f"SELECT 'host=db1 user=app password={CANARY} dbname=shop' AS conninfo",
    f"SELECT 'postgresql://app:{CANARY}@db1:5432/shop' AS dsn",
    f"SELECT 1 /* ALTER ROLE app PASSWORD '{CANARY}' */",
]


@pytest.fixture
def canary_sessions(pg_lab):
    lab = sre_testlib.lab_var
    conns = []
    try:
        for query in QUERIES:
            conn = psycopg2.connect(host=lab("lab_bind_address"), port=lab("lab_pg_port"),
                                    user=lab("lab_pg_app_user"), password=lab("lab_pg_app_password"),
                                    dbname=lab("lab_pg_app_user"), application_name="sre-canary")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query)
            conns.append(conn)
        yield
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("mode", ["assess", "check", "act"])
def test_db_exhaustion_never_prints_a_secret(mode, canary_sessions):
    # A threshold of 0 % makes every run act on what it finds: the act path prints the most.
    extra = {"db_exhaustion_utilisation_threshold": 0, "db_exhaustion_min_idle": "0s",
             "db_exhaustion_min_idle_in_transaction": "0s"}
    rc, report, err = sre_testlib.run_playbook(
        PLAYBOOK, extra_vars=extra, tags="assess" if mode == "assess" else None, check=mode == "check",
        diff=True, env={"ANSIBLE_VERBOSITY": "3"})
    text = str(report) + err
    assert "lab-postgres" in text, text[-3000:]
    for secret in (CANARY, sre_testlib.lab_var("lab_pg_password"), sre_testlib.lab_var("lab_pg_app_password")):
        assert secret not in text, str(sre_testlib.leaking_tasks(report, secret)) + "\n" + sre_testlib.leaks(text, secret)
