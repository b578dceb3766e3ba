"""When db_down rejoins the old primary (plugins/filter/db_down_rejoin.py): every branch."""

from __future__ import annotations

from ansible_collections.sre.runbooks.plugins.filter.db_down_rejoin import FilterModule, db_down_rejoin

OLD, NEW = "h:25432", "h:25434"
CONF = dict(enabled=True, node=OLD, data_directory="/d", host="db1")


def probe(node, reachable, role="unknown", upstream=None, status=None):
    return {"node": node, "reachable": reachable, "role": role, "upstream": upstream,
            "wal_receiver": {"status": status} if status else None}


def assessment(state, primary=NEW, nodes=None, candidate=None, failed=False):
    return {"verdict": {"state": state}, "primary": primary, "plan": {"candidate": candidate}, "failed": failed,
            "nodes": nodes if nodes is not None else [probe(OLD, False), probe(NEW, True, "primary")]}


PROMOTED = {"changed": True, "primary": NEW, "nodes": [probe(OLD, False), probe(NEW, True, "standby")]}


def test_registered():
    assert FilterModule().filters()["db_down_rejoin"] is db_down_rejoin


def test_not_requested_by_default():
    out = db_down_rejoin(assessment("primary_down", candidate=NEW), failover=PROMOTED, node=OLD)
    assert (out["act"], out["state"]) == (False, "not_requested")
    assert f"{OLD} stays fenced" in out["reason"] and "db_down_rewind_old_primary" in out["reason"]
    assert "stays fenced" not in db_down_rejoin(assessment("healthy"))["reason"]


def test_not_configured():
    out = db_down_rejoin(assessment("nodes_unreachable"), enabled=True, node=OLD, data_directory="", host="db1")
    assert (out["act"], out["state"]) == (False, "not_configured")


def test_after_this_runs_promotion():
    out = db_down_rejoin(assessment("primary_down", candidate=NEW), failover=PROMOTED, **CONF)
    assert (out["act"], out["state"], out["primary"]) == (True, "rejoin", NEW)


def test_check_mode_promotion_is_not_yet_a_primary():
    check = {"changed": False, "primary": NEW}
    out = db_down_rejoin(assessment("primary_down", candidate=NEW), failover=check, **CONF)
    assert (out["act"], out["state"]) == (False, "after_promotion")


def test_later_run_fenced_old_primary():
    out = db_down_rejoin(assessment("nodes_unreachable"), **CONF)
    assert (out["act"], out["state"]) == (True, "rejoin")


def test_no_single_primary():
    for plan in (assessment("split_brain", failed=True), assessment("primary_busy"), {}):
        out = db_down_rejoin(plan, **CONF)
        assert (out["act"], out["state"]) == (False, "no_primary")


def test_old_primary_is_the_primary():
    out = db_down_rejoin(assessment("healthy", primary=OLD), **CONF)
    assert (out["act"], out["state"]) == (False, "is_primary")


def test_already_streaming():
    nodes = [probe(OLD, True, "standby", NEW, "streaming"), probe(NEW, True, "primary")]
    out = db_down_rejoin(assessment("healthy", nodes=nodes), **CONF)
    assert (out["act"], out["state"]) == (False, "streaming")


def test_running_node_is_never_rewound():
    nodes = [probe(OLD, True, "standby", None, None), probe(NEW, True, "primary")]
    out = db_down_rejoin(assessment("standbys_astray", nodes=nodes), **CONF)
    assert (out["act"], out["state"]) == (False, "running")
