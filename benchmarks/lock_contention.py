"""Benchmark: lock_contention with 200 waiters behind one blocker, the playbook end to end vs the
runbooks' manual psql sequence vs Ansible's floor. Numbers, not a test.

    .venv/bin/python benchmarks/lock_contention.py [--rounds 3] [--waiters 200]

Each round injects the fault afresh on the lab PostgreSQL (started if it is not running, stopped
at the end only then): one session updates a row of a table of its own and leaves its transaction
open (idle in transaction), WAITERS autocommit sessions run an UPDATE of the same row and queue.
The clock starts once every waiter waits and the blocker's transaction is older than 1 s.

  (a) playbook: ansible-playbook playbooks/outage/lock_contention.yml -l lab-postgres (thresholds
      1 s); its verify step returns once the waiters have proceeded, so (a) is time-to-healed.
  (b) manual:   psql -c "SELECT * FROM pg_locks WHERE NOT granted" then psql -c
      "SELECT pg_terminate_backend(pid) ... every PID in some pg_blocking_pids()" (the runbooks'
      one-liner made valid SQL), then until every waiter's UPDATE has returned.
  (c) floor:    an empty play with the same inventory and limit.

Also printed: how many sessions each way terminated. With row locks the waiters queue behind the
first waiter's tuple lock, so "every blocker" includes a waiter; the playbook ends the root only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))

import psycopg2  # noqa: E402

import sre_testlib  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "outage" / "lock_contention.yml"
APP = "bench-lock-contention"


def lab_conn(v: dict, user: str, password: str, dbname: str, autocommit: bool = True):
    conn = psycopg2.connect(host=v["lab_bind_address"], port=int(v["lab_pg_port"]), user=user, password=password,
                            dbname=dbname, application_name=APP, connect_timeout=10)
    conn.autocommit = autocommit
    return conn


class Fault:
    """One blocker, N waiters; everything closed by close()."""

    def __init__(self, v: dict, waiters: int) -> None:
        self.v = v
        app = (v["lab_pg_app_user"], v["lab_pg_app_password"], v["lab_pg_app_user"])
        setup = lab_conn(v, *app)
        with setup.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_lock (id int PRIMARY KEY, n int NOT NULL)")
            cur.execute("INSERT INTO bench_lock VALUES (1, 0) ON CONFLICT DO NOTHING")
        setup.close()
        self.admin = lab_conn(v, v["lab_pg_superuser"], v["lab_pg_password"], "postgres")
        self.blocker = lab_conn(v, *app, autocommit=False)
        with self.blocker.cursor() as cur:
            cur.execute("UPDATE bench_lock SET n = n + 1 WHERE id = 1")
            cur.execute("SELECT pg_backend_pid()")
            self.blocker_pid = cur.fetchone()[0]
        self.waiters = [lab_conn(v, *app) for _i in range(waiters)]
        self.pids = []
        for conn in self.waiters:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                self.pids.append(cur.fetchone()[0])
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._wait, args=(c,), daemon=True) for c in self.waiters]
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 120
        while self._count("cardinality(pg_blocking_pids(pid)) > 0") < waiters:
            if time.monotonic() > deadline:
                raise SystemExit("the waiters never all queued")
            time.sleep(0.1)
        while self._count("now() - state_change > interval '1.2 seconds'") < waiters:
            time.sleep(0.1)

    def _count(self, condition: str) -> int:
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND {condition}",  # noqa: S608
                        (self.pids,))
            return cur.fetchone()[0]

    def _wait(self, conn) -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("UPDATE bench_lock SET n = n + 1 WHERE id = 1")
        except psycopg2.Error as exc:
            self.errors.append(str(exc).strip().splitlines()[0])

    def wait_proceeded(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return time.monotonic()

    def killed(self) -> int:
        with self.admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", ([self.blocker_pid] + self.pids,))
            return 1 + len(self.pids) - cur.fetchone()[0]

    def close(self) -> None:
        for conn in [self.blocker, *self.waiters]:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        self.admin.close()


def playbook(args: list[str]) -> float:
    start = time.monotonic()
    proc = subprocess.run([str(sre_testlib.VENV_BIN / "ansible-playbook"), *args, "-i", str(sre_testlib.LAB_INVENTORY),
                           "-l", "lab-postgres"], cwd=REPO, capture_output=True, text=True, check=False,
                          env=sre_testlib.ansible_env({}), timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed: {proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return time.monotonic() - start


def psql(v: dict, sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-h", v["lab_bind_address"], "-p", str(v["lab_pg_port"]),
                    "-U", v["lab_pg_superuser"], "-d", v["lab_pg_app_user"], "-c", sql],
                   env=dict(os.environ, PGPASSWORD=v["lab_pg_password"]), check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--waiters", type=int, default=200)
    opts = parser.parse_args()
    v = sre_testlib.lab_vars()
    rows = []
    with sre_testlib.lab_running("pg"), tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "floor.yml"
        empty.write_text("- name: Floor\n  hosts: postgresql\n  gather_facts: false\n  tasks: []\n")
        extra = ["-e", "lock_contention_min_transaction_age=1s", "-e", "lock_contention_min_wait=1s"]
        for round_no in range(1, opts.rounds + 1):
            fault = Fault(v, opts.waiters)
            try:
                start = time.monotonic()
                a = playbook([str(PLAYBOOK), *extra])
                a_healed = fault.wait_proceeded() - start
                a_killed, a_errors = fault.killed(), len(fault.errors)
            finally:
                fault.close()
            fault = Fault(v, opts.waiters)
            try:
                start = time.monotonic()
                psql(v, "SELECT * FROM pg_locks WHERE NOT granted")
                psql(v, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid IN (SELECT unnest(pg_blocking_pids(pid)) FROM pg_stat_activity)")
                b_healed = fault.wait_proceeded() - start
                b_killed, b_errors = fault.killed(), len(fault.errors)
            finally:
                fault.close()
            c = playbook([str(empty)])
            rows.append((a, a_healed, b_healed, c))
            print(f"round {round_no}: (a) playbook {a:.2f}s (waiters done {a_healed:.2f}s, terminated {a_killed}, "
                  f"waiter errors {a_errors}); (b) psql {b_healed:.2f}s (terminated {b_killed}, waiter errors "
                  f"{b_errors}); (c) floor {c:.2f}s", flush=True)
        admin = lab_conn(v, v["lab_pg_app_user"], v["lab_pg_app_password"], v["lab_pg_app_user"])
        with admin.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_lock")
        admin.close()
    med = [statistics.median(col) for col in zip(*rows)]
    print(f"median over {len(rows)} rounds, {opts.waiters} waiters: (a) {med[0]:.2f}s, (b) {med[2]:.2f}s, "
          f"(c) {med[3]:.2f}s; a/b {med[0] / med[2]:.1f}x, a-c {med[0] - med[3]:.2f}s")


if __name__ == "__main__":
    main()
