#!/usr/bin/python3
"""Drill fault: an application that leaks PostgreSQL sessions through pgbouncer.

connection_hog.py IDLE IDLE_IN_TRANSACTION READY_FILE
Opens IDLE sessions left idle and IDLE_IN_TRANSACTION sessions left inside an open
transaction, all through pgbouncer as the application role, writes READY_FILE with the
counts and then holds them until it is stopped. It never reconnects: once the runbook
ends its sessions, they stay gone.
"""

import json
import os
import signal
import sys
import time

import psycopg2


def main() -> int:
    idle, in_transaction, ready_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    dsn = dict(host="127.0.0.1", port=6432, user=os.environ["HOG_USER"], dbname=os.environ["HOG_DB"],
               password=os.environ["HOG_PASSWORD"], application_name="drill-connection-hog",
               connect_timeout=5)
    held, errors = [], []
    for n in range(idle + in_transaction):
        try:
            conn = psycopg2.connect(**dsn)
            conn.autocommit = n < idle
            with conn.cursor() as cur:
                cur.execute("SELECT 1")  # makes pgbouncer hand this client a server backend
            held.append(conn)
        except psycopg2.Error as exc:
            errors.append(str(exc).strip().splitlines()[0])
            break
    with open(ready_file + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"held": len(held), "idle": min(idle, len(held)),
                   "idle_in_transaction": max(len(held) - idle, 0), "errors": errors, "pid": os.getpid()}, fh)
    os.rename(ready_file + ".tmp", ready_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
