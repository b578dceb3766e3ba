# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lock_verdict
short_description: The decisions of the lock_contention runbook, from pg_activity_info's blocking tree
version_added: 0.3.0
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
description:
  - Picks, from the blocking tree of M(sre.runbooks.pg_activity_info) (its C(lock_tree)), the root
    blockers to act on, and how - never their waiters, never a blocker that is itself waiting.
  - "A root blocker is acted on only when every guard agrees: it is a client session (not
    replication, autovacuum or another background process), not a superuser's, not a prepared
    transaction, its transaction is at least O(min_transaction_age) old and a session behind it
    has waited at least O(min_wait). Active blockers are cancelled (their statement stops and the
    transaction's locks go with it), idle-in-transaction ones are terminated (there is no
    statement to cancel). An idle session can block only through a session-level advisory lock;
    it is reported, never acted on."
  - When more root blockers qualify than O(max_blockers), nothing is done (a guardrail - that many
    is not one stuck transaction); the reason says how to override it.
  - Each step adds to the same verdict; give what is known so far.
options:
  _input:
    description: The result of M(sre.runbooks.pg_activity_info) before any action.
    type: dict
    required: true
  min_transaction_age:
    description: A blocker's transaction must be at least this old (seconds or V(30s), V(2m)).
    type: str
    default: 1m
  min_wait:
    description: A session behind the blocker must have waited at least this long.
    type: str
    default: 30s
  max_blockers:
    description: The most root blockers one run may act on; more refuses.
    type: int
    default: 3
  force:
    description: Ignore O(min_transaction_age) and O(min_wait) (never the other guards).
    type: bool
    default: false
  cancelled:
    description: The result of M(sre.runbooks.pg_backends) that cancelled the active blockers.
    type: dict
  after_cancel:
    description:
      - M(sre.runbooks.pg_activity_info) after cancelling. A cancelled blocker that still blocks
        (a session-level lock, or the cancel did not land) is escalated to termination.
    type: dict
  after:
    description: M(sre.runbooks.pg_activity_info) after acting, to verify that the waiters proceed.
    type: dict
"""

EXAMPLES = r"""
- name: Decide | which root blockers to cancel or terminate
  ansible.builtin.set_fact:
    lock_verdict: "{{ pg_before | sre.runbooks.lock_verdict(min_transaction_age='1m', min_wait='30s') }}"

- name: Act | cancel the active root blockers
  sre.runbooks.pg_backends:
    state: cancelled
    blocking_only: true
    pids: "{{ lock_verdict.cancel_pids }}"
    min_state_age: 0
  when: lock_verdict.cancel_pids | length > 0
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    act:
      description: At least one root blocker passes every guard and the cap holds.
      type: bool
    healthy:
      description: No session waits for a lock - healthy, nothing to do.
      type: bool
    reason:
      description: Why it acts or not.
      type: str
    blockers:
      description:
        - Every root blocker with C(pid), C(state), C(user), C(waiters), C(transaction_age_seconds),
          C(longest_wait_seconds), C(action) (V(cancel), V(terminate) or V(none)) and C(why).
      type: list
      elements: dict
    cancel_pids:
      description: Active root blockers to cancel.
      type: list
      elements: int
    terminate_pids:
      description: Idle-in-transaction root blockers to terminate.
      type: list
      elements: int
    waiter_pids:
      description: The sessions waiting behind the blockers acted on (what verify watches).
      type: list
      elements: int
    escalate_pids:
      description: Cancelled blockers that still block after the cancel (terminate them). Empty before.
      type: list
      elements: int
    healed:
      description: After acting, no watched waiter still waits and no blocker acted on still blocks. Null before.
      type: bool
    still_blocked:
      description: Watched waiters still waiting after acting.
      type: list
      elements: int
    verify_message:
      description: What the verify step says. Null before.
      type: str
    summary:
      description: The verdict in one sentence.
      type: str
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration

IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


def _seconds(value: t.Any, name: str) -> float:
    try:
        return parse_duration(value, name)
    except ValueError as exc:
        raise AnsibleFilterError(f"lock_verdict: {exc}") from None


def _judge(root: dict[str, t.Any], min_xact: float, min_wait: float, force: bool) -> tuple[str, str]:
    """(action, why) for one root blocker: cancel, terminate or none."""
    pid = root.get("pid")
    if root.get("prepared_transaction") or pid == 0:
        return "none", "a prepared transaction holds the lock: COMMIT PREPARED or ROLLBACK PREPARED it by hand"
    if not root.get("known"):
        return "none", "its session could not be read (gone, or outside what the login role sees)"
    if root.get("backend_type") != "client backend":
        return "none", f"a {root.get('backend_type') or 'background'} process (replication and background work are never signalled)"
    if root.get("superuser"):
        return "none", f"a superuser session ({root.get('user')}): never signalled by this runbook"
    state = root.get("state")
    if state not in ("active",) + IDLE_IN_TRANSACTION:
        return "none", (f"{state or 'unknown state'}: holds a session-level lock (an advisory lock?) outside "
                        "a transaction; end it by hand once its owner is known")
    if not force:
        xact = root.get("transaction_age_seconds")
        if xact is None or xact < min_xact:
            return "none", f"transaction {xact if xact is not None else 'n/a'}s old, under {min_xact:g}s"
        wait = root.get("longest_wait_seconds")
        if wait is None or wait < min_wait:
            return "none", f"longest wait {wait if wait is not None else 'n/a'}s, under {min_wait:g}s"
    if state == "active":
        return "cancel", "active: cancel its statement (its transaction aborts and lets go of its locks)"
    return "terminate", f"{state}: no statement to cancel, terminate the session"


def _tree(result: t.Any) -> list[dict[str, t.Any]] | None:
    if not isinstance(result, dict) or not isinstance(result.get("lock_tree"), list):
        return None
    return result["lock_tree"]


def _blocked(result: t.Any) -> set[int]:
    summary = result.get("lock_summary") if isinstance(result, dict) else None
    return set((summary or {}).get("blocked_pids") or [])


def lock_verdict(before: t.Any, min_transaction_age: t.Any = "1m", min_wait: t.Any = "30s", max_blockers: t.Any = 3,
                 force: t.Any = False, cancelled: t.Any = None, after_cancel: t.Any = None,
                 after: t.Any = None) -> dict[str, t.Any]:
    min_xact = _seconds(min_transaction_age, "min_transaction_age")
    min_w = _seconds(min_wait, "min_wait")
    try:
        cap = int(max_blockers)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"lock_verdict: max_blockers must be an integer, got {max_blockers!r}") from None
    if cap < 1:
        raise AnsibleFilterError(f"lock_verdict: max_blockers must be at least 1, got {cap}")
    force = boolean(force, strict=False)
    verdict: dict[str, t.Any] = {
        "act": False, "healthy": False, "blockers": [], "cancel_pids": [], "terminate_pids": [],
        "waiter_pids": [], "escalate_pids": [], "healed": None, "still_blocked": [], "verify_message": None,
    }
    tree = _tree(before)
    if tree is None:
        verdict["reason"] = "no blocking tree (pg_activity_info returned no lock_tree); nothing done"
        verdict["summary"] = verdict["reason"]
        return verdict
    summary = before.get("lock_summary") or {}
    if not tree and not summary.get("blocked_sessions"):
        verdict.update(healthy=True, reason="healthy, nothing to do: no session waits for a lock")
        verdict["summary"] = verdict["reason"]
        return verdict

    for root in tree:
        action, why = _judge(root, min_xact, min_w, force)
        verdict["blockers"].append({
            "pid": root.get("pid"), "state": root.get("state"), "user": root.get("user"),
            "application": root.get("application"), "waiters": root.get("waiters"),
            "transaction_age_seconds": root.get("transaction_age_seconds"),
            "longest_wait_seconds": root.get("longest_wait_seconds"), "relations": root.get("relations") or [],
            "action": action, "why": why})
    chosen = [b for b in verdict["blockers"] if b["action"] != "none"]
    waiting = summary.get("blocked_sessions", 0)
    if not chosen:
        reasons = "; ".join(f"pid {b['pid']}: {b['why']}" for b in verdict["blockers"]) or \
            "the waiters wait in a cycle (a deadlock the server breaks by itself)"
        verdict["reason"] = f"{waiting} session(s) wait for locks, but no root blocker passes the guards: {reasons}"
    elif len(chosen) > cap:
        verdict["reason"] = (f"guardrail max_blockers: {len(chosen)} root blockers qualify, more than {cap}; "
                             "that many is not one stuck transaction, so nothing was done. Read the tree, then "
                             "raise lock_contention_max_blockers to act on all of them")
    else:
        verdict["act"] = True
        verdict["cancel_pids"] = sorted(b["pid"] for b in chosen if b["action"] == "cancel")
        verdict["terminate_pids"] = sorted(b["pid"] for b in chosen if b["action"] == "terminate")
        acted = set(verdict["cancel_pids"]) | set(verdict["terminate_pids"])
        verdict["waiter_pids"] = sorted({p for r in tree if r.get("pid") in acted for p in r.get("waiter_pids") or []})
        parts = []
        if verdict["cancel_pids"]:
            parts.append(f"cancel {verdict['cancel_pids']}")
        if verdict["terminate_pids"]:
            parts.append(f"terminate {verdict['terminate_pids']}")
        verdict["reason"] = (f"{waiting} session(s) wait for locks behind {len(tree)} root blocker(s); "
                             f"{' and '.join(parts)} ({len(verdict['waiter_pids'])} waiting behind them)")
        left = len(verdict["blockers"]) - len(chosen)
        if left:
            verdict["reason"] += f"; {left} other root blocker(s) left alone (see blockers)"
    verdict["summary"] = verdict["reason"]

    if verdict["act"] and isinstance(cancelled, dict) and isinstance(after_cancel, dict):
        done = {a.get("pid") for a in cancelled.get("actions") or []
                if a.get("result") in ("done", "still blocking after wait_timeout")}
        still = {r.get("pid") for r in (_tree(after_cancel) or []) if r.get("waiters")}
        verdict["escalate_pids"] = sorted(done & still)
        if verdict["escalate_pids"]:
            verdict["summary"] += f"; still blocking after the cancel: terminate {verdict['escalate_pids']}"

    if verdict["act"] and isinstance(after, dict) and _tree(after) is not None:
        acted = set(verdict["cancel_pids"]) | set(verdict["terminate_pids"]) | set(verdict["escalate_pids"])
        verdict["still_blocked"] = sorted(set(verdict["waiter_pids"]) & _blocked(after))
        still_blocking = sorted(acted & {r.get("pid") for r in _tree(after) if r.get("waiters")})
        verdict["healed"] = not verdict["still_blocked"] and not still_blocking
        if verdict["healed"]:
            verdict["verify_message"] = (f"the {len(verdict['waiter_pids'])} waiting session(s) proceeded; "
                                         f"{(after.get('lock_summary') or {}).get('blocked_sessions', 0)} lock wait(s) now")
        else:
            roots = [f"pid {r.get('pid')} ({r.get('state')}, {r.get('waiters')} waiting)" for r in _tree(after)]
            verdict["verify_message"] = (
                f"{len(verdict['still_blocked'])} of {len(verdict['waiter_pids'])} waiting session(s) still wait"
                + (f"; blockers acted on still block: {still_blocking}" if still_blocking else "")
                + f"; root blockers now: {', '.join(roots) or 'none'}. Escalate: read the tree (lock_contention_result.after).")
        verdict["summary"] += "; " + verdict["verify_message"]
    return verdict


class FilterModule:
    """The lock_contention runbook's decisions."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"lock_verdict": lock_verdict}
