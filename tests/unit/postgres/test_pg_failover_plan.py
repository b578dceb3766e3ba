"""The PostgreSQL failover decision and parsing of module_utils/_pg_replication.py: pure logic, no server."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _pg_replication as repl
from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped
from ansible_collections.sre.runbooks.plugins.module_utils._pg_replication import (
    NodeError,
    SplitBrain,
    classify_error,
    conninfo_target,
    lsn_to_int,
    parse_node,
    parse_nodes,
    plan_failover,
    summarize,
)

P, S, T = "10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"


def primary(node=P, lsn="0/3000148", timeline=1):
    return {"node": node, "reachable": True, "host_up": True, "role": "primary", "in_recovery": False,
            "timeline": timeline, "current_lsn": lsn, "replication": [], "system_identifier": "7"}


def standby(node=S, upstream=P, status="streaming", age=0.5, receive="0/3000148", replay=None, backlog=0,
            timeline=1):
    receiver = None if status is None else {"status": status, "last_msg_age_seconds": age}
    return {"node": node, "reachable": True, "host_up": True, "role": "standby", "in_recovery": True,
            "timeline": timeline, "upstream": upstream, "wal_receiver": receiver, "receive_lsn": receive,
            "replay_lsn": replay or receive, "receive_replay_lag_bytes": backlog}


def down(node=P, kind="refused"):
    host_up, reason = repl.ERROR_KINDS[kind]
    return {"node": node, "reachable": False, "role": "unknown", "error_kind": kind, "host_up": host_up,
            "reason": reason, "error": f"error {kind}"}


def plan(probes, **kw):
    kw.setdefault("min_primary_down_seconds", 10.0)
    return plan_failover(probes, **kw)


# --- one primary --------------------------------------------------------------------------

def test_healthy_pair_nothing_to_do():
    p = plan([primary(), standby()])
    assert (p.state, p.act, p.primary, p.steps) == ("healthy", False, P, [])


def test_unreachable_standby_reported_not_acted_on():
    p = plan([primary(), standby(), down(T, "timeout")])
    assert (p.state, p.act) == ("nodes_unreachable", False)
    assert p.evidence["unreachable"] == [T]


def test_after_promotion_old_primary_stopped_is_not_a_new_failover():
    p = plan([down(P, "refused"), primary(S, timeline=2)], fenced=True)
    assert (p.state, p.act, p.primary) == ("nodes_unreachable", False, S)


def test_standby_streaming_elsewhere_is_astray():
    p = plan([primary(), standby(upstream=T)])
    assert (p.state, p.act, p.recommend) == ("standbys_astray", False, "repoint_standbys")


def test_standby_not_streaming_is_astray():
    p = plan([primary(), standby(status=None)])
    assert p.state == "standbys_astray" and p.evidence["astray"] == [S]


# --- two primaries ------------------------------------------------------------------------

def test_split_brain_names_both_with_timeline_and_lsn():
    with pytest.raises(SplitBrain) as err:
        plan([primary(P, "0/5000000", 1), primary(S, "0/4000000", 2)], force=True, fenced=True)
    assert err.value.guardrail == "split_brain"
    assert P in str(err.value) and S in str(err.value) and "timeline 2" in str(err.value)
    assert "0/5000000" in str(err.value)
    assert [m["node"] for m in err.value.primaries] == [P, S]


def test_auth_failure_refuses():
    with pytest.raises(GuardrailTripped) as err:
        plan([down(P, "auth"), standby()])
    assert err.value.guardrail == "credentials"


# --- no primary answers: evidence rules -----------------------------------------------------

def test_busy_primary_is_left_alone():
    p = plan([down(P, "too_many_clients"), standby(status=None)], fenced=True, down_for=60)
    assert (p.state, p.act, p.recommend) == ("primary_busy", False, "db_exhaustion")


@pytest.mark.parametrize("kind", ["starting_up", "shutting_down", "in_recovery"])
def test_starting_primary_is_left_alone(kind):
    p = plan([down(P, kind), standby(status=None)], fenced=True, down_for=60)
    assert (p.state, p.act) == ("primary_starting", False)


def test_standby_still_streaming_means_partitioned():
    p = plan([down(P, "timeout"), standby(status="streaming", age=1.0)], fenced=True, down_for=60)
    assert (p.state, p.act, p.recommend) == ("primary_partitioned", False, "check_network")


def test_stale_streaming_receiver_is_not_evidence_of_life():
    p = plan([down(P, "timeout"), standby(status="streaming", age=30.0)], fenced=True, down_for=60)
    assert (p.state, p.act) == ("primary_down", True)


def test_refused_host_up_without_fence_recommends_restart():
    p = plan([down(P, "refused"), standby(status=None)], down_for=60)
    assert (p.state, p.act, p.recommend) == ("primary_down_host_up", False, "restart")


def test_refused_with_fence_command_promotes():
    p = plan([down(P, "refused"), standby(status=None)], fence_command=True, down_for=60)
    assert (p.state, p.act, p.candidate) == ("primary_down", True, S)
    assert [s["action"] for s in p.steps] == ["fence", "promote"]
    assert p.steps[0]["how"] == "fence_command"


def test_host_gone_without_fence_refuses():
    with pytest.raises(GuardrailTripped) as err:
        plan([down(P, "timeout"), standby(status=None)], down_for=60)
    assert err.value.guardrail == "fencing" and "fenced=true" in str(err.value)


def test_host_gone_fenced_promotes_most_advanced_standby():
    p = plan([down(P, "timeout"), standby(S, status=None, receive="0/3000000"),
              standby(T, status=None, receive="0/3000100")], fenced=True, down_for=11)
    assert (p.state, p.act, p.candidate, p.previous_primary) == ("primary_down", True, T, P)
    assert p.steps[0] == {"action": "fence", "target": P, "how": "confirmed by the caller (fenced=true)"}
    assert p.evidence["candidates"][1] == {"node": S, "receive_lsn": "0/3000000", "behind_best_bytes": 0x100}
    assert S in p.reason and "re-pointed" in p.reason


def test_down_not_long_enough_waits():
    p = plan([down(P, "timeout"), standby(status=None)], fenced=True, down_for=3)
    assert (p.state, p.act, p.recommend) == ("primary_down_unconfirmed", False, "wait")


def test_force_skips_evidence_but_not_fencing():
    p = plan([down(P, "too_many_clients"), standby(status="streaming")], force=True, fenced=True)
    assert (p.state, p.act) == ("primary_down", True)
    with pytest.raises(GuardrailTripped) as err:
        plan([down(P, "timeout"), standby(status=None)], force=True)
    assert err.value.guardrail == "fencing"


def test_replay_backlog_over_limit_refuses_unless_forced():
    probes = [down(P, "timeout"), standby(status=None, backlog=100)]
    with pytest.raises(GuardrailTripped) as err:
        plan(probes, fenced=True, down_for=60, max_lag_bytes=50)
    assert err.value.guardrail == "max_lag_bytes"
    assert plan(probes, fenced=True, down_for=60, max_lag_bytes=None).act
    assert plan(probes, fenced=True, down_for=60, max_lag_bytes=50, force=True).act


def test_no_standby_answers():
    with pytest.raises(GuardrailTripped) as err:
        plan([down(P, "timeout"), down(S, "timeout")], fenced=True, down_for=60)
    assert err.value.guardrail == "no_candidate"


def test_no_candidate_with_hint():
    with pytest.raises(GuardrailTripped) as err:
        plan([down(P, "timeout"), down(S, "timeout")], primary_hint=P, fenced=True, down_for=60)
    assert err.value.guardrail == "no_candidate"


def test_standbys_disagree_on_upstream():
    with pytest.raises(GuardrailTripped) as err:
        plan([down(P, "timeout"), standby(S, upstream=P, status=None), standby(T, upstream=S, status=None)],
             fenced=True, down_for=60)
    assert err.value.guardrail == "unknown_primary"


def test_hint_resolves_disagreement():
    p = plan([down(P, "timeout"), standby(S, upstream=P, status=None), standby(T, upstream=None, status=None)],
             primary_hint=P, fenced=True, down_for=60)
    assert p.previous_primary == P and p.act


def test_upstream_outside_nodes():
    with pytest.raises(GuardrailTripped) as err:
        plan([standby(S, upstream="10.9.9.9:5432", status=None)], fenced=True, down_for=60)
    assert err.value.guardrail == "unknown_primary" and "not in nodes" in str(err.value)


def test_upstream_is_a_reachable_standby():
    with pytest.raises(GuardrailTripped) as err:
        plan([standby(P, upstream=None, status=None), standby(S, upstream=P, status=None)], fenced=True, down_for=60)
    assert err.value.guardrail == "unknown_primary"


# --- observe_down --------------------------------------------------------------------------

def test_observe_down_watches_until_threshold(monkeypatch):
    probes = [down(P, "timeout"), standby(status=None)]
    calls = []
    monkeypatch.setattr(repl, "probe_all", lambda params, nodes: calls.append(1) or probes)
    clock = iter([0.0, 1.0, 2.5, 4.0])
    p = repl.observe_down({}, [P, S], {"fenced": True}, 3.0, clock=lambda: next(clock), sleep=lambda s: None)[1]
    assert p.act and len(calls) == 4


def test_observe_down_stops_when_evidence_changes(monkeypatch):
    seq = iter([[down(P, "timeout"), standby(status=None)], [primary(), standby()]])
    monkeypatch.setattr(repl, "probe_all", lambda params, nodes: next(seq))
    clock = iter([0.0, 1.0])
    p = repl.observe_down({}, [P, S], {"fenced": True}, 3.0, clock=lambda: next(clock), sleep=lambda s: None)[1]
    assert p.state == "healthy"


# --- parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("db1:5433", ("db1", 5433)), ("db1", ("db1", 5432)), ("[::1]:5434", ("::1", 5434)),
    ("/run/postgresql:5432", ("/run/postgresql", 5432)),
])
def test_parse_node(text, expected):
    assert parse_node(text) == expected


@pytest.mark.parametrize("text", ["", "db1:x", "::1", "db1:0", ":5432"])
def test_parse_node_rejects(text):
    with pytest.raises(NodeError):
        parse_node(text)


def test_parse_nodes_rejects_duplicates_and_empty():
    with pytest.raises(NodeError):
        parse_nodes(["db1", "db1:5432"])
    with pytest.raises(NodeError):
        parse_nodes([])


@pytest.mark.parametrize("text,kind", [
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "refused"),
    ("FATAL:  sorry, too many clients already", "too_many_clients"),
    ("FATAL:  remaining connection slots are reserved for non-replication superuser connections",
     "too_many_clients"),
    ("FATAL:  the database system is starting up", "starting_up"),
    ("FATAL:  the database system is not yet accepting connections", "starting_up"),
    ("FATAL:  the database system is shutting down", "shutting_down"),
    ("FATAL:  the database system is in recovery mode", "in_recovery"),
    ('FATAL:  password authentication failed for user "postgres"', "auth"),
    ("timeout expired", "timeout"),
    ("could not connect: No route to host", "unreachable"),
    ('could not translate host name "x" to address', "dns"),
    ("something else", "error"),
])
def test_classify_error(text, kind):
    assert classify_error(text) == kind


def test_conninfo_target_drops_the_password():
    assert conninfo_target("host=10.0.0.1 port=5433 user=rep password=secret") == ("10.0.0.1", 5433)
    assert conninfo_target("user=rep host='db1' application_name=x") == ("db1", 5432)
    assert conninfo_target("postgresql://rep:secret@db1:5434/postgres") == ("db1", 5434)
    assert conninfo_target("") == (None, None)
    assert conninfo_target("host=db1 port=abc") == ("db1", None)


def test_lsn_to_int():
    assert lsn_to_int("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn_to_int(None) is None


def test_summarize_lag_behind_the_primary():
    summary = summarize([primary(lsn="0/3000200"), standby(receive="0/3000100"), down(T, "timeout")])
    assert summary["primary"] == P and summary["unreachable_nodes"] == [T]
    assert summary["standbys"][0]["replay_lag_bytes"] == 0x100 and summary["standbys"][0]["streaming"]
