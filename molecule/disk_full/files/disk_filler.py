#!/usr/bin/python3
"""Fill a small filesystem to 100 % the way a real disk-full outage does, and hold it full.

    disk_filler.py ROOT READY_FILE

Under ROOT: backups/ with an old backup (9 days) and a new one; log/ with three rotated logs
(10 days old, plain text), the live app.log held open, and debug.log written until the
filesystem refuses (ENOSPC), then deleted while still open: its blocks stay in use, invisible
to `du` and `ls`. Writes READY_FILE (JSON) when the disk is full, then holds the files open
until it is stopped. Run it as a transient unit (systemd-run) so stopping the unit ends it.
"""

import errno
import json
import os
import signal
import sys
import time

MIB = 1024 * 1024


def write_file(path, size, age_days=0.0, text=True):
    line = b"2026-11-20T03:00:00Z INFO request handled path=/api/items status=200 ms=12\n"
    with open(path, "wb") as fh:
        if text:
            chunk = line * (MIB // len(line) + 1)
            for _chunk in range(size // MIB):
                fh.write(chunk[:MIB])
        else:
            fh.write(os.urandom(size))
    if age_days:
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))


def main():
    root, ready = sys.argv[1], sys.argv[2]
    for sub in ("log", "backups"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    write_file(os.path.join(root, "backups", "db-old.sql.gz"), 12 * MIB, age_days=9, text=False)
    write_file(os.path.join(root, "backups", "db-new.sql.gz"), 4 * MIB, text=False)
    for i in (1, 2, 3):
        write_file(os.path.join(root, "log", f"app.log.{i}"), 6 * MIB, age_days=10 + i)
    live = open(os.path.join(root, "log", "app.log"), "ab")  # noqa: SIM115 - held open on purpose
    live.write(b"app started\n" * 4096)
    live.flush()
    debug_path = os.path.join(root, "log", "debug.log")
    debug = open(debug_path, "wb", buffering=0)  # noqa: SIM115 - held open on purpose
    written = 0
    chunk = 1 * MIB
    while chunk >= 4096:
        try:
            written += debug.write(b"d" * chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            chunk //= 2
    os.unlink(debug_path)
    st = os.statvfs(root)
    with open(ready + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"pid": os.getpid(), "deleted_open_bytes": written,
                   "available_bytes": st.f_bavail * st.f_frsize}, fh)
    os.rename(ready + ".tmp", ready)
    signal.pause()
    live.close()
    debug.close()


if __name__ == "__main__":
    main()
