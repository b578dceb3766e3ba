# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The age and size of the newest backup under configured globs (private; used by backup_age_info).
Read-only. The verdict (``backup_verdict``) is a pure function, unit-tested branch by branch."""

from __future__ import annotations

import glob
import os
import typing as t


def entry_facts(path: str) -> dict[str, t.Any] | None:
    """A backup file, or a directory (a base backup): its size (all files under it) and the time it was
    last written (the newest mtime under it - a base backup is complete when its last file is).
    None when it vanished meanwhile."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not os.path.isdir(path):
        return {"path": path, "kind": "file", "size_bytes": info.st_size, "mtime": info.st_mtime}
    size, newest, files = 0, info.st_mtime, 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                sub = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            size += sub.st_size
            newest = max(newest, sub.st_mtime)
            files += 1
    return {"path": path, "kind": "directory", "size_bytes": size, "mtime": newest, "files": files}


def find_backups(patterns: list[str]) -> list[dict[str, t.Any]]:
    """Every entry the globs match (each once), with its facts."""
    seen: set[str] = set()
    out = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.expanduser(pattern))):
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            facts = entry_facts(path)
            if facts is not None:
                out.append(facts)
    return out


def human_age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def backup_verdict(patterns: list[str], entries: list[dict[str, t.Any]], now: float,
                   max_age_seconds: float, min_size_bytes: int = 1) -> dict[str, t.Any]:
    """state: not_configured | none_found | stale | too_small | ok; warn: whether to warn. Report only."""
    if not patterns:
        return {"state": "not_configured", "warn": False, "newest": None, "count": 0,
                "reason": "backups: not configured (set the backup location - a directory of base backups or "
                          "dumps, a glob - to have their age checked)"}
    if not entries:
        return {"state": "none_found", "warn": True, "newest": None, "count": 0,
                "reason": f"backups: nothing matches {', '.join(patterns)} - no backup found"}
    newest = max(entries, key=lambda e: e["mtime"])
    age = max(now - newest["mtime"], 0.0)
    out = {"count": len(entries), "newest": dict(newest, age_seconds=round(age, 1))}
    described = f"newest backup {newest['path']} is {human_age(age)} old, {newest['size_bytes']} bytes"
    if age > max_age_seconds:
        out.update(state="stale", warn=True,
                   reason=f"backups: {described} - older than {human_age(max_age_seconds)}: check the backup job")
    elif newest["size_bytes"] < min_size_bytes:
        out.update(state="too_small", warn=True,
                   reason=f"backups: {described} - smaller than {min_size_bytes} bytes: check it is complete")
    else:
        out.update(state="ok", warn=False, reason=f"backups: {described} ({len(entries)} found)")
    return out
