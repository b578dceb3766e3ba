"""The drill's fault: an application that takes a row lock, leaves its transaction open (idle in
transaction) and goes away, while WAITERS other sessions queue behind it.

    python3 lock_holder.py STATE_FILE WAITERS          (connection from PG* environment variables)

Writes STATE_FILE once every waiter waits: {"pid": own PID, "blocker": backend PID, "waiters": [...]};
rewrites it when every waiter has finished ({"finished": true, "errors": [...]}). Exits then, or
after 600 seconds.
"""

import json
import os
import sys
import threading
import time

import psycopg2

state_file, count = sys.argv[1], int(sys.argv[2])


def connect(autocommit):
    conn = psycopg2.connect(application_name="drill-lock-holder", connect_timeout=10)
    conn.autocommit = autocommit
    return conn


def pid_of(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


setup = connect(True)
with setup.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS drill_orders (id int PRIMARY KEY, n int NOT NULL)")
    cur.execute("INSERT INTO drill_orders VALUES (1, 0) ON CONFLICT DO NOTHING")
setup.close()

blocker = connect(False)
with blocker.cursor() as cur:
    cur.execute("UPDATE drill_orders SET n = n + 1 WHERE id = 1")
blocker_pid = pid_of(blocker)

errors = []
waiters = [connect(True) for _i in range(count)]
waiter_pids = [pid_of(c) for c in waiters]


def wait(conn):
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE drill_orders SET n = n + 1 WHERE id = 1")
    except psycopg2.Error as exc:
        errors.append(str(exc).strip())


threads = [threading.Thread(target=wait, args=(c,), daemon=True) for c in waiters]
for thread in threads:
    thread.start()
observer = connect(True)
deadline = time.monotonic() + 60
while True:
    with observer.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND cardinality(pg_blocking_pids(pid)) > 0",
                    (waiter_pids,))
        if cur.fetchone()[0] == count:
            break
    if time.monotonic() > deadline:
        sys.exit("the waiters never queued behind the blocker")
    time.sleep(0.1)
observer.close()
with open(state_file, "w") as out:
    json.dump({"pid": os.getpid(), "blocker": blocker_pid, "waiters": waiter_pids}, out)

deadline = time.monotonic() + 600
for thread in threads:
    thread.join(timeout=max(0.0, deadline - time.monotonic()))
with open(state_file, "w") as out:
    json.dump({"pid": os.getpid(), "blocker": blocker_pid, "waiters": waiter_pids,
               "finished": not any(t.is_alive() for t in threads), "errors": errors}, out)
# Keep the waiters' connections, so verify can see that they were not terminated; destroy stops us.
time.sleep(max(0.0, deadline - time.monotonic()))
