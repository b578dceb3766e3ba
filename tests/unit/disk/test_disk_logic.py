"""Unit tests for plugins/module_utils/_disk.py: the full-mount verdict, rule checks, the scan
(ages, keep-newest, open and deleted-but-open files, symlinks), the plan and its caps, execution
and the journal parsers. Files are real (tmp_path); the clock and the open-file table are passed in."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time

import pytest
import sre_testlib

from ansible_collections.sre.runbooks.plugins.module_utils import _disk
from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped

DAY = 86400


def disk(mount="/data", used=50.0, avail=10 * 2**30, inodes=10.0, inodes_total=1000):
    return {"mount": mount, "device": "/dev/x", "fstype": "ext4", "used_percent": used, "available_bytes": avail,
            "inodes_total": inodes_total, "inodes_used_percent": inodes}


# --- sizes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [(1024, 1024), ("1024", 1024), ("500M", 500 * 2**20),
                                            ("2G", 2 * 2**30), ("1.5GiB", int(1.5 * 2**30)), ("10k", 10240),
                                            ("3 MB", 3 * 2**20)])
def test_parse_size(value, expected):
    assert _disk.parse_size(value) == expected


@pytest.mark.parametrize("value", ["lots", "", True, None, -1, "5X"])
def test_parse_size_rejects(value):
    with pytest.raises(ValueError, match="max_bytes"):
        _disk.parse_size(value, "max_bytes")


def test_human():
    assert _disk.human(None) == "-"
    assert _disk.human(512) == "512B"
    assert _disk.human(3 * 2**20) == "3.0M"
    assert _disk.human(5 * 2**40) == "5.0T"


@pytest.mark.parametrize("seconds,text", [(604800, "7d"), (5400, "90m"), (7200, "2h"), (0, "0s"), (90.5, "90.5s")])
def test_duration_text(seconds, text):
    assert _disk.duration_text(seconds) == text


# --- verdict ------------------------------------------------------------------------------------

def test_healthy_disks_say_nothing_to_do():
    verdict = _disk.full_disks([disk(), disk("/var")], 90, 0, 90)
    assert verdict["healthy"] and not verdict["act"] and verdict["full"] == []
    assert verdict["summary"].startswith("healthy, nothing to do: 2 filesystem(s)")


def test_full_by_percent_free_bytes_and_inodes_fullest_first():
    verdict = _disk.full_disks([disk("/a", used=95.0), disk("/b", used=100.0, avail=0),
                                disk("/c", avail=100), disk("/d", inodes=99.0), disk("/e")], 90, 2**20, 95)
    assert verdict["full_mounts"] == ["/b", "/a", "/c", "/d"]
    reasons = {d["mount"]: d["reasons"] for d in verdict["full"]}
    assert reasons["/b"][0].startswith("100.0% used") and "free" in reasons["/b"][1]
    assert "free (want 1.0M)" in reasons["/c"][0]
    assert "inodes" in reasons["/d"][0]
    assert verdict["act"] and not verdict["healthy"] and verdict["summary"].startswith("full: /b")


def test_a_filesystem_without_an_inode_table_is_not_full_by_inodes():
    assert _disk.full_disks([disk(inodes=100.0, inodes_total=0)], 90, 0, 90)["healthy"]


@pytest.mark.parametrize("value", [0.1, 50, 90, 100])
def test_full_limits_in_range_are_accepted(value):
    assert _disk.full_limit_error("full_used_percent", value) is None


def test_full_limit_zero_is_refused_and_says_why_and_the_range():
    # 0 is not "report every filesystem" (disks always lists them): every mount would be full,
    # an empty one included, and the disk runbook would clean them all.
    assert _disk.full_disks([disk(used=0.0, inodes=0.0)], 0, 0, 0)["full_mounts"] == ["/data"]
    message = _disk.full_limit_error("full_used_percent", 0)
    assert message.startswith("full_used_percent must be more than 0 and at most 100, got 0")
    assert "every filesystem full" in message and "disks" in message


@pytest.mark.parametrize("value", [-5, 100.5, 250])
def test_full_limits_out_of_range_are_refused_with_the_range(value):
    message = _disk.full_limit_error("full_inodes_percent", value)
    assert message.startswith(f"full_inodes_percent must be more than 0 and at most 100, got {value:g}")
    assert "every filesystem" not in message


def test_host_resources_info_fails_cleanly_on_full_used_percent_zero():
    # The module itself, run locally (it fails on the argument before reading the host).
    result = sre_testlib.run_module("host_resources_info", {"full_used_percent": 0, "top_processes": 0})
    assert result["failed"] is True
    assert result["msg"].startswith("full_used_percent must be more than 0 and at most 100, got 0")
    assert "Traceback" not in json.dumps(result)


def test_min_free_zero_means_no_free_space_limit():
    assert _disk.full_disks([disk(avail=0, used=10.0)], 90, 0, 90)["healthy"]


# --- rules --------------------------------------------------------------------------------------

def rule(path, **kw):
    kw.setdefault("patterns", ["*"])
    kw.setdefault("min_age_seconds", 7 * DAY)
    return _disk.Rule(path=str(path), **kw)


def test_a_good_rule_passes(tmp_path):
    assert _disk.check_rule(rule(tmp_path)) is None


@pytest.mark.parametrize("kw,message", [
    ({"path": "relative/dir"}, "not absolute"),
    ({"path": "/var"}, "system directory"),
    ({"path": "/"}, "system directory"),
    ({"action": "shred"}, "not one of"),
    ({"keep_newest": -1}, "keep_newest"),
    ({"patterns": []}, "patterns is empty"),
    ({"patterns": ["../*.log"]}, "contains '/'"),
])
def test_bad_rules_are_refused(tmp_path, kw, message):
    path = kw.pop("path", str(tmp_path))
    assert message in _disk.check_rule(_disk.Rule(path=path, patterns=kw.pop("patterns", ["*"]),
                                                  min_age_seconds=0, **kw))


def test_a_symlinked_rule_directory_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "sub").mkdir()
    assert "is a symlink" in _disk.check_rule(rule(tmp_path / "link"))
    assert "lies under a symlink" in _disk.check_rule(rule(tmp_path / "link" / "sub"))


def test_rules_on_mounts():
    rules = [rule("/data/logs"), rule("/var/backups/pg")]
    mount_of = {"/data/logs": {"mount": "/data"}, "/var/backups/pg": {"mount": "/"}}.get
    assert _disk.on_mounts(rules, None, mount_of) == (rules, [])
    inside, outside = _disk.on_mounts(rules, ["/data/"], mount_of)
    assert inside == [rules[0]] and outside == ["/var/backups/pg"]
    assert _disk.on_mounts(rules, [], mount_of) == ([], ["/data/logs", "/var/backups/pg"])
    assert _disk.on_mounts([rule("/gone/x")], ["/"], mount_of) == ([], ["/gone/x"])


# --- scan ---------------------------------------------------------------------------------------

def make(path, size=4096, age_days=0.0, now=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = (now or time.time()) - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def names(items):
    return sorted(os.path.basename(c["path"]) for c in items)


def test_scan_picks_old_matching_files_and_keeps_young_ones(tmp_path):
    now = time.time()
    make(tmp_path / "a.log.1", age_days=10, now=now)
    make(tmp_path / "a.log.2", age_days=8, now=now)
    make(tmp_path / "a.log", age_days=0, now=now)
    make(tmp_path / "notes.txt", age_days=30, now=now)
    scan = _disk.scan_rule(rule(tmp_path, patterns=["*.log*"]), now, {}, [])
    assert names(scan["candidates"]) == ["a.log.1", "a.log.2"]
    assert scan["kept"] == {"newest": 0, "too_young": 1, "empty": 0}
    c = scan["candidates"][0]
    assert c["action"] == "delete" and c["bytes"] > 0 and c["size"] == 4096 and c["age_seconds"] >= 8 * DAY
    assert c["reason"] == "older than 7d"


def test_keep_newest_counts_before_age(tmp_path):
    now = time.time()
    for i in range(5):
        make(tmp_path / f"db-{i}.sql.gz", age_days=10 + i, now=now)
    scan = _disk.scan_rule(rule(tmp_path, patterns=["*.sql.gz"], keep_newest=2), now, {}, [])
    assert names(scan["candidates"]) == ["db-2.sql.gz", "db-3.sql.gz", "db-4.sql.gz"]
    assert scan["kept"]["newest"] == 2


def test_symlinks_are_never_candidates_nor_followed(tmp_path):
    now = time.time()
    outside = tmp_path / "outside"
    make(outside / "precious.log", age_days=30, now=now)
    inside = tmp_path / "logs"
    inside.mkdir()
    (inside / "link.log").symlink_to(outside / "precious.log")
    (inside / "dir").symlink_to(outside, target_is_directory=True)
    make(inside / "sub" / "old.log", age_days=30, now=now)
    assert _disk.scan_rule(rule(inside, patterns=["*.log"]), now, {}, [])["candidates"] == []
    scan = _disk.scan_rule(rule(inside, patterns=["*.log"], recurse=True), now, {}, [])
    assert names(scan["candidates"]) == ["old.log"]


def test_compress_skips_gz_files(tmp_path):
    now = time.time()
    make(tmp_path / "a.log.1", age_days=10, now=now)
    make(tmp_path / "a.log.2.gz", age_days=10, now=now)
    scan = _disk.scan_rule(rule(tmp_path, action="compress"), now, {}, [])
    assert names(scan["candidates"]) == ["a.log.1"] and scan["candidates"][0]["action"] == "compress"


def test_an_open_file_is_truncated_not_deleted_and_an_empty_one_left(tmp_path):
    now = time.time()
    f = make(tmp_path / "app.log", age_days=10, now=now)
    empty = make(tmp_path / "empty.log", size=0, age_days=10, now=now)
    st, st_empty = os.stat(f), os.stat(empty)
    holder = [{"pid": 42, "fd": 3, "name": "app", "fd_path": "/proc/42/fd/3"}]
    table = {(st.st_dev, st.st_ino): holder, (st_empty.st_dev, st_empty.st_ino): holder}
    scan = _disk.scan_rule(rule(tmp_path), now, table, [])
    assert [c["action"] for c in scan["candidates"]] == ["truncate"]
    assert "open by app[42]" in scan["candidates"][0]["reason"]
    assert scan["candidates"][0]["holders"] == [{"pid": 42, "fd": 3, "name": "app"}]
    assert scan["kept"]["empty"] == 1


def test_an_empty_closed_file_is_still_deleted(tmp_path):
    now = time.time()
    make(tmp_path / "empty.log", size=0, age_days=10, now=now)
    assert [c["action"] for c in _disk.scan_rule(rule(tmp_path), now, {}, [])["candidates"]] == ["delete"]


def deleted_entry(path, size=1000, holders=4):
    return {"path": str(path), "bytes": size, "size": size, "mtime": time.time(),
            "holders": [{"pid": 100 + i, "fd": 5, "name": "w", "fd_path": f"/proc/{100 + i}/fd/5"} for i in range(holders)]}


def test_deleted_open_files_under_the_rule_are_truncated(tmp_path):
    now = time.time()
    entries = [deleted_entry(tmp_path / "big.tmp"), deleted_entry(tmp_path / "sub" / "x.tmp"),
               deleted_entry("/elsewhere/big.tmp"), deleted_entry(tmp_path / "other.dat"),
               deleted_entry(tmp_path / "zero.tmp", size=0)]
    scan = _disk.scan_rule(rule(tmp_path, patterns=["*.tmp"]), now, {}, entries)
    assert [(os.path.basename(c["path"]), c["action"], c["deleted"]) for c in scan["candidates"]] == \
        [("big.tmp", "truncate", True)]
    assert scan["candidates"][0]["reason"].endswith("w[100], w[101], w[102] ...")
    scan = _disk.scan_rule(rule(tmp_path, patterns=["*.tmp"], recurse=True), now, {}, entries)
    assert names(scan["candidates"]) == ["big.tmp", "x.tmp"]
    assert _disk.scan_rule(rule(tmp_path, patterns=["*.tmp"], deleted_open=False), now, {}, entries)["candidates"] == []


def test_holders_text_without_a_name():
    assert _disk._holders_text([{"pid": 1, "name": None}]) == "?[1]"


def test_an_unreadable_subdirectory_is_skipped(tmp_path, monkeypatch):
    now = time.time()
    make(tmp_path / "sub" / "old.log", age_days=30, now=now)
    real = os.scandir

    def scandir(path):
        if str(path).endswith("sub"):
            raise PermissionError("no")
        return real(path)

    monkeypatch.setattr(_disk.os, "scandir", scandir)
    assert _disk.scan_rule(rule(tmp_path, recurse=True), now, {}, [])["candidates"] == []


# --- plan ---------------------------------------------------------------------------------------

def cand(path, action="delete", size=100, age=10.0, deleted=False):
    return {"path": path, "action": action, "bytes": size, "size": size, "age_seconds": age, "rule": "/d",
            "deleted": deleted, "reason": "r", "holders": [], "_fd_paths": []}


def test_plan_orders_deleted_open_then_deletes_then_truncates_then_compress_oldest_first():
    scans = [{"candidates": [cand("/d/c", "compress"), cand("/d/young", age=1), cand("/d/old", age=99),
                             cand("/d/t", "truncate"), cand("/d/gone", "truncate", deleted=True)]},
             {"candidates": [cand("/d/old", age=99), cand("/d/gone", "truncate", deleted=True)]}]
    plan = _disk.plan_cleanup(scans, 10, None)
    assert [c["path"] for c in plan["planned"]] == ["/d/gone", "/d/old", "/d/young", "/d/t", "/d/c"]
    assert plan["bytes"] == 500 and plan["over_cap"] == []


def test_a_deleted_file_and_a_new_file_of_the_same_name_are_both_planned():
    plan = _disk.plan_cleanup([{"candidates": [cand("/d/a", deleted=True, action="truncate"), cand("/d/a")]}], 10, None)
    assert len(plan["planned"]) == 2


def test_caps_fail_by_default_naming_the_guardrail():
    scans = [{"candidates": [cand(f"/d/{i}") for i in range(3)]}]
    with pytest.raises(GuardrailTripped, match="max_files=2.*raise max_files to at least 3"):
        _disk.plan_cleanup(scans, 2, None)
    with pytest.raises(GuardrailTripped, match="max_bytes=250"):
        _disk.plan_cleanup(scans, 10, 250)
    assert len(_disk.plan_cleanup(scans, 3, 300)["planned"]) == 3


def test_partial_caps_clean_up_to_the_caps():
    scans = [{"candidates": [cand("/d/a", size=100, age=3), cand("/d/b", size=500, age=2), cand("/d/c", size=100, age=1)]}]
    plan = _disk.plan_cleanup(scans, 10, 250, "partial")
    assert [c["path"] for c in plan["planned"]] == ["/d/a", "/d/c"] and plan["bytes"] == 200
    assert [c["path"] for c in plan["over_cap"]] == ["/d/b"]
    plan = _disk.plan_cleanup(scans, 1, None, "partial")
    assert [c["path"] for c in plan["planned"]] == ["/d/a"] and len(plan["over_cap"]) == 2


def test_plan_rejects_bad_caps():
    with pytest.raises(ValueError):
        _disk.plan_cleanup([], 0, None)
    with pytest.raises(ValueError):
        _disk.plan_cleanup([], 1, None, "sometimes")


def test_public_hides_private_keys():
    assert "_fd_paths" not in _disk.public(cand("/d/a"))


# --- execute ------------------------------------------------------------------------------------

def planned_for(tmp_path, **kw):
    now = time.time()
    scan = _disk.scan_rule(rule(tmp_path, **kw), now, *_disk.open_files())
    return _disk.plan_cleanup([scan], 100, None)["planned"]


def test_check_mode_changes_nothing(tmp_path):
    f = make(tmp_path / "old.log", age_days=10)
    done = _disk.execute(planned_for(tmp_path), check_mode=True)
    assert f.exists() and done["bytes_freed"] == 0 and done["errors"] == []
    assert done["actions"][0]["result"] == "would delete (check mode)" and done["actions"][0]["bytes"] > 0


def test_delete_and_second_run_finds_nothing(tmp_path):
    f = make(tmp_path / "old.log", size=65536, age_days=10)
    done = _disk.execute(planned_for(tmp_path), check_mode=False)
    assert not f.exists() and done["bytes_freed"] >= 65536 and done["actions"][0]["result"] == "done"
    assert planned_for(tmp_path) == []


def test_compress_keeps_content_mode_and_time(tmp_path):
    f = make(tmp_path / "app.log.1", size=200000, age_days=10)
    os.chmod(f, 0o640)
    mtime = os.stat(f).st_mtime
    done = _disk.execute(planned_for(tmp_path, action="compress"), check_mode=False)
    gz = tmp_path / "app.log.1.gz"
    assert not f.exists() and gzip.decompress(gz.read_bytes()) == b"x" * 200000
    assert oct(os.stat(gz).st_mode & 0o777) == "0o640" and os.stat(gz).st_mtime == mtime
    assert done["bytes_freed"] > 100000
    assert planned_for(tmp_path, action="compress") == []


def test_compress_refuses_to_overwrite_and_records_the_failure(tmp_path):
    make(tmp_path / "app.log.1", age_days=10)
    (tmp_path / "app.log.1.gz").write_bytes(b"earlier")
    done = _disk.execute(planned_for(tmp_path, patterns=["*.1"], action="compress"), check_mode=False)
    assert done["actions"][0]["result"] == "failed" and "exists already" in done["errors"][0]
    assert (tmp_path / "app.log.1").exists() and (tmp_path / "app.log.1.gz").read_bytes() == b"earlier"


def test_a_failed_compression_leaves_no_temporary_file(tmp_path, monkeypatch):
    make(tmp_path / "app.log.1", age_days=10)

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_disk.os, "rename", no_space)
    done = _disk.execute(planned_for(tmp_path, action="compress"), check_mode=False)
    assert done["errors"] == ["compress " + str(tmp_path / "app.log.1") + ": No space left on device"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.1"]


def test_a_vanished_file_is_recorded_and_the_rest_goes_on(tmp_path):
    a = make(tmp_path / "a.log", age_days=11)
    b = make(tmp_path / "b.log", age_days=10)
    planned = planned_for(tmp_path)
    a.unlink()
    done = _disk.execute(planned, check_mode=False)
    assert [x["result"] for x in done["actions"]] == ["failed", "done"] and not b.exists()
    assert len(done["errors"]) == 1 and done["bytes_freed"] > 0


def test_a_symlink_swapped_in_after_the_scan_is_left_alone(tmp_path):
    outside = make(tmp_path / "outside" / "precious", age_days=30)
    logs = tmp_path / "logs"
    f = make(logs / "a.log", age_days=10)
    planned = planned_for(logs)
    f.unlink()
    f.symlink_to(outside)
    done = _disk.execute(planned, check_mode=False)
    assert done["actions"][0]["result"] == "failed" and outside.exists()
    assert "symlink" in done["errors"][0]


def test_a_directory_swapped_in_is_left_alone(tmp_path):
    f = make(tmp_path / "a.log", age_days=10)
    planned = planned_for(tmp_path)
    f.unlink()
    f.mkdir()
    assert "no longer a regular file" in _disk.execute(planned, check_mode=False)["errors"][0]


@pytest.fixture
def holder(tmp_path):
    """A real process holding a file open (and one holding a deleted file open)."""
    code = ("import sys, os, time\n"
            "a = open(sys.argv[1], 'ab'); b = open(sys.argv[2], 'ab'); b.write(b'y' * 300000); b.flush()\n"
            "os.unlink(sys.argv[2]); print('ready', flush=True); time.sleep(60)\n")
    live = make(tmp_path / "live.log", size=100000, age_days=10)
    proc = subprocess.Popen([sys.executable, "-c", code, str(live), str(tmp_path / "gone.log")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def test_open_and_deleted_open_files_are_truncated_for_real(tmp_path, holder):
    by_inode, deleted = _disk.open_files()
    mine = [d for d in deleted if d["path"] == str(tmp_path / "gone.log")]
    assert mine and mine[0]["holders"][0]["pid"] == holder.pid and mine[0]["size"] == 300000
    planned = planned_for(tmp_path, patterns=["*.log"])
    assert [(os.path.basename(c["path"]), c["action"], c["deleted"]) for c in planned] == \
        [("gone.log", "truncate", True), ("live.log", "truncate", False)]
    done = _disk.execute(planned, check_mode=False)
    assert done["errors"] == [] and done["bytes_freed"] >= 400000
    assert os.path.getsize(tmp_path / "live.log") == 0
    assert [d for d in _disk.open_files()[1] if d["path"] == str(tmp_path / "gone.log")][0]["size"] == 0
    # Second run: nothing left to do (the open file is young and empty now, the deleted one empty).
    assert planned_for(tmp_path, patterns=["*.log"], min_age_seconds=0) == []


def test_a_deleted_file_closed_meanwhile_is_a_recorded_failure():
    done = _disk.execute([cand("/d/x", "truncate", deleted=True)], check_mode=False)
    assert done["actions"][0]["result"] == "failed" and "closed it meanwhile" in done["errors"][0]


def test_open_files_of_a_missing_proc_is_empty(tmp_path):
    assert _disk.open_files(str(tmp_path / "noproc")) == ({}, [])


def test_open_files_skips_unreadable_and_non_regular(tmp_path):
    (tmp_path / "1" / "fd").mkdir(parents=True)
    (tmp_path / "1" / "fd" / "0").symlink_to("/dev/null")
    (tmp_path / "1" / "fd" / "9").symlink_to(tmp_path / "missing")
    (tmp_path / "2").mkdir()
    (tmp_path / "self").mkdir()
    assert _disk.open_files(str(tmp_path)) == ({}, [])
    assert _disk._read_first_line(str(tmp_path / "1" / "comm")) is None


# --- journal ------------------------------------------------------------------------------------

def test_journal_parsers_and_plan():
    assert _disk.journal_usage("Archived and active journals take up 24.0M in the file system.") == 24 * 2**20
    assert _disk.journal_usage("No journal files were found.") is None
    assert _disk.journal_freed("Vacuuming done, freed 8.0M of archived journals from /var/log/journal.") == 8 * 2**20
    assert _disk.journal_freed("Vacuuming done, freed 0B of archived journals") == 0
    assert _disk.journal_freed("nothing") == 0
    assert _disk.journal_plan(None, 100) is None
    assert _disk.journal_plan(100, 100) is None
    assert _disk.journal_plan(300, 100) == {"action": "journal_vacuum", "bytes": 200, "usage_bytes": 300, "limit_bytes": 100}
