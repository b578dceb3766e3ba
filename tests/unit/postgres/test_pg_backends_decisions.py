"""Unit tests for pg_backends' decisions that need no server: refusing a cancel that cannot
cancel anything, and reporting what was done when the backend fails part-way (no traceback)."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.modules import pg_backends


@pytest.mark.parametrize("state, states, refused", [
    ("cancelled", ["idle"], ["idle"]),
    ("cancelled", ["idle in transaction"], ["idle in transaction"]),
    ("cancelled", ["active", "idle in transaction (aborted)"], ["idle in transaction (aborted)"]),
    ("cancelled", ["active"], None),
    ("cancelled", ["active", "fastpath function call"], None),
    ("terminated", ["idle", "idle in transaction"], None),
    ("terminated", ["active"], None),
])
def test_cancel_is_refused_on_sessions_without_a_query(state, states, refused):
    message = pg_backends.refuse_cancel_without_query(state, states)
    if refused is None:
        assert message is None
    else:
        assert message.startswith(f"state=cancelled cannot act on {', '.join(refused)} sessions")
        assert "backend_states=[active]" in message and "state=terminated" in message


class Failed(SystemExit):
    pass


class FakeModule:
    def __init__(self, wait_timeout=0):
        self.params = {"wait_timeout": wait_timeout}

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


class ServerGone(Exception):
    pass


def backends(*pids):
    return [{"pid": pid, "state": "idle"} for pid in pids]


def result_of(chosen):
    return dict(changed=False, backends=chosen, matched=len(chosen), acted=0, acted_by_state={}, capped=0, actions=[])


def test_a_backend_error_after_the_first_action_returns_what_was_done(monkeypatch):
    calls = []

    def signal(conn, function, pids, filters):
        calls.append(pids)
        if len(calls) == 3:
            raise ServerGone("server closed the connection unexpectedly\n\tThis probably means ...")
        return {pids[0]: True} if len(calls) == 1 else {}

    monkeypatch.setattr(pg_backends, "signal_backends", signal)
    chosen = backends(11, 12, 13, 14)
    result = result_of(chosen)
    with pytest.raises(Failed) as raised:
        pg_backends.act(FakeModule(), None, result, chosen, {}, "db1:5432", terminate=True, batch=1)
    failure = raised.value.args[0]
    assert [(a["pid"], a["result"]) for a in failure["actions"]] == [
        (11, "done"), (12, "spared: no longer matches"),
        (13, "unknown: the signalling statement failed: server closed the connection unexpectedly")]
    assert failure["changed"] is True and failure["acted"] == 1
    assert failure["failed_step"] == "signalling sessions 13..13"
    assert "db1:5432" in failure["msg"] and "1 session(s) were signalled" in failure["msg"]
    assert "Traceback" not in failure["msg"]
    assert calls == [[11], [12], [13]]  # 14 is never signalled after the error


def test_an_error_on_the_first_signal_reports_no_change(monkeypatch):
    def signal(conn, function, pids, filters):
        raise ServerGone("terminating connection due to administrator command")

    monkeypatch.setattr(pg_backends, "signal_backends", signal)
    chosen = backends(21)
    with pytest.raises(Failed) as raised:
        pg_backends.act(FakeModule(), None, result_of(chosen), chosen, {}, "db1:5432", terminate=False)
    failure = raised.value.args[0]
    assert failure["changed"] is False
    assert [a["result"] for a in failure["actions"]] == [
        "unknown: the signalling statement failed: terminating connection due to administrator command"]


def test_an_error_while_waiting_keeps_the_actions(monkeypatch):
    monkeypatch.setattr(pg_backends, "signal_backends", lambda conn, f, pids, flt: {p: True for p in pids})

    def wait(conn, pids, timeout):
        raise ServerGone("connection lost")

    monkeypatch.setattr(pg_backends, "wait_until_gone", wait)
    chosen = backends(31, 32)
    with pytest.raises(Failed) as raised:
        pg_backends.act(FakeModule(wait_timeout=5), None, result_of(chosen), chosen, {}, "db1:5432", terminate=True)
    failure = raised.value.args[0]
    assert [a["result"] for a in failure["actions"]] == ["done", "done"]
    assert failure["acted_by_state"] == {"idle": 2}
    assert "waiting" in failure["failed_step"]


def test_sessions_are_signalled_in_batches(monkeypatch):
    calls = []
    monkeypatch.setattr(pg_backends, "signal_backends",
                        lambda conn, f, pids, flt: calls.append(list(pids)) or {p: True for p in pids})
    chosen = backends(*range(1, 8))
    result = result_of(chosen)
    pg_backends.act(FakeModule(), None, result, chosen, {}, "db1:5432", terminate=False, batch=3)
    assert calls == [[1, 2, 3], [4, 5, 6], [7]]
    assert result["acted"] == 7 and [a["action"] for a in result["actions"]] == ["cancel"] * 7


def test_every_session_signalled_in_order_with_lingering_ones_named(monkeypatch):
    monkeypatch.setattr(pg_backends, "signal_backends",
                        lambda conn, f, pids, flt: {p: p != 42 for p in pids})
    monkeypatch.setattr(pg_backends, "wait_until_gone", lambda conn, pids, timeout: {41})
    chosen = backends(41, 42, 43)
    result = result_of(chosen)
    pg_backends.act(FakeModule(wait_timeout=1), None, result, chosen, {}, "db1:5432", terminate=True)
    assert [(a["pid"], a["action"], a["result"]) for a in result["actions"]] == [
        (41, "terminate", "still present after wait_timeout"), (42, "terminate", "already gone"),
        (43, "terminate", "done")]
    assert result["changed"] is True and result["acted"] == 2


def test_cancelled_blockers_that_still_block_are_named(monkeypatch):
    monkeypatch.setattr(pg_backends, "signal_backends", lambda conn, f, pids, flt: {p: True for p in pids})
    waited = []
    monkeypatch.setattr(pg_backends, "wait_until_released",
                        lambda conn, pids, timeout: waited.append((list(pids), timeout)) or {52})
    chosen = backends(51, 52)
    result = result_of(chosen)
    pg_backends.act(FakeModule(wait_timeout=2), None, result, chosen, {"blocking_only": True}, "db1:5432",
                    terminate=False)
    assert waited == [([51, 52], 2)]
    assert [(a["pid"], a["result"]) for a in result["actions"]] == [(51, "done"), (52, "still blocking after wait_timeout")]
    assert result["acted"] == 2


def test_cancel_without_blocking_only_does_not_wait_for_locks(monkeypatch):
    monkeypatch.setattr(pg_backends, "signal_backends", lambda conn, f, pids, flt: {p: True for p in pids})
    monkeypatch.setattr(pg_backends, "wait_until_released", lambda *a: pytest.fail("waited"))
    chosen = backends(61)
    pg_backends.act(FakeModule(wait_timeout=2), None, result_of(chosen), chosen, {}, "db1:5432", terminate=False)
