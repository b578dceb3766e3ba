#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_resources_info
short_description: Memory, disks, load, top processes and OOM kills of a host
version_added: 0.1.0
description:
  - What the runbooks' first look at a host (C(free -h), C(df -h), C(uptime), C(top),
    C(dmesg | grep -i oom)) shows, returned as data that a playbook can decide on.
  - Memory and swap from C(/proc/meminfo); disk use per mounted filesystem (pseudo filesystems
    left out, as C(df) does); optionally the largest directories under chosen paths; load
    average; the top processes by resident memory and by CPU; kernel OOM kills.
  - Read-only.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Reads only.
options:
  mounts:
    description:
      - Report only these mount points. Default is every mounted filesystem that holds data.
    type: list
    elements: path
  largest_dirs_under:
    description:
      - For each of these directories, also return its largest entries (C(du -x --max-depth=1);
        without C(-x) on overlayfs, whose lower-layer files report another device), the next
        step when a disk fills up. Walking a big tree takes time; name the paths you need.
    type: list
    elements: path
    default: []
  largest_dirs_count:
    description: How many entries to return per path in O(largest_dirs_under).
    type: int
    default: 5
  largest_dirs_of_full:
    description:
      - Also return the largest entries of every full mount (RV(disk_verdict.full_mounts)), the
        C(du -x) a human runs next. On a big filesystem this takes a while.
    type: bool
    default: false
    version_added: 0.1.0
  full_used_percent:
    description:
      - A mount is full at this use percentage (as C(df) shows it) or more.
      - More than V(0) and at most V(100). V(0) is refused (every filesystem would be full);
        RV(disks) lists every filesystem's usage whatever the limit.
    type: float
    default: 90
    version_added: 0.1.0
  full_min_free:
    description: A mount is full with less free space than this (V(500M), V(2G)). Default is no such limit.
    type: str
    version_added: 0.1.0
  full_inodes_percent:
    description: A mount is full at this inode use percentage or more (more than V(0), at most V(100)).
    type: float
    default: 90
    version_added: 0.1.0
  top_processes:
    description: How many processes to list by memory and by CPU. V(0) skips the process table.
    type: int
    default: 10
  cpu_sample_seconds:
    description:
      - How long to measure CPU use, as C(top) does. V(0) returns each process's average over
        its lifetime instead, with no wait.
    type: float
    default: 0.5
  oom_since:
    description:
      - Return kernel OOM kills newer than this duration (V(1h), V(24h), V(7d)).
    type: str
    default: 24h
notes:
  - Inside a container C(/proc/meminfo), the load average and the OOM counter are usually the whole
    machine's, and the kernel log is often unreadable; RV(oom.kernel_log_readable) says so
    rather than reporting no OOM kills.
seealso:
  - module: sre.runbooks.systemd_unit_info
requirements:
  - Linux (C(/proc)); C(du) for O(largest_dirs_under); C(journalctl) for kernel OOM kills
"""

EXAMPLES = r"""
- name: Take stock of the host
  sre.runbooks.host_resources_info:
  register: host_resources

- name: A full disk? Show what fills /var
  sre.runbooks.host_resources_info:
    mounts: [/var]
    largest_dirs_under: [/var/log, /var/lib]
    top_processes: 0
  register: var_disk

- name: Warn about memory pressure
  ansible.builtin.debug:
    msg: "memory {{ host_resources.memory.used_percent }}% used; biggest {{ host_resources.processes.by_rss[0].command }}"
  when: host_resources.memory.used_percent > 90
"""

RETURN = r"""
memory:
  description: Memory as C(free) shows it, in bytes; C(used_bytes) is total minus available.
  returned: always
  type: dict
  contains:
    total_bytes: {description: Installed memory visible to the host., type: int}
    available_bytes: {description: Memory available for new work without swapping (C(MemAvailable))., type: int}
    used_bytes: {description: C(total_bytes) minus C(available_bytes)., type: int}
    free_bytes: {description: Completely unused memory., type: int}
    buffers_bytes: {description: Kernel buffers., type: int}
    cached_bytes: {description: Page cache., type: int}
    shared_bytes: {description: Shared memory and tmpfs., type: int}
    used_percent: {description: C(used_bytes) as a percentage of C(total_bytes)., type: float}
  sample: {total_bytes: 25275465728, available_bytes: 24230002688, used_bytes: 1045463040, used_percent: 4.1}
swap:
  description: Swap space in bytes.
  returned: always
  type: dict
  contains:
    total_bytes: {description: Swap configured., type: int}
    free_bytes: {description: Swap unused., type: int}
    used_bytes: {description: Swap in use., type: int}
    used_percent: {description: Percentage of swap in use (0 without swap)., type: float}
disks:
  description: One entry per mounted filesystem, as C(df) shows them.
  returned: always
  type: list
  elements: dict
  contains:
    mount: {description: Mount point., type: str}
    device: {description: Device or source., type: str}
    fstype: {description: Filesystem type., type: str}
    size_bytes: {description: Filesystem size., type: int}
    used_bytes: {description: Space in use., type: int}
    available_bytes: {description: Space available to unprivileged users., type: int}
    used_percent: {description: Use percentage as C(df) computes it (used / (used + available))., type: float}
    inodes_total: {description: Inodes in the filesystem (0 when the filesystem has no fixed number)., type: int}
    inodes_used: {description: Inodes in use., type: int}
    inodes_used_percent: {description: Inode use percentage., type: float}
  sample:
    - {mount: /, device: overlay, fstype: overlay, size_bytes: 12645642240, used_bytes: 2097152,
       available_bytes: 12643545088, used_percent: 0.0, inodes_total: 3086338, inodes_used: 44, inodes_used_percent: 0.0}
disk_verdict:
  description: Which mounts are full, by O(full_used_percent), O(full_min_free) and O(full_inodes_percent).
  returned: always
  type: dict
  version_added: 0.1.0
  contains:
    healthy: {description: No mount is full., type: bool}
    act: {description: Some mount is full., type: bool}
    full_mounts: {description: "The full mount points, fullest first.", type: list, elements: str}
    full:
      description: The full mounts with C(mount), C(device), C(fstype), C(used_percent), C(available_bytes),
        C(inodes_used_percent) and C(reasons).
      type: list
      elements: dict
    summary: {description: One line for a human., type: str}
  sample:
    healthy: false
    act: true
    full_mounts: [/srv/disk]
    full: [{mount: /srv/disk, device: tmpfs, fstype: tmpfs, used_percent: 100.0, available_bytes: 0,
            inodes_used_percent: 0.1, reasons: ["100.0% used (limit 90.0%)"]}]
    summary: "full: /srv/disk 100.0% used (limit 90.0%)"
largest_dirs:
  description: For each path of O(largest_dirs_under), its largest entries, biggest first.
  returned: always
  type: list
  elements: dict
  contains:
    path: {description: The directory that was measured., type: str}
    entries:
      description: Up to O(largest_dirs_count) entries with C(path) and C(bytes).
      type: list
      elements: dict
    complete: {description: False when C(du) could not read part of the tree., type: bool}
    error: {description: "The last error C(du) printed, null without errors.", type: str}
load:
  description: Load average, CPUs and uptime.
  returned: always
  type: dict
  contains:
    load_1m: {description: One-minute load average., type: float}
    load_5m: {description: Five-minute load average., type: float}
    load_15m: {description: Fifteen-minute load average., type: float}
    cpus: {description: Online CPUs., type: int}
    load_1m_per_cpu: {description: C(load_1m) divided by C(cpus)., type: float}
    uptime_seconds: {description: "Seconds since boot; inside a container, since the container started.", type: float}
processes:
  description: The top O(top_processes) processes by resident memory and by CPU.
  returned: always
  type: dict
  contains:
    by_rss:
      description: Biggest resident memory first; each with C(pid), C(name), C(state), C(rss_bytes),
        C(cpu_percent), C(command) (truncated to 200 characters).
      type: list
      elements: dict
    by_cpu:
      description: Highest CPU use first, same fields as C(by_rss).
      type: list
      elements: dict
    process_count:
      description: Number of processes seen.
      type: int
oom:
  description: Kernel OOM kills.
  returned: always
  type: dict
  contains:
    kills_since_boot:
      description: The kernel's C(oom_kill) counter (machine-wide inside a container); null if the kernel has none.
      type: int
    kernel_log_readable:
      description: Whether the kernel log could be read; when false, RV(oom.kills) is empty for lack of data.
      type: bool
    kills:
      description: OOM kills since O(oom_since), oldest first, with C(timestamp), C(pid), C(name),
        C(anon_rss_bytes), C(cgroup_limit) (a memory cgroup limit, not the whole host, was exceeded)
        and C(message).
      type: list
      elements: dict
checked_at:
  description: When the host was read (ISO 8601 UTC).
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _disk, _host
from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration, utc_iso


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            mounts=dict(type="list", elements="path"),
            largest_dirs_under=dict(type="list", elements="path", default=[]),
            largest_dirs_count=dict(type="int", default=5),
            largest_dirs_of_full=dict(type="bool", default=False),
            full_used_percent=dict(type="float", default=90),
            full_min_free=dict(type="str"),
            full_inodes_percent=dict(type="float", default=90),
            top_processes=dict(type="int", default=10),
            cpu_sample_seconds=dict(type="float", default=0.5),
            oom_since=dict(type="str", default="24h"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for option in ("largest_dirs_count", "top_processes"):
        if params[option] < 0:
            module.fail_json(msg=f"{option} must be 0 or more")
    if not 0 <= params["cpu_sample_seconds"] <= 10:
        module.fail_json(msg="cpu_sample_seconds must be between 0 and 10")
    try:
        oom_since = parse_duration(params["oom_since"], "oom_since")
        full_min_free = _disk.parse_size(params["full_min_free"], "full_min_free") if params["full_min_free"] else 0
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    for option in ("full_used_percent", "full_inodes_percent"):
        error = _disk.full_limit_error(option, params[option])
        if error:
            module.fail_json(msg=error)

    checked_at = utc_iso()
    try:
        result = _host.read_meminfo()
    except OSError as exc:
        module.fail_json(msg=f"cannot read /proc/meminfo: {exc}; host_resources_info needs Linux with /proc")

    mounts = _host.list_mounts()
    if params["mounts"]:
        wanted = [m.rstrip("/") or "/" for m in params["mounts"]]
        unknown = [m for m in wanted if m not in {x["mount"] for x in mounts}]
        if unknown:
            module.fail_json(msg=f"mounts: {', '.join(unknown)} is not a mount point on this host; "
                                 f"mounted: {', '.join(x['mount'] for x in mounts)}")
        mounts = [m for m in mounts if m["mount"] in wanted]
    disks = [d for d in (_host.disk_usage(m) for m in mounts) if d is not None]

    verdict = _disk.full_disks(disks, params["full_used_percent"], full_min_free, params["full_inodes_percent"])

    largest = []
    wanted_dirs = list(params["largest_dirs_under"])
    if params["largest_dirs_of_full"]:
        wanted_dirs += [m for m in verdict["full_mounts"] if m not in wanted_dirs]
    if wanted_dirs:
        du = module.get_bin_path("du", required=True)
        for path in wanted_dirs:
            if not os.path.isdir(path):
                module.fail_json(msg=f"largest_dirs_under: {path} is not a directory on this host")
            mount = _host.mount_of(path)
            largest.append(_host.largest_dirs(module.run_command, du, path, params["largest_dirs_count"],
                                              one_filesystem=(mount or {}).get("fstype") != "overlay"))

    processes = {"by_rss": [], "by_cpu": [], "process_count": None}
    if params["top_processes"]:
        processes = _host.top_processes(params["top_processes"], params["cpu_sample_seconds"])

    oom = _host.kernel_oom_kills(module.run_command, module.get_bin_path("journalctl"), oom_since)
    oom["kills_since_boot"] = _host.oom_kill_counter()

    module.exit_json(changed=False, disks=disks, disk_verdict=verdict, largest_dirs=largest, load=_host.load_average(),
                     processes=processes, oom=oom, checked_at=checked_at, **result)


if __name__ == "__main__":
    main()
