"""db_down with db_down_rewind_old_primary on the lab pair (issue 15): a stopped, fenced primary is replaced;
without the flag it stays fenced and nothing is rewound; with the flag --check says what would run and
changes nothing, a run rewinds it into a standby of the new primary, a second run changes nothing. The
newest backup's age is reported from a temporary directory. The pair is restored afterwards."""

from __future__ import annotations

import os
import time
import typing as t

import pytest

from pg_pair import Pair, answers, db_down_changed, run_db_down, sql, stop_primary
from rejoin_restore import restore_after_rejoin

FAST = {"db_down_min_primary_down_seconds": 2, "db_down_fenced": True}


@pytest.fixture
def rejoin_pair(healthy_pair: Pair) -> t.Iterator[Pair]:
    try:
        yield healthy_pair
    finally:
        restore_after_rejoin(healthy_pair)


def run(pair: Pair, extra: dict[str, t.Any] | None = None, **kwargs) -> tuple[dict, dict]:
    return run_db_down(pair, {**FAST, **(extra or {})}, **kwargs)


changed = db_down_changed


def test_fenced_old_primary_rejoins_only_with_the_flag(rejoin_pair, tmp_path):
    pair = rejoin_pair
    stop_primary(pair)
    # Without the flag: promoted, the old primary stays fenced, nothing is rewound.
    _report, promoted = run(pair)
    assert promoted["outcome"] == "healed" and promoted["primary"] == pair.standby, promoted
    assert promoted["rejoin"]["state"] == "not_requested" and "stays fenced" in promoted["rejoin"]["reason"]
    assert not any(a["action"] == "pg_rewind" for a in promoted["actions"])
    assert promoted["backup"]["state"] == "not_configured" and promoted["backup"]["warn"] is False
    assert not answers(pair, pair.primary_port) and not (pair.primary_data / "standby.signal").exists()

    flag = {"db_down_rewind_old_primary": True}
    planned_report, planned = run(pair, flag, check=True)
    assert planned["outcome"] == "check mode: would rejoin the old primary as a standby", planned
    assert [(a["action"], a["result"]) for a in planned["actions"]] == [
        ("pg_rewind", "check mode"), ("configure_standby", "check mode"), ("start", "check mode"),
        ("streaming", "check mode")]
    assert "--source-server=" in planned["actions"][0]["command"] and changed(planned_report) == 0
    assert not answers(pair, pair.primary_port) and not (pair.primary_data / "standby.signal").exists()

    _report, rejoined = run(pair, flag)
    assert rejoined["outcome"] == "healed", rejoined
    assert [(a["action"], a["target"], a["result"]) for a in rejoined["actions"]] == [
        ("pg_rewind", pair.primary, "done"), ("configure_standby", pair.primary, "done"),
        ("start", pair.primary, "done"), ("streaming", pair.primary, "done")]
    assert sql(pair, pair.primary_port, "SELECT pg_is_in_recovery()")
    assert sql(pair, pair.standby_port, "SELECT count(*) FROM pg_stat_replication WHERE "
               "application_name = 'lab_old_primary' AND state = 'streaming'") == 1

    # A second run: a healthy pair (the old primary streams from the new one); the backups are reported.
    backups = tmp_path / "backups"
    (backups / "base-old").mkdir(parents=True)
    (backups / "base-old" / "base.tar").write_bytes(b"x" * 100)
    old = time.time() - 30 * 3600
    os.utime(backups / "base-old" / "base.tar", (old, old))
    os.utime(backups / "base-old", (old, old))
    again_report, again = run(pair, {**flag, "db_down_backup_paths": [str(backups / "*")]})
    assert again["outcome"] == "no action needed" and again["actions"] == [] and changed(again_report) == 0
    assert again["state"] == "healthy" and again["rejoin"]["state"] == "streaming"
    assert again["backup"]["state"] == "stale" and again["backup"]["warn"] is True
    assert again["backup"]["newest"]["path"] == str(backups / "base-old")
    assert again["backup"]["newest"]["size_bytes"] == 100 and again["backup"]["newest"]["age_seconds"] > 26 * 3600
