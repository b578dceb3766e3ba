#!/usr/bin/env python
"""Write-unavailability window of a PostgreSQL primary SIGKILL on the lab pair (issue 15).

The lab pair: lab/pg (the primary, pgbouncer in front of it) and lab/pgrepl (a standby streaming
from it). A writer INSERTs a row every 20 ms into the node it is pointed at (autocommit, one
connection, reconnecting after an error). The window is the time from its first failed write to its
first successful write on whichever node is the primary then. Per round, after a SIGKILL of the
primary's postmaster (its host stays up; the script waits until the killed postmaster's children
have exited, as tests/integration/pgrepl/pg_pair.py does, before anything starts):

  (a) ansible-playbook playbooks/outage/db_down.yml -i inventories/lab -l lab-postgres-pair, started at
      once. For a killed primary on a live host its verdict is a restart (db_down_restart_command,
      lab/pg/up in the lab), not a promotion; the writer keeps writing to the same port.
  (a2) the playbook's remedy by hand: its restart command alone (lab/pg/up), no Ansible.
  (b) the human's sequence from the runbook: `pg_ctl promote` of the standby's data directory as its
      owner (postgres), then the writer is switched to the standby's port. Nothing fences the old
      primary and nothing re-points pgbouncer: the script reports both.
  (c) Ansible's floor: an empty play (hosts: postgresql_replication, gather_facts: false, no tasks)
      with the same inventory and limit, on the healthy pair.

It also counts writes the writer had been told were committed before the kill and that the node
accepting writes afterwards does not have (lost writes; the lab primary runs with
synchronous_commit = off and the standby replicates asynchronously).

    benchmarks/db_down [--rounds N]        (wrapper: the venv python)
    flock /tmp/sre-lab.lock .venv/bin/python benchmarks/db_down.py --rounds 3

Starts lab/pg and lab/pgrepl when they are not running and stops them at the end only in that case.
Restores the pristine pair (primary 25432, standby 25434 streaming) after every round and at the end.
Not a test: nothing here runs in `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "pgrepl"))

import psycopg2  # noqa: E402

import sre_testlib  # noqa: E402
from pg_pair import (PGBIN, Pair, as_postgres, kill_primary, pair_settings, pooler_ini, restore, sql,  # noqa: E402
                     streaming, wait_for)

PLAYBOOK = REPO / "playbooks" / "outage" / "db_down.yml"
HOST = "lab-postgres-pair"
RECORD_TASK = "sre.runbooks.db_down : Record | structured result for the incident timeline"
TABLE = "sre_bench_db_down"
INTERVAL = 0.02


class Writer(threading.Thread):
    """INSERT every 20 ms into the node on self.port (the script may switch it); measures the gap."""

    def __init__(self, pair: Pair, port: int) -> None:
        super().__init__(daemon=True)
        self.pair = pair
        self.port = port
        self.first_failure: float | None = None
        self.recovered: float | None = None
        self.recovered_port: int | None = None
        self.acked: list[int] = []  # ids committed (as far as the writer was told) before the first failure
        self.writes = self.failures = 0
        self.stop = threading.Event()

    def connect(self, port: int) -> t.Any:
        conn = psycopg2.connect(host=self.pair.host, port=port, user=self.pair.superuser, password=self.pair.password,
                                dbname="postgres", connect_timeout=2, application_name="sre-bench-writer",
                                options="-c statement_timeout=2000")
        conn.autocommit = True
        return conn

    def run(self) -> None:
        conn, conn_port = None, None
        while not self.stop.is_set():
            started = time.monotonic()
            port = self.port
            try:
                if conn is None or conn_port != port:
                    if conn is not None:
                        conn.close()
                    conn, conn_port = None, None
                    conn, conn_port = self.connect(port), port
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {TABLE} DEFAULT VALUES RETURNING id")
                    row_id = cur.fetchone()[0]
                self.writes += 1
                if self.first_failure is None:
                    self.acked.append(row_id)
                elif self.recovered is None:
                    self.recovered, self.recovered_port = time.monotonic(), port
            except psycopg2.Error:
                self.failures += 1
                if self.first_failure is None:
                    self.first_failure = time.monotonic()
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()
                conn, conn_port = None, None
            time.sleep(max(0.0, INTERVAL - (time.monotonic() - started)))
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def warm_up(self, writes: int = 25, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.writes < writes:
            if self.first_failure is not None or time.monotonic() > deadline:
                raise SystemExit(f"the writer could not write to the healthy primary ({self.writes} writes)")
            time.sleep(0.05)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.recovered is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        self.join(5)

    @property
    def window(self) -> float | None:
        if self.recovered is None or self.first_failure is None:
            return None
        return self.recovered - self.first_failure


def lost_writes(pair: Pair, port: int, acked: list[int]) -> int:
    """How many of the ids acknowledged before the kill the node on port does not have."""
    conn = psycopg2.connect(host=pair.host, port=port, user=pair.superuser, password=pair.password,
                            dbname="postgres", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {TABLE} WHERE id = ANY(%s)", (acked,))
            return len(acked) - cur.fetchone()[0]
    finally:
        conn.close()


def pristine(pair: Pair) -> None:
    """Primary 25432, standby 25434 streaming, pgbouncer on the primary, the writer's table on both."""
    restore(pair)
    sql(pair, pair.primary_port, f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
                                 "at timestamptz NOT NULL DEFAULT clock_timestamp())")
    wait_for(lambda: sql(pair, pair.standby_port, f"SELECT to_regclass('{TABLE}') IS NOT NULL"), 60,
             "the standby to replay the writer's table")
    assert not sql(pair, pair.primary_port, "SELECT pg_is_in_recovery()")
    assert sql(pair, pair.standby_port, "SELECT pg_is_in_recovery()")


def pooler_target(pair: Pair) -> str:
    for line in pooler_ini(pair).read_text().splitlines():
        if line.startswith("* ="):
            return line.split("=", 1)[1].strip()
    return "?"


def fault(pair: Pair) -> tuple[Writer, float, float]:
    """The pristine pair, the writer writing to the primary, then the primary SIGKILLed; returns the
    writer, when the kill was sent and when the killed postmaster's children had exited."""
    pristine(pair)
    writer = Writer(pair, pair.primary_port)
    writer.start()
    writer.warm_up()
    killed = time.monotonic()
    kill_primary(pair)
    return writer, killed, time.monotonic()


def start_primary() -> None:
    """lab/pg/up, retried while the killed primary's leftovers make it refuse (as pg_pair.restore does)."""
    deadline = time.monotonic() + 90
    while True:
        proc = subprocess.run([str(REPO / "lab" / "pg" / "up")], capture_output=True, text=True, timeout=120,
                              check=False)
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"lab/pg/up failed: {proc.stderr[-2000:]}")
        time.sleep(1)


def bench_playbook(pair: Pair) -> dict[str, t.Any]:
    writer, killed, started = fault(pair)
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, limit=HOST)
    done = time.monotonic()
    writer.wait(60)
    for secret in pair.secrets:
        if secret in stderr or secret in str(report):
            raise SystemExit("a lab password appears in the playbook output")
    if rc != 0:
        raise SystemExit(f"the playbook failed (rc={rc}): {stderr[-2000:]}")
    record = sre_testlib.task_results(report, RECORD_TASK)[HOST]["ansible_facts"]["db_down_result"]
    out = dict(window=writer.window, kill_to_start=started - killed, kill_to_done=done - killed,
               playbook=done - started, port=writer.recovered_port, failures=writer.failures,
               first_failure_after_kill=(writer.first_failure - killed) if writer.first_failure else None,
               did=f"{record.get('outcome')}: action {record.get('action')}, "
                   + ", ".join(f"{a.get('action')} {a.get('target')}" for a in record.get("actions", [])),
               promoted=bool(sql(pair, pair.standby_port, "SELECT NOT pg_is_in_recovery()")))
    out["lost"] = lost_writes(pair, writer.recovered_port or pair.primary_port, writer.acked)
    out["acked"] = len(writer.acked)
    return out


def bench_restart(pair: Pair) -> dict[str, t.Any]:
    writer, killed, started = fault(pair)
    start_primary()
    done = time.monotonic()
    writer.wait(60)
    out = dict(window=writer.window, kill_to_done=done - killed, restart=done - started, port=writer.recovered_port)
    out["lost"] = lost_writes(pair, writer.recovered_port or pair.primary_port, writer.acked)
    out["acked"] = len(writer.acked)
    return out


def bench_human(pair: Pair) -> dict[str, t.Any]:
    writer, killed, started = fault(pair)
    proc = as_postgres(f"{PGBIN}/pg_ctl", "-D", str(pair.state_dir / "pgrepl" / "data"), "-w", "-t", "60",
                       "promote", check=False)
    promoted = time.monotonic()
    writer.port = pair.standby_port  # the application is pointed at the standby
    writer.wait(60)
    if proc.returncode != 0:
        raise SystemExit(f"pg_ctl promote failed: {proc.stderr[-2000:]}")
    out = dict(window=writer.window, kill_to_start=started - killed, kill_to_done=promoted - killed,
               promote=promoted - started, port=writer.recovered_port, failures=writer.failures,
               first_failure_after_kill=(writer.first_failure - killed) if writer.first_failure else None,
               pooler=pooler_target(pair))
    out["lost"] = lost_writes(pair, writer.recovered_port or pair.standby_port, writer.acked)
    out["acked"] = len(writer.acked)
    # Nothing fenced the old primary: whatever restarts it (here lab/pg/up, as a systemd unit's
    # Restart= or a reboot would) brings it back as a second primary next to the promoted standby.
    start_primary()
    out["two_primaries"] = (not sql(pair, pair.primary_port, "SELECT pg_is_in_recovery()")
                            and not sql(pair, pair.standby_port, "SELECT pg_is_in_recovery()"))
    return out


def bench_floor(pair: Pair, playbook: Path) -> float:
    pristine(pair)
    started = time.monotonic()
    rc, _report, stderr = sre_testlib.run_playbook(playbook, limit=HOST)
    took = time.monotonic() - started
    if rc != 0:
        raise SystemExit(f"the empty play failed (rc={rc}): {stderr[-2000:]}")
    return took


def fmt(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    missing = len(values) - len(got)
    tail = f"  ({missing} without recovery)" if missing else ""
    if not got:
        return "no recovery"
    if len(got) == 1:
        return f"{got[0]:7.3f} s{tail}"
    return (f"median {statistics.median(got):7.3f} s  min {min(got):.3f}  max {max(got):.3f}  "
            f"[{' '.join(f'{v:.2f}' for v in got)}]{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pair = pair_settings()
    load_before = os.getloadavg()
    rows: dict[str, list] = {}
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(sre_testlib.lab_running("pg"))
        stack.enter_context(sre_testlib.lab_running("pgrepl"))
        wait_for(lambda: streaming(pair), 60, "the standby to stream")
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="sre-bench-db-down-"))
        empty = Path(scratch) / "empty.yml"
        empty.write_text("---\n- name: Floor\n  hosts: postgresql_replication\n  gather_facts: false\n  tasks: []\n")
        try:
            for n in range(1, args.rounds + 1):
                a = bench_playbook(pair)
                rows.setdefault("(a) playbook: write window", []).append(a["window"])
                rows.setdefault("(a) playbook: kill -> playbook done", []).append(a["kill_to_done"])
                rows.setdefault("(a) playbook: its own wall time", []).append(a["playbook"])
                notes.append(f"round {n} (a): {a['did']}; writes back on port {a['port']}; "
                             f"standby promoted: {a['promoted']}; playbook started {a['kill_to_start']:.2f} s after "
                             f"the kill; first failed write {a['first_failure_after_kill'] or 0:.2f} s after it; "
                             f"{a['failures']} failed writes; lost {a['lost']} of {a['acked']} acknowledged")
                r = bench_restart(pair)
                rows.setdefault("(a2) restart command alone (lab/pg/up): write window", []).append(r["window"])
                rows.setdefault("(a2) restart command alone: its own wall time", []).append(r["restart"])
                notes.append(f"round {n} (a2): writes back on port {r['port']}; lost {r['lost']} of {r['acked']} "
                             "acknowledged")
                b = bench_human(pair)
                rows.setdefault("(b) pg_ctl promote + writer re-pointed: write window", []).append(b["window"])
                rows.setdefault("(b) pg_ctl promote: kill -> promoted", []).append(b["kill_to_done"])
                rows.setdefault("(b) pg_ctl promote: its own wall time", []).append(b["promote"])
                notes.append(f"round {n} (b): writes back on port {b['port']}; promote started "
                             f"{b['kill_to_start']:.2f} s after the kill; {b['failures']} failed writes; lost "
                             f"{b['lost']} of {b['acked']} acknowledged; pgbouncer still -> {b['pooler']}; old "
                             f"primary restarted by lab/pg/up: two primaries = {b['two_primaries']}")
                rows.setdefault("(c) empty play (Ansible's floor)", []).append(bench_floor(pair, empty))
                print(f"round {n} done", file=sys.stderr, flush=True)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - print the rounds measured so far
            notes.append(f"stopped early: {exc}")
        finally:
            try:
                restore(pair)
                sql(pair, pair.primary_port, f"DROP TABLE IF EXISTS {TABLE}")
            except Exception as exc:  # noqa: BLE001 - report, the lab_running exits still run
                print(f"could not restore the pair: {exc}", file=sys.stderr)
    load = os.getloadavg()
    print(f"PostgreSQL primary SIGKILL, lab pair (primary {pair.primary_port}, standby {pair.standby_port}), "
          f"writer INSERT every {INTERVAL * 1000:.0f} ms, {args.rounds} round(s); load average (1/5/15 min) "
          f"before {' '.join(f'{v:.2f}' for v in load_before)}, after {' '.join(f'{v:.2f}' for v in load)}; "
          f"{os.cpu_count()} CPUs")
    for name, values in rows.items():
        print(f"  {name:<56} {fmt(values)}")
    for note in notes:
        print(f"  {note}")
    a_win = [v for v in rows.get("(a) playbook: write window", []) if v is not None]
    b_win = [v for v in rows.get("(b) pg_ctl promote + writer re-pointed: write window", []) if v is not None]
    floor = rows.get("(c) empty play (Ansible's floor)", [])
    if a_win and b_win and floor:
        a_med, b_med, c_med = statistics.median(a_win), statistics.median(b_win), statistics.median(floor)
        print(f"  a/b = {a_med / b_med:.1f}x   a - c = {a_med - c_med:.2f} s")


if __name__ == "__main__":
    main()
