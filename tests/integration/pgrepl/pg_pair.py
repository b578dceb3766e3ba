"""The lab PostgreSQL pair (lab/pg primary + lab/pgrepl standby): addresses, faults and restore."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import psycopg2

import sre_testlib

PGBIN = "/usr/lib/postgresql/15/bin"
DB_DOWN_PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_down.yml"
DB_DOWN_RECORD_TASK = "sre.runbooks.db_down : Record | structured result for the incident timeline"
DB_DOWN_HOST = "lab-postgres-pair"


class Pair(t.NamedTuple):
    host: str
    primary_port: int
    standby_port: int
    superuser: str
    password: str
    app_password: str
    state_dir: Path
    bouncer_port: int = 0

    @property
    def primary(self) -> str:
        return f"{self.host}:{self.primary_port}"

    @property
    def standby(self) -> str:
        return f"{self.host}:{self.standby_port}"

    @property
    def primary_data(self) -> Path:
        return self.state_dir / "pg" / "data"

    @property
    def secrets(self) -> list[str]:
        return [self.password, self.app_password]

    def login(self, **extra: t.Any) -> dict[str, t.Any]:
        return dict(nodes=[self.primary, self.standby], login_user=self.superuser, login_password=self.password,
                    connect_timeout=3, **extra)


def pair_settings() -> Pair:
    v = sre_testlib.lab_vars()
    return Pair(host=v["lab_bind_address"], primary_port=int(v["lab_pg_port"]),
                standby_port=int(v["lab_pg_standby_port"]), superuser=v["lab_pg_superuser"],
                password=v["lab_pg_password"], app_password=v["lab_pg_app_password"],
                state_dir=Path(v["lab_state_dir"]), bouncer_port=int(v["lab_pgbouncer_port"]))


def sql(pair: Pair, port: int, statement: str) -> t.Any:
    conn = psycopg2.connect(host=pair.host, port=port, user=pair.superuser, password=pair.password,
                            dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.close()


def answers(pair: Pair, port: int) -> bool:
    try:
        sql(pair, port, "SELECT 1")
        return True
    except psycopg2.Error:
        return False


def wait_for(predicate: t.Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except psycopg2.Error:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def streaming(pair: Pair) -> bool:
    return sql(pair, pair.primary_port, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") >= 1


def as_postgres(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                          timeout=120, check=check)


def stop_primary(pair: Pair) -> None:
    as_postgres(f"{PGBIN}/pg_ctl", "-D", str(pair.primary_data), "-m", "fast", "-w", "-t", "60", "stop")


def alive(pid: int) -> bool:
    """A running process (a zombie waiting for its reaper does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def exists(pid: int) -> bool:
    """kill -0: true for a running process and for a zombie not yet reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_primary(pair: Pair) -> int:
    """SIGKILL the primary's postmaster (the host stays up); its children exit on postmaster death."""
    pid = int((pair.primary_data / "postmaster.pid").read_text().splitlines()[0])
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not answers(pair, pair.primary_port), 30, "the killed primary to stop answering")
    # Its children notice the postmaster's death and exit; until they have, the shared memory is in
    # use and a restart would refuse to start.
    wait_for(lambda: not any(alive(int(child)) for child in children), 60,
             "the killed primary's children to exit")
    # Until its reaper collects it, the dead postmaster is a zombie that `pg_ctl status` (kill -0)
    # still counts as running: a restart would think there is nothing to start.
    wait_for(lambda: not exists(pid), 60, "the killed postmaster to be reaped")
    return pid


def restore(pair: Pair) -> None:
    """Back to the healthy pair: the lab primary running (crash recovery after a SIGKILL; its
    leftover children may need a moment to exit), the standby rebuilt if it was promoted."""
    deadline = time.monotonic() + 90
    while True:
        proc = subprocess.run([str(sre_testlib.REPO / "lab" / "pg" / "up")], capture_output=True, text=True,
                              timeout=120, check=False)
        if proc.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"lab/pg/up failed: {proc.stderr[-2000:]}")
        time.sleep(1)
    restore_pooler(pair)
    sre_testlib.lab("pgrepl", "up")
    wait_for(lambda: streaming(pair), 60, "the standby to stream again")


def pooler_ini(pair: Pair) -> Path:
    return pair.state_dir / "pg" / "pgbouncer.ini"


def pooler_admin(pair: Pair, statement: str) -> list[tuple]:
    conn = psycopg2.connect(host=pair.host, port=pair.bouncer_port, user=pair.superuser, password=pair.password,
                            dbname="pgbouncer", connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def restore_pooler(pair: Pair) -> None:
    """lab/pg's pgbouncer back on the lab primary (as lab/pg/up writes it) after a test re-pointed it."""
    ini = pooler_ini(pair)
    want = f"* = host={pair.state_dir / 'pg' / 'run'} port={pair.primary_port}"
    lines = ini.read_text().splitlines(keepends=True)
    fixed = [want + "\n" if line.startswith("* =") else line for line in lines]
    if fixed != lines:
        ini.write_text("".join(fixed))  # in place: owner and mode stay
        pooler_admin(pair, "RELOAD")


def app_via_pooler(pair: Pair, statement: str) -> t.Any:
    """statement as the application: its own role, through pgbouncer."""
    v = sre_testlib.lab_vars()
    conn = psycopg2.connect(host=pair.host, port=pair.bouncer_port, user=v["lab_pg_app_user"],
                            password=pair.app_password, dbname=v["lab_pg_app_user"], connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchone()[0]
    finally:
        conn.close()


class HeldConnections:
    """lab/pg/hold_connections.py as the superuser: every connection slot of the primary taken."""

    def __init__(self, pair: Pair, count: int, tmp: Path) -> None:
        self.ready = tmp / "held.json"
        env = dict(os.environ, PGHOST=pair.host, PGPORT=str(pair.primary_port), PGUSER=pair.superuser,
                   PGPASSWORD=pair.password, PGDATABASE="postgres")
        self.proc = subprocess.Popen(
            [sre_testlib.python_bin(), str(sre_testlib.REPO / "lab" / "pg" / "hold_connections.py"),
             "--idle", str(count), "--idle-in-transaction", "0", "--ready-file", str(self.ready),
             "--max-seconds", "600"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 180
        while not (self.ready.exists() and self.ready.stat().st_size):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("hold_connections.py did not open its connections")
            time.sleep(0.1)
        self.pids = json.loads(self.ready.read_text())["idle"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_db_down(pair: Pair, extra: dict[str, t.Any], **kwargs) -> tuple[dict, dict]:
    """db_down on the lab pair (extra vars as given): the run must pass and never show a lab
    password; returns the JSON report and the role's record (db_down_result)."""
    rc, report, stderr = sre_testlib.run_playbook(DB_DOWN_PLAYBOOK, extra_vars=extra, limit=DB_DOWN_HOST, **kwargs)
    text = json.dumps(report) + stderr
    for secret in pair.secrets:
        assert secret not in text, "a lab password appears in the playbook output"
    assert rc == 0, f"ansible-playbook failed (rc={rc}): {stderr[-2000:]}\n{text[-3000:]}"
    return report, sre_testlib.task_results(report, DB_DOWN_RECORD_TASK)[DB_DOWN_HOST]["ansible_facts"]["db_down_result"]


def db_down_changed(report: dict) -> int:
    return report["stats"][DB_DOWN_HOST]["changed"]
