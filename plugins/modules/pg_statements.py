#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_statements
short_description: Report the slowest PostgreSQL statements and long-running queries, optionally EXPLAIN them
version_added: 0.3.0
description:
  - The assessment of the slow query runbook (003 Scenario 2 "Database performance degradation",
    002 "long-running queries") in one round trip - the top statements from
    C(pg_stat_statements) (calls, mean, total and max execution time, rows) ordered by mean or
    total time, and the active client queries running longer than O(long_query_threshold)
    (PID, user, application, duration, wait event, whether a lock blocks them).
  - Every query text it returns has its string and number literals replaced by C(?)
    (C(pg_stat_statements) normalises planned statements to C($1), but utility statements and
    C(pg_stat_activity) keep the literals as sent), then secret-looking values masked.
  - Read-only unless O(reset=true), the one way it ever calls C(pg_stat_statements_reset()).
    (Not an C(_info) module for that reason - those never change anything.)
  - A missing or unloaded C(pg_stat_statements) is reported in RV(statements.reason), not as a
    failure; the long-running queries are still read.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.postgres
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode; with O(reset=true) it reports that it would reset and does not.
  diff_mode:
    support: none
    description: Nothing to diff.
  idempotent:
    support: partial
    description: Reads change nothing; O(reset=true) resets every time it runs (and reports a change).
options:
  long_query_threshold:
    description:
      - Active queries running at least this long are listed in RV(long_running).
      - Seconds, or a duration such as V(30s), V(5m), V(1h).
    type: str
    default: 5m
  top:
    description:
      - How many statements to report from C(pg_stat_statements). V(0) skips them.
    type: int
    default: 10
  order_by:
    description:
      - V(mean) - slowest mean execution time first (what the runbook orders by).
      - V(total) - most total execution time first (the statements that cost the server most).
    type: str
    choices: [mean, total]
    default: mean
  databases:
    description: Only statements run in these databases.
    type: list
    elements: str
  query_text_limit:
    description: Returned query texts are cut to this many characters (after redaction).
    type: int
    default: 300
  explain:
    description:
      - EXPLAIN (never ANALYZE - nothing is executed) the top O(explain_limit) statements.
      - A normalised statement with C($1) parameters is C(PREPARE)d and planned with
        C(EXPLAIN EXECUTE) and NULL arguments under C(plan_cache_mode = force_generic_plan) (the
        generic plan, as PostgreSQL 16's C(EXPLAIN (GENERIC_PLAN)) shows it), inside a
        C(READ ONLY) transaction that is rolled back, with a 2 s statement timeout and a 0.5 s
        lock timeout, on a connection to the statement's own database.
      - Only plain reads are planned (C(SELECT), C(WITH) without data-modifying parts,
        C(VALUES), C(TABLE)) - planning a write takes a C(ROW EXCLUSIVE) lock and C(FOR UPDATE)
        a C(ROW SHARE) lock; utility statements have no plan; a text with more than one
        statement is refused. Each skipped statement says why in C(explain_skipped).
      - Planning can still evaluate immutable functions on constants; the plan is the login
        role's view (its C(search_path)), not necessarily the one the application gets.
    type: bool
    default: false
  explain_limit:
    description: How many of the top statements O(explain) plans.
    type: int
    default: 3
  reset:
    description:
      - Call C(pg_stat_statements_reset()) after reading, so the next read shows only what runs
        from now on. Never done unless asked; in check mode it is only reported.
      - Needs a superuser or a role granted EXECUTE on the function.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The slowest statements and the queries running over 5 minutes
  sre.runbooks.pg_statements:
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: slow

- name: The ten statements that cost the server most, with their generic plans
  sre.runbooks.pg_statements:
    login_host: db1.example.com
    login_password: "{{ vault_pg_password }}"
    order_by: total
    explain: true
    long_query_threshold: 30s
  delegate_to: localhost

- name: Start a clean measurement after a fix (resets pg_stat_statements)
  sre.runbooks.pg_statements:
    login_unix_socket: /var/run/postgresql
    top: 0
    reset: true
"""

RETURN = r"""
server_version:
  description: Server version string.
  returned: success
  type: str
  sample: "15.18 (Debian 15.18-0+deb12u1)"
database:
  description: The database connected to (C(pg_stat_statements) is read from there).
  returned: success
  type: str
threshold_seconds:
  description: O(long_query_threshold) in seconds.
  returned: success
  type: float
active_queries:
  description: Active client queries now, this module's own excluded.
  returned: success
  type: int
long_running_total:
  description: Active client queries running at least the threshold (RV(long_running) lists at most 100).
  returned: success
  type: int
long_running:
  description: Active client queries running at least O(long_query_threshold), longest first.
  returned: success
  type: list
  elements: dict
  contains:
    pid: {description: Backend PID., type: int}
    user: {description: Role., type: str}
    database: {description: Database., type: str}
    application: {description: C(application_name)., type: str}
    client_addr: {description: "Client address, null for the unix socket.", type: str}
    superuser: {description: Whether its role is a superuser., type: bool}
    query_start: {description: "When the query started (UTC, ISO 8601); with RV(long_running[].pid) it names the query.", type: str}
    duration_seconds: {description: Time since the query started., type: float}
    transaction_age_seconds: {description: Age of its transaction., type: float}
    wait_event_type: {description: "What it waits on (C(Lock), C(IO), C(Timeout), ...), if anything.", type: str}
    wait_event: {description: Wait event name., type: str}
    blocked_by: {description: "Sessions holding a lock it waits for (C(pg_blocking_pids)); a lock wait, not a slow query.", type: list, elements: int}
    kind: {description: "V(read), V(write) or V(utility) (DDL, VACUUM, CREATE INDEX, COPY, ...), from its first keyword.", type: str}
    query_id: {description: "C(query_id) (PostgreSQL 14+ with compute_query_id), matches C(queryid) in RV(statements).", type: str}
    query: {description: "Query text, literals redacted, secrets masked, truncated.", type: str}
statements:
  description: The top statements from C(pg_stat_statements).
  returned: success
  type: dict
  contains:
    available: {description: Whether C(pg_stat_statements) could be read., type: bool}
    reason: {description: "Why not (not installed in this database, not preloaded, no privilege), with the fix.", type: str}
    order_by: {description: V(mean) or V(total)., type: str}
    top:
      description: >-
        Statements with C(queryid), C(database), C(user), C(toplevel), C(calls), C(rows), C(mean_ms),
        C(total_ms), C(max_ms), C(kind), C(query) (redacted) and, with O(explain), C(plan) (lines)
        or C(explain_skipped) (why not).
      type: list
      elements: dict
reset:
  description: Whether C(pg_stat_statements_reset()) was called (in check mode, would be).
  returned: success
  type: bool
actions:
  description: The reset, when asked, for the incident timeline.
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record, parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._pg_statements import (
    RESET_SQL,
    explain,
    read,
    redact,
    statement_kind,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    connect,
    describe_target,
    postgres_argument_spec,
    query,
)

MAX_TOP = 100


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain_top(module, conn, statements: list[dict]) -> None:
    """EXPLAIN the top statements, each on a connection to its own database."""
    limit = module.params["explain_limit"]
    by_database: dict[str, list[dict]] = {}
    for entry in statements[:limit]:
        by_database.setdefault(entry.get("database") or "", []).append(entry)
    current = conn.get_dsn_parameters().get("dbname")
    for dbname, entries in by_database.items():
        other = None if dbname == current else (connect(module, dbname=dbname, fatal=False) if dbname else None)
        target = conn if dbname == current else other
        if target is None:
            for entry in entries:
                entry["explain_skipped"] = f"cannot connect to database {dbname or '(unknown)'} as the login role"
            continue
        try:
            explain(target, entries)
        except Exception as exc:  # a connection lost mid-way: report it per statement, no traceback
            for entry in entries:
                if "plan" not in entry:
                    entry.setdefault("explain_skipped", f"EXPLAIN failed: {redact(_first_line(exc), 300)}")
        finally:
            if other is not None:
                other.close()


def main() -> None:
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        long_query_threshold=dict(type="str", default="5m"),
        top=dict(type="int", default=10),
        order_by=dict(type="str", default="mean", choices=["mean", "total"]),
        databases=dict(type="list", elements="str"),
        query_text_limit=dict(type="int", default=300),
        explain=dict(type="bool", default=False),
        explain_limit=dict(type="int", default=3),
        reset=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        threshold = parse_duration(params["long_query_threshold"], "long_query_threshold")
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if not 0 <= params["top"] <= MAX_TOP:
        module.fail_json(msg=f"top must be between 0 and {MAX_TOP}, got {params['top']}")
    if params["query_text_limit"] < 1:
        module.fail_json(msg="query_text_limit must be at least 1")
    if params["explain_limit"] < 0:
        module.fail_json(msg="explain_limit must be 0 or more")
    limit = params["query_text_limit"]
    target = describe_target(params)
    databases = [d for d in params["databases"] or [] if d] or None

    conn = connect(module)
    try:
        try:
            result, statements = read(conn, threshold, params["top"], params["order_by"], databases)
        except Exception as exc:
            module.fail_json(msg=f"cannot read pg_stat_activity / pg_stat_statements on {target}: {_first_line(exc)}")
        for row in result["long_running"]:
            row["kind"] = statement_kind(row.get("query"))
            row["query"] = redact(row.get("query"), limit)
        if params["explain"] and statements:
            explain_top(module, conn, statements)
        for entry in statements:
            entry["kind"] = statement_kind(entry.get("query"))
            entry["query"] = redact(entry.get("query"), limit)
        result = dict(result, threshold_seconds=threshold, statements=dict(
            available=result.pop("statements_available"), order_by=params["order_by"], top=statements))
        reason = result.pop("statements_reason")
        if reason:
            result["statements"]["reason"] = reason
        result.update(changed=False, reset=False, actions=[])
        if params["reset"]:
            if not result["statements"]["available"]:
                module.fail_json(msg=f"reset=true, but {reason}; nothing was reset", **result)
            if module.check_mode:
                result.update(changed=True, reset=True, actions=[action_record("reset pg_stat_statements", target, "check mode")])
            else:
                try:
                    query(conn, RESET_SQL)
                except Exception as exc:
                    module.fail_json(msg=f"pg_stat_statements_reset() failed on {target}: {_first_line(exc)}; "
                                         "it needs a superuser or EXECUTE on the function. The report above was read.",
                                     **result)
                result.update(changed=True, reset=True, actions=[action_record("reset pg_stat_statements", target, "done")])
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
