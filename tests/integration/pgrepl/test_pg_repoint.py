"""Re-pointing after a failover, on the real lab pair (issue 15): a standby whose WAL receiver streams
from nowhere is re-pointed to the primary by pg_failover (repoint_standbys: ALTER SYSTEM primary_conninfo
+ reload), and pgbouncer_repoint moves the lab pgbouncer's [databases] entry to another server and
RELOADs it - check mode first, then the change, then a second run that changes nothing."""

from __future__ import annotations

import re

import sre_testlib
from pg_pair import Pair, app_via_pooler, pooler_ini, sql, streaming, wait_for


def call(pair: Pair, name: str, args: dict, check: bool = False, diff: bool = False) -> dict:
    result = sre_testlib.run_module(name, args, check=check, diff=diff)
    for secret in pair.secrets:
        assert secret not in repr(result), f"{name} returned a secret"
    return result


def test_idle_standby_is_repointed_to_the_primary(healthy_pair):
    pair = healthy_pair
    conninfo = sql(pair, pair.standby_port, "SELECT current_setting('primary_conninfo')")
    astray = re.sub(r"port=\d+", "port=1", conninfo)
    sql(pair, pair.standby_port, f"ALTER SYSTEM SET primary_conninfo = '{astray}'")
    sql(pair, pair.standby_port, "SELECT pg_reload_conf()")
    wait_for(lambda: not streaming(pair), 60, "the standby to stop streaming")
    args = pair.login(min_primary_down_seconds=2, repoint_standbys=True)

    reported = call(pair, "pg_failover", pair.login(min_primary_down_seconds=2))
    assert (reported["verdict"]["state"], reported["verdict"]["act"]) == ("standbys_astray", False)
    planned = call(pair, "pg_failover", args, check=True, diff=True)
    assert [(a["action"], a["target"], a["result"]) for a in planned["actions"]] == [
        ("repoint", pair.standby, "check mode")]
    assert planned["diff"]["after"]["nodes"][pair.standby] == f"standby of {pair.primary}"
    assert not streaming(pair), "check mode re-pointed"

    result = call(pair, "pg_failover", args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert [(a["action"], a["target"], a["result"], a["to"]) for a in result["actions"]] == [
        ("repoint", pair.standby, "done", pair.primary)]
    assert streaming(pair)
    kept = sql(pair, pair.standby_port, "SELECT current_setting('primary_conninfo')")
    assert re.sub(r"port=\d+", "", kept) == re.sub(r"port=\d+", "", conninfo)  # passfile, user... kept

    again = call(pair, "pg_failover", args)
    assert again["changed"] is False and again["verdict"]["state"] == "healthy" and again["actions"] == []


def test_pgbouncer_repoint_moves_the_pooler_and_reloads(healthy_pair):
    pair = healthy_pair
    v = sre_testlib.lab_vars()
    before = pooler_ini(pair).read_text()
    args = dict(config=str(pooler_ini(pair)), host=pair.host, port=pair.standby_port, admin_host=pair.host,
                admin_port=pair.bouncer_port, admin_user=pair.superuser, admin_password=pair.password)
    assert app_via_pooler(pair, "SELECT pg_is_in_recovery()") is False  # the primary, through the pooler

    planned = call(pair, "pgbouncer_repoint", args, check=True, diff=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["changed"] is True and planned["reloaded"] is True
    assert planned["changes"] == [{"name": "*", "before": f"{pair.state_dir}/pg/run:{pair.primary_port}",
                                   "after": pair.standby}]
    assert pooler_ini(pair).read_text() == before, "check mode wrote the file"

    result = call(pair, "pgbouncer_repoint", args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["reloaded"] is True and result["stale"] == []
    assert [a["action"] for a in result["actions"]] == ["rewrite", "reload"]
    assert f"* = host={pair.host} port={pair.standby_port}" in pooler_ini(pair).read_text()
    assert v["lab_pg_app_password"] not in repr(result)
    # the application's next login through the pooler reaches the new server (the standby here)
    wait_for(lambda: app_via_pooler(pair, "SELECT pg_is_in_recovery()") is True, 30,
             "the pooler to serve from the re-pointed server")

    again = call(pair, "pgbouncer_repoint", args)
    assert again["changed"] is False and again["actions"] == [] and again["reloaded"] is False
