# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk-full decisions and cleanup (private): which mounts are full, which files may go.

Runbook 003 "Disk space issues" (`df -h`, prune, delete backups older than 7 days) as data:
`full_disks()` judges `host_resources_info`'s disks; `scan_rule()` / `plan_cleanup()` decide
which files a cleanup touches (and how: delete, compress, truncate) under explicit caps;
`execute()` does it and records every action. The decisions take their inputs as arguments
(paths, the clock, the table of open files) so unit tests reach every branch.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gzip
import os
import re
import shutil
import stat
import time
import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped, action_record

ACTIONS = ("delete", "compress", "truncate")
# Cleaning these would break the host, whatever the rule says.
FORBIDDEN_ROOTS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root",
                             "/run", "/sbin", "/sys", "/usr", "/var", "/home", "/srv", "/opt"})
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}
_JOURNAL_USAGE = re.compile(r"take up ([\d.]+)\s*([KMGTP]?)i?B?", re.IGNORECASE)
_JOURNAL_FREED = re.compile(r"freed ([\d.]+)\s*([KMGTP]?)i?B?", re.IGNORECASE)


def parse_size(value: t.Any, option: str = "size") -> int:
    """Bytes for 1048576, "1048576", "500M", "2G", "1.5GiB" (powers of 1024, as df -h and journalctl)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{option}: expected bytes or a size such as '500M', got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"{option}: cannot parse {value!r}; use bytes (1048576) or a size such as '500M', '2G'")
        size = int(float(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()])
    if size < 0:
        raise ValueError(f"{option}: must not be negative, got {value!r}")
    return size


def human(size: int | float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"  # pragma: no cover


def duration_text(seconds: float) -> str:
    """604800 -> '7d', 5400 -> '90m', 0 -> '0s': the largest unit that divides it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# ---------------------------------------------------------------------------------------------
# Which mounts are full
# ---------------------------------------------------------------------------------------------

def full_limit_error(option: str, value: float) -> str | None:
    """Why a 'full at this percentage' limit (full_used_percent, full_inodes_percent) is refused,
    or None. The valid range is more than 0 and at most 100: a mount is full at the limit or
    more, so 0 would call every filesystem full (even an empty one) and send the disk runbook
    to clean them all. Reporting every filesystem needs no limit: `disks` lists them all."""
    if 0 < value <= 100:
        return None
    why = (" (0 would call every filesystem full, even an empty one; every filesystem's usage is "
           "in disks whatever the limit)" if value == 0 else "")
    return (f"{option} must be more than 0 and at most 100, got {value:g}{why}: a mount counts as full "
            f"at this percentage or more (default 90)")


def full_disks(disks: list[dict[str, t.Any]], used_percent: float, min_free_bytes: int,
               inodes_percent: float) -> dict[str, t.Any]:
    """The verdict on `df`'s table: a mount is full when its use reaches `used_percent`, its
    free space (for unprivileged users) falls under `min_free_bytes`, or its inode use reaches
    `inodes_percent`. Each full mount carries the reasons, worst first."""
    full = []
    for disk in disks:
        reasons = []
        if disk["used_percent"] >= used_percent:
            reasons.append(f"{disk['used_percent']}% used (limit {used_percent}%)")
        if min_free_bytes and disk["available_bytes"] < min_free_bytes:
            reasons.append(f"{human(disk['available_bytes'])} free (want {human(min_free_bytes)})")
        # A filesystem without a fixed inode table (btrfs, some tmpfs) reports 0 inodes.
        if disk.get("inodes_total") and disk["inodes_used_percent"] >= inodes_percent:
            reasons.append(f"{disk['inodes_used_percent']}% of inodes used (limit {inodes_percent}%)")
        if reasons:
            full.append({"mount": disk["mount"], "device": disk["device"], "fstype": disk["fstype"],
                         "used_percent": disk["used_percent"], "available_bytes": disk["available_bytes"],
                         "inodes_used_percent": disk.get("inodes_used_percent"), "reasons": reasons})
    full.sort(key=lambda d: (d["used_percent"], -d["available_bytes"]), reverse=True)
    if full:
        summary = "full: " + "; ".join(f"{d['mount']} {', '.join(d['reasons'])}" for d in full)
    else:
        summary = f"healthy, nothing to do: {len(disks)} filesystem(s) under the limits"
    return {"healthy": not full, "act": bool(full), "full": full,
            "full_mounts": [d["mount"] for d in full], "summary": summary}


# ---------------------------------------------------------------------------------------------
# Cleanup rules and the plan
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Rule:
    path: str
    patterns: list[str]
    min_age_seconds: float
    keep_newest: int = 0
    action: str = "delete"
    recurse: bool = False
    deleted_open: bool = True

    @property
    def root(self) -> str:
        return os.path.abspath(self.path).rstrip("/") or "/"


def check_rule(rule: Rule) -> str | None:
    """Why a rule cannot be used, or None. A rule names a real directory, not a symlink to one
    (the cleanup would act outside the path the rule names), and not a system root."""
    if not os.path.isabs(rule.path):
        return f"path {rule.path!r} is not absolute"
    if rule.root in FORBIDDEN_ROOTS:
        return f"path {rule.root} is a system directory; name the directory to clean below it (e.g. /var/log/myapp)"
    if rule.action not in ACTIONS:
        return f"path {rule.root}: action {rule.action!r} is not one of {', '.join(ACTIONS)}"
    if rule.keep_newest < 0:
        return f"path {rule.root}: keep_newest must be 0 or more"
    if not rule.patterns:
        return f"path {rule.root}: patterns is empty"
    for pattern in rule.patterns:
        if "/" in pattern:
            return f"path {rule.root}: pattern {pattern!r} contains '/'; patterns match file names"
    if os.path.islink(rule.root):
        return f"path {rule.root} is a symlink to {os.path.realpath(rule.root)}; name the real directory"
    if os.path.realpath(rule.root) != rule.root:
        return f"path {rule.root} lies under a symlink ({os.path.realpath(rule.root)}); name the real directory"
    return None


def on_mounts(rules: list[Rule], mounts: list[str] | None,
              mount_of: t.Callable[[str], dict[str, str] | None]) -> tuple[list[Rule], list[str]]:
    """The rules whose directory lives on one of `mounts` (None: every rule), and the paths of
    the others: cleaning a healthy filesystem heals nothing."""
    if mounts is None:
        return list(rules), []
    wanted = {m.rstrip("/") or "/" for m in mounts}
    inside, outside = [], []
    for rule in rules:
        mount = mount_of(rule.root)
        if mount and mount["mount"] in wanted:
            inside.append(rule)
        else:
            outside.append(rule.root)
    return inside, outside


def open_files(proc: str = "/proc") -> tuple[dict[tuple[int, int], list[dict[str, t.Any]]], list[dict[str, t.Any]]]:
    """Every open regular file by (device, inode), and the ones already deleted.

    One pass over /proc/*/fd. A deleted file still open keeps its blocks until the last holder
    closes it: deleting more files of the same kind frees nothing; truncating through
    /proc/PID/fd/N does.
    """
    by_inode: dict[tuple[int, int], list[dict[str, t.Any]]] = {}
    deleted: dict[tuple[int, int], dict[str, t.Any]] = {}
    own = os.getpid()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return {}, []
    for pid in pids:
        if int(pid) == own:
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        comm = _read_first_line(f"{proc}/{pid}/comm")
        for fd in fds:
            fd_path = f"{fd_dir}/{fd}"
            try:
                target = os.readlink(fd_path)
                st = os.stat(fd_path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            holder = {"pid": int(pid), "fd": int(fd), "name": comm, "fd_path": fd_path}
            key = (st.st_dev, st.st_ino)
            by_inode.setdefault(key, []).append(holder)
            if target.endswith(" (deleted)") and st.st_nlink == 0:
                entry = deleted.setdefault(key, {
                    "path": target[: -len(" (deleted)")], "bytes": st.st_blocks * 512, "size": st.st_size,
                    "mtime": st.st_mtime, "holders": []})
                entry["holders"].append(holder)
    return by_inode, list(deleted.values())


def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().strip()
    except OSError:
        return None


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def scan_rule(rule: Rule, now: float, open_by_inode: dict[tuple[int, int], list[dict[str, t.Any]]],
              deleted_open: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The files one rule would touch, and the ones it keeps and why.

    Walks rule.path without following symlinks (a symlink is never a candidate and never
    descended into) and without leaving its filesystem. Among the regular files whose name
    matches, the `keep_newest` newest are kept, then those younger than `min_age` are kept. A
    file held open by a process is truncated, not deleted (deleting it would free nothing) and
    not compressed (the writer would go on writing into the unlinked original). Empty files
    need nothing (this is what makes a second run change nothing)."""
    root = rule.root
    root_dev = os.lstat(root).st_dev
    matched = []
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if rule.recurse and st.st_dev == root_dev:
                    stack.append(entry.path)
                continue
            if not stat.S_ISREG(st.st_mode) or not _matches(entry.name, rule.patterns):
                continue
            if rule.action == "compress" and entry.name.endswith(".gz"):
                continue
            matched.append({"path": entry.path, "bytes": st.st_blocks * 512, "size": st.st_size,
                            "mtime": st.st_mtime, "age_seconds": round(now - st.st_mtime, 1),
                            "holders": open_by_inode.get((st.st_dev, st.st_ino), [])})
    matched.sort(key=lambda f: (-f["mtime"], f["path"]))
    kept_newest = matched[: rule.keep_newest]
    rest = matched[rule.keep_newest:]
    too_young = [f for f in rest if f["age_seconds"] < rule.min_age_seconds]
    old = [f for f in rest if f["age_seconds"] >= rule.min_age_seconds]
    candidates = []
    empty = 0
    for f in old:
        action = rule.action
        reason = f"older than {duration_text(rule.min_age_seconds)}"
        if f["holders"]:
            action = "truncate"
            reason += f"; open by {_holders_text(f['holders'])}: truncated, deleting would free nothing"
        if f["size"] == 0 and action != "delete":
            empty += 1
            continue
        candidates.append(_candidate(rule, f, action, reason))
    if rule.deleted_open:
        for d in deleted_open:
            name = os.path.basename(d["path"])
            if _inside(d["path"], root) and _matches(name, rule.patterns) and d["size"] > 0 \
                    and (rule.recurse or os.path.dirname(d["path"]) == root):
                candidates.append(_candidate(rule, dict(d, age_seconds=round(now - d["mtime"], 1)), "truncate",
                                             f"deleted but still open by {_holders_text(d['holders'])}",
                                             deleted=True))
    return {"path": root, "candidates": candidates,
            "kept": {"newest": len(kept_newest), "too_young": len(too_young), "empty": empty}}


def _holders_text(holders: list[dict[str, t.Any]]) -> str:
    return ", ".join(f"{h['name'] or '?'}[{h['pid']}]" for h in holders[:3]) + (" ..." if len(holders) > 3 else "")


def _candidate(rule: Rule, f: dict[str, t.Any], action: str, reason: str, deleted: bool = False) -> dict[str, t.Any]:
    return {"path": f["path"], "action": action, "bytes": f["bytes"], "size": f["size"],
            "age_seconds": f["age_seconds"], "rule": rule.root, "deleted": deleted, "reason": reason,
            "holders": [{"pid": h["pid"], "fd": h["fd"], "name": h["name"]} for h in f["holders"]],
            "_fd_paths": [h["fd_path"] for h in f["holders"]]}


# Deleted-but-open files first (their data is already gone), then deletions, then compression,
# which needs room for the compressed copy: by then the deletions made some.
_ORDER = {("truncate", True): 0, ("delete", False): 1, ("truncate", False): 2, ("compress", False): 3}


def plan_cleanup(scans: list[dict[str, t.Any]], max_files: int, max_bytes: int | None,
                 cap_mode: str = "fail") -> dict[str, t.Any]:
    """All rules' candidates in one ordered plan under the caps.

    The same file matched by two rules is planned once (the first rule wins). Within a kind,
    oldest first. Caps: `max_files` files, `max_bytes` bytes (None: no cap). cap_mode `fail`
    raises GuardrailTripped (nothing is done); `partial` plans up to the caps and reports the
    rest as `over_cap`."""
    if max_files < 1:
        raise ValueError("max_files must be at least 1")
    if cap_mode not in ("fail", "partial"):
        raise ValueError(f"unknown cap_mode {cap_mode!r}")
    seen: set[tuple[str, bool]] = set()
    items = []
    for scan in scans:
        for c in scan["candidates"]:
            if (c["path"], c["deleted"]) in seen:
                continue
            seen.add((c["path"], c["deleted"]))
            items.append(c)
    items.sort(key=lambda c: (_ORDER[(c["action"], c["deleted"])], -c["age_seconds"], c["path"]))
    total = sum(c["bytes"] for c in items)
    if cap_mode == "fail":
        if len(items) > max_files:
            raise GuardrailTripped("max_files", f"{len(items)} files match the rules, more than max_files={max_files}",
                                   f"raise max_files to at least {len(items)}, narrow the rules, "
                                   f"or set cap_mode=partial to clean the first {max_files}")
        if max_bytes is not None and total > max_bytes:
            raise GuardrailTripped("max_bytes", f"the rules would free {human(total)} ({total} bytes), "
                                                f"more than max_bytes={max_bytes}",
                                   f"raise max_bytes to at least {total}, narrow the rules, "
                                   "or set cap_mode=partial to clean up to the cap")
        return {"planned": items, "over_cap": [], "bytes": total}
    planned, over, used = [], [], 0
    for c in items:
        if len(planned) >= max_files or (max_bytes is not None and used + c["bytes"] > max_bytes):
            over.append(c)
            continue
        planned.append(c)
        used += c["bytes"]
    return {"planned": planned, "over_cap": over, "bytes": used}


def public(candidate: dict[str, t.Any]) -> dict[str, t.Any]:
    return {k: v for k, v in candidate.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# Doing it
# ---------------------------------------------------------------------------------------------

def _same_file_still(path: str, root: str) -> os.stat_result:
    """The file is still a regular file inside its rule's directory (no symlink swapped in)."""
    real = os.path.realpath(path)
    if not _inside(real, root) or real != path:
        raise OSError(f"{path} now resolves to {real}, outside {root} or through a symlink; left alone")
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path} is no longer a regular file; left alone")
    return st


def _compress(path: str) -> int:
    """gzip PATH to PATH.gz (a temporary name until complete, so a full disk leaves no half file),
    keep its times, remove the original. Returns the bytes freed."""
    before = os.lstat(path)
    target = path + ".gz"
    if os.path.lexists(target):
        raise OSError(f"{target} exists already; left {path} alone")
    tmp = f"{target}.sre-tmp-{os.getpid()}"
    try:
        with open(path, "rb") as src, gzip.open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        os.chmod(tmp, stat.S_IMODE(before.st_mode))
        try:
            os.chown(tmp, before.st_uid, before.st_gid)
        except OSError:
            pass
        os.utime(tmp, (before.st_atime, before.st_mtime))
        os.rename(tmp, target)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    os.unlink(path)
    return before.st_blocks * 512 - os.lstat(target).st_blocks * 512


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: t.Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)


def execute(planned: list[dict[str, t.Any]], check_mode: bool) -> dict[str, t.Any]:
    """Carry out the plan, one action record per file. A failure is recorded and the rest goes
    on (a file that vanished or cannot be written must not keep the disk full)."""
    actions, errors, freed = [], [], 0
    for c in planned:
        target = c["path"] + (" (deleted, still open)" if c["deleted"] else "")
        details = {"bytes": c["bytes"], "rule": c["rule"], "reason": c["reason"]}
        if check_mode:
            actions.append(action_record(c["action"], target, f"would {c['action']} (check mode)", **details))
            continue
        try:
            if c["deleted"]:
                done = _truncate_fds(c["_fd_paths"])
                gained = c["bytes"]
                if not done:
                    raise OSError("every holder closed it meanwhile")
            else:
                st = _same_file_still(c["path"], c["rule"])
                if c["action"] == "delete":
                    os.unlink(c["path"])
                    gained = st.st_blocks * 512
                elif c["action"] == "truncate":
                    os.truncate(c["path"], 0)
                    gained = st.st_blocks * 512
                else:
                    gained = _compress(c["path"])
            freed += gained
            details["bytes"] = gained
            actions.append(action_record(c["action"], target, "done", **details))
        except OSError as exc:
            errors.append(f"{c['action']} {target}: {exc.strerror or exc}")
            actions.append(action_record(c["action"], target, "failed", error=str(exc.strerror or exc), **details))
    return {"actions": actions, "bytes_freed": freed, "errors": errors}


def _truncate_fds(fd_paths: list[str]) -> bool:
    for fd_path in fd_paths:
        try:
            os.truncate(fd_path, 0)
            return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------------------------

def _size_in_text(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if not match:
        return None
    return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()])


def journal_usage(text: str) -> int | None:
    """`journalctl --disk-usage`: 'Archived and active journals take up 24.0M in the file system.'"""
    return _size_in_text(_JOURNAL_USAGE, text)


def journal_freed(text: str) -> int:
    """`journalctl --vacuum-size` ends with 'Vacuuming done, freed 0B of archived journals ...'."""
    return _size_in_text(_JOURNAL_FREED, text) or 0


def journal_plan(usage: int | None, limit: int) -> dict[str, t.Any] | None:
    """Vacuum when the journal is bigger than the limit. journald keeps the active files, so
    this is an upper bound of what vacuuming frees."""
    if usage is None or usage <= limit:
        return None
    return {"action": "journal_vacuum", "bytes": usage - limit, "usage_bytes": usage, "limit_bytes": limit}


def now() -> float:
    return time.time()
