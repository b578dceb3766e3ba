# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The slow query runbook's reads (private): pg_stat_statements and long-running active queries
in one round trip, literal redaction of query texts, EXPLAIN (never ANALYZE) of normalised
statements, and the opt-in pg_stat_statements_reset()."""

from __future__ import annotations

import re
import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (  # noqa: F401 - redact_literals: this module's API
    query,
    redact_literals,
    redact_query,
)

try:
    import psycopg2
except ImportError:  # pragma: no cover - the module reports it through connect()
    psycopg2 = None


def redact(text: str | None, limit: int | None = None) -> str | None:
    """Literals redacted, then every secret-looking value masked (_postgres.redact_query), then cut."""
    cleaned = redact_query(redact_literals(text))
    if cleaned is not None and limit is not None and len(cleaned) > limit:
        cleaned = cleaned[:limit]
    return cleaned


def redact_activity(overview: dict[str, t.Any], limit: int | None = None) -> None:
    """Redact, in place, every query text of a _postgres.activity_overview() (pg_activity_info):
    long-running queries, blocked sessions (waiters), blockers, the lock graph (or the lock tree
    built from it, with its sample waiters) and the top statements. pg_stat_activity shows each
    text as the client sent it (customer e-mails, tokens, ids); the lock and exhaustion runbooks
    need the statement's shape, never its values."""
    rows: list[dict[str, t.Any]] = []
    for key in ("long_running", "blocked", "blocking", "lock_graph", "lock_tree"):
        rows.extend(overview.get(key) or [])
    rows.extend(waiter for root in overview.get("lock_tree") or [] for waiter in root.get("sample_waiters") or [])
    rows.extend((overview.get("statements") or {}).get("top_by_mean_time") or [])
    for row in rows:
        if row.get("query"):
            row["query"] = redact(row["query"], limit)


# ---------------------------------------------------------------------------------------------
# What kind of statement a text is, from its first keyword (comments and parentheses skipped).

READ_KEYWORDS = ("select", "with", "values", "table", "show", "fetch")
WRITE_KEYWORDS = ("insert", "update", "delete", "merge")
_DML_INSIDE = re.compile(r"\b(insert|update|delete|merge)\b", re.IGNORECASE)
_ROW_LOCKING = re.compile(r"\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b", re.IGNORECASE)


def _strip_comments_and_literals(text: str) -> str:
    stripped = re.sub(r"--[^\n]*|/\*.*?(\*/|$)", " ", redact_literals(text) or "", flags=re.DOTALL)
    return re.sub(r'"(?:[^"]|"")*"?', '""', stripped)


def first_keyword(text: str | None) -> str:
    match = re.match(r"[\s(]*([A-Za-z]+)", _strip_comments_and_literals(text or ""))
    return match.group(1).lower() if match else ""


def statement_kind(text: str | None) -> str:
    """V(read) (SELECT, WITH without data-modifying parts, VALUES, TABLE, SHOW, FETCH), V(write)
    (INSERT, UPDATE, DELETE, MERGE, or a WITH that contains one) or V(utility) (DDL, VACUUM,
    ANALYZE, CREATE INDEX, COPY, CALL, DO, ... and anything unrecognised)."""
    keyword = first_keyword(text)
    if keyword in WRITE_KEYWORDS:
        return "write"
    if keyword == "with":
        return "write" if _DML_INSIDE.search(_strip_comments_and_literals(text or "")) else "read"
    if keyword in READ_KEYWORDS:
        return "read"
    return "utility"


def explain_refusal(text: str | None) -> str | None:
    """Why a statement text is not EXPLAINed, or None when it is safe to plan."""
    if not text or text.startswith("<insufficient privilege>"):
        return "its text is hidden from the login role (grant pg_read_all_stats)"
    bare = _strip_comments_and_literals(text).strip().rstrip(";").strip()
    if ";" in bare:
        return "the text holds more than one statement"
    kind = statement_kind(text)
    if kind != "read" or first_keyword(text) in ("show", "fetch"):
        return (f"a {kind if kind != 'read' else first_keyword(text).upper()} statement: only plain queries are "
                "EXPLAINed (planning a write takes a ROW EXCLUSIVE lock; utility statements have no plan)")
    if _ROW_LOCKING.search(bare):
        return "a SELECT ... FOR UPDATE/SHARE: planning it takes a ROW SHARE lock"
    return None


def parameter_count(text: str) -> int:
    numbers = [int(m) for m in re.findall(r"\$(\d+)", _strip_comments_and_literals(text))]
    return max(numbers) if numbers else 0


# ---------------------------------------------------------------------------------------------
# The one read.

# Long-running active client queries: every column the verdict and the operator need.
_LONG_RUNNING = """
long_running AS (
    SELECT a.pid, a.usename AS user, a.datname AS database, a.application_name AS application,
           host(a.client_addr) AS client_addr, a.state, a.backend_type,
           coalesce(r.rolsuper, false) AS superuser,
           to_char(a.query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS query_start,
           round(EXTRACT(EPOCH FROM now() - a.query_start)::numeric, 3)::float8 AS duration_seconds,
           round(EXTRACT(EPOCH FROM now() - a.xact_start)::numeric, 3)::float8 AS transaction_age_seconds,
           a.wait_event_type, a.wait_event, pg_blocking_pids(a.pid) AS blocked_by,
           (to_jsonb(a) ->> 'query_id') AS query_id, a.query
    FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' AND a.state = 'active'
      AND a.query_start <= now() - make_interval(secs => %(threshold)s)
)"""

# pg_stat_statements' columns read through jsonb: mean_exec_time (13+) or mean_time (before), so
# one statement serves every supported server.
_STATEMENTS = """
(SELECT coalesce(json_agg(s ORDER BY s.sort_key DESC), '[]') FROM (
    SELECT p.queryid::text AS queryid, d.datname AS database, u.rolname AS user,
           (j ->> 'toplevel')::boolean AS toplevel, p.calls, p.rows,
           round(coalesce(j ->> 'mean_exec_time', j ->> 'mean_time')::numeric, 3)::float8 AS mean_ms,
           round(coalesce(j ->> 'total_exec_time', j ->> 'total_time')::numeric, 3)::float8 AS total_ms,
           round(coalesce(j ->> 'max_exec_time', j ->> 'max_time')::numeric, 3)::float8 AS max_ms,
           coalesce(j ->> '{order}_exec_time', j ->> '{order}_time')::float8 AS sort_key,
           p.query
    FROM pg_stat_statements p
         CROSS JOIN LATERAL to_jsonb(p) AS j
         LEFT JOIN pg_database d ON d.oid = p.dbid
         LEFT JOIN pg_roles u ON u.oid = p.userid
    WHERE (%(databases)s::text[] IS NULL OR d.datname = ANY(%(databases)s::text[]))
    ORDER BY sort_key DESC NULLS LAST
    LIMIT %(top)s) s)"""

READ_SQL = """
WITH {long_running}
SELECT json_build_object(
  'server_version', current_setting('server_version'),
  'database', current_database(),
  'is_superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  'active_queries', (SELECT count(*) FROM pg_stat_activity
                     WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()),
  'long_running_total', (SELECT count(*) FROM long_running),
  'pgss_installed', to_regclass('pg_stat_statements') IS NOT NULL,
  'long_running', (SELECT coalesce(json_agg(l ORDER BY l.duration_seconds DESC), '[]') FROM
                   (SELECT * FROM long_running ORDER BY duration_seconds DESC LIMIT %(list_limit)s) l),
  'statements', {statements}
) AS result
"""

# SQLSTATEs that mean "pg_stat_statements cannot be read here": undefined_table (not installed in
# this database), object_not_in_prerequisite_state (not in shared_preload_libraries),
# insufficient_privilege, undefined_function.
_NOT_AVAILABLE = {"42P01", "55000", "42501", "42883"}


def _not_available_reason(exc: BaseException, dbname: str) -> str:
    code = getattr(exc, "pgcode", None)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if code == "42P01":
        return (f"pg_stat_statements is not installed in database {dbname}: run CREATE EXTENSION pg_stat_statements "
                "there (it also needs shared_preload_libraries = 'pg_stat_statements' and a restart), or point "
                "login_db at the database where it is installed")
    if code == "55000":
        return (f"pg_stat_statements is installed but not loaded ({first}); add it to shared_preload_libraries "
                "and restart PostgreSQL at a quiet moment")
    return f"pg_stat_statements cannot be read: {first}"


class _Missing(Exception):
    pgcode = "42P01"


def read(conn, threshold: float, top: int, order_by: str, databases: list[str] | None,
         list_limit: int = 100) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
    """One round trip when pg_stat_statements is readable (two when it is not: the first fails).
    Returns (result without query texts redacted yet, statements with their full text)."""
    if order_by not in ("mean", "total"):
        raise ValueError(order_by)
    args = dict(threshold=threshold, top=top, databases=databases, list_limit=list_limit)
    statements_sql = _STATEMENTS.replace("{order}", order_by) if top > 0 else "'[]'::json"
    reason = None
    try:
        row = query(conn, READ_SQL.format(long_running=_LONG_RUNNING, statements=statements_sql), args)[0]["result"]
        available = True
    except psycopg2.Error as exc:
        if getattr(exc, "pgcode", None) not in _NOT_AVAILABLE:
            raise
        reason = _not_available_reason(exc, conn.get_dsn_parameters().get("dbname", "?"))
        row = query(conn, READ_SQL.format(long_running=_LONG_RUNNING, statements="'[]'::json"), args)[0]["result"]
        available = False
    installed = row.pop("pgss_installed")
    if available and top == 0 and not installed:  # not read, so the failure above could not tell
        available = False
        reason = _not_available_reason(_Missing(), conn.get_dsn_parameters().get("dbname", "?"))
    statements = row.pop("statements") or []
    for entry in statements:
        entry.pop("sort_key", None)
    row["statements_available"] = available
    row["statements_reason"] = reason
    return row, statements


# ---------------------------------------------------------------------------------------------
# EXPLAIN, never ANALYZE. A normalised statement ($1, $2 for its constants) cannot be EXPLAINed
# as is before PostgreSQL 16 (EXPLAIN (GENERIC_PLAN)). Here: PREPARE it (the server infers the
# parameter types), then EXPLAIN EXECUTE with NULLs under plan_cache_mode = force_generic_plan,
# so the plan is the generic one - the same as GENERIC_PLAN shows, not one folded for NULL - all
# inside a READ ONLY transaction that is rolled back, with short statement and lock timeouts.
# Only plain reads are planned (see explain_refusal); nothing is executed.

EXPLAIN_STATEMENT_TIMEOUT_MS = 2000
EXPLAIN_LOCK_TIMEOUT_MS = 500
PLAN_LINES = 60


def explain(conn, statements: list[dict[str, t.Any]]) -> None:
    """Add ``plan`` (lines of EXPLAIN output) or ``explain_skipped`` to each of ``statements``
    (dicts with the full ``query``), on ``conn`` (connected to their database)."""
    with conn.cursor() as cur:
        cur.execute("BEGIN TRANSACTION READ ONLY")
        try:
            cur.execute(f"SET LOCAL statement_timeout = {EXPLAIN_STATEMENT_TIMEOUT_MS}")
            cur.execute(f"SET LOCAL lock_timeout = {EXPLAIN_LOCK_TIMEOUT_MS}")
            cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            for number, entry in enumerate(statements):
                refusal = explain_refusal(entry["query"])
                if refusal:
                    entry["explain_skipped"] = refusal
                    continue
                name = f"sre_runbooks_explain_{number}"
                text = entry["query"].strip().rstrip(";")
                params = parameter_count(text)
                cur.execute("SAVEPOINT sre_runbooks_explain")
                try:
                    # The text comes from pg_stat_statements (the server's own record of a single
                    # statement, checked above); psycopg2 sends it without %-interpolation.
                    cur.execute(f"PREPARE {name} AS {text}")
                    cur.execute(f"EXPLAIN EXECUTE {name}" + (f"({', '.join(['NULL'] * params)})" if params else ""))
                    lines = [row[0] for row in cur.fetchall()]
                    entry["plan"] = lines[:PLAN_LINES]
                    entry["plan_generic"] = True
                    cur.execute(f"DEALLOCATE {name}")
                    cur.execute("RELEASE SAVEPOINT sre_runbooks_explain")
                except psycopg2.Error as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT sre_runbooks_explain")
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    entry["explain_skipped"] = f"EXPLAIN failed: {redact(first, 300)}"
        finally:
            cur.execute("ROLLBACK")
            cur.execute("DEALLOCATE ALL")


RESET_SQL = "SELECT pg_stat_statements_reset()"
