"""backup_age_info's verdict (issue 15, runbook 002 "verify backups"): report only; not configured is said,
not an error."""

from __future__ import annotations

import os
import time

from ansible_collections.sre.runbooks.plugins.module_utils._backup_age import (
    backup_verdict,
    find_backups,
    human_age,
)

NOW = 1_800_000_000.0
HOUR = 3600.0


def entry(path, hours_old, size=100):
    return {"path": path, "kind": "file", "size_bytes": size, "mtime": NOW - hours_old * HOUR}


def test_not_configured_is_stated_not_an_error():
    verdict = backup_verdict([], [], NOW, 26 * HOUR)
    assert (verdict["state"], verdict["warn"], verdict["newest"]) == ("not_configured", False, None)
    assert "not configured" in verdict["reason"]


def test_nothing_found_warns():
    verdict = backup_verdict(["/b/*"], [], NOW, 26 * HOUR)
    assert (verdict["state"], verdict["warn"]) == ("none_found", True) and "/b/*" in verdict["reason"]


def test_newest_is_reported_and_fresh_is_ok():
    verdict = backup_verdict(["/b/*"], [entry("/b/old", 50), entry("/b/new", 2, size=42)], NOW, 26 * HOUR)
    assert (verdict["state"], verdict["warn"], verdict["count"]) == ("ok", False, 2)
    assert verdict["newest"]["path"] == "/b/new" and verdict["newest"]["age_seconds"] == 2 * HOUR
    assert "/b/new" in verdict["reason"] and "42 bytes" in verdict["reason"]


def test_stale_warns():
    verdict = backup_verdict(["/b/*"], [entry("/b/x", 30)], NOW, 26 * HOUR)
    assert (verdict["state"], verdict["warn"]) == ("stale", True) and "older than 26.0 h" in verdict["reason"]


def test_too_small_warns():
    verdict = backup_verdict(["/b/*"], [entry("/b/x", 1, size=0)], NOW, 26 * HOUR)
    assert (verdict["state"], verdict["warn"]) == ("too_small", True)


def test_human_age():
    assert (human_age(59), human_age(7200), human_age(3 * 86400), human_age(-5)) == ("0 min", "2.0 h", "3.0 days",
                                                                                     "0 min")


def test_find_backups_files_and_directories(tmp_path):
    dump = tmp_path / "a.dump"
    dump.write_bytes(b"x" * 10)
    base = tmp_path / "base1"
    (base / "sub").mkdir(parents=True)
    (base / "base.tar").write_bytes(b"y" * 30)
    (base / "sub" / "wal").write_bytes(b"z" * 5)
    old = time.time() - 10 * HOUR
    os.utime(dump, (old, old))
    found = {e["path"]: e for e in find_backups([str(tmp_path / "*"), str(tmp_path / "a.*")])}
    assert set(found) == {str(dump), str(base)}  # each once
    assert found[str(dump)]["size_bytes"] == 10 and found[str(dump)]["kind"] == "file"
    assert found[str(base)]["size_bytes"] == 35 and found[str(base)]["files"] == 2
    assert found[str(base)]["mtime"] >= found[str(dump)]["mtime"]
    assert find_backups([str(tmp_path / "nothing*")]) == []
