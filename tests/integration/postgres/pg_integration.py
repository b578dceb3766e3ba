"""Helpers for the PostgreSQL integration tests (fixtures: conftest.py).

The lab may be shared (a developer's running lab is left running), so every session a test
opens carries an application_name that starts with TAG and lives in the sandbox database
SANDBOX_DB; module calls are scoped to one of the two unless a test is about that very filter.
Nothing here mocks PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import threading
import time
import typing as t
import uuid

import psycopg2
import psycopg2.extras

import sre_testlib

# Unique per pytest run: application names, the sandbox database and throwaway roles use it.
TAG = f"sre-it-{os.getpid()}-{uuid.uuid4().hex[:6]}"
SANDBOX_DB = "sre_it_" + TAG.split("-", 2)[2].replace("-", "_")
NO_LOG_MARKER = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


class Lab(t.NamedTuple):
    host: str
    port: int
    socket_dir: str
    superuser: str
    superuser_password: str
    app_user: str
    app_password: str
    max_connections: int

    @property
    def secrets(self) -> list[str]:
        return [self.superuser_password, self.app_password]


def lab_settings() -> Lab:
    v = sre_testlib.lab_vars()
    return Lab(
        host=v["lab_bind_address"],
        port=int(v["lab_pg_port"]),
        socket_dir=os.path.join(v["lab_state_dir"], "pg", "run"),
        superuser=v["lab_pg_superuser"],
        superuser_password=v["lab_pg_password"],
        app_user=v["lab_pg_app_user"],
        app_password=v["lab_pg_app_password"],
        max_connections=int(v["lab_pg_max_connections"]),
    )


def connect(
    lab: Lab,
    *,
    user: str | None = None,
    password: str | None = None,
    dbname: str | None = None,
    application: str | None = None,
    via_socket: bool = False,
    autocommit: bool = False,
):
    user = user or lab.app_user
    if password is None:
        password = lab.app_password if user == lab.app_user else lab.superuser_password
    conn = psycopg2.connect(
        host=lab.socket_dir if via_socket else lab.host,
        port=lab.port,
        user=user,
        password=password,
        dbname=dbname or SANDBOX_DB,
        application_name=application or f"{TAG}-misc",
        connect_timeout=10,
    )
    conn.autocommit = autocommit
    return conn


def live_pids(admin, application_prefix: str = TAG) -> set[int]:
    """PIDs in pg_stat_activity whose application_name starts with application_prefix."""
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE starts_with(application_name, %s) AND pid <> pg_backend_pid()",
            (application_prefix,),
        )
        return {row[0] for row in cur.fetchall()}


def activity(admin, pids: t.Iterable[int] | None = None) -> dict[int, dict[str, t.Any]]:
    """pid -> pg_stat_activity row (state, state_change, ...) for our sessions (or the given pids)."""
    with admin.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        if pids is None:
            cur.execute(
                "SELECT * FROM pg_stat_activity WHERE starts_with(application_name, %s) AND pid <> pg_backend_pid()",
                (TAG,),
            )
        else:
            cur.execute("SELECT * FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),))
        return {row["pid"]: dict(row) for row in cur.fetchall()}


def find_task(report: dict[str, t.Any], name_prefix: str) -> dict[str, t.Any] | None:
    """lab-postgres's result of the last task whose name (role prefix stripped) starts with name_prefix."""
    found = None
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            name = task["task"]["name"].split(" : ", 1)[-1]
            if name.startswith(name_prefix) and "lab-postgres" in task["hosts"]:
                found = task["hosts"]["lab-postgres"]
    return found


def wait_for(predicate: t.Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Session:
    """One real client session: its connection, backend pid and application name."""

    def __init__(self, conn, application: str, kind: str) -> None:
        self.conn = conn
        self.application = application
        self.kind = kind
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.pid: int = cur.fetchone()[0]
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Session {self.kind} pid={self.pid} app={self.application}>"

    def run_in_thread(self, statement: str, args: t.Any = None) -> None:
        """Run a statement that blocks (pg_sleep, a lock wait) in a thread; errors are kept in .error."""

        def work():
            try:
                with self.conn.cursor() as cur:
                    cur.execute(statement, args)
            except BaseException as exc:  # noqa: BLE001 - cancelled/terminated on purpose
                self.error = exc

        self.thread = threading.Thread(target=work, daemon=True, name=f"pg-{self.pid}")
        self.thread.start()


class Sessions:
    """Factory for real sessions of several kinds; everything it opened is closed at teardown."""

    def __init__(self, lab: Lab, admin) -> None:
        self.lab = lab
        self.admin = admin
        self.opened: list[Session] = []

    def _open(self, kind: str, application: str | None, **connect_kwargs) -> Session:
        application = application or f"{TAG}-{kind}"
        conn = connect(self.lab, application=application, **connect_kwargs)
        session = Session(conn, application, kind)
        self.opened.append(session)
        return session

    def idle(self, application: str | None = None, **kw) -> Session:
        session = self._open("idle", application, **kw)
        session.conn.commit()
        return session

    def many_idle(self, count: int, application: str | None = None, workers: int = 8, **kw) -> list[Session]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda _i: self.idle(application, **kw), range(count)))

    def idle_in_transaction(self, application: str | None = None, **kw) -> Session:
        # Left open after SELECT pg_backend_pid(): 'idle in transaction'.
        return self._open("idle-in-tx", application, **kw)

    def superuser_idle(self, application: str | None = None, **kw) -> Session:
        session = self._open("superuser", application, user=self.lab.superuser, **kw)
        session.conn.commit()
        return session

    def active(self, seconds: float = 60, application: str | None = None, **kw) -> Session:
        session = self._open("active", application, **kw)
        session.conn.commit()
        session.run_in_thread("SELECT pg_sleep(%s)", (seconds,))
        wait_for(
            lambda: activity(self.admin, [session.pid]).get(session.pid, {}).get("state") == "active",
            what=f"pid {session.pid} to run pg_sleep",
        )
        return session

    def blocking_pair(self, row_id: int = 1, application: str | None = None) -> tuple[Session, Session]:
        """(blocker, blocked): the blocker holds a row lock in an open transaction ('idle in
        transaction'), the blocked session waits for it in an UPDATE of the same row ('active')."""
        blocker = self._open("blocker", application)
        with blocker.conn.cursor() as cur:
            cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (row_id,))
        blocked = self._open("blocked", application)
        blocked.conn.commit()
        blocked.run_in_thread("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (row_id,))
        wait_for(
            lambda: self.blocked_by(blocked.pid) == [blocker.pid],
            what=f"pid {blocked.pid} to wait for the lock held by {blocker.pid}",
        )
        return blocker, blocked

    def blocked_by(self, pid: int) -> list[int]:
        with self.admin.cursor() as cur:
            cur.execute("SELECT pg_blocking_pids(%s)", (pid,))
            return list(cur.fetchone()[0])

    def close_all(self) -> None:
        for session in self.opened:
            try:
                session.conn.cancel()
            except psycopg2.Error:
                pass
            try:
                session.conn.close()
            except psycopg2.Error:
                pass
        for session in self.opened:
            if session.thread is not None:
                session.thread.join(timeout=5)
        # Make sure the server has let go of them before the next test counts sessions.
        pids = [s.pid for s in self.opened]
        if pids:
            wait_for(lambda: not activity(self.admin, pids), timeout=10, what="test sessions to close")
        self.opened.clear()


def role_sessions(admin, name: str) -> list[int]:
    with admin.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s", (name,))
        return [row[0] for row in cur.fetchall()]


def assert_no_secret(result: dict[str, t.Any], secrets: t.Iterable[str]) -> None:
    """No password appears anywhere in a module result, `invocation` included."""
    serialized = json.dumps(result, default=str)
    for secret in secrets:
        assert secret not in serialized, "a password leaked into the module result"
    module_args = result.get("invocation", {}).get("module_args", {})
    if "login_password" in module_args and module_args["login_password"] is not None:
        assert module_args["login_password"] == NO_LOG_MARKER


def assert_clean_failure(result: dict[str, t.Any]) -> str:
    """A failure the operator can act on: failed, a message, and no Python traceback."""
    assert result.get("failed") is True, result
    message = result.get("msg") or ""
    assert message, result
    assert "Traceback" not in result.get("_stderr", "")
    assert "Traceback" not in message
    assert "exception" not in result or "Traceback" not in str(result["exception"])
    assert "module_stderr" not in result
    return message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
