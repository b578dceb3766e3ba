"""playbooks/outage/db_down.yml on the lab pair (issue 15): a healthy pair changes nothing (no-fault
control, --check too); a SIGKILLed primary with its host up is restarted (not replaced) and the
standby streams again; a stopped, fenced primary is replaced by the standby, which then takes writes,
and a second run changes nothing."""

from __future__ import annotations

import json
import typing as t

import sre_testlib
from pg_pair import (
    DB_DOWN_HOST,
    DB_DOWN_PLAYBOOK,
    Pair,
    app_via_pooler,
    db_down_changed,
    kill_primary,
    pooler_ini,
    run_db_down,
    sql,
    stop_primary,
)

FAST = {"db_down_min_primary_down_seconds": 2}


def run(pair: Pair, extra: dict[str, t.Any] | None = None, **kwargs) -> tuple[dict, dict]:
    return run_db_down(pair, {**FAST, **(extra or {})}, **kwargs)


changed = db_down_changed


def test_healthy_pair_no_fault_control(healthy_pair):
    pair = healthy_pair
    for check in (True, False):
        report, result = run(pair, check=check)
        assert result["outcome"] == "no action needed", result
        assert result["state"] == "healthy" and result["actions"] == [] and changed(report) == 0
    assert not sql(pair, pair.primary_port, "SELECT pg_is_in_recovery()")


def test_killed_primary_is_restarted_not_replaced(healthy_pair):
    pair = healthy_pair
    kill_primary(pair)
    assessed = run(pair, tags="assess")[1]
    assert assessed["outcome"] == "assessed only" and assessed["action"] == "restart"
    report, result = run(pair)
    assert result["outcome"] == "healed", result
    assert result["action"] == "restart" and result["primary"] == pair.primary
    assert [(a["action"], a["target"]) for a in result["actions"]] == [("restart", pair.primary)]
    assert result["state_after"] == "healthy" and result["write_check"]
    assert result["app_login"] == [{"writable": True}] and result["pooler_changes"] == []
    assert sql(pair, pair.standby_port, "SELECT pg_is_in_recovery()"), "the standby was promoted"


def test_full_data_disk_is_reported_not_restarted(healthy_pair):
    """A killed primary whose data filesystem is full (here: less free than 1000T, so the lab's
    filesystem counts as full) is reported - no restart, no promotion."""
    pair = healthy_pair
    kill_primary(pair)
    report, result = run(pair, {"db_down_full_min_free": "1000T"})
    assert (result["state"], result["action"], result["actions"]) == ("primary_disk_full", "report", [])
    assert result["data_mount"]["full"] is True and changed(report) == 0
    assert sql(pair, pair.standby_port, "SELECT pg_is_in_recovery()")


def test_stopped_fenced_primary_is_replaced_then_nothing(healthy_pair):
    pair = healthy_pair
    stop_primary(pair)
    planned_report, planned = run(pair, {"db_down_fenced": True}, check=True)
    assert planned["outcome"].startswith("check mode"), planned
    assert planned["candidate"] == pair.standby and planned["action"] == "promote"
    assert [(a["action"], a["result"]) for a in planned["actions"]] == [
        ("fence", "check mode"), ("promote", "check mode"), ("rewrite", "check mode"), ("reload", "check mode")]
    assert sql(pair, pair.standby_port, "SELECT pg_is_in_recovery()"), "--check promoted"

    report, result = run(pair, {"db_down_fenced": True})
    assert result["outcome"] == "healed", result
    assert result["primary"] == pair.standby and result["previous_primary"] == pair.primary
    assert [(a["action"], a["target"], a["result"]) for a in result["actions"]] == [
        ("fence", pair.primary, "confirmed"), ("promote", pair.standby, "done"),
        ("rewrite", str(pooler_ini(pair)), "done"), ("reload", "pgbouncer", "done")]
    assert not sql(pair, pair.standby_port, "SELECT pg_is_in_recovery()")
    # The verify step: the pooler points at the new primary and the app logs in through it.
    assert result["pooler_changes"] == [{"name": "*", "before": f"{pair.state_dir}/pg/run:{pair.primary_port}",
                                         "after": pair.standby}]
    assert result["app_login"] == [{"writable": True}]
    assert app_via_pooler(pair, "SELECT pg_is_in_recovery()") is False

    again_report, again = run(pair, {"db_down_fenced": True})
    assert again["actions"] == [] and changed(again_report) == 0
    assert again["state"] == "nodes_unreachable" and again["primary"] == pair.standby


def test_secret_canary_at_vvv(healthy_pair):
    """At -vvv (module arguments, task results, the debug of the whole record) no lab password shows."""
    pair = healthy_pair
    rc, report, stderr = sre_testlib.run_playbook(DB_DOWN_PLAYBOOK, extra_vars=FAST, limit=DB_DOWN_HOST,
                                                  env={"ANSIBLE_VERBOSITY": "3"})
    assert rc == 0, stderr[-2000:]
    text = json.dumps(report) + stderr
    for secret in pair.secrets:
        assert secret not in text
