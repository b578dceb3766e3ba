"""Re-pointing standbys in pg_failover's plan (issue 15): only with repoint_standbys, only standbys whose
WAL receiver streams from nowhere; the conninfo rewrite keeps everything but host and port."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._pg_replication import plan_failover, retarget_conninfo

P, S, T = "10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"


def node(name, role, upstream=None, status=None, receive="0/3000148"):
    out = {"node": name, "reachable": True, "role": role, "timeline": 1, "current_lsn": receive,
           "upstream": upstream, "receive_lsn": receive, "replay_lsn": receive, "receive_replay_lag_bytes": 0,
           "wal_receiver": {"status": status, "last_msg_age_seconds": 0.5} if status else None}
    return out


def test_idle_astray_standby_is_repointed_only_when_asked():
    probes = [node(P, "primary"), node(S, "standby", upstream="10.0.0.1:1")]
    assert plan_failover(probes).act is False
    p = plan_failover(probes, repoint_standbys=True)
    assert (p.state, p.act, p.recommend) == ("standbys_astray", True, "repoint_standbys")
    assert p.steps == [{"action": "repoint", "target": S, "from": "10.0.0.1:1", "to": P}]


def test_standby_streaming_from_elsewhere_is_never_repointed():
    probes = [node(P, "primary"), node(S, "standby", upstream=T, status="streaming"),
              node("10.0.0.4:5432", "standby", upstream="x:1")]
    p = plan_failover(probes, repoint_standbys=True)
    assert (p.act, p.steps) == (False, []) and T not in p.evidence["astray"] and S in p.reason


def test_promotion_repoints_the_other_standbys_after_promoting():
    down = {"node": P, "reachable": False, "role": "unknown", "error_kind": "timeout", "host_up": None,
            "reason": "timeout", "error": "timeout"}
    probes = [down, node(S, "standby", upstream=P, receive="0/5000000"), node(T, "standby", upstream=P)]
    p = plan_failover(probes, fenced=True, down_for=60, repoint_standbys=True)
    assert [(s["action"], s["target"]) for s in p.steps] == [("fence", P), ("promote", S), ("repoint", T)]
    assert p.steps[-1]["to"] == S
    assert [s["action"] for s in plan_failover(probes, fenced=True, down_for=60).steps] == ["fence", "promote"]


def test_retarget_conninfo():
    conninfo = "host=10.0.0.1 port=5432 user=repl passfile=/pg/.pgpass application_name=s2"
    assert retarget_conninfo(conninfo, "[fe80::1]:5433") == \
        "host=fe80::1 port=5433 user=repl passfile=/pg/.pgpass application_name=s2"
    assert retarget_conninfo("", S) == "host=10.0.0.2 port=5432"
    with pytest.raises(ValueError, match="URI"):
        retarget_conninfo("postgresql://repl@10.0.0.1/x", S)


# --- reusing the assessment's observation (down_since) --------------------------------------

def _gone():
    return [{"node": P, "reachable": False, "role": "unknown", "error_kind": "timeout", "host_up": None,
             "reason": "timeout", "error": "timeout"}, node(S, "standby", upstream=P)]


def _observe(monkeypatch, seq, down_since, wall=1000.0):
    from ansible_collections.sre.runbooks.plugins.module_utils import _pg_replication as repl
    calls = []
    monkeypatch.setattr(repl, "probe_all", lambda params, nodes: calls.append(1) or next(seq))
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    plan = repl.observe_down({}, [P, S], {"fenced": True}, 3.0, clock=lambda: next(clock), sleep=lambda s: None,
                             down_since=down_since, wall=lambda: wall)[1]
    return plan, len(calls)


def test_down_since_skips_the_second_window_when_fresh_probe_agrees(monkeypatch):
    plan, probes = _observe(monkeypatch, iter([_gone()]), down_since=995.0)
    assert plan.act and probes == 1
    assert plan.evidence["down_since"] == 995.0 and plan.evidence["reused_observation_seconds"] == 5.0


def test_down_since_does_not_override_fresh_evidence(monkeypatch):
    alive = [{"node": P, "reachable": False, "role": "unknown", "error_kind": "too_many_clients", "host_up": True,
              "reason": "busy", "error": "busy"}, node(S, "standby", upstream=P)]
    plan = _observe(monkeypatch, iter([alive]), down_since=900.0)[0]
    assert (plan.state, plan.act) == ("primary_busy", False)


@pytest.mark.parametrize("since", [1001.0, 300.0, None])
def test_future_or_stale_down_since_is_ignored(monkeypatch, since):
    plan, probes = _observe(monkeypatch, iter([_gone()] * 6), down_since=since)
    assert plan.act and probes == 4 and "reused_observation_seconds" not in plan.evidence
