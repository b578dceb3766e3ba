"""Fault injector: hold many idle and idle-in-transaction PostgreSQL connections open.

The connection-exhaustion fault of the runbooks: an application that leaks connections.
Connects with libpq settings from the environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE), writes the backend PIDs as JSON to --ready-file once every connection is open,
then sleeps until SIGTERM or --max-seconds (bounded, so a forgotten injector ends itself).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import sys
import time

import psycopg2


def open_connection(app_name: str, in_transaction: bool):
    conn = psycopg2.connect(application_name=app_name, connect_timeout=10)
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    if not in_transaction:
        conn.commit()  # leaves the backend 'idle'; otherwise it stays 'idle in transaction'
    return conn, pid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--idle-in-transaction", type=int, default=20)
    parser.add_argument("--application-name", default="fault-injector")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    plan = [False] * args.idle + [True] * args.idle_in_transaction
    conns, idle_pids, tx_pids = [], [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(open_connection, args.application_name, in_tx) for in_tx in plan]
        for future, in_tx in zip(futures, plan):
            try:
                conn, pid = future.result()
            except psycopg2.Error as exc:
                print(f"hold_connections: could not open a connection: {exc}".strip(), file=sys.stderr)
                continue
            conns.append(conn)
            (tx_pids if in_tx else idle_pids).append(pid)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"pid": os.getpid(), "idle": idle_pids, "idle_in_transaction": tx_pids}, fh)
    os.replace(tmp, args.ready_file)
    deadline = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < deadline:
        time.sleep(0.2)
    for conn in conns:
        try:
            conn.close()
        except psycopg2.Error:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
