"""Guards on the lab scripts for bugs that only a machine with empty caches shows, and for daemons
that kept the caller's lock (flock) open."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from sre_testlib import REPO

LAB_SCRIPTS = sorted(p for p in (REPO / "lab").rglob("*")
                     if p.is_file() and p.read_bytes().startswith(b"#!") and b"bash" in p.read_bytes()[:40])


def code_lines(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def test_lab_scripts_found():
    assert any(p.name == "build" and p.parent.name == "hosts" for p in LAB_SCRIPTS)


def test_every_chroot_runs_with_a_clean_environment():
    """A test run's TMPDIR leaked into the rootfs build once (ssl-cert's postinst failed on
    mktemp in the chroot): every chroot goes through one helper that clears the environment."""
    offenders = []
    for path in LAB_SCRIPTS:
        for number, line in code_lines(path):
            if re.search(r"(^|[\s;&|(])chroot\s", line) and "clean_env" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line}")
    assert not offenders, "chroot without the clean environment:\n" + "\n".join(offenders)


def test_rootfs_build_removes_its_partial_tree_when_killed():
    text = (REPO / "lab" / "hosts" / "build").read_text()
    assert re.search(r"^trap cleanup EXIT$", text, re.M)
    # EXIT traps do not run on a signal unless the signal is turned into an exit.
    assert re.search(r"^trap 'exit 130' INT TERM", text, re.M)
    assert "env -i" in text


# A command that starts a long-lived process, at a command position (not `die "redis-server ..."`).
DAEMON_START = re.compile(r"(^|[;&|(]\s*|\bexec\s+)(setsid|redis-server|redis-sentinel|as_pg\s+\S*pg_ctl\b.*\bstart\b"
                          r"|as_pg\s+pgbouncer)(?=\s|$)")


def test_every_daemon_start_drops_the_inherited_descriptors():
    """`flock /tmp/sre-lab.lock lab/lab X up` passes the lock's descriptor on: a daemon that kept it
    held the machine-wide lab lock long after `up` returned. Every start goes through lab_daemon,
    or execs in a subshell that called close_inherited_fds (lab/lib.sh) or closes them itself."""
    offenders = []
    for path in LAB_SCRIPTS:
        lines = path.read_text().splitlines()
        for number, line in code_lines(path):
            if not DAEMON_START.search(line) or "lab_daemon" in line:
                continue
            before = "\n".join(lines[max(0, number - 13):number - 1])
            if "close_inherited_fds" not in before and "exec $fd>&-" not in before:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line}")
    assert not offenders, "a daemon started with the caller's descriptors (use lab_daemon):\n" + "\n".join(offenders)


def wait_until(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)


def lock_is_free(lock) -> bool:
    return subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode == 0


def test_lab_daemon_leaves_the_callers_lock_free(tmp_path):
    """Run like `flock LOCK lab/lab X up`: a daemon started through lab_daemon (exec'd in a `&`
    job, or forked by a foreground command as pg_ctl and redis-server do) or after
    close_inherited_fds does not hold LOCK once the script returns; without them it does."""
    lock = tmp_path / "lab.lock"
    script = tmp_path / "up.sh"
    script.write_text(f"""
. "{REPO}/lab/lib.sh"
cd "{tmp_path}"
# Like pg_ctl start, pgbouncer -d, redis-server (daemonize yes): a foreground command that forks it.
forks() {{ setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! >forked.pid; }}
if [[ "${{1:-}}" == plain ]]; then forks; exit 0; fi
lab_daemon forks
lab_daemon setsid sleep 301 </dev/null >/dev/null 2>&1 &
echo $! >job.pid
(close_inherited_fds; exec setsid sleep 302) </dev/null >/dev/null 2>&1 &
echo $! >subshell.pid
# The script's own descriptors stay open: only the daemons' subshells close theirs.
exec 7>mine
lab_daemon true
[[ -e /proc/$$/fd/7 ]] || exit 3
""")
    pids = []
    try:
        proc = subprocess.run(["flock", str(lock), "bash", str(script)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        pids = [int((tmp_path / f"{name}.pid").read_text()) for name in ("forked", "job", "subshell")]
        for pid in pids:  # each one execs (bash, setsid, then sleep) on its own time
            wait_until(lambda pid=pid: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep",
                       f"PID {pid} ($!) to be the daemon itself")
            assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
        assert lock_is_free(lock), "a daemon started through lab_daemon still holds the caller's lock"

        # The control: the same daemon started plainly keeps the lock (the check above is not vacuous).
        (tmp_path / "forked.pid").unlink()
        proc = subprocess.run(["flock", str(lock), "bash", str(script), "plain"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        pids.append(int((tmp_path / "forked.pid").read_text()))
        assert not lock_is_free(lock)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
