#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backends
short_description: Terminate or cancel PostgreSQL backends that match a filter, with guardrails
version_added: 0.1.0
description:
  - Brings a PostgreSQL server to a wanted state such as "no idle sessions older than five
    minutes" by terminating (C(pg_terminate_backend)) or cancelling (C(pg_cancel_backend))
    the client backends that match every given filter.
  - Guardrails are on by default. The module never touches its own session, WAL senders,
    autovacuum or other background processes, nor superuser sessions unless
    O(include_superusers=true). When more backends match than O(max_terminate), it fails
    and touches nothing, unless O(cap_mode=partial).
  - The filter is checked again in the statement that sends the signal, so a session that
    became busy between selection and action is spared.
  - Idempotent by state - once no backend matches, it reports C(changed=false).
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.postgres
attributes:
  check_mode:
    support: full
    description: Returns in RV(backends) exactly the sessions it would act on and changes nothing.
  diff_mode:
    support: full
    description: Before and after counts of matching and client sessions.
  idempotent:
    support: full
    description: A second run against a healed server matches nothing and reports no change.
options:
  state:
    description:
      - V(terminated) ends each matching session (C(pg_terminate_backend)); its client sees the
        connection drop and its open transaction rolls back.
      - V(cancelled) cancels the current query of each matching session
        (C(pg_cancel_backend)); the connection stays. Only for sessions that run a query - it
        needs O(backend_states) without V(idle), V(idle in transaction) and
        V(idle in transaction (aborted)) (those run no query, so there is nothing to cancel; use
        V(terminated) for them), for example O(backend_states=[active]).
    type: str
    choices: [terminated, cancelled]
    default: terminated
  backend_states:
    description:
      - Session states to match, as in C(pg_stat_activity.state).
      - Default V([idle]); with O(blocking_only=true), the states in which a session can hold a
        lock another one waits for - V(active), V(idle in transaction) and
        V(idle in transaction (aborted)) (an aborted transaction has released its own locks, but
        session-level advisory locks survive it) - or only V(active) with O(state=cancelled).
      - An V(idle) session can block others only through a session-level advisory lock; name
        V(idle) here to match such blockers too.
    type: list
    elements: str
    choices: [active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled]
  min_state_age:
    description:
      - Only sessions that have been in their current state at least this long
        (C(now() - state_change)). Seconds, or a duration such as V(90s), V(5m), V(1h).
      - For idle sessions this is the idle time, for active ones the query's run time.
      - The same rule applies to blockers (O(blocking_only=true)) - an idle-in-transaction blocker
        is as old as the time since its last statement ended, an active one as its current
        statement - so the default V(5m) spares a blocker that is busy or just ran a statement.
        Use O(min_transaction_age) to measure from the start of its transaction instead, and set
        this to V(0) to rely on that alone.
    type: str
    default: 5m
  min_transaction_age:
    description:
      - Only sessions whose current transaction started at least this long ago
        (C(now() - xact_start)); sessions outside a transaction never match when this is set.
        Seconds, or a duration such as V(90s), V(5m). Unset by default - no transaction rule.
      - The rule the lock contention runbook applies to blockers, in addition to O(min_state_age).
    type: str
  min_state_age_by_state:
    description:
      - Per-state overrides of O(min_state_age), a mapping of state to duration such as
        C(idle in transaction) to V(2m), so one task can apply the runbook's thresholds to
        every state at once.
    type: dict
  databases:
    description: Only sessions connected to these databases.
    type: list
    elements: str
  users:
    description: Only sessions of these roles.
    type: list
    elements: str
  applications:
    description: Only sessions with one of these C(application_name) values.
    type: list
    elements: str
  exclude_applications:
    description: Never sessions with one of these C(application_name) values.
    type: list
    elements: str
  client_addrs:
    description:
      - Only sessions from these client addresses or CIDR networks (V(10.0.0.0/8)).
      - Unix socket sessions have no address and never match when this is set.
    type: list
    elements: str
  blocking_only:
    description:
      - Only sessions that hold a lock another session waits for (C(pg_blocking_pids)).
      - Without O(backend_states), matches blockers in every state that can hold a lock (see
        O(backend_states)); O(min_state_age) and O(min_transaction_age) still apply to them.
    type: bool
    default: false
  pids:
    description:
      - Only these backend PIDs, for example the root blockers a verdict picked. Every other
        filter still applies, at selection and again in the statement that signals, so a PID
        that changed hands or state in between is spared.
    type: list
    elements: int
  include_superusers:
    description:
      - Also act on sessions of superuser roles. Off by default - they are usually the
        operators and replication tooling. Needs a superuser O(login_user).
    type: bool
    default: false
  max_terminate:
    description:
      - The most sessions one run may act on. When more match, see O(cap_mode).
    type: int
    default: 100
  cap_mode:
    description:
      - V(fail) - when more than O(max_terminate) sessions match, fail and touch nothing.
      - V(partial) - act on the O(max_terminate) oldest matching sessions and report the rest.
    type: str
    choices: [fail, partial]
    default: fail
  wait_timeout:
    description:
      - After terminating, wait up to this many seconds until the sessions are gone from
        C(pg_stat_activity), so a check right after the task sees the healed state.
        V(0) does not wait.
      - After cancelling with O(blocking_only=true), wait as long until the cancelled sessions
        block nobody (their transaction aborted and let go of its locks); one that still blocks
        is reported as V(still blocking after wait_timeout) in RV(actions).
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: No idle sessions older than 5 minutes (the runbook's "kill idle connections")
  sre.runbooks.pg_backends:
    login_unix_socket: /var/run/postgresql
    backend_states: [idle]
    min_state_age: 5m
  become: true
  become_user: postgres
  register: killed

- name: Show what would be terminated, without doing it
  sre.runbooks.pg_backends:
    login_host: db1.example.com
    login_password: "{{ vault_pg_password }}"
    backend_states: [idle in transaction]
    min_state_age: 2m
    databases: [orders]
  check_mode: true
  delegate_to: localhost

- name: Cancel queries running longer than 10 minutes, except the reporting job's
  sre.runbooks.pg_backends:
    login_unix_socket: /var/run/postgresql
    state: cancelled
    backend_states: [active]
    min_state_age: 10m
    exclude_applications: [nightly-report]

- name: Terminate the sessions that block others and whose transaction is over 2 minutes old
  sre.runbooks.pg_backends:
    login_unix_socket: /var/run/postgresql
    blocking_only: true
    min_state_age: 0
    min_transaction_age: 2m
    max_terminate: 5

- name: During a flood, end the 500 oldest idle sessions rather than none
  sre.runbooks.pg_backends:
    login_unix_socket: /var/run/postgresql
    min_state_age: 1m
    max_terminate: 500
    cap_mode: partial
"""

RETURN = r"""
backends:
  description:
    - The sessions acted on (in check mode, the ones that would be), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    pid: {description: Backend PID., type: int}
    user: {description: Role., type: str}
    database: {description: Database., type: str}
    application: {description: C(application_name)., type: str}
    client_addr: {description: Client address; null for the unix socket., type: str}
    state: {description: Session state when selected., type: str}
    state_age_seconds: {description: Seconds in that state., type: float}
    superuser: {description: Whether the session's role is a superuser., type: bool}
    query: {description: "Last query text, truncated to 200 characters, literals redacted, secrets masked.", type: str}
matched:
  description: How many sessions matched the filter (before the O(max_terminate) cap).
  returned: always
  type: int
  sample: 312
acted:
  description: How many sessions were signalled successfully (0 in check mode).
  returned: always
  type: int
  sample: 100
acted_by_state:
  description: RV(acted) per session state, as selected.
  returned: always
  type: dict
  sample: {"idle": 95, "idle in transaction": 5}
capped:
  description:
    - Matching sessions left alone because of the O(cap_mode=partial) cap. (Not called
      C(skipped), a key Ansible reads as "the task was skipped".)
  returned: always
  type: int
  sample: 212
actions:
  description: What was done, for the incident timeline; one entry per session.
  returned: always
  type: list
  elements: dict
  contains:
    timestamp: {description: UTC time (ISO 8601)., type: str}
    action: {description: V(terminate) or V(cancel)., type: str}
    pid: {description: The backend., type: int}
    target: {description: "The server, as host:port or socket.", type: str}
    result:
      description: "V(done), V(already gone), V(spared: no longer matches), V(still present after wait_timeout),
        V(still blocking after wait_timeout) or V(check mode)."
      type: str
server:
  description:
    - Connection usage once the task is done (in check mode, as it is now), so the next
      step can decide without another round trip.
  returned: always
  type: dict
  contains:
    client_backends: {description: "Client sessions, this one included.", type: int}
    usable_connections: {description: C(max_connections) minus the superuser reserved slots., type: int}
    utilisation_percent: {description: RV(server.client_backends) over RV(server.usable_connections)., type: float}
  sample: {"client_backends": 28, "usable_connections": 97, "utilisation_percent": 28.9}
diff:
  description: Counts before and after, when run with C(--diff).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"matching": 312, "client_backends": 340}, "after": {"matching": 0, "client_backends": 28}}
"""

import ipaddress
import json
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import (
    GuardrailTripped,
    action_record,
    parse_duration,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    PRIVILEGES_SQL,
    STILL_BLOCKING_SQL,
    STILL_PRESENT_SQL,
    connect,
    connection_usage,
    describe_target,
    postgres_argument_spec,
    query,
    select_backends,
    signal_backends,
)
from ansible_collections.sre.runbooks.plugins.module_utils._guardrails import enforce_cap

STATES = ["active", "idle", "idle in transaction", "idle in transaction (aborted)",
          "fastpath function call", "disabled"]
# Sessions in these states run no query: pg_cancel_backend has nothing to cancel there, so the
# session stays and a run would report a change that never happened.
NOTHING_TO_CANCEL = ("idle", "idle in transaction", "idle in transaction (aborted)")
# States in which a session can hold a lock another one waits for: a transaction's locks while it
# runs or sits idle in it, session-level advisory locks even after the transaction aborted.
BLOCKER_STATES = ("active", "idle in transaction", "idle in transaction (aborted)")


def refuse_cancel_without_query(state: str, backend_states: list[str]) -> str | None:
    """The message refusing state=cancelled on sessions without a running query, or None."""
    idle = [s for s in backend_states if s in NOTHING_TO_CANCEL]
    if state != "cancelled" or not idle:
        return None
    return (f"state=cancelled cannot act on {', '.join(idle)} sessions: cancel stops a running query "
            "and these sessions run none, so nothing would change. Use backend_states=[active] to cancel "
            "running queries, or state=terminated to end idle sessions. Nothing was changed.")


def default_states(params: dict) -> list[str]:
    """backend_states, or its default: [idle]; for blocking_only, the states that can hold a lock
    (only active when cancelling: the others run no query to cancel)."""
    if params.get("backend_states") is not None:
        return list(params["backend_states"])
    if params.get("blocking_only"):
        return ["active"] if params.get("state") == "cancelled" else list(BLOCKER_STATES)
    return ["idle"]


def build_filters(params: dict) -> dict:
    """Module options -> the named parameters of the selection SQL. Raises ValueError on bad input."""
    def optional_list(name: str):
        values = [v for v in (params.get(name) or []) if v not in (None, "")]
        return values or None

    by_state = {}
    for state, age in (params.get("min_state_age_by_state") or {}).items():
        if state not in STATES:
            raise ValueError(f"min_state_age_by_state: unknown state {state!r}; use one of {', '.join(STATES)}")
        by_state[state] = parse_duration(age, f"min_state_age_by_state[{state}]")
    pids = params.get("pids")
    if pids is not None and any(pid is None or pid < 1 for pid in pids):
        raise ValueError(f"pids: every entry must be a backend PID (a positive integer), got {pids}")
    min_xact_age = params.get("min_transaction_age")
    return dict(
        states=default_states(params),
        min_age=parse_duration(params["min_state_age"], "min_state_age"),
        min_xact_age=None if min_xact_age in (None, "") else parse_duration(min_xact_age, "min_transaction_age"),
        only_pids=None if pids is None else list(pids),
        min_age_by_state=json.dumps(by_state),
        databases=optional_list("databases"),
        users=optional_list("users"),
        applications=optional_list("applications"),
        exclude_applications=optional_list("exclude_applications"),
        client_addrs=_networks(optional_list("client_addrs")),
        include_superusers=bool(params["include_superusers"]),
        blocking_only=bool(params["blocking_only"]),
    )


def _networks(values):
    """Validate client_addrs entries here, so a typo is named as the option, not as SQL."""
    if values is None:
        return None
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"client_addrs: {value!r} is not an IP address or CIDR network "
                             "such as 10.0.0.5 or 10.0.0.0/8") from None
    return values


def warn_if_blind(module, conn) -> None:
    """A role without pg_read_all_stats sees other roles' sessions with a NULL state, so it
    would match none of them and report a healthy server. Say so instead of staying silent."""
    priv = query(conn, PRIVILEGES_SQL)[0]
    if not priv["superuser"] and not priv["read_all_stats"]:
        module.warn(f"login_user {priv['user']} is neither a superuser nor a member of pg_read_all_stats "
                    "(pg_monitor), so the state of other roles' sessions is hidden from it and they "
                    "never match; grant pg_monitor, or connect as a superuser, to see every session")


def check_privileges(module, conn, selected: list) -> None:
    """Fail before signalling anything the login role is not allowed to signal."""
    priv = query(conn, PRIVILEGES_SQL)[0]
    if priv["superuser"]:
        return
    if any(b["superuser"] for b in selected):
        module.fail_json(msg=f"login_user {priv['user']} is not a superuser and cannot signal superuser "
                             "sessions; connect as a superuser or leave include_superusers off")
    foreign = [b["pid"] for b in selected if b["user"] != priv["user"]]
    if foreign and not priv["signal_backend"]:
        module.fail_json(msg=f"login_user {priv['user']} may only signal its own sessions, but "
                             f"{len(foreign)} matching sessions belong to other roles; grant it "
                             "pg_signal_backend or connect as a superuser. Nothing was changed.")


def wait_until_gone(conn, pids: list[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    remaining = set(pids)
    while remaining:
        remaining = {row["pid"] for row in query(conn, STILL_PRESENT_SQL, dict(pids=list(remaining)))}
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def wait_until_released(conn, pids: list[int], timeout: float) -> set[int]:
    """After cancelling blockers: wait until none of ``pids`` blocks anyone; return those that still do."""
    deadline = time.monotonic() + timeout
    holding = set(pids)
    while holding:
        holding = {row["pid"] for row in query(conn, STILL_BLOCKING_SQL, dict(pids=list(holding)))}
        if not holding or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return holding


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fail_after_actions(module, result: dict, target: str, step: str, exc: BaseException) -> None:
    """A backend error in the middle of a run: no traceback; what was done and what failed."""
    module.fail_json(
        msg=f"PostgreSQL at {target} failed while {step}: {_first_line(exc)}. "
            f"{result['acted']} session(s) were signalled before that (see actions); "
            "read pg_stat_activity before running again.",
        changed=result["acted"] > 0, actions=result["actions"], acted=result["acted"],
        acted_by_state=result["acted_by_state"], backends=result["backends"], matched=result["matched"],
        failed_step=step)


# Sessions signalled per statement: a backend error part-way leaves at most this many sessions
# whose fate is unknown, while a thousand-session cleanup stays a handful of round trips.
SIGNAL_BATCH = 50


def act(module, conn, result: dict, chosen: list, filters: dict, target: str, terminate: bool,
        batch: int = SIGNAL_BATCH) -> None:
    """Signal the chosen sessions in batches, recording each outcome as it happens, so a backend
    error part-way still reports which sessions were signalled (a signal cannot be rolled back)."""
    verb = "terminate" if terminate else "cancel"
    function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    signalled: list[int] = []
    for start in range(0, len(chosen), batch):
        group = chosen[start:start + batch]
        try:
            outcome_of = signal_backends(conn, function, [b["pid"] for b in group], filters)
        except Exception as exc:
            for backend in group:
                result["actions"].append(action_record(
                    verb, target, f"unknown: the signalling statement failed: {_first_line(exc)}", pid=backend["pid"]))
            fail_after_actions(module, result, target, f"signalling sessions {group[0]['pid']}..{group[-1]['pid']}", exc)
        for backend in group:
            pid = backend["pid"]
            if pid not in outcome_of:
                outcome = "spared: no longer matches"
            elif not outcome_of[pid]:
                outcome = "already gone"
            else:
                outcome = "done"
                signalled.append(pid)
                result["acted"] += 1
                state = backend["state"]
                result["acted_by_state"][state] = result["acted_by_state"].get(state, 0) + 1
            result["actions"].append(action_record(verb, target, outcome, pid=pid))
    result["changed"] = result["acted"] > 0
    if not terminate and filters.get("blocking_only") and signalled and module.params["wait_timeout"] > 0:
        try:
            holding = wait_until_released(conn, signalled, module.params["wait_timeout"])
        except Exception as exc:
            fail_after_actions(module, result, target, "waiting for the cancelled blockers to let go", exc)
        for action in result["actions"]:
            if action.get("pid") in holding and action["result"] == "done":
                action["result"] = "still blocking after wait_timeout"
    if terminate and signalled and module.params["wait_timeout"] > 0:
        try:
            lingering = wait_until_gone(conn, signalled, module.params["wait_timeout"])
        except Exception as exc:
            fail_after_actions(module, result, target, "waiting for the terminated sessions to end", exc)
        for action in result["actions"]:
            if action.get("pid") in lingering and action["result"] == "done":
                action["result"] = "still present after wait_timeout"


def main() -> None:
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        state=dict(type="str", default="terminated", choices=["terminated", "cancelled"]),
        backend_states=dict(type="list", elements="str", choices=STATES),
        min_state_age=dict(type="str", default="5m"),
        min_transaction_age=dict(type="str"),
        pids=dict(type="list", elements="int"),
        min_state_age_by_state=dict(type="dict"),
        databases=dict(type="list", elements="str"),
        users=dict(type="list", elements="str"),
        applications=dict(type="list", elements="str"),
        exclude_applications=dict(type="list", elements="str"),
        client_addrs=dict(type="list", elements="str"),
        blocking_only=dict(type="bool", default=False),
        include_superusers=dict(type="bool", default=False),
        max_terminate=dict(type="int", default=100),
        cap_mode=dict(type="str", default="fail", choices=["fail", "partial"]),
        wait_timeout=dict(type="float", default=5.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        filters = build_filters(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if params["max_terminate"] < 1:
        module.fail_json(msg=f"max_terminate must be at least 1, got {params['max_terminate']}")
    if params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout must not be negative")
    if not filters["states"]:
        module.fail_json(msg="backend_states must name at least one state")
    refusal = refuse_cancel_without_query(params["state"], filters["states"])
    if refusal:
        module.fail_json(msg=refusal, changed=False, actions=[])

    target = describe_target(params)
    terminate = params["state"] == "terminated"
    verb = "terminate" if terminate else "cancel"
    conn = connect(module)
    try:
        warn_if_blind(module, conn)
        try:
            selected = select_backends(conn, filters)
        except Exception as exc:  # e.g. an invalid CIDR in client_addrs, reported by the server
            module.fail_json(msg=f"cannot select backends on {target}: {str(exc).strip().splitlines()[0]}")
        matched = len(selected)
        try:
            chosen, left_alone = enforce_cap(selected, params["max_terminate"], params["cap_mode"],
                                             what=f"sessions to {verb}")
        except GuardrailTripped as exc:
            module.fail_json(msg=str(exc), guardrail=exc.guardrail, matched=matched,
                             backends=selected, actions=[], changed=False)
        result = dict(changed=bool(chosen), backends=chosen, matched=matched, acted=0, acted_by_state={},
                      capped=len(left_alone), actions=[])
        client_before = connection_usage(conn)["client_backends"] if module._diff else None

        if module.check_mode or not chosen:
            result["actions"] = [action_record(verb, target, "check mode", pid=b["pid"]) for b in chosen]
        else:
            check_privileges(module, conn, chosen)
            act(module, conn, result, chosen, filters, target, terminate)

        try:
            result["server"] = connection_usage(conn)
            if module._diff:
                if module.check_mode:
                    after_matching, client_after = matched - len(chosen), client_before - (len(chosen) if terminate else 0)
                else:
                    after_matching = len(select_backends(conn, filters))
                    client_after = result["server"]["client_backends"]
                result["diff"] = dict(before=dict(matching=matched, client_backends=client_before),
                                      after=dict(matching=after_matching, client_backends=client_after))
        except Exception as exc:  # the server went away after we acted: say what was done
            fail_after_actions(module, result, target, "reading the server after acting", exc)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
