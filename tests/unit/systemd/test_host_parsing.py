"""Unit tests for plugins/module_utils/_host.py: /proc parsers, df arithmetic, OOM lines."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _host

MEMINFO = """\
MemTotal:        1000000 kB
MemFree:          100000 kB
MemAvailable:     250000 kB
Buffers:           10000 kB
Cached:           200000 kB
Shmem:              5000 kB
SwapTotal:        500000 kB
SwapFree:         400000 kB
"""


def test_meminfo_used_is_total_minus_available_like_free(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text(MEMINFO)
    info = _host.read_meminfo(str(path))
    assert info["memory"]["total_bytes"] == 1000000 * 1024
    assert info["memory"]["used_bytes"] == 750000 * 1024
    assert info["memory"]["used_percent"] == 75.0
    assert info["swap"]["used_bytes"] == 100000 * 1024
    assert info["swap"]["used_percent"] == 20.0


def test_no_swap_is_zero_percent_not_a_division_error(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal: 10 kB\nMemAvailable: 5 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    assert _host.read_meminfo(str(path))["swap"]["used_percent"] == 0.0


def test_mounts_skip_pseudo_filesystems_and_decode_escapes(tmp_path):
    path = tmp_path / "mounts"
    path.write_text(
        "proc /proc proc rw 0 0\n"
        "/dev/vda1 / ext4 rw 0 0\n"
        "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
        "/dev/vdb1 /srv/my\\040data xfs rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
    )
    mounts = _host.list_mounts(str(path))
    assert [m["mount"] for m in mounts] == ["/", "/srv/my data", "/run"]


def test_a_later_mount_on_the_same_point_hides_the_earlier(tmp_path):
    path = tmp_path / "mounts"
    path.write_text("/dev/vda1 /data ext4 rw 0 0\n/dev/vdb1 /data xfs rw 0 0\n")
    assert _host.list_mounts(str(path)) == [{"mount": "/data", "device": "/dev/vdb1", "fstype": "xfs"}]


def test_disk_usage_percent_matches_df_arithmetic():
    usage = _host.disk_usage({"mount": "/", "device": "x", "fstype": "y"})
    st = os.statvfs("/")
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    assert usage["used_bytes"] == used
    assert abs(usage["used_percent"] - 100.0 * used / (used + avail)) < 0.2


def test_disk_usage_of_a_vanished_mount_is_none():
    assert _host.disk_usage({"mount": "/nonexistent/sre-runbooks", "device": "x", "fstype": "y"}) is None


def test_largest_dirs_sorted_biggest_first_and_partial_answers_kept():
    out = "4096\t/var/log/apt\n9000000\t/var/log/journal\n500\t/var/log/nginx\n9004596\t/var/log\n"

    def run(cmd):
        assert cmd[:4] == ["du", "-x", "-B1", "--max-depth=1"] or cmd[:3] == ["du", "-B1", "--max-depth=1"]
        return 1, out, "du: cannot read directory '/var/log/private': Permission denied\n"

    result = _host.largest_dirs(run, "du", "/var/log", 2)
    assert [e["path"] for e in result["entries"]] == ["/var/log/journal", "/var/log/apt"]
    assert result["complete"] is False
    assert "Permission denied" in result["error"]


def test_kernel_oom_lines_are_parsed():
    lines = [
        "2026-11-24T07:00:00+0000 vm kernel: Out of memory: Killed process 4242 (java) total-vm:100kB, "
        "anon-rss:2048kB, file-rss:0kB",
        "2026-11-24T07:01:00+0000 vm kernel: Memory cgroup out of memory: Killed process 77 (redis-server) "
        "total-vm:1kB, anon-rss:1024kB",
        "2026-11-24T07:02:00+0000 vm kernel: eth0: link up",
    ]
    kills = _host.parse_kernel_oom(lines)
    assert [(k["pid"], k["name"], k["cgroup_limit"]) for k in kills] == [(4242, "java", False), (77, "redis-server", True)]
    assert kills[0]["anon_rss_bytes"] == 2048 * 1024
    assert kills[0]["timestamp"] == "2026-11-24T07:00:00+0000"


def test_unreadable_kernel_log_is_said_not_hidden(tmp_path):
    def run(cmd):
        raise AssertionError("no kernel log to ask journalctl about")
    result = _host.kernel_oom_kills(run, "journalctl", 3600, kmsg=str(tmp_path / "no-kmsg"))
    assert result == {"kernel_log_readable": False, "kills": []}


def test_readable_kernel_log_is_searched_since_the_given_time(tmp_path):
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("")
    calls = []

    def run(cmd):
        calls.append(cmd)
        return 0, "2026-11-24T07:00:00+0000 vm kernel: Out of memory: Killed process 9 (x) anon-rss:4kB\n", ""
    result = _host.kernel_oom_kills(run, "journalctl", 3600, kmsg=str(kmsg))
    assert result["kernel_log_readable"] is True and result["kills"][0]["pid"] == 9
    assert "-k" in calls[0] and any(a.startswith("--since=") for a in calls[0])


def test_top_processes_sees_this_process():
    top = _host.top_processes(500, 0.0)
    mine = [p for p in top["by_rss"] if p["pid"] == os.getpid()]
    assert mine and mine[0]["rss_bytes"] > 0
    assert top["process_count"] >= len(top["by_rss"])


def test_top_processes_measures_cpu_over_the_sample():
    top = _host.top_processes(3, 0.1)
    assert len(top["by_cpu"]) <= 3
    assert all(p["cpu_percent"] >= 0 for p in top["by_cpu"])


def test_oom_counter_from_vmstat(tmp_path):
    path = tmp_path / "vmstat"
    path.write_text("pgfault 1\noom_kill 3\n")
    assert _host.oom_kill_counter(str(path)) == 3
    assert _host.oom_kill_counter(str(tmp_path / "missing")) is None


def test_overlay_paths_are_measured_without_one_filesystem():
    calls = []

    def run(cmd):
        calls.append(cmd)
        return 0, "", ""
    _host.largest_dirs(run, "du", "/var/lib", 5, one_filesystem=False)
    assert "-x" not in calls[0]


def test_mount_of_picks_the_longest_containing_mount_point(tmp_path):
    path = tmp_path / "mounts"
    path.write_text("overlay / overlay rw 0 0\n/dev/vdb1 /var/lib xfs rw 0 0\n/dev/vdc1 /var/library xfs rw 0 0\n")
    assert _host.mount_of("/var/lib/postgresql", str(path))["fstype"] == "xfs"
    assert _host.mount_of("/var/log", str(path))["fstype"] == "overlay"


# --- issue 9: no secret from a process command line -------------------------------------------

CANARY = "c4nary-S3cret"


@pytest.mark.parametrize("argv, kept", [
    ([b"app", b"--password", CANARY.encode(), b"--port", b"80"], "app --password ******** --port 80"),
    ([b"app", f"--db-password={CANARY}".encode()], "app --db-password=********"),
    ([b"env", f"PGPASSWORD={CANARY}".encode(), b"psql"], "env PGPASSWORD=******** psql"),
    ([b"worker", f"--dsn=postgresql://app:{CANARY}@db1/app".encode()], "worker --dsn=********"),
    ([b"worker", f"postgresql://app:{CANARY}@db1/app".encode()], "worker postgresql://app:********@db1/app"),
    ([b"redis-server", b"--requirepass", CANARY.encode()], "redis-server --requirepass ********"),
    ([b"curl", b"-H", f"Authorization: Bearer {CANARY}".encode()], "curl -H Authorization: Bearer ********"),
    ([b"nginx:", b"worker", b"process"], "nginx: worker process"),
])
def test_command_lines_mask_secret_values(argv, kept):
    line = _host.command_line(b"\0".join(argv) + b"\0")
    assert CANARY not in line
    assert line == kept


def test_top_processes_masks_a_canary_on_this_machine():
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "--password", CANARY])
    try:
        top = _host.top_processes(100000, 0.0)
        rows = [r for r in top["by_rss"] if r["pid"] == child.pid]
        assert rows and "--password ********" in rows[0]["command"]
        assert CANARY not in str(top)
    finally:
        child.kill()
        child.wait()
