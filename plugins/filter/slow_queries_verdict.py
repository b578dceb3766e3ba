# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: slow_queries_verdict
short_description: The decisions of the slow_queries runbook, from pg_statements' long-running queries
version_added: 0.3.0
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
description:
  - Picks, from the long-running active queries of M(sre.runbooks.pg_statements), the ones to
    cancel (C(pg_cancel_backend) - the query stops, its transaction aborts, the connection stays).
  - "A query is cancelled only when every guard agrees: it has run at least O(min_duration); it
    is not a superuser's; it does not wait for a lock (that is lock contention: cancelling the
    waiter heals nothing, the blocker is the cause); its kind (V(read), V(write), V(utility)) is in
    O(cancel_kinds) (by default never DDL, VACUUM, CREATE INDEX or COPY, which a cancel can leave
    half done or lose hours of); its application and user are not in O(protect_applications) /
    O(protect_users); and, when O(cancel_applications) or O(cancel_users) is set, they are in it."
  - When more queries qualify than O(max_cancel), nothing is cancelled (a guardrail - that many
    slow queries is load, not a runaway query); the reason says how to override it.
  - Each step adds to the same verdict; give what is known so far.
options:
  _input:
    description: The result of M(sre.runbooks.pg_statements) before any action.
    type: dict
    required: true
  min_duration:
    description: A query must have run at least this long (seconds or V(30s), V(5m)).
    type: str
    default: 5m
  cancel_applications:
    description: When not empty, only queries of these C(application_name) values may be cancelled.
    type: list
    elements: str
    default: []
  cancel_users:
    description: When not empty, only queries of these roles may be cancelled.
    type: list
    elements: str
    default: []
  protect_applications:
    description: Queries of these applications are never cancelled.
    type: list
    elements: str
    default: []
  protect_users:
    description: Queries of these roles are never cancelled.
    type: list
    elements: str
    default: []
  cancel_kinds:
    description: The kinds of statement that may be cancelled (V(read), V(write), V(utility)).
    type: list
    elements: str
    default: [read, write]
  max_cancel:
    description: The most queries one run may cancel; more refuses.
    type: int
    default: 5
  cancelled:
    description: The result of M(sre.runbooks.pg_backends) that cancelled them.
    type: dict
  after:
    description: M(sre.runbooks.pg_statements) after the cancel, to verify the queries stopped.
    type: dict
"""

EXAMPLES = r"""
- name: Decide | which long-running queries to cancel
  ansible.builtin.set_fact:
    slow_verdict: "{{ slow_before | sre.runbooks.slow_queries_verdict(min_duration='5m', cancel_applications=['reporting']) }}"
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    act:
      description: At least one query passes every guard and the cap holds.
      type: bool
    healthy:
      description: No active query has run O(min_duration) - healthy, nothing to do.
      type: bool
    refused:
      description: A guardrail (the cap) refused to act.
      type: bool
    reported:
      description: Why slow queries were found but none is cancelled, in a few words (the record's outcome); null otherwise.
      type: str
    reason:
      description: Why it acts or not.
      type: str
    queries:
      description: Every long-running query with C(pid), C(user), C(application), C(kind), C(duration_seconds),
        C(query_start), C(action) (V(cancel) or V(none)) and C(why).
      type: list
      elements: dict
    cancel_pids:
      description: The queries to cancel.
      type: list
      elements: int
    healed:
      description: After the cancel, none of the cancelled queries still runs. Null before.
      type: bool
    still_running:
      description: Cancelled queries (PIDs) still running the same query after the cancel.
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

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration

KINDS = ("read", "write", "utility")


def _names(value: t.Any, option: str) -> set[str]:
    if value in (None, ""):
        return set()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set)):
        raise AnsibleFilterError(f"slow_queries_verdict: {option} must be a list, got {value!r}")
    return {str(v) for v in value if v not in (None, "")}


def _judge(row: dict[str, t.Any], min_seconds: float, guards: dict[str, t.Any]) -> tuple[str, str]:
    """(action, why) for one long-running query: cancel or none."""
    duration = row.get("duration_seconds")
    app, user, kind = row.get("application") or "", row.get("user") or "", row.get("kind") or "utility"
    if duration is None or duration < min_seconds:
        return "none", f"running {duration if duration is not None else 'n/a'}s, under {min_seconds:g}s"
    if row.get("superuser"):
        return "none", f"a superuser's query ({user}): never cancelled by this runbook"
    if row.get("blocked_by"):
        return "none", (f"waits for a lock held by {row['blocked_by']}: lock contention, not a slow query - "
                        "cancelling the waiter heals nothing (run the lock_contention runbook)")
    if kind not in guards["kinds"]:
        return "none", (f"a {kind} statement (not in slow_queries_cancel_kinds "
                        f"{sorted(guards['kinds'])}): a cancel could lose its work or leave it half done")
    if app in guards["protect_applications"]:
        return "none", f"application {app!r} is protected (slow_queries_protect_applications)"
    if user in guards["protect_users"]:
        return "none", f"role {user!r} is protected (slow_queries_protect_users)"
    if guards["cancel_applications"] and app not in guards["cancel_applications"]:
        return "none", f"application {app!r} is not in slow_queries_cancel_applications"
    if guards["cancel_users"] and user not in guards["cancel_users"]:
        return "none", f"role {user!r} is not in slow_queries_cancel_users"
    return "cancel", f"{kind} query running {duration:g}s (over {min_seconds:g}s): cancel it"


def _running(result: t.Any) -> list[dict[str, t.Any]] | None:
    if not isinstance(result, dict) or not isinstance(result.get("long_running"), list):
        return None
    return result["long_running"]


def slow_queries_verdict(before: t.Any, min_duration: t.Any = "5m", cancel_applications: t.Any = None,
                         cancel_users: t.Any = None, protect_applications: t.Any = None, protect_users: t.Any = None,
                         cancel_kinds: t.Any = ("read", "write"), max_cancel: t.Any = 5, cancelled: t.Any = None,
                         after: t.Any = None) -> dict[str, t.Any]:
    try:
        min_seconds = parse_duration(min_duration, "min_duration")
    except ValueError as exc:
        raise AnsibleFilterError(f"slow_queries_verdict: {exc}") from None
    try:
        cap = int(max_cancel)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"slow_queries_verdict: max_cancel must be an integer, got {max_cancel!r}") from None
    if cap < 1:
        raise AnsibleFilterError(f"slow_queries_verdict: max_cancel must be at least 1, got {cap}")
    kinds = _names(cancel_kinds, "cancel_kinds")
    unknown = kinds - set(KINDS)
    if unknown:
        raise AnsibleFilterError(f"slow_queries_verdict: cancel_kinds: unknown kind(s) {sorted(unknown)}; use {list(KINDS)}")
    guards = dict(kinds=kinds, cancel_applications=_names(cancel_applications, "cancel_applications"),
                  cancel_users=_names(cancel_users, "cancel_users"),
                  protect_applications=_names(protect_applications, "protect_applications"),
                  protect_users=_names(protect_users, "protect_users"))
    verdict: dict[str, t.Any] = {"act": False, "healthy": False, "refused": False, "queries": [], "cancel_pids": [],
                                 "healed": None, "still_running": [], "verify_message": None, "reported": None}
    running = _running(before)
    if running is None:
        verdict["reason"] = verdict["summary"] = "no long_running list (pg_statements returned none); nothing done"
        return verdict
    slow = [row for row in running if (row.get("duration_seconds") or 0) >= min_seconds]
    total = max(int(before.get("long_running_total") or 0), len(slow)) if slow else 0
    if not slow:
        verdict.update(healthy=True, reason=f"healthy, nothing to do: no active query has run {min_seconds:g}s")
        verdict["summary"] = verdict["reason"]
        return verdict

    for row in slow:
        action, why = _judge(row, min_seconds, guards)
        verdict["queries"].append({key: row.get(key) for key in (
            "pid", "user", "database", "application", "kind", "duration_seconds", "query_start",
            "wait_event_type", "wait_event", "blocked_by", "query")} | {"action": action, "why": why})
    chosen = [q for q in verdict["queries"] if q["action"] == "cancel"]
    if not chosen:
        reasons = "; ".join(f"pid {q['pid']}: {q['why']}" for q in verdict["queries"][:5])
        verdict["reported"] = "no slow query may be cancelled (see verdict)"
        verdict["reason"] = f"{total} query(ies) running over {min_seconds:g}s, none may be cancelled: {reasons}"
    elif len(chosen) > cap:
        verdict["refused"] = True
        verdict["reported"] = f"refused by the max_cancel guard ({len(chosen)} > {cap})"
        verdict["reason"] = (f"guardrail max_cancel: {len(chosen)} queries qualify, more than {cap}; that many slow "
                             "queries is load (a missing index, a bad plan, a batch job), not one runaway query, so "
                             "nothing was cancelled. Read the top statements, then raise slow_queries_max_cancel or "
                             "narrow slow_queries_cancel_applications / slow_queries_cancel_users")
    else:
        verdict["act"] = True
        verdict["cancel_pids"] = sorted(q["pid"] for q in chosen)
        verdict["reason"] = (f"{total} query(ies) running over {min_seconds:g}s; cancel {verdict['cancel_pids']}")
        left = len(verdict["queries"]) - len(chosen)
        if left:
            verdict["reason"] += f"; {left} other(s) left alone (see queries)"
    verdict["summary"] = verdict["reason"]

    if verdict["act"] and _running(after) is not None:
        # The same query still runs when the PID still shows the same query_start: a cancel that
        # did not land. A new query on the same connection has a new start and is not ours to judge.
        started = {q["pid"]: q.get("query_start") for q in chosen}
        done = None
        if isinstance(cancelled, dict):
            done = {a.get("pid") for a in cancelled.get("actions") or [] if a.get("result") == "done"}
        verdict["still_running"] = sorted(
            row.get("pid") for row in _running(after)
            if row.get("pid") in started and row.get("query_start") == started[row.get("pid")])
        verdict["healed"] = not verdict["still_running"]
        spared = sorted(set(verdict["cancel_pids"]) - done) if done is not None else []
        if verdict["healed"]:
            verdict["verify_message"] = (f"the {len(chosen)} cancelled query(ies) stopped"
                                         + (f" (pids {spared} had already finished or no longer matched)" if spared else "")
                                         + f"; {after.get('long_running_total', len(_running(after)))} active query(ies) "
                                         f"over the threshold now")
        else:
            verdict["verify_message"] = (f"{len(verdict['still_running'])} of {len(chosen)} cancelled query(ies) still run: "
                                         f"{verdict['still_running']}. A cancel can wait for the query to reach a "
                                         "cancellation point (a long-running C function, a stuck I/O); escalate: read "
                                         "slow_queries_result.after and terminate by hand if needed")
        verdict["summary"] += "; " + verdict["verify_message"]
    return verdict


class FilterModule:
    """The slow_queries runbook's decisions."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"slow_queries_verdict": slow_queries_verdict}
