# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL streaming replication: probe a group of nodes (one round trip each, all at once)
and decide a failover (private; used by pg_replication_info and pg_failover).

The decision (``plan_failover``) is a pure function of the probes, so every branch is unit-tested.
"""

from __future__ import annotations

import re
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped
from ansible_collections.sre.runbooks.plugins.module_utils._pgbouncer import retarget
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    OWN_APPLICATION_NAME,
    PSYCOPG2_IMPORT_ERROR,
    SSL_MODES,
    psycopg2,
)
from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_text

__all__ = ["PSYCOPG2_IMPORT_ERROR"]


def nodes_argument_spec() -> dict[str, t.Any]:
    """Connection options shared by every node of the group (documented in the modules)."""
    return dict(
        nodes=dict(type="list", elements="str", required=True),
        login_user=dict(type="str", default="postgres", aliases=["user"]),
        login_password=dict(type="str", no_log=True, aliases=["password"]),
        login_db=dict(type="str", default="postgres", aliases=["db"]),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=5),
    )


class NodeError(ValueError):
    """Bad input: a node address that does not parse, or the same node twice."""


def parse_node(text: str) -> tuple[str, int]:
    """'host:port', '[v6]:port', 'host' (port 5432) or '/socket/dir:port' -> (host, port)."""
    text = (text or "").strip()
    if not text:
        raise NodeError("an entry of nodes is empty")
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if match:
        host, port = match.group(1), match.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" in text:
        raise NodeError(f"node {text!r}: write an IPv6 address as [addr]:port")
    else:
        host, port = text, None
    if not host:
        raise NodeError(f"node {text!r} has no host")
    try:
        number = int(port) if port is not None else 5432
    except ValueError:
        raise NodeError(f"node {text!r}: the port must be a number") from None
    if not 0 < number < 65536:
        raise NodeError(f"node {text!r}: the port must be 1-65535")
    return host, number


def node_name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_nodes(items: list[str]) -> list[str]:
    names = [node_name(*parse_node(item)) for item in items]
    if not names:
        raise NodeError("nodes is empty: give the group's PostgreSQL servers as host:port")
    if len(set(names)) != len(names):
        raise NodeError("nodes lists the same node twice: " + ", ".join(names))
    return names


# --- connection errors: why a node does not answer ----------------------------------------

# kind -> (the host answered?, what it means). host_up True: the machine is up (the kernel refused
# the port, or PostgreSQL itself answered); None: unknown (timeout, no route: host gone or path cut).
ERROR_KINDS: dict[str, tuple[bool | None, str]] = {
    "refused": (True, "connection refused: the host is up but nothing listens (PostgreSQL is not running)"),
    "too_many_clients": (True, "too many clients: PostgreSQL is running and busy, not down"),
    "starting_up": (True, "the database system is starting up"),
    "shutting_down": (True, "the database system is shutting down"),
    "in_recovery": (True, "the database system is in crash recovery"),
    "auth": (True, "authentication failed: check login_user / login_password / pg_hba.conf"),
    "timeout": (None, "no answer within connect_timeout: the host is down or the path to it is cut"),
    "unreachable": (None, "no route to the host: it is down or the network path is cut"),
    "dns": (None, "the host name does not resolve"),
    "error": (None, "connection failed"),
}

_ERROR_PATTERNS = [
    ("too_many_clients", ("too many clients", "remaining connection slots", "too many connections")),
    ("starting_up", ("is starting up", "not yet accepting connections", "consistent recovery state has not")),
    ("shutting_down", ("is shutting down",)),
    ("in_recovery", ("is in recovery mode",)),
    ("auth", ("password authentication failed", "no password supplied", "pg_hba.conf", "authentication failed",
              "role \"")),
    ("refused", ("connection refused", "no such file or directory")),
    ("timeout", ("timeout expired", "timed out")),
    ("unreachable", ("no route to host", "network is unreachable", "host is unreachable")),
    ("dns", ("could not translate host name", "name or service not known")),
]


def classify_error(text: str) -> str:
    lowered = (text or "").lower()
    for kind, needles in _ERROR_PATTERNS:
        if any(needle in lowered for needle in needles):
            return kind
    return "error"


# --- the probe: one query per node --------------------------------------------------------

PROBE_SQL = """
WITH s AS (SELECT pg_is_in_recovery() AS rec),
me AS (SELECT rolsuper OR pg_has_role(current_user, 'pg_monitor', 'MEMBER') AS monitor
       FROM pg_roles WHERE rolname = current_user)
SELECT json_build_object(
  'in_recovery', s.rec,
  'server_version', current_setting('server_version'),
  'system_identifier', (SELECT system_identifier::text FROM pg_control_system()),
  'timeline', CASE WHEN s.rec
      THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  'current_lsn', CASE WHEN NOT s.rec THEN pg_current_wal_lsn()::text END,
  'receive_lsn', pg_last_wal_receive_lsn()::text,
  'replay_lsn', pg_last_wal_replay_lsn()::text,
  'receive_replay_lag_bytes', pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8,
  'last_replay_age_seconds', round(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::numeric, 3),
  'wal_receiver', (SELECT row_to_json(r) FROM (
      SELECT status, sender_host, sender_port, received_tli AS timeline, flushed_lsn::text AS flushed_lsn,
             latest_end_lsn::text AS latest_end_lsn, slot_name,
             round(EXTRACT(EPOCH FROM now() - last_msg_receipt_time)::numeric, 3) AS last_msg_age_seconds
      FROM pg_stat_wal_receiver) r),
  'primary_conninfo', CASE WHEN s.rec THEN current_setting('primary_conninfo', true) END,
  'replication', (SELECT coalesce(json_agg(r ORDER BY r.application_name, r.client_addr), '[]') FROM (
      SELECT pid, application_name, host(client_addr) AS client_addr, state, sync_state,
             sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn,
             replay_lsn::text AS replay_lsn,
             CASE WHEN NOT s.rec THEN pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8 END AS replay_lag_bytes,
             EXTRACT(EPOCH FROM replay_lag)::float8 AS replay_lag_seconds,
             EXTRACT(EPOCH FROM write_lag)::float8 AS write_lag_seconds
      FROM pg_stat_replication) r),
  'slots', (SELECT coalesce(json_agg(r ORDER BY r.slot_name), '[]') FROM (
      SELECT slot_name, slot_type, active, wal_status, restart_lsn::text AS restart_lsn,
             pg_wal_lsn_diff(CASE WHEN s.rec THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                             restart_lsn)::int8 AS retained_wal_bytes
      FROM pg_replication_slots) r),
  'wal_bytes', CASE WHEN me.monitor THEN (SELECT sum(size)::int8 FROM pg_ls_waldir()) END,
  'databases_bytes', (SELECT sum(pg_database_size(oid))::int8 FROM pg_database
                      WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')),
  'data_directory', CASE WHEN me.monitor THEN current_setting('data_directory') END,
  'max_connections', current_setting('max_connections')::int,
  'client_backends', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
  'monitor', me.monitor
) AS probe
FROM s, me
"""


def lsn_to_int(lsn: str | None) -> int | None:
    """'16/B374D848' -> byte position."""
    if not lsn:
        return None
    high, low = lsn.split("/", 1)
    return (int(high, 16) << 32) + int(low, 16)


def conninfo_target(conninfo: str | None) -> tuple[str | None, int | None]:
    """host and port of a primary_conninfo (key=value form or URI); the rest (password) is dropped."""
    if not conninfo:
        return None, None
    if conninfo.startswith(("postgres://", "postgresql://")):
        match = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?(\[[^\]]+\]|[^:/?]*)(?::(\d+))?", conninfo)
        if not match:
            return None, None
        host = match.group(1).strip("[]") or None
        return host, int(match.group(2)) if match.group(2) else 5432
    pairs = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", conninfo))
    host = pairs.get("host") or pairs.get("hostaddr")
    port = pairs.get("port")
    host = host.strip("'") if host else None
    try:
        return host, int(port.strip("'")) if port else 5432
    except ValueError:
        return host, None


def retarget_conninfo(conninfo: str | None, node: str) -> str:
    """primary_conninfo pointed at node (host and port replaced, user, passfile, password,
    application_name... kept). A URI conninfo is not rewritten (ValueError)."""
    if conninfo and conninfo.strip().startswith(("postgres://", "postgresql://")):
        raise ValueError("primary_conninfo is a URI; re-point it by hand")
    host, port = parse_node(node)
    return retarget(conninfo or "", host, port)


def _connect_kwargs(params: dict[str, t.Any], host: str, port: int) -> dict[str, t.Any]:
    kwargs: dict[str, t.Any] = dict(host=host, port=port, user=params["login_user"], dbname=params["login_db"],
                                    connect_timeout=params["connect_timeout"], application_name=OWN_APPLICATION_NAME)
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    if not host.startswith("/"):
        kwargs["sslmode"] = params["ssl_mode"]
        if params.get("ca_cert"):
            kwargs["sslrootcert"] = params["ca_cert"]
    return kwargs


def connect_node(params: dict[str, t.Any], node: str) -> t.Any:
    """An autocommit connection to node (raises psycopg2.Error)."""
    host, port = parse_node(node)
    conn = psycopg2.connect(**_connect_kwargs(params, host, port))
    conn.autocommit = True
    return conn


def ensure_physical_slot(params: dict[str, t.Any], node: str, slot: str) -> None:
    """The physical replication slot a standby names exists on node (its new upstream); created
    when missing, left alone when there (raises psycopg2.Error)."""
    conn = connect_node(params, node)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS "
                        "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (slot, slot))
    finally:
        conn.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return mask_text(text.splitlines()[0] if text else type(exc).__name__)


def probe_node(params: dict[str, t.Any], node: str) -> dict[str, t.Any]:
    """Everything about one node in one round trip. Never raises: an error is part of the result."""
    started = time.monotonic()
    result: dict[str, t.Any] = {"node": node, "reachable": False}
    try:
        conn = connect_node(params, node)
    except Exception as exc:  # pylint: disable=broad-except
        kind = classify_error(str(exc))
        host_up, meaning = ERROR_KINDS[kind]
        result.update(error_kind=kind, host_up=host_up, error=_first_line(exc), reason=meaning,
                      role="unknown", probe_seconds=round(time.monotonic() - started, 3))
        return result
    try:
        with conn.cursor() as cur:
            cur.execute(PROBE_SQL)
            probe = cur.fetchone()[0]
    except Exception as exc:  # pylint: disable=broad-except
        result.update(error_kind="query", host_up=True, error=_first_line(exc), role="unknown",
                      reason="connected, but the replication query failed (privileges?)",
                      probe_seconds=round(time.monotonic() - started, 3))
        return result
    finally:
        conn.close()
    result.update(probe)
    result["reachable"] = True
    result["host_up"] = True
    result["role"] = "standby" if probe["in_recovery"] else "primary"
    # The upstream a standby follows: its WAL receiver's, else its primary_conninfo's host and port.
    # The conninfo itself may hold a password: only host:port leaves this function.
    host, port = conninfo_target(result.pop("primary_conninfo", None))
    receiver = probe.get("wal_receiver") or None
    if receiver and receiver.get("sender_host") and receiver.get("sender_port"):
        host, port = receiver["sender_host"], receiver["sender_port"]
    result["upstream"] = node_name(host, port) if host and port and probe["in_recovery"] else None
    for key in ("last_replay_age_seconds",):
        if result.get(key) is not None:
            result[key] = float(result[key])
    if receiver and receiver.get("last_msg_age_seconds") is not None:
        receiver["last_msg_age_seconds"] = float(receiver["last_msg_age_seconds"])
    result["probe_seconds"] = round(time.monotonic() - started, 3)
    return result


def probe_all(params: dict[str, t.Any], nodes: list[str]) -> list[dict[str, t.Any]]:
    """probe_node over every node at once: the slowest node (a timeout) sets the pace, not the sum."""
    if len(nodes) < 2:
        return [probe_node(params, n) for n in nodes]
    with ThreadPoolExecutor(max_workers=min(len(nodes), 16)) as pool:
        return list(pool.map(lambda n: probe_node(params, n), nodes))


def summarize(probes: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Group-level facts: the primaries, the standbys, who streams from whom, the lag."""
    primaries = [p["node"] for p in probes if p.get("reachable") and p["role"] == "primary"]
    standbys = []
    for p in probes:
        if not (p.get("reachable") and p["role"] == "standby"):
            continue
        receiver = p.get("wal_receiver") or {}
        standbys.append({
            "node": p["node"], "upstream": p.get("upstream"), "timeline": p.get("timeline"),
            "streaming": receiver.get("status") == "streaming",
            "receive_lsn": p.get("receive_lsn"), "replay_lsn": p.get("replay_lsn"),
            "last_msg_age_seconds": receiver.get("last_msg_age_seconds"),
        })
    if len(primaries) == 1:
        primary = next(p for p in probes if p["node"] == primaries[0])
        head = lsn_to_int(primary.get("current_lsn"))
        for s in standbys:
            replay = lsn_to_int(s["replay_lsn"])
            s["replay_lag_bytes"] = head - replay if head is not None and replay is not None else None
    return {
        "primaries": primaries,
        "primary": primaries[0] if len(primaries) == 1 else None,
        "standbys": standbys,
        "unreachable_nodes": [p["node"] for p in probes if not p.get("reachable")],
    }


# --- the failover decision ------------------------------------------------------------------

class Plan:
    """What pg_failover will do: a verdict (state, act, reason, evidence) and ordered steps."""

    def __init__(self, state: str, reason: str, act: bool = False, steps: list[dict] | None = None,
                 primary: str | None = None, previous_primary: str | None = None, candidate: str | None = None,
                 recommend: str | None = None, evidence: dict | None = None) -> None:
        self.state = state
        self.reason = reason
        self.act = act
        self.steps = steps or []
        self.primary = primary
        self.previous_primary = previous_primary
        self.candidate = candidate
        self.recommend = recommend
        self.evidence = evidence or {}

    @property
    def verdict(self) -> dict[str, t.Any]:
        verdict = {"state": self.state, "act": self.act, "reason": self.reason}
        if self.recommend:
            verdict["recommend"] = self.recommend
        if self.evidence:
            verdict["evidence"] = self.evidence
        return verdict

    def as_dict(self) -> dict[str, t.Any]:
        return {"state": self.state, "primary": self.primary, "previous_primary": self.previous_primary,
                "candidate": self.candidate, "steps": self.steps, "reason": self.reason}


class SplitBrain(GuardrailTripped):
    def __init__(self, primaries: list[dict[str, t.Any]]) -> None:
        self.primaries = primaries
        named = "; ".join(f"{p['node']} (timeline {p.get('timeline')}, LSN {p.get('current_lsn')}, "
                          f"{p.get('streaming_standbys', 0)} streaming standby(s))" for p in primaries)
        super().__init__(
            "split_brain", f"{len(primaries)} nodes are primaries at once: {named}; their histories diverged "
            "and no LSN can rank them",
            "decide which primary keeps its writes, stop and fence the other(s) (they must be rebuilt with "
            "pg_basebackup or pg_rewind), then run again")


def _age(probe: dict[str, t.Any]) -> float | None:
    receiver = probe.get("wal_receiver") or {}
    return receiver.get("last_msg_age_seconds")


def plan_failover(probes: list[dict[str, t.Any]], *, primary_hint: str | None = None, force: bool = False,
                  fenced: bool = False, fence_command: bool = False, down_for: float = 0.0,
                  min_primary_down_seconds: float = 10.0, max_lag_bytes: int | None = 16 * 1024 * 1024,
                  repoint_standbys: bool = False) -> Plan:
    """The decision, from the probes alone. Raises GuardrailTripped for split brain, a missing fence,
    no candidate and too much lag; returns a Plan (act False) for every "leave it alone" state."""
    by_node = {p["node"]: p for p in probes}
    auth = [p["node"] for p in probes if p.get("error_kind") == "auth"]
    if auth:
        raise GuardrailTripped("credentials", f"authentication failed on {', '.join(auth)}: the evidence is "
                               "incomplete", "fix login_user / login_password / pg_hba.conf and run again")
    reachable = [p for p in probes if p.get("reachable")]
    primaries = [p for p in reachable if p["role"] == "primary"]
    standbys = [p for p in reachable if p["role"] == "standby"]
    unreachable = [p["node"] for p in probes if not p.get("reachable")]

    def streaming_from(node: str, fresh_within: float | None = None) -> list[str]:
        out = []
        for s in standbys:
            receiver = s.get("wal_receiver") or {}
            if s.get("upstream") == node and receiver.get("status") == "streaming":
                age = receiver.get("last_msg_age_seconds")
                if fresh_within is None or age is None or age < fresh_within:
                    out.append(s["node"])
        return out

    if len(primaries) > 1:
        raise SplitBrain([{"node": p["node"], "timeline": p.get("timeline"), "current_lsn": p.get("current_lsn"),
                           "system_identifier": p.get("system_identifier"),
                           "streaming_standbys": len(streaming_from(p["node"]))} for p in primaries])

    if len(primaries) == 1:
        primary = primaries[0]["node"]
        astray = [s for s in standbys if s["node"] not in streaming_from(primary)]
        if astray:
            names = ", ".join(s["node"] for s in astray)
            evidence = {"astray": [s["node"] for s in astray],
                        "upstreams": {s["node"]: s.get("upstream") for s in astray}}
            # A standby that streams from somewhere else (a cascade, or a primary this run cannot see)
            # is not re-pointed: only one whose WAL receiver streams from nowhere.
            idle = [s for s in astray if (s.get("wal_receiver") or {}).get("status") != "streaming"]
            if not repoint_standbys or len(idle) < len(astray):
                busy = [s["node"] for s in astray if s not in idle]
                why = (f"; {', '.join(busy)} stream(s) from another node (a cascade, or a primary this run "
                       "cannot see): check by hand" if busy else
                       "; re-point them with repoint_standbys=true (primary_conninfo + reload)")
                return Plan("standbys_astray", f"{primary} is the one primary, but {names} do(es) not stream "
                            f"from it{why}", primary=primary, previous_primary=primary,
                            recommend="repoint_standbys", evidence=evidence)
            steps = [{"action": "repoint", "target": s["node"], "from": s.get("upstream"), "to": primary}
                     for s in astray]
            return Plan("standbys_astray", f"{primary} is the one primary; re-point {names} to it (their WAL "
                        "receivers stream from nowhere)", act=True, steps=steps, primary=primary,
                        previous_primary=primary, recommend="repoint_standbys", evidence=evidence)
        if unreachable:
            return Plan("nodes_unreachable", f"{primary} is the one primary and every reachable standby streams "
                        f"from it; {', '.join(unreachable)} do(es) not answer", primary=primary,
                        previous_primary=primary, evidence={"unreachable": unreachable})
        return Plan("healthy", f"{primary} is the one primary and every standby streams from it", primary=primary,
                    previous_primary=primary)

    # No primary answers. Which node was it?
    upstreams = sorted({s.get("upstream") for s in standbys if s.get("upstream")})
    if primary_hint:
        old = primary_hint
    elif len(upstreams) == 1:
        old = upstreams[0]
    elif not standbys:
        raise GuardrailTripped("no_candidate", "no node answers as a primary and no standby answers: "
                               + "; ".join(f"{p['node']}: {p.get('error')}" for p in probes),
                               "bring a node back (see each node's error), then run again")
    else:
        raise GuardrailTripped("unknown_primary", "no node answers as a primary and the standbys do not name one "
                               f"primary (upstreams: {upstreams or 'none'})", "name the failed primary with primary")
    if old not in by_node:
        raise GuardrailTripped("unknown_primary", f"the standbys stream from {old}, which is not in nodes",
                               "add the failed primary to nodes (or name it with primary)")
    old_probe = by_node[old]
    if old_probe.get("reachable"):
        raise GuardrailTripped("unknown_primary", f"{old} answers but is a standby (cascading replication?)",
                               "name the failed primary with primary")
    kind = old_probe.get("error_kind")
    evidence = {"primary_error": old_probe.get("error"), "primary_error_kind": kind,
                "primary_host_up": old_probe.get("host_up"),
                "standbys": {s["node"]: {"upstream": s.get("upstream"),
                                         "receiver": (s.get("wal_receiver") or {}).get("status"),
                                         "last_msg_age_seconds": _age(s), "receive_lsn": s.get("receive_lsn")}
                             for s in standbys},
                "down_observed_seconds": round(down_for, 3)}

    def leave(state: str, reason: str, recommend: str | None = None) -> Plan:
        return Plan(state, reason, previous_primary=old, recommend=recommend, evidence=evidence)

    if not force:
        if kind == "too_many_clients":
            return leave("primary_busy", f"{old} is busy, not down: it refuses new connections with 'too many "
                         "clients'; a promotion would split the brain. Free connection slots (db_exhaustion)",
                         "db_exhaustion")
        if kind in ("starting_up", "shutting_down", "in_recovery"):
            return leave("primary_starting", f"{old} is alive: {ERROR_KINDS[kind][1]}; wait for it", "wait")
        live = streaming_from(old, fresh_within=min_primary_down_seconds)
        if live:
            return leave("primary_partitioned", f"{old} does not answer here, but {', '.join(live)} still "
                         f"stream(s) from it (last message < {min_primary_down_seconds:g} s ago): the path from "
                         "here is cut, the primary is alive", "check_network")
    if kind == "refused" and not (fenced or fence_command):
        return leave("primary_down_host_up", f"PostgreSQL on {old} is not running but its host answers "
                     "(connection refused): restart it, a promotion would throw its timeline away. To fail over "
                     "instead, stop and fence it (fence_command, or fenced=true once stopped)", "restart")
    if not standbys:
        raise GuardrailTripped("no_candidate", f"{old} is down and no standby answers: "
                               + "; ".join(f"{p['node']}: {p.get('error')}" for p in probes if not p.get("reachable")),
                               "bring a standby back or restore the primary")
    if not (fenced or fence_command):
        raise GuardrailTripped("fencing", f"{old} does not answer ({old_probe.get('reason')}) and nothing confirms "
                               "it is stopped: a primary that comes back after a promotion splits the brain",
                               "give fence_command (stops it for good) or fenced=true once you know it is stopped")
    if not force and down_for < min_primary_down_seconds:
        return leave("primary_down_unconfirmed", f"{old} has been seen down for {down_for:.1f} s, less than "
                     f"min_primary_down_seconds ({min_primary_down_seconds:g} s)", "wait")

    def rank(s: dict[str, t.Any]) -> tuple:
        return (lsn_to_int(s.get("receive_lsn")) or lsn_to_int(s.get("replay_lsn")) or 0,
                lsn_to_int(s.get("replay_lsn")) or 0, s["node"])

    ranked = sorted(standbys, key=rank, reverse=True)
    best = ranked[0]
    head = rank(best)[0]
    if best.get("timeline") is not None and len({s.get("timeline") for s in standbys}) > 1:
        evidence["timelines"] = {s["node"]: s.get("timeline") for s in standbys}
    lag = 0
    # The dead primary's last LSN is unknowable; lag is measured against the most advanced standby,
    # so with one standby it is 0. The candidate is the most advanced one, so this guards ties only
    # through the replay backlog: WAL received but not yet applied delays the promotion.
    backlog = best.get("receive_replay_lag_bytes") or 0
    if max_lag_bytes is not None and not force and backlog > max_lag_bytes:
        raise GuardrailTripped("max_lag_bytes", f"the best standby {best['node']} has {backlog} bytes of WAL "
                               f"received but not replayed (limit {max_lag_bytes})",
                               "wait for replay, raise max_lag_bytes, or force=true")
    steps: list[dict[str, t.Any]] = []
    if fence_command:
        steps.append({"action": "fence", "target": old, "how": "fence_command"})
    else:
        steps.append({"action": "fence", "target": old, "how": "confirmed by the caller (fenced=true)"})
    steps.append({"action": "promote", "target": best["node"], "receive_lsn": best.get("receive_lsn"),
                  "replay_lsn": best.get("replay_lsn"), "timeline": best.get("timeline"), "lag_bytes": lag})
    others = [s["node"] for s in ranked[1:]]
    evidence["candidates"] = [{"node": s["node"], "receive_lsn": s.get("receive_lsn"),
                               "behind_best_bytes": head - rank(s)[0]} for s in ranked]
    why = ("forced" if force else f"{old} is down ({old_probe.get('reason')}) for {down_for:.1f} s and no standby "
           "streams from it")
    reason = (f"promote {best['node']} (most WAL received: {best.get('receive_lsn')}): {why}; {old} is fenced by "
              + ("fence_command first" if fence_command else "the caller"))
    if others and repoint_standbys:
        steps += [{"action": "repoint", "target": node, "from": old, "to": best["node"]} for node in others]
        reason += f"; then re-point {', '.join(others)} to {best['node']}"
    elif others:
        reason += (f"; {', '.join(others)} must then be re-pointed to {best['node']} (repoint_standbys=true "
                   "does it)")
    return Plan("primary_down", reason, act=True, steps=steps, primary=best["node"], previous_primary=old,
                candidate=best["node"], recommend="promote", evidence=evidence)


# How old an earlier observation (down_since) may be and still count.
MAX_REUSED_OBSERVATION_SECONDS = 600.0


def observe_down(params: dict[str, t.Any], nodes: list[str], plan_args: dict[str, t.Any],
                 min_primary_down_seconds: float, interval: float = 1.0,
                 clock: t.Callable[[], float] = time.monotonic,
                 sleep: t.Callable[[float], None] = time.sleep,
                 down_since: float | None = None, wall: t.Callable[[], float] = time.time) -> tuple[list[dict], Plan]:
    """Probe, decide; while the only thing missing is time (primary_down_unconfirmed), watch the
    group until the primary has stayed down with no standby streaming for min_primary_down_seconds,
    or the evidence changes (then that decision stands).

    down_since (epoch seconds, from an earlier run's evidence) counts only through plan_failover's last
    check: every probe of this run must still show the primary down with no standby streaming from it
    (busy, starting, partitioned and healthy are decided from the fresh probes, whatever down_since says).
    A primary_down plan carries evidence['down_since'] for the next run to reuse."""
    started, started_wall = clock(), wall()
    credit = 0.0
    if down_since is not None and 0.0 <= started_wall - down_since <= MAX_REUSED_OBSERVATION_SECONDS:
        credit = started_wall - down_since
    probes = probe_all(params, nodes)
    plan = plan_failover(probes, down_for=credit, min_primary_down_seconds=min_primary_down_seconds, **plan_args)
    while plan.state == "primary_down_unconfirmed":
        sleep(interval)
        probes = probe_all(params, nodes)
        plan = plan_failover(probes, down_for=credit + clock() - started,
                             min_primary_down_seconds=min_primary_down_seconds, **plan_args)
    if plan.state == "primary_down":
        plan.evidence["down_since"] = round(started_wall - credit, 3)
        if credit:
            plan.evidence["reused_observation_seconds"] = round(credit, 3)
    return probes, plan
