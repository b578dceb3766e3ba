"""pg_replication_info and pg_failover against the real lab pair (issue 15): healthy -> nothing;
primary busy -> refuse; primary SIGKILLed with its host up -> restart, not promote; a careless manual
promote -> split brain refused; primary stopped and fenced -> promote (check mode first), then a second
run changes nothing. Every test that breaks the pair restores it (healthy_pair)."""

from __future__ import annotations

import typing as t

import sre_testlib
from pg_pair import HeldConnections, Pair, answers, kill_primary, sql, stop_primary


def call(pair: Pair, name: str, args: dict[str, t.Any], check: bool = False, diff: bool = False) -> dict:
    result = sre_testlib.run_module(name, args, check=check, diff=diff)
    text = repr(result)
    for secret in pair.secrets:
        assert secret not in text, f"{name} returned a secret"
    return result


def in_recovery(pair: Pair, port: int) -> bool:
    return sql(pair, port, "SELECT pg_is_in_recovery()")


def test_info_reports_the_healthy_pair(healthy_pair):
    pair = healthy_pair
    result = call(pair, "pg_replication_info", pair.login())
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    primary, standby = result["nodes"]
    assert primary["role"] == "primary" and standby["role"] == "standby"
    assert primary["timeline"] == standby["timeline"] >= 1
    assert primary["replication"] and primary["replication"][0]["state"] == "streaming"
    assert primary["replication"][0]["replay_lag_bytes"] >= 0
    slot = {s["slot_name"]: s for s in primary["slots"]}["lab_standby"]
    assert slot["active"] and slot["retained_wal_bytes"] >= 0
    assert standby["upstream"] == pair.primary and standby["wal_receiver"]["status"] == "streaming"
    assert primary["wal_bytes"] > 0 and primary["databases_bytes"] > 0
    assert result["summary"]["primary"] == pair.primary
    assert result["summary"]["standbys"][0]["streaming"] is True


def test_healthy_pair_nothing_changes(healthy_pair):
    pair = healthy_pair
    for check in (True, False):
        result = call(pair, "pg_failover", pair.login(min_primary_down_seconds=2), check=check)
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is False and result["actions"] == []
        assert result["verdict"]["state"] == "healthy" and result["verdict"]["act"] is False
    assert not in_recovery(pair, pair.primary_port) and in_recovery(pair, pair.standby_port)


def test_busy_primary_is_refused(healthy_pair, tmp_path):
    pair = healthy_pair
    held = HeldConnections(pair, sre_testlib.lab_vars()["lab_pg_max_connections"] + 5, tmp_path)
    try:
        assert not answers(pair, pair.primary_port), "the primary still accepts connections"
        result = call(pair, "pg_failover", pair.login(min_primary_down_seconds=2, fenced=True))
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is False and result["actions"] == []
        assert result["verdict"]["state"] == "primary_busy", result["verdict"]
        assert result["nodes"][0]["error_kind"] == "too_many_clients"
        assert in_recovery(pair, pair.standby_port)
    finally:
        held.close()


def test_killed_primary_with_host_up_is_restarted_not_promoted(healthy_pair):
    pair = healthy_pair
    kill_primary(pair)
    result = call(pair, "pg_failover", pair.login(min_primary_down_seconds=2))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["actions"] == []
    verdict = result["verdict"]
    assert (verdict["state"], verdict["recommend"]) == ("primary_down_host_up", "restart")
    assert verdict["evidence"]["primary_error_kind"] == "refused"
    assert in_recovery(pair, pair.standby_port)


def test_careless_manual_promote_is_split_brain(healthy_pair):
    pair = healthy_pair
    sql(pair, pair.standby_port, "SELECT pg_promote(true, 60)")
    result = call(pair, "pg_failover", pair.login(min_primary_down_seconds=2, force=True, fenced=True))
    assert result.get("failed") and result["guardrail"] == "split_brain"
    assert result["changed"] is False and result["actions"] == []
    named = {p["node"]: p for p in result["split_brain"]}
    assert set(named) == {pair.primary, pair.standby}
    assert named[pair.standby]["timeline"] == named[pair.primary]["timeline"] + 1
    assert pair.primary in result["msg"] and pair.standby in result["msg"] and "timeline" in result["msg"]
    assert not in_recovery(pair, pair.primary_port)


def test_stopped_and_fenced_primary_is_replaced(healthy_pair):
    pair = healthy_pair
    sql(pair, pair.primary_port, "CREATE TABLE IF NOT EXISTS sre_failover_probe (id int)")
    stop_primary(pair)
    fence = ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D",
             str(pair.primary_data), "-m", "fast", "-w", "stop"]
    # pg_ctl stop on a stopped server exits 1: the fence is "make sure it is stopped".
    fence = ["sh", "-c", " ".join(fence) + " >/dev/null 2>&1; ! runuser -u postgres -- "
             f"/usr/lib/postgresql/15/bin/pg_ctl -D {pair.primary_data} status >/dev/null"]
    args = pair.login(min_primary_down_seconds=2, fence_command=fence)

    planned = call(pair, "pg_failover", args, check=True, diff=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["verdict"]["state"] == "primary_down" and planned["verdict"]["act"] is True
    assert planned["plan"]["candidate"] == pair.standby and planned["previous_primary"] == pair.primary
    assert [(a["action"], a["target"], a["result"]) for a in planned["actions"]] == [
        ("fence", pair.primary, "check mode"), ("promote", pair.standby, "check mode")]
    assert planned["diff"]["after"]["nodes"][pair.standby] == "primary"
    assert in_recovery(pair, pair.standby_port), "check mode promoted"

    result = call(pair, "pg_failover", args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["primary"] == pair.standby
    assert [(a["action"], a["target"], a["result"]) for a in result["actions"]] == [
        ("fence", pair.primary, "done"), ("promote", pair.standby, "done")]
    assert result["actions"][1]["timeline"] >= 2
    assert not in_recovery(pair, pair.standby_port)
    sql(pair, pair.standby_port, "INSERT INTO sre_failover_probe VALUES (1)")  # writes accepted

    again = call(pair, "pg_failover", args)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False and again["actions"] == []
    assert again["verdict"]["state"] == "nodes_unreachable" and again["primary"] == pair.standby
