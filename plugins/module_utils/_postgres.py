# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connection and queries shared by the sre.runbooks pg_* modules (private)."""

from __future__ import annotations

import re
import typing as t

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_text

try:
    import psycopg2
    import psycopg2.extras
except ImportError as exc:  # pragma: no cover - exercised by missing_required_lib
    psycopg2 = None
    PSYCOPG2_IMPORT_ERROR: ImportError | None = exc
else:
    PSYCOPG2_IMPORT_ERROR = None

# The application_name of our own sessions: visible in pg_stat_activity, so an operator sees
# who is connected, and excluded from remediation by PID (pg_backend_pid()), not by name.
OWN_APPLICATION_NAME = "sre.runbooks"

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def postgres_argument_spec() -> dict[str, t.Any]:
    """Connection options every pg_* module accepts (documented in the postgres doc fragment)."""
    return dict(
        login_host=dict(type="str", aliases=["host"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_unix_socket=dict(type="str", aliases=["unix_socket"]),
        login_user=dict(type="str", default="postgres", aliases=["user"]),
        login_password=dict(type="str", no_log=True, aliases=["password"]),
        login_db=dict(type="str", default="postgres", aliases=["db"]),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=5),
    )


# Query texts are returned to the operator and land in logs and the incident timeline. Utility
# statements keep their literals in pg_stat_activity and pg_stat_statements, so a password
# set with CREATE/ALTER ROLE ... PASSWORD '...' would leak: mask it, even when truncation
# cut the literal short.
_PASSWORD_LITERAL = re.compile(
    r"(\bPASSWORD\s+)("
    r"E'(?:[^'\\]|\\.|'')*(?:'|$)"      # E'...' escape strings: \' does not end them
    r"|U&'(?:[^']|'')*(?:'|$)(?:\s*UESCAPE\s*'[^']*'?)?"  # U&'d\0061t\+000061' unicode escapes
    r"|'(?:[^']|'')*(?:'|$)"             # standard strings
    r"|(\$\w*\$).*?(?:\3|$)"             # dollar quoting: $$...$$, $tag$...$tag$
    r")",
    re.IGNORECASE | re.DOTALL,
)

# A conninfo value with spaces is quoted ('...') inside the SQL literal that holds the conninfo,
# so its quotes come doubled: dblink_connect('password=''a b'' host=h'). mask_text does not
# know SQL quoting; this one form is masked here.
_CONNINFO_DOUBLED_QUOTES = re.compile(r"(\bpassword\s*=\s*)''(?:[^']|'(?!'))*(?:''|$)", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Literal redaction (pg_statements, pg_activity_info, pg_backends). pg_stat_statements replaces the constants of planned statements with $n, but
# utility statements (CREATE ROLE ... PASSWORD, COPY, SET, DO blocks) keep theirs, and
# pg_stat_activity always shows the text as the client sent it: customer e-mails, tokens, ids.
# Every string and number literal becomes '?'; parameters ($1), identifiers ("t1", col2) and
# keywords stay, so the shape of the statement is still readable.

REDACTED = "?"
_IDENT_START = re.compile(r"[A-Za-z_\u0080-\uffff]")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]")
_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_STRING_PREFIX = re.compile(r"(?:[eE]|[bB]|[xX]|[nN]|[uU]&)'")


def _end_of_quoted(text: str, start: int, backslash_escapes: bool) -> int:
    """Index just past the literal whose opening quote is at ``start`` (the end of the text when
    it is cut short, e.g. by truncation)."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == "'":
            if i + 1 < n and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return n


def redact_literals(text: str | None) -> str | None:
    """Replace every string and numeric literal of a SQL text with '?'; keep $n parameters,
    identifiers, quoted identifiers, keywords and comments. A literal cut short by truncation is
    redacted to the end."""
    if not text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(text[i:end])
            i = end
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(text[i:end])
            i = end
        elif ch == '"':
            end = text.find('"', i + 1)
            while end >= 0 and text.startswith('""', end):
                end = text.find('"', end + 2)
            end = n if end < 0 else end + 1
            out.append(text[i:end])
            i = end
        elif ch == "'":
            out.append(REDACTED)
            i = _end_of_quoted(text, i, backslash_escapes=False)
        elif _STRING_PREFIX.match(text, i) and (i == 0 or not _IDENT_CHAR.match(text[i - 1])):
            quote = text.index("'", i)
            out.append(REDACTED)
            i = _end_of_quoted(text, quote, backslash_escapes=text[i] in "eE")
        elif ch == "$":
            param = re.match(r"\$\d+", text[i:])
            tag = _DOLLAR_TAG.match(text, i)
            if param:
                out.append(param.group(0))
                i += len(param.group(0))
            elif tag:
                end = text.find(tag.group(0), tag.end())
                i = n if end < 0 else end + len(tag.group(0))
                out.append(REDACTED)
            else:
                out.append(ch)
                i += 1
        elif _IDENT_START.match(ch):
            j = i + 1
            while j < n and _IDENT_CHAR.match(text[j]):
                j += 1
            out.append(text[i:j])
            i = j
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            number = _NUMBER.match(text, i)
            out.append(REDACTED)
            i = number.end() if number else i + 1
            while i < n and _IDENT_CHAR.match(text[i]):  # 1e5x or 123abc: never half a literal
                i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def redact_query(text: str | None) -> str | None:
    """Mask PASSWORD literals, then every secret-looking assignment and URL credential
    (_secrets.mask_text): conninfo strings of CREATE SUBSCRIPTION ... CONNECTION '...' and
    dblink_connect('... password=...'), postgresql://user:pw@host URIs."""
    if not text:
        return text
    text = _PASSWORD_LITERAL.sub(r"\1'********'", text)
    return mask_text(_CONNINFO_DOUBLED_QUOTES.sub(r"\1''********''", text))


def _redact_rows(rows: list[dict[str, t.Any]]) -> None:
    for row in rows:
        if "query" in row:
            row["query"] = redact_query(redact_literals(row["query"]))


def describe_target(params: dict[str, t.Any]) -> str:
    """Where we connect, for messages: 'db1:5432' or 'socket /run/postgresql (port 5432)'."""
    if params.get("login_unix_socket") and not params.get("login_host"):
        return f"socket {params['login_unix_socket']} (port {params['login_port']})"
    return f"{params.get('login_host') or 'localhost'}:{params['login_port']}"


def _hint(error_text: str) -> str:
    text = error_text.lower()
    if "remaining connection slots" in text or "too many clients" in text or "too many connections" in text:
        return ("the server is out of connection slots: connect as a superuser (it may use the "
                "reserved slots) or over the unix socket, then terminate idle backends")
    if "password authentication failed" in text or "no password supplied" in text:
        return "check login_user and login_password"
    if "connection refused" in text or "no such file or directory" in text:
        return "is the server running and listening there? check login_host/login_port/login_unix_socket"
    if "timeout expired" in text or "timed out" in text:
        return "the server did not answer within connect_timeout; check the network path or raise connect_timeout"
    if "does not exist" in text:
        return "check login_db and login_user"
    if "pg_hba.conf" in text:
        return "pg_hba.conf rejects this client; connect from an allowed address or as another user"
    if "could not translate host name" in text:
        return "check login_host: the name does not resolve"
    return "check the connection options"


def connect(module, dbname: str | None = None, fatal: bool = True) -> t.Any:
    """Open an autocommit connection or fail with a message that names the target and the next step.

    ``dbname`` overrides login_db; with ``fatal=False`` a failed connection returns None.
    """
    if psycopg2 is None:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    params = module.params
    if params["connect_timeout"] < 1:
        module.fail_json(msg="connect_timeout must be at least 1 second")
    kwargs: dict[str, t.Any] = dict(
        host=params.get("login_host") or params.get("login_unix_socket") or None,
        port=params["login_port"],
        user=params["login_user"],
        dbname=dbname or params["login_db"],
        connect_timeout=params["connect_timeout"],
        application_name=OWN_APPLICATION_NAME,
    )
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    is_socket = bool(params.get("login_unix_socket")) and not params.get("login_host")
    if not is_socket:
        kwargs["sslmode"] = params["ssl_mode"]
        if params.get("ca_cert"):
            kwargs["sslrootcert"] = params["ca_cert"]
    try:
        conn = psycopg2.connect(**{k: v for k, v in kwargs.items() if v is not None})
    except psycopg2.Error as exc:
        if not fatal:
            return None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        module.fail_json(
            msg=f"cannot connect to PostgreSQL at {describe_target(params)} as {params['login_user']}: "
                f"{first_line}; {_hint(str(exc))}",
            target=describe_target(params),
        )
    conn.autocommit = True
    return conn


def query(conn, sql: str, args: t.Any = None) -> list[dict[str, t.Any]]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, args)
        return [dict(row) for row in cur.fetchall()] if cur.description else []


# --- activity overview: everything pg_activity_info reports, in one round trip -------------

ACTIVITY_SQL = """
WITH this_db AS (SELECT oid FROM pg_database WHERE datname = current_database()),
a AS (
    SELECT pid, usename, usesysid, datname, application_name, client_addr, state, backend_type,
           wait_event_type, wait_event, query, xact_start,
           EXTRACT(EPOCH FROM now() - state_change) AS state_age,
           EXTRACT(EPOCH FROM now() - query_start) AS query_age,
           pg_blocking_pids(pid) AS blocked_by
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid()
), c AS (SELECT * FROM a WHERE backend_type = 'client backend')
SELECT json_build_object(
  'server_version', current_setting('server_version'),
  'server_version_num', current_setting('server_version_num')::int,
  'max_connections', current_setting('max_connections')::int,
  'superuser_reserved_connections', current_setting('superuser_reserved_connections')::int,
  'is_superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  'total_backends', (SELECT count(*) + 1 FROM a),
  'client_backends', (SELECT count(*) + 1 FROM c),
  'by_state', (SELECT coalesce(json_object_agg(k, n), '{}') FROM
      (SELECT coalesce(state, 'unknown') AS k, count(*) AS n FROM c GROUP BY 1) s),
  'by_database', (SELECT coalesce(json_object_agg(k, n), '{}') FROM
      (SELECT coalesce(datname, '') AS k, count(*) AS n FROM c GROUP BY 1) s),
  'by_user', (SELECT coalesce(json_object_agg(k, n), '{}') FROM
      (SELECT coalesce(usename, '') AS k, count(*) AS n FROM c GROUP BY 1) s),
  'by_application', (SELECT coalesce(json_object_agg(k, n), '{}') FROM
      (SELECT coalesce(application_name, '') AS k, count(*) AS n FROM c GROUP BY 1) s),
  'by_backend_type', (SELECT coalesce(json_object_agg(k, n), '{}') FROM
      (SELECT coalesce(backend_type, '') AS k, count(*) AS n FROM a GROUP BY 1) s),
  'oldest_idle_seconds', (SELECT max(state_age) FROM c WHERE state = 'idle'),
  'oldest_idle_in_transaction_seconds', (SELECT max(state_age) FROM c
      WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')),
  'long_running', (SELECT coalesce(json_agg(r ORDER BY r.duration_seconds DESC), '[]') FROM (
      SELECT pid, usename AS user, datname AS database, application_name AS application,
             host(client_addr) AS client_addr, round(query_age::numeric, 3) AS duration_seconds,
             wait_event_type, wait_event, left(query, %(query_limit)s) AS query
      FROM c WHERE state = 'active' AND query_age > %(long_query_seconds)s
      ORDER BY query_age DESC LIMIT %(list_limit)s) r),
  'blocked', (SELECT coalesce(json_agg(b ORDER BY b.wait_seconds DESC), '[]') FROM (
      SELECT a.pid, a.usename AS user, a.datname AS database, a.blocked_by AS blocking_pids,
             round(a.state_age::numeric, 3) AS wait_seconds, left(a.query, %(query_limit)s) AS query,
             (SELECT json_agg(DISTINCT jsonb_build_object(
                 'mode', l.mode, 'locktype', l.locktype,
                 'relation', CASE WHEN l.relation IS NOT NULL AND l.database IN (0, (SELECT oid FROM this_db))
                                   THEN l.relation::regclass::text END,
                 'relation_oid', l.relation::int8, 'database', (SELECT datname FROM pg_database d WHERE d.oid = l.database)))
                FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) AS waiting_for
      FROM a WHERE cardinality(a.blocked_by) > 0 LIMIT %(list_limit)s) b),
  'blocking', (SELECT coalesce(json_agg(k ORDER BY k.pid), '[]') FROM (
      SELECT h.pid, h.usename AS user, h.datname AS database, h.state,
             h.application_name AS application, round(h.state_age::numeric, 3) AS state_age_seconds,
             left(h.query, %(query_limit)s) AS query,
             (SELECT json_agg(DISTINCT jsonb_build_object('mode', l.mode,
                 'relation', CASE WHEN l.relation IS NOT NULL AND l.database IN (0, (SELECT oid FROM this_db))
                                   THEN l.relation::regclass::text END,
                 'relation_oid', l.relation::int8, 'database', (SELECT datname FROM pg_database d WHERE d.oid = l.database)))
                FROM pg_locks l WHERE l.pid = h.pid AND l.granted AND l.relation IS NOT NULL) AS holding
      FROM a h WHERE h.pid IN (SELECT unnest(blocked_by) FROM a)) k),
  'lock_graph', (SELECT coalesce(json_agg(g), '[]') FROM (
      SELECT a.pid, a.blocked_by, a.usename AS user, a.datname AS database,
             a.application_name AS application, a.state, a.backend_type,
             coalesce(r.rolsuper, false) AS superuser,
             round(EXTRACT(EPOCH FROM now() - a.xact_start)::numeric, 3) AS transaction_age_seconds,
             round(a.state_age::numeric, 3) AS state_age_seconds,
             left(a.query, %(query_limit)s) AS query,
             -- waitstart (PostgreSQL 14+) read through jsonb, so older servers answer null
             CASE WHEN cardinality(a.blocked_by) > 0 THEN round(EXTRACT(EPOCH FROM now() - coalesce(
                 (SELECT min((to_jsonb(l) ->> 'waitstart')::timestamptz) FROM pg_locks l
                  WHERE l.pid = a.pid AND NOT l.granted), now() - make_interval(secs => a.state_age)))::numeric, 3)
             END AS wait_seconds,
             CASE WHEN cardinality(a.blocked_by) > 0 THEN (SELECT json_agg(DISTINCT jsonb_build_object(
                 'mode', l.mode, 'locktype', l.locktype,
                 'relation', CASE WHEN l.relation IS NOT NULL AND l.database IN (0, (SELECT oid FROM this_db))
                                   THEN l.relation::regclass::text END,
                 'relation_oid', l.relation::int8, 'database', (SELECT datname FROM pg_database d WHERE d.oid = l.database)))
                FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) END AS waiting_for,
             CASE WHEN a.pid IN (SELECT unnest(blocked_by) FROM a) THEN (SELECT json_agg(DISTINCT jsonb_build_object(
                 'mode', l.mode, 'locktype', l.locktype,
                 'relation', CASE WHEN l.relation IS NOT NULL AND l.database IN (0, (SELECT oid FROM this_db))
                                   THEN l.relation::regclass::text END,
                 'relation_oid', l.relation::int8, 'database', (SELECT datname FROM pg_database d WHERE d.oid = l.database),
                 'advisory', CASE WHEN l.locktype = 'advisory' THEN concat_ws(':', l.classid, l.objid) END))
                FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                  AND (l.locktype = 'advisory' OR (l.relation IS NOT NULL AND l.relation >= 16384))) END AS holding
      FROM a LEFT JOIN pg_roles r ON r.oid = a.usesysid
      WHERE cardinality(a.blocked_by) > 0 OR a.pid IN (SELECT unnest(blocked_by) FROM a)
      ORDER BY a.pid LIMIT %(graph_limit)s) g),
  'database_sizes', (SELECT coalesce(json_object_agg(datname, pg_database_size(oid)), '{}')
      FROM pg_database WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')),
  'pg_stat_statements', to_regclass('pg_stat_statements') IS NOT NULL
) AS overview
"""

TOP_STATEMENTS_SQL = """
SELECT left(query, %(query_limit)s) AS query, calls,
       round({mean}::numeric, 3) AS mean_ms, round({total}::numeric, 3) AS total_ms, rows
FROM pg_stat_statements
ORDER BY {mean} DESC
LIMIT %(top)s
"""


def _usage(client_backends: int, max_connections: int, reserved: int) -> dict[str, t.Any]:
    """Utilisation as the runbooks mean it: client sessions over the slots non-superusers may use."""
    usable = max(max_connections - reserved, 1)
    return dict(client_backends=client_backends, usable_connections=usable,
                utilisation_percent=round(100.0 * client_backends / usable, 1))


USAGE_SQL = """
SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS client_backends,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
FROM pg_stat_activity
"""


def connection_usage(conn) -> dict[str, t.Any]:
    """client_backends (this session included), usable_connections, utilisation_percent."""
    row = query(conn, USAGE_SQL)[0]
    return _usage(row["client_backends"], row["max_connections"], row["reserved"])


# Sessions read into the lock graph (waiters and blockers); more is a storm the report says is cut.
LOCK_GRAPH_LIMIT = 5000
# PIDs listed per root blocker (the counts are always complete).
WAITER_PID_LIMIT = 1000
# Waiters described in full per root blocker.
WAITER_SAMPLE = 5


def _float(value: t.Any) -> float | None:
    return None if value is None else float(value)


def build_lock_tree(graph: list[dict[str, t.Any]], truncated: bool = False) -> tuple[list, dict]:
    """The blocking tree from one read of pg_stat_activity + pg_blocking_pids: one entry per root
    blocker (a session that blocks others and waits for nobody), with every session waiting
    behind it directly or through a chain, their lock modes, relations and wait ages.

    ``graph`` rows: pid, blocked_by, and the attributes of the session. A blocker with PID 0 is a
    prepared transaction (pg_blocking_pids reports it so); sessions waiting in a cycle with no
    root are a deadlock the server resolves by itself (deadlock_timeout) and are listed apart.
    """
    nodes = {row["pid"]: row for row in graph}
    for row in graph:
        for key in ("transaction_age_seconds", "state_age_seconds", "wait_seconds"):
            row[key] = _float(row.get(key))
    waiting = {row["pid"]: sorted(set(row["blocked_by"] or [])) for row in graph if row.get("blocked_by")}
    children: dict[int, set[int]] = {}
    for waiter, blockers in waiting.items():
        for blocker in blockers:
            children.setdefault(blocker, set()).add(waiter)
    roots = sorted(pid for pid in children if pid not in waiting)
    reached: set[int] = set()
    tree = []
    for root in roots:
        behind: set[int] = set()
        todo = list(children.get(root, ()))
        while todo:
            pid = todo.pop()
            if pid in behind:
                continue
            behind.add(pid)
            todo.extend(children.get(pid, ()))
        reached |= behind
        waiters = sorted((nodes[p] for p in behind if p in nodes),
                         key=lambda w: (-(w.get("wait_seconds") or 0.0), w["pid"]))
        node = nodes.get(root, {})
        modes = sorted({lock["mode"] for w in waiters for lock in (w.get("waiting_for") or [])})
        relations = sorted({lock["relation"] for w in waiters for lock in (w.get("waiting_for") or [])
                            if lock.get("relation")}
                           | {lock["relation"] for lock in (node.get("holding") or []) if lock.get("relation")})
        waits = [w["wait_seconds"] for w in waiters if w.get("wait_seconds") is not None]
        tree.append({
            "pid": root,
            "prepared_transaction": root == 0,
            "known": root in nodes,
            "user": node.get("user"),
            "database": node.get("database"),
            "application": node.get("application"),
            "state": node.get("state"),
            "backend_type": node.get("backend_type"),
            "superuser": node.get("superuser"),
            "transaction_age_seconds": node.get("transaction_age_seconds"),
            "state_age_seconds": node.get("state_age_seconds"),
            "query": node.get("query"),
            "holding": node.get("holding") or [],
            "direct_waiters": len(children.get(root, ())),
            "waiters": len(behind),
            "waiter_pids": sorted(behind)[:WAITER_PID_LIMIT],
            "longest_wait_seconds": max(waits) if waits else None,
            "waiting_modes": modes,
            "relations": relations,
            "sample_waiters": [{key: w.get(key) for key in ("pid", "user", "application", "wait_seconds",
                                                            "waiting_for", "blocked_by", "query")}
                               for w in waiters[:WAITER_SAMPLE]],
        })
    tree.sort(key=lambda r: (-r["waiters"], r["pid"]))
    deadlocked = sorted(set(waiting) - reached)
    waits = [row["wait_seconds"] for row in graph if row["pid"] in waiting and row.get("wait_seconds") is not None]
    summary = {
        "blocked_sessions": len(waiting),
        "root_blockers": len(tree),
        "longest_wait_seconds": max(waits) if waits else None,
        "blocked_pids": sorted(waiting)[:LOCK_GRAPH_LIMIT],
        "deadlocked_pids": deadlocked,
        "truncated": truncated,
    }
    return tree, summary


def activity_overview(conn, long_query_seconds: float, top_statements: int,
                      query_limit: int = 200, list_limit: int = 50) -> dict[str, t.Any]:
    args = dict(long_query_seconds=long_query_seconds, query_limit=query_limit, list_limit=list_limit,
                graph_limit=LOCK_GRAPH_LIMIT)
    overview = query(conn, ACTIVITY_SQL, args)[0]["overview"]
    _redact_rows(overview["lock_graph"])
    overview.update(_usage(overview["client_backends"], overview["max_connections"],
                           overview["superuser_reserved_connections"]))
    for key in ("oldest_idle_seconds", "oldest_idle_in_transaction_seconds"):
        if overview[key] is not None:
            overview[key] = round(float(overview[key]), 3)
    for key in ("long_running", "blocked", "blocking"):
        _redact_rows(overview[key])
    overview["blocking_pids"] = sorted({pid for b in overview["blocked"] for pid in b["blocking_pids"]})
    available = overview.pop("pg_stat_statements")
    statements: dict[str, t.Any] = {"available": bool(available), "top_by_mean_time": []}
    if not available:
        statements["reason"] = "the pg_stat_statements extension is not installed in this database"
    elif top_statements > 0:
        newer = overview["server_version_num"] >= 130000
        sql = TOP_STATEMENTS_SQL.format(mean="mean_exec_time" if newer else "mean_time",
                                        total="total_exec_time" if newer else "total_time")
        try:
            statements["top_by_mean_time"] = query(conn, sql, dict(query_limit=query_limit, top=top_statements))
        except psycopg2.Error as exc:  # e.g. the library is not in shared_preload_libraries
            statements.update(available=False, reason=str(exc).strip().splitlines()[0])
        _redact_rows(statements["top_by_mean_time"])
        for row in statements["top_by_mean_time"]:
            for key in ("mean_ms", "total_ms"):
                row[key] = float(row[key])
    overview["statements"] = statements
    return overview


# --- backend selection and signalling for pg_backends ------------------------------------

# Predicates a backend must satisfy to be acted on. Applied when selecting, and applied
# again in the very statement that signals, so a backend that changed state in between
# (an idle connection that just started a query) is spared.
_MATCH_PREDICATES = """
    a.backend_type = 'client backend'
    AND a.pid <> pg_backend_pid()
    AND a.state = ANY(%(states)s)
    AND a.state_change <= now() - make_interval(
        secs => coalesce((%(min_age_by_state)s::jsonb ->> a.state)::float8, %(min_age)s))
    AND (%(min_xact_age)s::float8 IS NULL
         OR a.xact_start <= now() - make_interval(secs => %(min_xact_age)s::float8))
    AND (%(only_pids)s::int[] IS NULL OR a.pid = ANY(%(only_pids)s::int[]))
    AND (%(databases)s::text[] IS NULL OR a.datname = ANY(%(databases)s))
    AND (%(users)s::text[] IS NULL OR a.usename = ANY(%(users)s))
    AND (%(applications)s::text[] IS NULL OR a.application_name = ANY(%(applications)s))
    AND (%(exclude_applications)s::text[] IS NULL OR NOT a.application_name = ANY(%(exclude_applications)s))
    AND (%(client_addrs)s::inet[] IS NULL OR a.client_addr <<= ANY(%(client_addrs)s::inet[]))
    AND (%(include_superusers)s OR NOT coalesce(r.rolsuper, false))
    AND (NOT %(blocking_only)s OR a.pid IN (
        SELECT unnest(pg_blocking_pids(w.pid)) FROM pg_stat_activity w))
"""

SELECT_BACKENDS_SQL = f"""
SELECT a.pid, a.usename AS user, a.datname AS database, a.application_name AS application,
       host(a.client_addr) AS client_addr, a.state,
       round(EXTRACT(EPOCH FROM now() - a.state_change)::numeric, 3)::float AS state_age_seconds,
       coalesce(r.rolsuper, false) AS superuser,
       left(a.query, 200) AS query
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE {_MATCH_PREDICATES}
ORDER BY a.state_change ASC, a.pid
"""

SIGNAL_BACKENDS_SQL = """
SELECT a.pid, {function}(a.pid) AS signalled
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid = ANY(%(pids)s) AND {predicates}
"""

PRIVILEGES_SQL = """
SELECT r.rolsuper AS superuser, pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal_backend,
       pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS read_all_stats,
       current_user AS user
FROM pg_roles r WHERE r.rolname = current_user
"""

STILL_PRESENT_SQL = "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%(pids)s)"
STILL_BLOCKING_SQL = """
SELECT DISTINCT b.pid FROM pg_stat_activity w, unnest(pg_blocking_pids(w.pid)) AS b(pid)
WHERE b.pid = ANY(%(pids)s)
"""


def resolve_other_database_relations(overview: dict[str, t.Any], connect_to) -> None:
    """Name the relations of locks held in other databases (an OID means nothing across
    databases): one connection per such database, made with ``connect_to(dbname)``."""
    wanted: dict[str, set[int]] = {}
    locks = [lock for entry in overview.get("lock_graph") or []
             for lock in (entry.get("waiting_for") or []) + (entry.get("holding") or [])]
    for lock in locks:
        if lock.get("relation_oid") and lock.get("relation") is None and lock.get("database"):
            wanted.setdefault(lock["database"], set()).add(lock["relation_oid"])
    for entry in overview["blocked"]:
        for lock in entry.get("waiting_for") or []:
            if lock.get("relation_oid") and lock.get("relation") is None and lock.get("database"):
                wanted.setdefault(lock["database"], set()).add(lock["relation_oid"])
    for entry in overview["blocking"]:
        for lock in entry.get("holding") or []:
            if lock.get("relation_oid") and lock.get("relation") is None and lock.get("database"):
                wanted.setdefault(lock["database"], set()).add(lock["relation_oid"])
    names: dict[tuple[str, int], str] = {}
    for dbname, oids in wanted.items():
        conn = connect_to(dbname)
        if conn is None:
            continue
        try:
            for row in query(conn, "SELECT oid::int AS oid, oid::regclass::text AS name FROM pg_class "
                                   "WHERE oid = ANY(%(oids)s::oid[])", dict(oids=sorted(oids))):
                names[(dbname, row["oid"])] = row["name"]
        finally:
            conn.close()
    for lock in locks + [lock for entry in overview["blocked"] + overview["blocking"]
                         for lock in (entry.get("waiting_for") or []) + (entry.get("holding") or [])]:
        key = (lock.get("database"), lock.get("relation_oid"))
        if lock.get("relation") is None and key in names:
            lock["relation"] = names[key]


def finish_lock_tree(overview: dict[str, t.Any]) -> None:
    """Replace the raw lock_graph of activity_overview (its relations named by
    resolve_other_database_relations) with lock_tree and lock_summary."""
    graph = overview.pop("lock_graph")
    overview["lock_tree"], overview["lock_summary"] = build_lock_tree(graph, truncated=len(graph) >= LOCK_GRAPH_LIMIT)


def select_backends(conn, filters: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    rows = query(conn, SELECT_BACKENDS_SQL, filters)
    _redact_rows(rows)
    return rows


def signal_backends(conn, function: str, pids: list[int], filters: dict[str, t.Any]) -> dict[int, bool]:
    """Send the signal to those of ``pids`` that still match; return {pid: signalled}."""
    if function not in ("pg_terminate_backend", "pg_cancel_backend"):
        raise ValueError(function)
    sql = SIGNAL_BACKENDS_SQL.format(function=function, predicates=_MATCH_PREDICATES)
    return {row["pid"]: bool(row["signalled"]) for row in query(conn, sql, dict(filters, pids=pids))}
