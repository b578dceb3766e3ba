"""The drill's fault: a reporting job fires RUNAWAY queries that run for minutes (pg_sleep), next
to a billing job's long query (an application not on the allow-list) and an idle bystander.

    python3 slow_sessions.py STATE_FILE RUNAWAY        (connection from PG* environment variables)

Writes STATE_FILE once every query runs: {"pid": own PID, "runaway": [...], "protected": PID,
"bystander": PID}; rewrites it when every runaway query has ended ({"finished": true,
"cancelled": [PIDs whose query was cancelled], "errors": [other errors]}). Keeps every connection
open afterwards (verify checks they were cancelled, not terminated) until destroy stops it.
"""

import json
import os
import sys
import threading
import time

import psycopg2
import psycopg2.errors

state_file, count = sys.argv[1], int(sys.argv[2])


def connect(application):
    conn = psycopg2.connect(application_name=application, connect_timeout=10)
    conn.autocommit = True
    return conn


def pid_of(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


runaway = [connect("drill-slow-report") for _i in range(count)]
runaway_pids = [pid_of(c) for c in runaway]
protected = connect("drill-slow-billing")
bystander = connect("drill-slow-bystander")
cancelled, errors = [], []


def run(conn, pid):
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(300), 'report-for-customer-42' AS report")
    except psycopg2.errors.QueryCanceled:
        cancelled.append(pid)
    except psycopg2.Error as exc:
        errors.append(str(exc).strip())


threads = [threading.Thread(target=run, args=(c, p), daemon=True) for c, p in zip(runaway, runaway_pids)]
threads.append(threading.Thread(target=run, args=(protected, pid_of(protected)), daemon=True))
protected_pid = pid_of(protected)
for thread in threads:
    thread.start()
observer = connect("drill-slow-observer")
deadline = time.monotonic() + 60
while True:
    with observer.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'active'",
                    (runaway_pids + [protected_pid],))
        if cur.fetchone()[0] == count + 1:
            break
    if time.monotonic() > deadline:
        sys.exit("the slow queries never started")
    time.sleep(0.1)
observer.close()
state = {"pid": os.getpid(), "runaway": runaway_pids, "protected": protected_pid, "bystander": pid_of(bystander)}
with open(state_file, "w") as out:
    json.dump(state, out)

deadline = time.monotonic() + 300
for thread in threads[:-1]:
    thread.join(timeout=max(0.0, deadline - time.monotonic()))
with open(state_file, "w") as out:
    json.dump(dict(state, finished=not any(t.is_alive() for t in threads[:-1]), cancelled=sorted(cancelled),
                   errors=errors), out)
time.sleep(max(0.0, deadline - time.monotonic()))
