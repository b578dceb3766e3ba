"""pg_rejoin against the real lab pair (issue 15): the lab standby promoted by hand while the lab primary
still takes writes (a real divergence), then the old primary - killed (not clean: refused), running (split
brain: refused), stopped cleanly - is rewound into a standby of the new primary: check mode first (exact
commands, nothing changes), then the rejoin (the diverged write is gone, it streams), then a second run
changes nothing. The pair is restored afterwards (25432 primary, 25434 standby)."""

from __future__ import annotations

import typing as t

import pytest

import sre_testlib
from pg_pair import Pair, answers, kill_primary, sql, stop_primary, wait_for
from rejoin_restore import passfile, restore_after_rejoin


@pytest.fixture
def rejoin_pair(healthy_pair: Pair) -> t.Iterator[Pair]:
    try:
        yield healthy_pair
    finally:
        restore_after_rejoin(healthy_pair)


def call(pair: Pair, args: dict[str, t.Any], check: bool = False, diff: bool = False) -> dict:
    result = sre_testlib.run_module("pg_rejoin", args, check=check, diff=diff)
    for secret in pair.secrets:
        assert secret not in repr(result), "pg_rejoin returned a secret"
    return result


def rejoin_args(pair: Pair, **extra: t.Any) -> dict[str, t.Any]:
    return dict(node=pair.primary, primary=pair.standby, data_directory=str(pair.primary_data),
                login_user=pair.superuser, login_password=pair.password, connect_timeout=3,
                standby_passfile=str(passfile(pair)), application_name="lab_old_primary",
                log_file=str(pair.state_dir / "pg" / "log" / "postgresql.log"), wait_timeout=90, **extra)


def in_recovery(pair: Pair, port: int) -> bool:
    return sql(pair, port, "SELECT pg_is_in_recovery()")


def test_old_primary_is_rewound_into_a_standby(rejoin_pair):
    pair = rejoin_pair
    assert sql(pair, pair.primary_port, "SHOW wal_log_hints") == "on", "lab/pg must set wal_log_hints = on"
    # pg_rewind reads the old primary's WAL back to the last checkpoint both share: take one now, and let the
    # standby replay it, so that WAL is still in the old primary's pg_wal (a small lab recycles segments fast).
    # (A fresh segment first, so the rest of this test's WAL stays in the segment of that checkpoint.)
    sql(pair, pair.primary_port, "SELECT pg_switch_wal()::text")
    sql(pair, pair.primary_port, "CHECKPOINT")
    head = sql(pair, pair.primary_port, "SELECT pg_current_wal_lsn()::text")
    wait_for(lambda: sql(pair, pair.standby_port, f"SELECT pg_last_wal_replay_lsn() >= '{head}'::pg_lsn"), 60,
             "the standby to replay the checkpoint")
    # A careless manual promote while the primary still takes writes: the two histories diverge.
    sql(pair, pair.standby_port, "SELECT pg_promote(true, 60)")
    sql(pair, pair.primary_port, "CREATE TABLE sre_rejoin_diverged AS SELECT generate_series(1, 1000) AS id")
    args = rejoin_args(pair)

    never = call(pair, dict(args, node=pair.standby))
    assert never.get("failed") and never["guardrail"] == "target_is_primary" and never["actions"] == []

    running = call(pair, args)
    assert running.get("failed") and running["guardrail"] == "target_running", running
    assert "split brain" in running["msg"]

    kill_primary(pair)
    crashed = call(pair, args)
    assert crashed.get("failed") and crashed["guardrail"] == "not_clean", crashed
    assert crashed["control"]["state"] == "in production" and "clean" in crashed["msg"]
    assert not (pair.primary_data / "standby.signal").exists()

    # Crash recovery, then a clean stop: now it may be rewound.
    sre_testlib.lab("pg", "up")
    stop_primary(pair)
    planned = call(pair, args, check=True, diff=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["changed"] is False and planned["verdict"]["state"] == "rejoin"
    assert [(a["action"], a["result"]) for a in planned["actions"]] == [
        ("pg_rewind", "check mode"), ("configure_standby", "check mode"), ("start", "check mode"),
        ("streaming", "check mode")]
    rewind = planned["actions"][0]["command"]
    assert f"pg_rewind --target-pgdata={pair.primary_data} --source-server=" in rewind
    assert "PGPASSFILE=TMPDIR/pgpass" in rewind and f"port={pair.standby_port}" in rewind
    assert planned["control"]["state"] == "shut down" and planned["control"]["wal_log_hints"] is True
    assert planned["diff"]["after"]["state"] == f"standby streaming from {pair.standby}"
    assert not answers(pair, pair.primary_port) and not (pair.primary_data / "standby.signal").exists()

    done = call(pair, args)
    assert not done.get("failed"), done.get("msg")
    assert done["changed"] is True
    assert [(a["action"], a["result"]) for a in done["actions"]] == [
        ("pg_rewind", "done"), ("configure_standby", "done"), ("start", "done"), ("streaming", "done")]
    assert "config_kept" in done["actions"][0] and "postgresql.conf" in done["actions"][0]["config_kept"]
    assert in_recovery(pair, pair.primary_port) and not in_recovery(pair, pair.standby_port)
    streams = ("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'lab_old_primary' "
               "AND state = 'streaming'")
    wait_for(lambda: sql(pair, pair.standby_port, streams) == 1, 60, "the rejoined node to stream")
    # The write only the old primary had is gone: it was rewound to the new primary's history.
    assert sql(pair, pair.primary_port, "SELECT to_regclass('sre_rejoin_diverged') IS NULL")
    assert (passfile(pair).stat().st_mode & 0o777) == 0o600
    assert pair.password not in (pair.primary_data / "postgresql.auto.conf").read_text()

    again = call(pair, args)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False and again["actions"] == [] and again["verdict"]["state"] == "streaming"
