"""Unit tests for the lock_contention decisions (filter sre.runbooks.lock_verdict), every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.lock_verdict import FilterModule, lock_verdict


def root(pid=100, state="idle in transaction", xact=120.0, wait=60.0, waiters=(200, 201), **kw):
    base = dict(pid=pid, prepared_transaction=pid == 0, known=True, user="app", application="web", state=state,
                backend_type="client backend", superuser=False, transaction_age_seconds=xact,
                longest_wait_seconds=wait, waiters=len(waiters), waiter_pids=list(waiters), relations=["accounts"])
    base.update(kw)
    return base


def info(*roots, blocked=None):
    blocked = sorted({p for r in roots for p in r["waiter_pids"]}) if blocked is None else blocked
    return {"lock_tree": list(roots), "lock_summary": {"blocked_sessions": len(blocked), "blocked_pids": blocked}}


def test_registered_as_a_filter():
    assert FilterModule().filters()["lock_verdict"] is lock_verdict


def test_no_lock_waits_is_healthy():
    v = lock_verdict(info())
    assert v["healthy"] is True and v["act"] is False
    assert v["summary"].startswith("healthy, nothing to do")
    assert v["cancel_pids"] == v["terminate_pids"] == []


@pytest.mark.parametrize("before", [None, {}, {"lock_tree": None}, "x"])
def test_unknown_input_does_nothing_and_is_not_healthy(before):
    v = lock_verdict(before)
    assert v["act"] is False and v["healthy"] is False
    assert "no blocking tree" in v["reason"]


def test_idle_in_transaction_blocker_is_terminated():
    v = lock_verdict(info(root()))
    assert v["act"] is True and v["healthy"] is False
    assert v["terminate_pids"] == [100] and v["cancel_pids"] == []
    assert v["waiter_pids"] == [200, 201]
    assert v["blockers"][0]["action"] == "terminate"


def test_aborted_transaction_blocker_is_terminated():
    assert lock_verdict(info(root(state="idle in transaction (aborted)")))["terminate_pids"] == [100]


def test_active_blocker_is_cancelled():
    v = lock_verdict(info(root(state="active")))
    assert v["cancel_pids"] == [100] and v["terminate_pids"] == []
    assert "cancel [100]" in v["reason"]


@pytest.mark.parametrize("changes, why", [
    (dict(pid=0), "prepared transaction"),
    (dict(known=False), "could not be read"),
    (dict(backend_type="walsender"), "walsender"),
    (dict(backend_type=None), "background"),
    (dict(superuser=True), "superuser"),
    (dict(state="idle"), "session-level lock"),
    (dict(state=None), "unknown state"),
    (dict(xact=5.0), "transaction 5.0s old, under 60s"),
    (dict(xact=None), "transaction n/a"),
    (dict(wait=2.0), "longest wait 2.0s, under 30s"),
    (dict(wait=None), "longest wait n/a"),
])
def test_guards_leave_a_blocker_alone_and_say_why(changes, why):
    v = lock_verdict(info(root(**changes)))
    assert v["act"] is False and v["healthy"] is False
    assert v["blockers"][0]["action"] == "none" and why in v["blockers"][0]["why"]
    assert "no root blocker passes the guards" in v["reason"] and why in v["reason"]


def test_force_skips_the_age_guards_but_not_the_superuser_guard():
    assert lock_verdict(info(root(xact=1.0, wait=0.5)), force=True)["terminate_pids"] == [100]
    assert lock_verdict(info(root(superuser=True)), force="yes")["act"] is False


def test_thresholds_are_durations():
    assert lock_verdict(info(root(xact=100.0, wait=10.0)), min_transaction_age="2m")["act"] is False
    assert lock_verdict(info(root(xact=100.0, wait=10.0)), min_transaction_age=90, min_wait="5s")["act"] is True


def test_cycle_without_root_is_reported():
    v = lock_verdict(info(blocked=[1, 2]))
    assert v["act"] is False and v["healthy"] is False and "cycle" in v["reason"]


def test_cap_refuses_and_names_the_override():
    roots = [root(pid=p, waiters=(p + 1000,)) for p in (1, 2, 3, 4)]
    v = lock_verdict(info(*roots), max_blockers=3)
    assert v["act"] is False and v["cancel_pids"] == v["terminate_pids"] == []
    assert "guardrail max_blockers" in v["reason"] and "lock_contention_max_blockers" in v["reason"]
    assert lock_verdict(info(*roots), max_blockers=4)["terminate_pids"] == [1, 2, 3, 4]


def test_only_qualifying_blockers_count_and_the_rest_is_reported():
    v = lock_verdict(info(root(pid=1, state="active"), root(pid=2, superuser=True, waiters=(300,))))
    assert v["cancel_pids"] == [1] and v["waiter_pids"] == [200, 201]
    assert "1 other root blocker(s) left alone" in v["reason"]


@pytest.mark.parametrize("bad", [{"max_blockers": "many"}, {"max_blockers": 0}, {"min_wait": "soon"},
                                 {"min_transaction_age": -1}])
def test_bad_tunables_fail_naming_them(bad):
    with pytest.raises(AnsibleFilterError, match="lock_verdict: "):
        lock_verdict(info(root()), **bad)


def cancel_result(*pids, result="done"):
    return {"actions": [{"pid": p, "action": "cancel", "result": result} for p in pids]}


def test_a_cancelled_blocker_that_still_blocks_is_escalated():
    before = info(root(pid=1, state="active"))
    still = info(root(pid=1, state="idle in transaction (aborted)"))
    v = lock_verdict(before, cancelled=cancel_result(1), after_cancel=still)
    assert v["escalate_pids"] == [1] and "terminate [1]" in v["summary"]


def test_a_cancel_that_freed_the_waiters_is_not_escalated():
    v = lock_verdict(info(root(pid=1, state="active")), cancelled=cancel_result(1), after_cancel=info())
    assert v["escalate_pids"] == []


def test_a_blocker_spared_by_the_cancel_is_not_escalated():
    before = info(root(pid=1, state="active"))
    v = lock_verdict(before, cancelled=cancel_result(1, result="spared: no longer matches"), after_cancel=before)
    assert v["escalate_pids"] == []


def test_healed_when_the_waiters_proceed():
    v = lock_verdict(info(root()), after=info())
    assert v["healed"] is True and v["still_blocked"] == []
    assert "the 2 waiting session(s) proceeded" in v["verify_message"]


def test_not_healed_while_a_waiter_still_waits_behind_someone_else():
    after = info(root(pid=200, xact=1.0, waiters=(201,)))
    v = lock_verdict(info(root()), after=after)
    assert v["healed"] is False and v["still_blocked"] == [201]
    assert "pid 200" in v["verify_message"] and "Escalate" in v["verify_message"]


def test_not_healed_while_an_acted_blocker_still_blocks():
    v = lock_verdict(info(root(waiters=(200,))), after=info(root(waiters=(300,))))
    assert v["healed"] is False and "blockers acted on still block: [100]" in v["verify_message"]


def test_no_verify_without_action():
    v = lock_verdict(info(), after=info())
    assert v["healed"] is None and v["verify_message"] is None
