"""Fixtures for the PostgreSQL integration tests: the real lab cluster and real client sessions."""

from __future__ import annotations

import typing as t
import uuid

import psycopg2
import pytest
from psycopg2 import sql

import sre_testlib
from pg_integration import (
    SANDBOX_DB,
    TAG,
    Lab,
    Sessions,
    assert_no_secret,
    connect,
    lab_settings,
    role_sessions,
    wait_for,
)


@pytest.fixture(scope="session")
def pg_lab() -> t.Iterator[Lab]:
    """The lab PostgreSQL, started for this session unless it was already up. A lab that cannot
    start raises here, so every test that needs it errors: nothing is skipped."""
    with sre_testlib.lab_running("pg"):
        lab = lab_settings()
        # Fail loudly (not skip) if the server does not answer after `up`.
        psycopg2.connect(
            host=lab.host,
            port=lab.port,
            user=lab.superuser,
            password=lab.superuser_password,
            dbname="postgres",
            connect_timeout=10,
        ).close()
        yield lab


@pytest.fixture(scope="session")
def admin(pg_lab: Lab) -> t.Iterator[t.Any]:
    """A superuser observer session (autocommit) that creates the sandbox and reads pg_stat_activity.
    It never matches a module call: it is a superuser, in database postgres, and usually active."""
    conn = connect(pg_lab, user=pg_lab.superuser, dbname="postgres", application=f"{TAG}-observer", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(SANDBOX_DB), sql.Identifier(pg_lab.app_user))
        )
    setup = connect(pg_lab, dbname=SANDBOX_DB, application=f"{TAG}-setup", autocommit=True)
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
        cur.execute("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g")
    setup.close()
    try:
        yield conn
    finally:
        # Whatever a failed test left behind in the sandbox goes with it. Later tests of the session
        # (the db_down drill SIGKILLs the lab primary) may have ended this connection: use a new one.
        conn.close()
        conn = connect(pg_lab, user=pg_lab.superuser, dbname="postgres", application=f"{TAG}-observer", autocommit=True)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SANDBOX_DB)))
        conn.close()


@pytest.fixture
def sessions(pg_lab: Lab, admin) -> t.Iterator[Sessions]:
    factory = Sessions(pg_lab, admin)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture(scope="module")
def module_sessions(pg_lab: Lab, admin) -> t.Iterator[Sessions]:
    factory = Sessions(pg_lab, admin)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def throwaway_role(pg_lab: Lab, admin) -> t.Iterator[t.Callable[..., tuple[str, str]]]:
    """Create login roles for one test (CREATE ROLE ... PASSWORD) and drop them afterwards."""
    created: list[str] = []

    def create(*grants: str, superuser: bool = False) -> tuple[str, str]:
        name = f"sre_it_role_{uuid.uuid4().hex[:8]}"
        password = f"throwaway-{uuid.uuid4().hex}"
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                    sql.Identifier(name), sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"), sql.Literal(password)
                )
            )
            for grant in grants:
                cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(grant), sql.Identifier(name)))
        created.append(name)
        return name, password

    yield create
    with admin.cursor() as cur:
        for name in created:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            wait_for(lambda: not role_sessions(admin, name), what=f"sessions of {name} to end")
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def su_login(pg_lab: Lab) -> dict[str, t.Any]:
    """Module connection options: the lab superuser over TCP."""
    return dict(
        login_host=pg_lab.host,
        login_port=pg_lab.port,
        login_user=pg_lab.superuser,
        login_password=pg_lab.superuser_password,
        login_db="postgres",
    )


@pytest.fixture
def call(pg_lab: Lab) -> t.Callable[..., dict[str, t.Any]]:
    """run_module() plus the secret check on every result (the test's extra secrets included)."""
    extra: list[str] = []

    def run(
        name: str, args: dict[str, t.Any], check: bool = False, diff: bool = False, secrets: t.Iterable[str] = ()
    ) -> dict[str, t.Any]:
        extra.extend(secrets)
        result = sre_testlib.run_module(name, args, check=check, diff=diff)
        assert_no_secret(result, [*pg_lab.secrets, *extra])
        return result

    return run
