# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host resources from /proc and statvfs: memory, disks, load, processes, OOM kills (private).

What `free -h`, `df -h`, `uptime`, `top` and `dmesg | grep -i oom` show, as data. Reads only.
Paths are parameters so the parsers can be unit-tested against captured files.
"""

from __future__ import annotations

import datetime
import os
import re
import time
import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_argv

# Filesystems that hold no user data; `df` hides them too.
PSEUDO_FS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
    "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "rpc_pipefs", "securityfs",
    "selinuxfs", "sysfs", "tracefs", "ramfs", "fuse.lxcfs", "fuse.gvfsd-fuse", "nfsd", "rootfs",
})

_OOM_KILLED = re.compile(r"(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]*)\)"
                         r"(?:.*?anon-rss:(\d+)kB)?")


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, t.Any]:
    """free(1)'s numbers in bytes. `used` is what free(1) >= 3.3.10 prints: total - available."""
    values: dict[str, int] = {}
    with open(path, encoding="ascii") as fh:
        for line in fh:
            key, _sep, rest = line.partition(":")
            parts = rest.split()
            if parts:
                factor = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
                values[key.strip()] = int(parts[0]) * factor
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0) + values.get("Cached", 0))
    swap_total = values.get("SwapTotal", 0)
    swap_free = values.get("SwapFree", 0)
    return {
        "memory": {
            "total_bytes": total,
            "available_bytes": available,
            "used_bytes": max(total - available, 0),
            "free_bytes": values.get("MemFree", 0),
            "buffers_bytes": values.get("Buffers", 0),
            "cached_bytes": values.get("Cached", 0),
            "shared_bytes": values.get("Shmem", 0),
            "used_percent": round(100.0 * (total - available) / total, 1) if total else None,
        },
        "swap": {
            "total_bytes": swap_total,
            "free_bytes": swap_free,
            "used_bytes": swap_total - swap_free,
            "used_percent": round(100.0 * (swap_total - swap_free) / swap_total, 1) if swap_total else 0.0,
        },
    }


def _unescape_mount(field: str) -> str:
    """/proc/self/mounts escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def list_mounts(path: str = "/proc/self/mounts") -> list[dict[str, str]]:
    mounts: list[dict[str, str]] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 3:
                continue
            device, mount_point, fstype = _unescape_mount(fields[0]), _unescape_mount(fields[1]), fields[2]
            # Pseudo filesystems, and single files bind-mounted into a container (df lists
            # those too, but they only repeat the filesystem they come from).
            if fstype in PSEUDO_FS or (os.path.exists(mount_point) and not os.path.isdir(mount_point)):
                continue
            # A later mount on the same point hides the earlier one, as df shows it.
            if mount_point in seen:
                mounts = [m for m in mounts if m["mount"] != mount_point]
            seen.add(mount_point)
            mounts.append({"mount": mount_point, "device": device, "fstype": fstype})
    return mounts


def disk_usage(mount: dict[str, str]) -> dict[str, t.Any] | None:
    """df(1)'s view of one mount: use% is used / (used + available to unprivileged users)."""
    try:
        st = os.statvfs(mount["mount"])
    except OSError:
        return None
    size = st.f_blocks * st.f_frsize
    free = st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = size - free
    inodes_used = st.f_files - st.f_ffree
    return dict(
        mount,
        size_bytes=size,
        used_bytes=used,
        available_bytes=avail,
        used_percent=round(100.0 * used / (used + avail), 1) if used + avail else 0.0,
        inodes_total=st.f_files,
        inodes_used=inodes_used,
        inodes_used_percent=round(100.0 * inodes_used / st.f_files, 1) if st.f_files else 0.0,
    )


def mount_of(path: str, mounts_path: str = "/proc/self/mounts") -> dict[str, str] | None:
    """The mount a path lives on (the longest mount point that contains it), pseudo or not."""
    best = None
    real = os.path.realpath(path)
    with open(mounts_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = _unescape_mount(fields[1])
            if real == point or real.startswith(point.rstrip("/") + "/"):
                if best is None or len(point) >= len(best["mount"]):
                    best = {"mount": point, "device": _unescape_mount(fields[0]), "fstype": fields[2]}
    return best


def largest_dirs(run: t.Callable[..., tuple[int, str, str]], du: str, path: str, count: int,
                 one_filesystem: bool = True) -> dict[str, t.Any]:
    """The `count` biggest entries directly under `path`.

    `du -x` keeps to one filesystem, except on overlayfs (containers): there files of the lower
    layers report the lower filesystem's device, and -x would silently leave them out.
    """
    cmd = [du, "-B1", "--max-depth=1", "--", path]
    if one_filesystem:
        cmd.insert(1, "-x")
    rc, out, err = run(cmd)
    entries = []
    for line in out.splitlines():
        size, _sep, name = line.partition("\t")
        if name and name != path.rstrip("/") and name != path and size.isdigit():
            entries.append({"path": name, "bytes": int(size)})
    entries.sort(key=lambda e: e["bytes"], reverse=True)
    # du exits 1 when some subdirectory was unreadable; the rest of its answer is still right.
    return {"path": path, "entries": entries[:count], "complete": rc == 0,
            "error": err.strip().splitlines()[-1] if rc != 0 and err.strip() else None}


def load_average(uptime_path: str = "/proc/uptime") -> dict[str, t.Any]:
    one, five, fifteen = os.getloadavg()
    cpus = os.cpu_count() or 1
    try:
        with open(uptime_path, encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        uptime = None
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen, "cpus": cpus,
            "load_1m_per_cpu": round(one / cpus, 2), "uptime_seconds": uptime}


def command_line(raw: bytes) -> str:
    """/proc/PID/cmdline (NUL-separated argv) -> one line with secret values masked:
    `--password VALUE`, `--token=VALUE`, `PGPASSWORD=VALUE`, `postgresql://u:VALUE@h`. Split on
    the NULs first, so `--password` followed by its value in the next word is seen as such."""
    argv = [word.decode("utf-8", "replace") for word in raw.split(b"\0") if word]
    return " ".join(mask_argv(argv)).strip()


def _proc_sample(proc: str = "/proc") -> dict[int, dict[str, t.Any]]:
    page = os.sysconf("SC_PAGE_SIZE")
    sample: dict[int, dict[str, t.Any]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"{proc}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
            with open(f"{proc}/{pid}/cmdline", "rb") as fh:
                cmdline = command_line(fh.read())
        except OSError:
            continue  # the process ended while we looked
        # comm may contain spaces and parentheses: it ends at the last ')'.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); utime/stime are fields 14/15, rss is 24 (1-based).
        sample[pid] = {
            "pid": pid,
            "name": comm,
            "state": fields[0],
            "cpu_ticks": int(fields[11]) + int(fields[12]),
            "start_ticks": int(fields[19]),
            "rss_bytes": int(fields[21]) * page,
            "command": cmdline or f"[{comm}]",
        }
    return sample


def top_processes(count: int, cpu_sample_seconds: float, proc: str = "/proc",
                  command_limit: int = 200) -> dict[str, list[dict[str, t.Any]]]:
    """The `count` biggest processes by resident memory and by CPU.

    CPU is measured over `cpu_sample_seconds` like top(1); with 0 it is the average over each
    process's lifetime, which hides a process that just started spinning.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    first = _proc_sample(proc)
    started = time.monotonic()
    if cpu_sample_seconds > 0:
        time.sleep(cpu_sample_seconds)
        second = _proc_sample(proc)
        elapsed = time.monotonic() - started
    else:
        second = first
        elapsed = 0.0
    try:
        with open(f"{proc}/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        uptime = 0.0
    rows = []
    for pid, now in second.items():
        if elapsed > 0:
            before = first.get(pid)
            # A PID reused during the sample is a different process: count from its start.
            used = now["cpu_ticks"] - (before["cpu_ticks"] if before and before["start_ticks"] == now["start_ticks"] else 0)
            cpu = 100.0 * used / ticks / elapsed
        else:
            lifetime = uptime - now["start_ticks"] / ticks
            cpu = 100.0 * now["cpu_ticks"] / ticks / lifetime if lifetime > 0 else 0.0
        rows.append({"pid": pid, "name": now["name"], "state": now["state"],
                     "rss_bytes": now["rss_bytes"], "cpu_percent": round(cpu, 1),
                     "command": now["command"][:command_limit]})
    by_rss = sorted(rows, key=lambda r: r["rss_bytes"], reverse=True)[:count]
    by_cpu = sorted(rows, key=lambda r: (r["cpu_percent"], r["rss_bytes"]), reverse=True)[:count]
    return {"by_rss": by_rss, "by_cpu": by_cpu, "process_count": len(rows)}


def oom_kill_counter(vmstat_path: str = "/proc/vmstat") -> int | None:
    """Kernel OOM kills since boot (Linux >= 4.13). In a container this is the whole machine's."""
    try:
        with open(vmstat_path, encoding="ascii") as fh:
            for line in fh:
                key, _sep, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def parse_kernel_oom(lines: t.Iterable[str]) -> list[dict[str, t.Any]]:
    """OOM kills in `journalctl -k -o short-iso` output (or dmesg lines)."""
    kills = []
    for line in lines:
        match = _OOM_KILLED.search(line)
        if not match:
            continue
        stamp = line.split(" ", 1)[0] if line[:1].isdigit() else None
        kills.append({
            "timestamp": stamp,
            "pid": int(match.group(1)),
            "name": match.group(2),
            "anon_rss_bytes": int(match.group(3)) * 1024 if match.group(3) else None,
            "cgroup_limit": line.find("Memory cgroup out of memory") >= 0,
            "message": line.split(": ", 1)[-1].strip() if stamp else line.strip(),
        })
    return kills


def kernel_oom_kills(run: t.Callable[..., tuple[int, str, str]], journalctl: str | None,
                     since_seconds: float, kmsg: str = "/dev/kmsg") -> dict[str, t.Any]:
    """Recent OOM kills from the kernel log. A container usually cannot read it: then
    `kernel_log_readable` is false and the list is empty, which is not the same as 'none'."""
    # journald collects kernel messages from /dev/kmsg; where that cannot be read (a container)
    # the journal has none, and asking for them only costs time.
    if not journalctl or not os.access(kmsg, os.R_OK):
        return {"kernel_log_readable": False, "kills": []}
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=since_seconds)
    rc, out, _err = run([journalctl, "-k", "--no-pager", "-q", "-o", "short-iso", "--utc",
                         f"--since={since.strftime('%Y-%m-%d %H:%M:%S')} UTC"])
    if rc != 0:
        return {"kernel_log_readable": False, "kills": []}
    return {"kernel_log_readable": True, "kills": parse_kernel_oom(out.splitlines())}
