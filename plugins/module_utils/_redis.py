# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis for sre.runbooks modules: one argument spec, one connect(), node probes, health data,
Sentinel views, and the failover planner.

The planner (plan_failover) is pure: it turns probes into a plan, so its decisions and
guardrails are unit-tested without a server. Everything that talks to Redis takes a
``ConnParams`` and never returns or logs the password.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import socket
import time
import traceback
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import (
    GuardrailTripped,
    action_record,
    truncate,
)

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None
except ImportError:
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()

DEFAULT_PORT = 6379


def redis_argument_spec(node: bool = False, sentinel: bool = False) -> dict[str, t.Any]:
    """Options every Redis module takes (doc fragment sre.runbooks.redis), plus one node
    (sre.runbooks.redis.node) and/or a Sentinel topology (sre.runbooks.redis.sentinel)."""
    spec: dict[str, t.Any] = dict(
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        tls=dict(type="bool", default=False),
        ca_path=dict(type="path"),
        connect_timeout=dict(type="float", default=3.0),
    )
    if node:
        spec.update(login_host=dict(type="str", default="localhost"),
                    login_port=dict(type="int", default=DEFAULT_PORT))
    if sentinel:
        spec.update(sentinels=dict(type="list", elements="str", default=[]),
                    master_name=dict(type="str"),
                    sentinel_password=dict(type="str", no_log=True))
    return spec


def require_redis(module: t.Any) -> None:
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=REDIS_IMPORT_ERROR)


# Any error the redis library raises (the Executor lets server replies such as a refused
# FAILOVER through; modules turn them into fail_json).
RedisError: type = redis.exceptions.RedisError if HAS_REDIS else Exception


class RedisModuleError(Exception):
    """A failure whose message names the target and the next step; modules fail_json with it."""


class ConnParams:
    """How to reach and authenticate to Redis nodes and sentinels. Holds the password; never
    serialise this object into a result."""

    def __init__(self, params: dict[str, t.Any]) -> None:
        self.user = params.get("login_user")
        self.password = params.get("login_password")
        self.tls = bool(params.get("tls"))
        self.ca_path = params.get("ca_path")
        self.timeout = float(params.get("connect_timeout") or 3.0)
        self.sentinel_password = params.get("sentinel_password")

    def describe_auth(self) -> str:
        if self.password is None:
            return "without a password"
        return f"as {self.user or 'default'} with the given password"


# ---------------------------------------------------------------- addresses

class Address:
    """host:port as the user wrote it (used in commands), plus a canonical form for comparing
    with what Redis reports (IP addresses in INFO and SENTINEL replies)."""

    _resolved: dict[str, str] = {}

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = int(port)

    @classmethod
    def parse(cls, text: t.Any, what: str = "node") -> "Address":
        raw = str(text or "").strip()
        if not raw:
            raise RedisModuleError(f"empty {what} address; write it as host:port, e.g. 10.0.0.5:6379")
        host, port = raw, str(DEFAULT_PORT)
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise RedisModuleError(f"{what} address {raw!r}: unclosed '[' in an IPv6 address")
            host, rest = raw[1:end], raw[end + 1:]
            if rest:
                if not rest.startswith(":"):
                    raise RedisModuleError(f"{what} address {raw!r}: expected [ipv6]:port")
                port = rest[1:]
        elif raw.count(":") == 1:
            host, port = raw.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisModuleError(f"{what} address {raw!r} is not host:port (port 1-65535)")
        return cls(host, int(port))

    @property
    def canonical(self) -> str:
        host = self._resolved.get(self.host)
        if host is None:
            try:
                host = socket.getaddrinfo(self.host, None)[0][4][0]
            except (socket.gaierror, IndexError, UnicodeError):
                host = self.host
            self._resolved[self.host] = host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Address({self})"


def canonical(host: t.Any, port: t.Any) -> str:
    return Address(str(host), int(port)).canonical


# ---------------------------------------------------------------- connections

def connect(conn: ConnParams, address: Address, sentinel: bool = False) -> "redis.Redis":
    """A connected client (PING answered). Raises RedisModuleError with a message that says
    what failed and what to check; ``err.kind`` is 'auth' or 'unreachable'."""
    password = conn.sentinel_password if sentinel else conn.password
    kwargs: dict[str, t.Any] = dict(
        host=address.host, port=address.port, password=password,
        username=None if sentinel else conn.user,
        socket_connect_timeout=conn.timeout, socket_timeout=conn.timeout,
        decode_responses=True,
        # redis-py retries connection errors with backoff by default (seconds per dead node);
        # a dead node must count as dead at once, and every call here is safe to repeat anyway.
        retry=Retry(NoBackoff(), 0),
    )
    if conn.tls:
        kwargs.update(ssl=True, ssl_ca_certs=conn.ca_path)
    what = "Redis Sentinel" if sentinel else "Redis"
    client = redis.Redis(**kwargs)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        err = RedisModuleError(
            f"{what} at {address} rejected the credentials ({conn.describe_auth()}): {truncate(exc)}; "
            f"check {'sentinel_password' if sentinel else 'login_user/login_password'}")
        err.kind = "auth"  # type: ignore[attr-defined]
        raise err from None
    except redis.exceptions.ResponseError as exc:
        kind = "auth" if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) else "unreachable"
        err = RedisModuleError(f"{what} at {address} refused PING: {truncate(exc)}")
        err.kind = kind  # type: ignore[attr-defined]
        raise err from None
    except redis.exceptions.BusyLoadingError as exc:
        # Alive: loading its dataset into memory (after a restart or a full sync).
        err = RedisModuleError(f"{what} at {address} answers LOADING (dataset being loaded into memory): "
                               f"{truncate(exc)}; it is alive and will serve when the load ends")
        err.kind = "loading"  # type: ignore[attr-defined]
        raise err from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        if "max number of clients" in str(exc):
            # Alive: it accepted the connection and answered, but every client slot is taken.
            err = RedisModuleError(f"{what} at {address} answers 'max number of clients reached': it is alive "
                                   "but at maxclients; free connections (CLIENT LIST / CLIENT KILL) or raise "
                                   "maxclients")
            err.kind = "busy"  # type: ignore[attr-defined]
            raise err from None
        err = RedisModuleError(
            f"cannot connect to {what} at {address}: {truncate(exc)}; is the process running and "
            f"reachable from this host{' with TLS' if conn.tls else ''}?")
        err.kind = "unreachable"  # type: ignore[attr-defined]
        raise err from None
    return client


_T = t.TypeVar("_T")
_R = t.TypeVar("_R")


def each_at_once(func: t.Callable[[_T], _R], items: t.Sequence[_T]) -> list[_R]:
    """func over every item concurrently, results in the items' order: a group's nodes and
    sentinels are asked together, so the slowest (a node timing out in a partition) sets the
    pace, not their sum. The first exception any call raised is raised here."""
    if len(items) < 2:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), 16)) as pool:
        return list(pool.map(func, items))


def _kind(exc: Exception) -> str:
    return getattr(exc, "kind", "unreachable")


# ---------------------------------------------------------------- node probes

def probe_node(conn: ConnParams, address: Address) -> dict[str, t.Any]:
    """What the failover planner needs from one node; never raises for an unreachable node."""
    probe: dict[str, t.Any] = {"address": str(address), "canonical": address.canonical, "reachable": False}
    try:
        started = time.monotonic()
        client = connect(conn, address)
        probe["ping_ms"] = round((time.monotonic() - started) * 1000, 3)
        repl = client.info("replication")
    except RedisModuleError as exc:
        probe.update(error=str(exc), error_kind=_kind(exc))
        return probe
    except redis.exceptions.RedisError as exc:
        kind = "loading" if isinstance(exc, redis.exceptions.BusyLoadingError) else "unreachable"
        probe.update(error=f"Redis at {address}: {truncate(exc)}", error_kind=kind)
        return probe
    probe.update(replication_summary(repl))
    probe["reachable"] = True
    try:
        # What a split-brain report names: how much each side holds.
        probe["keys"] = {k: int(v.get("keys", 0)) for k, v in client.info("keyspace").items()
                         if k.startswith("db") and isinstance(v, dict)}
    except redis.exceptions.RedisError:
        probe["keys"] = None
    # From INFO, not CONFIG GET: hardened servers often rename or forbid CONFIG.
    probe["replica_priority"] = int(repl.get("slave_priority", repl.get("replica_priority", 100)))
    client.close()
    return probe


def replication_summary(repl: dict[str, t.Any]) -> dict[str, t.Any]:
    """INFO replication, reduced to the fields decisions and reports use."""
    role = "master" if repl.get("role") == "master" else "replica"
    out: dict[str, t.Any] = {"role": role}
    if role == "master":
        out["offset"] = int(repl.get("master_repl_offset", 0))
        out["failover_state"] = repl.get("master_failover_state", "no-failover")
        replicas = []
        for key, value in sorted(repl.items()):
            if key.startswith("slave") and key[5:].isdigit() and isinstance(value, dict):
                replicas.append({
                    "address": f"{value.get('ip')}:{value.get('port')}",
                    "ip": value.get("ip"), "port": int(value.get("port", 0)),
                    "canonical": canonical(value.get("ip"), value.get("port")),
                    "state": value.get("state"),
                    "offset": int(value.get("offset", 0)),
                    "lag_bytes": max(0, out["offset"] - int(value.get("offset", 0))),
                    "lag_seconds": int(value.get("lag", 0)),
                })
        out["replicas"] = replicas
        out["connected_replicas"] = int(repl.get("connected_slaves", len(replicas)))
    else:
        host, port = repl.get("master_host"), repl.get("master_port")
        out["master"] = f"{host}:{port}"
        out["master_canonical"] = canonical(host, port) if host and port else None
        out["master_link_status"] = repl.get("master_link_status")
        out["offset"] = int(repl.get("slave_repl_offset", 0))
        down = repl.get("master_link_down_since_seconds")
        out["master_link_down_since_seconds"] = int(down) if down not in (None, -1, "-1") else None
        out["master_last_io_seconds_ago"] = repl.get("master_last_io_seconds_ago")
        out["sync_in_progress"] = bool(int(repl.get("master_sync_in_progress", 0)))
    return out


# ---------------------------------------------------------------- health

def health(conn: ConnParams, address: Address, write_check: bool = False) -> dict[str, t.Any]:
    """Everything redis_health_info reports for one node. An unreachable node is data
    (reachable: false); a wrong password raises, because no later step can succeed."""
    result: dict[str, t.Any] = {"address": str(address), "reachable": False}
    try:
        client = connect(conn, address)
    except RedisModuleError as exc:
        if _kind(exc) == "auth":
            raise
        result.update(error=str(exc), error_kind=_kind(exc))
        return result
    try:
        started = time.monotonic()
        client.ping()
        result["ping_ms"] = round((time.monotonic() - started) * 1000, 3)
        info = client.info("everything")
        maxmemory_policy = info.get("maxmemory_policy")
    except redis.exceptions.RedisError as exc:
        result["error"] = f"Redis at {address} answered PING but not INFO: {truncate(exc)}"
        return result
    result["reachable"] = True
    result["server"] = {"version": info.get("redis_version"), "uptime_seconds": info.get("uptime_in_seconds"),
                        "mode": info.get("redis_mode"), "process_id": info.get("process_id")}
    repl = replication_summary(info)
    result["role"] = repl["role"]
    result["replication"] = repl
    used, maxmemory = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    result["memory"] = {
        "used_bytes": used, "used_human": info.get("used_memory_human"),
        "peak_bytes": int(info.get("used_memory_peak", 0)),
        "maxmemory_bytes": maxmemory, "maxmemory_policy": maxmemory_policy,
        "used_ratio": round(used / maxmemory, 4) if maxmemory else None,
        "fragmentation_ratio": info.get("mem_fragmentation_ratio"),
        "evicted_keys": int(info.get("evicted_keys", 0)),
    }
    result["clients"] = {"connected": int(info.get("connected_clients", 0)),
                         "blocked": int(info.get("blocked_clients", 0)),
                         "rejected_connections": int(info.get("rejected_connections", 0)),
                         "maxclients": int(info.get("maxclients", 0))}
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    result["stats"] = {"ops_per_sec": int(info.get("instantaneous_ops_per_sec", 0)),
                       "keyspace_hits": hits, "keyspace_misses": misses,
                       "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
                       "expired_keys": int(info.get("expired_keys", 0)),
                       "total_commands_processed": int(info.get("total_commands_processed", 0)),
                       "keys": sum(int(v.get("keys", 0)) for k, v in info.items()
                                   if k.startswith("db") and k[2:].isdigit() and isinstance(v, dict))}
    result["persistence"] = {
        "loading": bool(int(info.get("loading", 0))),
        "rdb_last_save_status": info.get("rdb_last_bgsave_status"),
        "rdb_last_save_time": info.get("rdb_last_save_time"),
        "rdb_changes_since_last_save": info.get("rdb_changes_since_last_save"),
        "rdb_bgsave_in_progress": bool(int(info.get("rdb_bgsave_in_progress", 0))),
        "aof_enabled": bool(int(info.get("aof_enabled", 0))),
        "aof_last_write_status": info.get("aof_last_write_status"),
        "aof_rewrite_in_progress": bool(int(info.get("aof_rewrite_in_progress", 0))),
    }
    if write_check:
        result["write_check"] = probe_write(client)
    client.close()
    return result


def probe_write(client: "redis.Redis") -> dict[str, t.Any]:
    """SET/GET/DEL of a short-lived key of our own: proves the node accepts writes now."""
    key = f"sre-runbooks:write-check:{socket.gethostname()}:{time.time_ns()}"
    started = time.monotonic()
    try:
        client.set(key, "ok", ex=60)
        ok = client.get(key) == "ok"
        client.delete(key)
    except redis.exceptions.RedisError as exc:
        return {"ok": False, "error": truncate(exc)}
    return {"ok": ok, "round_trip_ms": round((time.monotonic() - started) * 1000, 3)}


# ---------------------------------------------------------------- sentinel

def _pairs(reply: t.Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): v for k, v in reply.items()}
    items = list(reply or [])
    return {str(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def sentinel_view(conn: ConnParams, address: Address, master_name: str) -> dict[str, t.Any]:
    """One sentinel's view of master_name. Unreachable sentinels are data; an unknown master
    name raises (the group is misnamed: nothing later can work)."""
    view: dict[str, t.Any] = {"address": str(address), "reachable": False}
    try:
        client = connect(conn, address, sentinel=True)
    except RedisModuleError as exc:
        if _kind(exc) == "auth":
            raise
        view["error"] = str(exc)
        return view
    try:
        state = _pairs(client.execute_command("SENTINEL", "MASTER", master_name))
        replicas = [_pairs(r) for r in client.execute_command("SENTINEL", "REPLICAS", master_name) or []]
    except redis.exceptions.ResponseError as exc:
        if "No such master" in str(exc):
            raise RedisModuleError(f"sentinel {address} does not monitor a master named {master_name!r}; "
                                   "check master_name (SENTINEL MASTERS lists the names)") from None
        raise RedisModuleError(f"sentinel {address}: {truncate(exc)}") from None
    except redis.exceptions.RedisError as exc:
        view["error"] = f"sentinel {address}: {truncate(exc)}"
        return view
    try:
        client.execute_command("SENTINEL", "CKQUORUM", master_name)
        quorum_ok, quorum_msg = True, "OK"
    except redis.exceptions.ResponseError as exc:
        quorum_ok, quorum_msg = False, truncate(exc)
    flags = str(state.get("flags", "")).split(",")
    view.update(
        reachable=True,
        master=f"{state.get('ip')}:{state.get('port')}",
        master_canonical=canonical(state.get("ip"), state.get("port")),
        flags=flags, sdown="s_down" in flags, odown="o_down" in flags,
        failover_in_progress="failover_in_progress" in flags,
        failover_state=state.get("failover-state"),
        quorum=int(state.get("quorum", 0)),
        num_other_sentinels=int(state.get("num-other-sentinels", 0)),
        config_epoch=int(state.get("config-epoch", 0)),
        quorum_reachable=quorum_ok, quorum_message=quorum_msg,
        replicas=[{
            "address": f"{r.get('ip')}:{r.get('port')}",
            "canonical": canonical(r.get("ip"), r.get("port")),
            "flags": str(r.get("flags", "")).split(","),
            "master_link_status": r.get("master-link-status"),
            "offset": int(r.get("slave-repl-offset", 0)),
            "priority": int(r.get("slave-priority", r.get("replica-priority", 100))),
            "runid": r.get("runid"),
        } for r in replicas],
    )
    client.close()
    return view


def sentinel_master(views: list[dict[str, t.Any]]) -> str | None:
    """The master address most reachable sentinels agree on (canonical), or None."""
    votes: dict[str, int] = {}
    for view in views:
        if view.get("reachable"):
            votes[view["master_canonical"]] = votes.get(view["master_canonical"], 0) + 1
    if not votes:
        return None
    return max(sorted(votes), key=lambda k: votes[k])


def sentinel_pick(view: dict[str, t.Any]) -> str | None:
    """The replica this sentinel would promote now (Sentinel's own order: lowest replica-priority,
    then largest offset, then smallest run id), canonical; None when none is eligible."""
    bad = {"s_down", "o_down", "disconnected"}
    eligible = [r for r in view.get("replicas", []) if r["priority"] != 0 and not bad & set(r["flags"])]
    if not eligible:
        return None
    return sorted(eligible, key=lambda r: (r["priority"], -r["offset"], r.get("runid") or ""))[0]["canonical"]


# ---------------------------------------------------------------- failover planning (pure)

class Plan:
    """What redis_failover will do: the wanted master, the method, ordered steps, and the verdict
    (what is wrong, whether to act, and the evidence) the role and the timeline read."""

    def __init__(self) -> None:
        self.method = "none"          # none | failover | promote | sentinel | repoint
        self.master: str | None = None            # wanted master (address as given)
        self.previous_master: str | None = None   # master before the change (address)
        self.steps: list[dict[str, t.Any]] = []
        self.unreachable: list[str] = []
        self.reasons: list[str] = []
        self.verdict: dict[str, t.Any] = {}

    @property
    def changes(self) -> bool:
        return bool(self.steps)

    def as_dict(self) -> dict[str, t.Any]:
        return {"method": self.method, "master": self.master, "previous_master": self.previous_master,
                "steps": self.steps, "unreachable": self.unreachable, "reasons": self.reasons,
                "verdict": self.verdict}


def _follows(probe: dict[str, t.Any], master_canonical: str) -> bool:
    return probe.get("role") == "replica" and probe.get("master_canonical") == master_canonical


def _holds(probe: dict[str, t.Any], followers: int) -> dict[str, t.Any]:
    keys = probe.get("keys")
    return {"address": probe["address"], "keys": sum(keys.values()) if keys is not None else None,
            "keyspace": keys, "offset": probe.get("offset", 0), "connected_followers": followers}


def _describe(held: dict[str, t.Any]) -> str:
    keys = "unknown" if held["keys"] is None else held["keys"]
    return f"{held['address']} ({keys} keys, offset {held['offset']}, {held['connected_followers']} followers)"


class SplitBrain(GuardrailTripped):
    """Two or more masters in one group: their histories diverged, no offset can rank them."""

    def __init__(self, masters: list[dict[str, t.Any]]) -> None:
        self.masters = masters
        super().__init__(
            "split_brain",
            "several nodes of the group are master: " + "; ".join(_describe(m) for m in masters)
            + ". Their histories diverged, so offsets cannot tell which is current; demoting one deletes the "
            "writes only it holds",
            "name the master to keep with target (the others' unique writes are lost), or force: true to keep "
            "the one with the most followers")


def master_down_evidence(old: dict[str, t.Any] | None, live: list[dict[str, t.Any]],
                         min_down_seconds: float, sentinel_views: list[dict[str, t.Any]] | None = None
                         ) -> dict[str, t.Any]:
    """Whether the evidence says the master ``old`` (its probe; None when it is not one of the
    nodes) is down, not merely busy or cut off from this host.

    Down only when every reachable replica of it reports its link down for at least
    min_down_seconds and, when sentinels watch the group, they agree it is objectively down
    (a sentinel flags o_down, or at least quorum sentinels flag s_down). Returns state
    (down | busy | loading | partitioned | unconfirmed), down, reason and the evidence."""
    address = old["address"] if old else "the master"
    canon = old["canonical"] if old else None
    evidence: dict[str, t.Any] = {"master": old["address"] if old else None,
                                  "master_error": old.get("error") if old else None,
                                  "min_master_down_seconds": min_down_seconds}

    def verdict(state: str, reason: str) -> dict[str, t.Any]:
        return {"state": state, "down": state == "down", "reason": reason, "evidence": evidence}

    if old is not None and old.get("reachable"):
        return verdict("down", f"{address} answers as a {old.get('role')}: the group has no master")
    kind = old.get("error_kind") if old else None
    if kind == "busy":
        return verdict("busy", f"{address} is busy, not down: it answers 'max number of clients reached' "
                               "(at maxclients); a new master would get the same clients. Free connections or "
                               "raise maxclients")
    if kind == "loading":
        return verdict("loading", f"{address} is loading its dataset, not down: it answers LOADING and serves "
                                  "again when the load ends")
    followers = [p for p in live if p.get("role") == "replica" and canon and p.get("master_canonical") == canon]
    evidence["replicas"] = [{"address": p["address"], "master_link_status": p.get("master_link_status"),
                             "master_link_down_since_seconds": p.get("master_link_down_since_seconds")}
                            for p in followers]
    if not followers:
        return verdict("unconfirmed", f"{address} does not answer here and no reachable replica of it can "
                                      "confirm it is down")
    linked = [p["address"] for p in followers if p.get("master_link_status") == "up"]
    if linked:
        return verdict("partitioned", f"{address} does not answer from here, but {', '.join(linked)} still "
                                      "report master_link_status:up: it is alive and only unreachable from this "
                                      "host (network path, firewall, wrong address, or a stalled master)")
    # A replica that never reached its master since it started reports no duration (-1): its link
    # has been down for as long as it has run, which is evidence too.
    recent = [p for p in followers if p.get("master_link_down_since_seconds") is not None
              and p["master_link_down_since_seconds"] < min_down_seconds]
    if recent:
        return verdict("unconfirmed", "link to " + address + " down for only "
                       + ", ".join(f"{p['master_link_down_since_seconds']}s on {p['address']}" for p in recent)
                       + f" (min_master_down_seconds {min_down_seconds:g}): too recent to tell a restart or a "
                       "blip from a dead master; run again later")
    if sentinel_views is not None:
        views = [v for v in sentinel_views if v.get("reachable")]
        quorum = max((v.get("quorum", 0) for v in views), default=0)
        sdown = [v["address"] for v in views if v.get("sdown") or v.get("odown")]
        odown = [v["address"] for v in views if v.get("odown")]
        evidence["sentinels"] = {"reachable": len(views), "quorum": quorum, "sdown": sdown, "odown": odown}
        if not odown and (not views or len(sdown) < max(quorum, 1)):
            return verdict("unconfirmed", f"the sentinels do not agree that {address} is down (s_down on "
                                          f"{len(sdown)} of {len(views)} reachable, quorum {quorum}, o_down on none)")
    links = ", ".join(f"{p['address']} {p.get('master_link_down_since_seconds')}s"
                      if p.get("master_link_down_since_seconds") is not None else f"{p['address']} since start"
                      for p in followers)
    return verdict("down", f"{address} is down: every reachable replica reports its link down ({links})"
                   + (", and the sentinels agree" if sentinel_views is not None else ""))


def plan_failover(probes: list[dict[str, t.Any]], target: str | None = None, mode: str = "auto",
                  force: bool = False, max_lag_bytes: int | None = None,
                  max_lag_seconds: float | None = None,
                  sentinel_master_canonical: str | None = None,
                  min_master_down_seconds: float = 10.0,
                  sentinel_views: list[dict[str, t.Any]] | None = None) -> Plan:
    """See _plan; the verdict also says which unreachable nodes are dead (restart candidates)
    and which show signs of life (never restarted)."""
    plan = _plan(probes, target, mode, force, max_lag_bytes, max_lag_seconds, sentinel_master_canonical,
                 min_master_down_seconds, sentinel_views)
    plan.verdict["dead_nodes"], plan.verdict["alive_unreachable"] = unreachable_liveness(probes, plan)
    return plan


def unreachable_liveness(probes: list[dict[str, t.Any]], plan: Plan) -> tuple[list[str], list[dict[str, str]]]:
    """Split the nodes that do not answer into dead ones (a restart or pod replacement may heal
    them) and alive ones: busy, loading, listed online by a live master (unreachable only from
    here), or the master whose death the evidence does not confirm."""
    online = set()
    for p in probes:
        if p.get("reachable") and p.get("role") == "master":
            online.update(r["canonical"] for r in p.get("replicas", []) if r.get("state") == "online")
    dead: list[str] = []
    alive: list[dict[str, str]] = []
    for p in probes:
        if p.get("reachable"):
            continue
        if p.get("error_kind") in ("busy", "loading"):
            alive.append({"address": p["address"], "reason": f"answers ({p['error_kind']}): {p.get('error')}"})
        elif p["canonical"] in online:
            alive.append({"address": p["address"], "reason": "its master lists it online: unreachable only "
                                                             "from this host"})
        elif p["address"] == plan.previous_master and plan.verdict.get("state", "").startswith("master_") \
                and plan.verdict["state"] != "master_down":
            alive.append({"address": p["address"], "reason": plan.verdict["reason"]})
        else:
            dead.append(p["address"])
    return dead, alive


def _plan(probes: list[dict[str, t.Any]], target: str | None, mode: str, force: bool,
          max_lag_bytes: int | None, max_lag_seconds: float | None,
          sentinel_master_canonical: str | None, min_master_down_seconds: float,
          sentinel_views: list[dict[str, t.Any]] | None) -> Plan:
    """Decide, from node probes only, how to reach "one master, every other node replicating it".

    probes: one dict per node of the group (probe_node output; 'address' as the user wrote it).
    target: canonical address of the wanted master, or None for "keep a healthy master, else
    the best replica". sentinel_master_canonical: set when sentinels manage the group, with
    their views in sentinel_views. A master that does not answer is replaced only when
    master_down_evidence says it is down (or force); otherwise the plan is empty and its
    verdict says why. Raises RedisModuleError for bad input and GuardrailTripped for a tripped
    guardrail (SplitBrain for several masters without target or force).
    """
    if not probes:
        raise RedisModuleError("the replication group is empty: give nodes (host:port list) or "
                               "sentinels + master_name")
    by_canon = {p["canonical"]: p for p in probes}
    plan = Plan()
    for p in probes:
        if not p.get("reachable") and p.get("error_kind") == "auth":
            raise RedisModuleError(p["error"])
    plan.unreachable = [p["address"] for p in probes if not p.get("reachable")]
    live = [p for p in probes if p.get("reachable")]
    if not live:
        raise RedisModuleError("no node of the group answers: " + "; ".join(p["error"] for p in probes))
    if target is not None and target not in by_canon:
        raise RedisModuleError(f"target {target} is not one of the group's nodes "
                               f"({', '.join(p['address'] for p in probes)})")
    for p in live:
        if p["role"] == "replica" and p.get("master_canonical") not in by_canon:
            raise RedisModuleError(
                f"node {p['address']} replicates {p['master']}, which is not part of this group; "
                "add it to nodes or remove this node (is it another group's replica?)")

    masters = [p for p in live if p["role"] == "master"]
    followers = {m["canonical"]: sum(1 for p in live if _follows(p, m["canonical"])) for m in masters}
    current: dict[str, t.Any] | None = None
    if len(masters) > 1:
        held = [_holds(m, followers[m["canonical"]]) for m in masters]
        if target is not None:
            keep = by_canon[target]
            if keep["role"] == "replica":
                keep = by_canon.get(keep.get("master_canonical"), keep)
            if keep["role"] != "master":
                raise RedisModuleError(f"split brain: target {by_canon[target]['address']} is neither one of the "
                                       "masters nor a replica of one: "
                                       + "; ".join(_describe(h) for h in held))
            plan.reasons.append(f"split brain: {', '.join(_describe(h) for h in held)}; target keeps "
                                f"{keep['address']}, writes only the others hold are lost")
        elif force:
            keep = sorted(masters, key=lambda m: (followers[m["canonical"]], m.get("offset", 0)), reverse=True)[0]
            plan.reasons.append(f"split brain: {', '.join(_describe(h) for h in held)}; force: true keeps "
                                f"{keep['address']} (most followers), writes only the others hold are lost")
        else:
            raise SplitBrain(held)
        current = keep
    elif sentinel_master_canonical is not None:
        cand = by_canon.get(sentinel_master_canonical)
        current = cand if cand and cand.get("reachable") and cand["role"] == "master" else None
        plan.previous_master = cand["address"] if cand else sentinel_master_canonical
    elif len(masters) == 1:
        current = masters[0]
    old: dict[str, t.Any] | None = None
    if current is not None:
        plan.previous_master = current["address"]
    else:
        if sentinel_master_canonical is not None:
            old = by_canon.get(sentinel_master_canonical)
        else:
            pointed = [p["master_canonical"] for p in live if p["role"] == "replica"]
            if pointed:
                old = by_canon[max(sorted(set(pointed)), key=pointed.count)]
        if old is not None and plan.previous_master is None:
            plan.previous_master = old["address"]

    # No master answers: replace it only on evidence that it is down, not busy or cut off from here.
    evidence = None
    if current is None:
        evidence = master_down_evidence(old, live, min_master_down_seconds,
                                        sentinel_views if sentinel_master_canonical is not None else None)
        if not evidence["down"] and not force:
            plan.master = plan.previous_master
            plan.verdict = {"state": f"master_{evidence['state']}", "act": False,
                            "reason": evidence["reason"] + "; nothing changed (force: true promotes anyway)",
                            "evidence": evidence["evidence"]}
            plan.reasons.append(plan.verdict["reason"])
            return plan
        if not evidence["down"]:
            plan.reasons.append(f"force: true overrides the evidence ({evidence['reason']})")
        else:
            plan.reasons.append(evidence["reason"])

    # The wanted master.
    if target is not None:
        wanted = by_canon[target]
        if not wanted.get("reachable"):
            raise RedisModuleError(f"target {wanted['address']} does not answer: {wanted.get('error')}")
    elif current is not None:
        wanted = current
    else:
        candidates = [p for p in live if p["role"] == "replica" and p.get("replica_priority", 100) != 0]
        if not candidates:
            raise RedisModuleError("no master answers and no replica can be promoted (all unreachable or "
                                   "replica-priority 0): " + "; ".join(plan.unreachable))
        wanted = sorted(candidates, key=lambda p: (-p.get("offset", 0), p.get("replica_priority", 100)))[0]
        plan.reasons.append(f"{wanted['address']} has the largest replication offset "
                            f"({wanted.get('offset', 0)})")
    plan.master = wanted["address"]

    if current is not None and wanted is current:
        if mode in ("promote", "failover", "sentinel") and target is None:
            plan.reasons.append(f"{current['address']} is a healthy master; mode {mode} has nothing to do")
        _repoint(plan, live, wanted)
        plan.method = "repoint" if plan.steps else "none"
        if len(masters) > 1:
            state, reason = "split_brain", plan.reasons[0]
        elif plan.steps:
            state, reason = "replicas_astray", (f"{current['address']} is master; "
                                                + ", ".join(s["target"] for s in plan.steps)
                                                + " do not replicate it with their link up")
        elif plan.unreachable:
            state, reason = "nodes_unreachable", (f"{current['address']} is a healthy master; unreachable: "
                                                  + ", ".join(plan.unreachable))
        else:
            state, reason = "healthy", (f"{current['address']} is master and every other node replicates it; "
                                        "nothing to do")
        plan.verdict = {"state": state, "act": bool(plan.steps), "reason": reason}
        return plan

    plan.verdict = {"state": "master_down" if current is None else "switchover", "act": True,
                    "reason": (evidence["reason"] if evidence else
                               f"target {wanted['address']} replaces the live master {current['address']}"),
                    "evidence": evidence["evidence"] if evidence else None,
                    "forced": bool(evidence and not evidence["down"])}
    if len(masters) > 1:
        plan.verdict["state"] = "split_brain"
    # The master changes: guardrails first, then the method.
    _check_lag(wanted, current, live, max_lag_bytes, max_lag_seconds)
    if sentinel_master_canonical is not None or mode == "sentinel":
        if sentinel_master_canonical is None:
            raise RedisModuleError("mode sentinel needs sentinels and master_name")
        if mode in ("failover", "promote"):
            raise RedisModuleError(f"mode {mode} on a Sentinel-managed group would fight the sentinels; "
                                   "use mode auto or sentinel (or drop sentinels to manage the nodes directly)")
        plan.method = "sentinel"
        plan.steps.append({"action": "sentinel_failover", "target": wanted["address"]})
        return plan
    if current is not None:
        if mode == "promote":
            if not force:
                raise GuardrailTripped(
                    "split_brain",
                    f"mode promote would make {wanted['address']} a second master while {current['address']} "
                    "still answers as master (writes to it would be lost)",
                    "use mode failover (coordinated, loses no acknowledged write) or set force: true")
            plan.method = "promote"
            plan.steps.append({"action": "promote", "target": wanted["address"]})
        else:
            if not _follows(wanted, current["canonical"]):
                raise RedisModuleError(
                    f"FAILOVER needs {wanted['address']} to replicate the master {current['address']}, but it is "
                    f"a {wanted['role']}{' of ' + wanted['master'] if wanted['role'] == 'replica' else ''}; "
                    "re-point it first (run without target) or use mode promote with force: true")
            plan.method = "failover"
            plan.steps.append({"action": "failover", "target": wanted["address"], "on": current["address"]})
    else:
        if mode == "failover":
            raise RedisModuleError(f"no master answers ({plan.previous_master or 'unknown'}); FAILOVER needs a "
                                   "live master; use mode promote or auto")
        plan.method = "promote"
        plan.steps.append({"action": "promote", "target": wanted["address"]})
    # After the switch every other reachable node must replicate the new master.
    for p in live:
        if p is wanted:
            continue
        if plan.method == "failover" and p is current:
            continue  # FAILOVER itself turns the old master into a replica of the new one
        plan.steps.append({"action": "demote" if p["role"] == "master" else "replicaof",
                           "target": p["address"], "master": wanted["address"]})
    return plan


def _repoint(plan: Plan, live: list[dict[str, t.Any]], wanted: dict[str, t.Any]) -> None:
    for p in live:
        if p is wanted or _follows(p, wanted["canonical"]):
            continue
        plan.steps.append({"action": "demote" if p["role"] == "master" else "replicaof",
                           "target": p["address"], "master": wanted["address"],
                           "was": "master" if p["role"] == "master" else f"replica of {p.get('master')}"})


def candidate_lag(wanted: dict[str, t.Any], current: dict[str, t.Any] | None,
                  live: list[dict[str, t.Any]]) -> tuple[int, float]:
    """(bytes, seconds) the candidate is behind. With a live master: the master's view of it (or,
    when its link is down, the master's offset minus its own and how long the link is down).
    Without one: behind the most advanced reachable replica, and how much longer its link has
    been down than the freshest replica's."""
    if current is not None:
        for r in current.get("replicas", []):
            if r["canonical"] == wanted["canonical"] and r.get("state") == "online":
                return r["lag_bytes"], float(r["lag_seconds"])
        down = wanted.get("master_link_down_since_seconds")
        return max(0, current.get("offset", 0) - wanted.get("offset", 0)), float(down or 0)
    replicas = [p for p in live if p.get("reachable") and p.get("role") == "replica"]
    best = max((p.get("offset", 0) for p in replicas), default=wanted.get("offset", 0))
    freshest = min((p.get("master_link_down_since_seconds") or 0 for p in replicas), default=0)
    down = wanted.get("master_link_down_since_seconds") or 0
    return max(0, best - wanted.get("offset", 0)), float(max(0, down - freshest))


def _check_lag(wanted: dict[str, t.Any], current: dict[str, t.Any] | None, live: list[dict[str, t.Any]],
               max_lag_bytes: int | None, max_lag_seconds: float | None) -> None:
    if wanted["role"] == "master":
        return
    lag_bytes, lag_seconds = candidate_lag(wanted, current, live)
    wanted["lag_bytes"], wanted["lag_seconds"] = lag_bytes, lag_seconds
    if max_lag_bytes is not None and lag_bytes > max_lag_bytes:
        raise GuardrailTripped(
            "max_lag_bytes", f"{wanted['address']} is {lag_bytes} bytes behind "
            f"{'the master' if current else 'the most advanced replica'} (limit {max_lag_bytes})",
            "pick another target, wait for it to catch up, or raise max_lag_bytes (data past the limit is lost)")
    if max_lag_seconds is not None and lag_seconds > max_lag_seconds:
        raise GuardrailTripped(
            "max_lag_seconds", f"{wanted['address']} is {lag_seconds:g}s behind "
            f"{'the master' if current else 'the freshest replica'} (limit {max_lag_seconds:g}s)",
            "pick another target, wait for it to catch up, or raise max_lag_seconds")


# ---------------------------------------------------------------- failover execution

class Executor:
    """Carries out a Plan against the real nodes and records every action."""

    def __init__(self, conn: ConnParams, probes: list[dict[str, t.Any]], wait_timeout: float,
                 persist: bool = True) -> None:
        self.conn = conn
        self.by_address = {p["address"]: Address.parse(p["address"]) for p in probes}
        self.probes = {p["address"]: p for p in probes}
        self.wait_timeout = wait_timeout
        self.persist = persist
        self.actions: list[dict[str, t.Any]] = []

    def client(self, address: str) -> "redis.Redis":
        return connect(self.conn, self.by_address[address])

    def _rewrite_config(self, client: "redis.Redis", address: str) -> None:
        # So a restart keeps the new role; a node without a writable config file still works.
        if not self.persist:
            return
        try:
            client.execute_command("CONFIG", "REWRITE")
        except redis.exceptions.ResponseError as exc:
            self.actions.append(action_record("config_rewrite", address, "failed", error=truncate(exc)))

    def replicaof(self, address: str, master: str, action: str = "replicaof") -> None:
        target = self.by_address[master]
        client = self.client(address)
        client.execute_command("REPLICAOF", target.host, target.port)
        self._rewrite_config(client, address)
        self.actions.append(action_record(action, address, "done", master=master))

    def promote(self, address: str) -> None:
        client = self.client(address)
        client.execute_command("REPLICAOF", "NO", "ONE")
        self._rewrite_config(client, address)
        self.actions.append(action_record("promote", address, "done", command="REPLICAOF NO ONE"))

    def failover(self, master: str, target: str) -> None:
        """FAILOVER TO target on the live master: writes pause until target has every byte."""
        dest = self.by_address[target]
        # FAILOVER TO matches the replica exactly as the master lists it (INFO replication
        # slaveN ip=,port=), not as the inventory names it (a DNS name such as localhost).
        host, port = dest.host, dest.port
        for replica in self.probes.get(master, {}).get("replicas", []):
            if replica["canonical"] == dest.canonical:
                host, port = replica["ip"], int(replica["port"])
                break
        client = self.client(master)
        timeout_ms = int(max(1.0, self.wait_timeout) * 1000)
        client.execute_command("FAILOVER", "TO", host, port, "TIMEOUT", timeout_ms)
        deadline = time.monotonic() + self.wait_timeout + 5
        while time.monotonic() < deadline:
            try:
                repl = client.info("replication")
            except redis.exceptions.RedisError:
                repl = {}
            if repl.get("role") == "slave" and canonical(repl.get("master_host"), repl.get("master_port")) \
                    == dest.canonical:
                self._rewrite_config(client, master)
                new_master = self.client(target)
                self._rewrite_config(new_master, target)
                self.actions.append(action_record("failover", target, "done", previous_master=master,
                                                  command=f"FAILOVER TO {host} {port}"))
                return
            if repl.get("role") == "master" and repl.get("master_failover_state") == "no-failover" \
                    and time.monotonic() > deadline - 5:
                break
            time.sleep(0.05)
        raise RedisModuleError(f"FAILOVER from {master} to {target} did not complete within "
                               f"{self.wait_timeout:g}s; {master} is still master and accepts writes again. "
                               f"Check that {target} is in sync (INFO replication) and retry")

    def sentinel_failover(self, sentinels: list[Address], master_name: str, target: str,
                          probes: list[dict[str, t.Any]], sentinel_timeout: float) -> None:
        """SENTINEL FAILOVER, with replica-priority pinned so the sentinels pick ``target``;
        then wait until every reachable sentinel reports the new master."""
        dest = self.by_address[target]
        saved: dict[str, int] = {}
        try:
            first = None
            for sentinel in sentinels:
                view = sentinel_view(self.conn, sentinel, master_name)
                if view.get("reachable"):
                    first = sentinel
                    break
            if first is None:
                raise RedisModuleError("no sentinel answers: " + ", ".join(str(s) for s in sentinels))
            sentinels = [first] + [s for s in sentinels if s is not first]
            if sentinel_pick(view) != dest.canonical:
                # The sentinel would pick another replica: pin replica-priority so it picks ours,
                # and wait until its INFO refresh (every 10s) has seen the pin.
                for p in probes:
                    if not p.get("reachable") or p["role"] != "replica":
                        continue
                    want = 1 if p["address"] == target else max(p.get("replica_priority", 100), 2)
                    if p.get("replica_priority", 100) in (0, want):
                        continue
                    self.client(p["address"]).config_set("replica-priority", want)
                    saved[p["address"]] = p.get("replica_priority", 100)
                self.actions.append(action_record("pin_replica_priority", target, "done",
                                                  restored_after=sorted(saved)))
                deadline = time.monotonic() + 15
                while sentinel_pick(sentinel_view(self.conn, first, master_name)) != dest.canonical:
                    if time.monotonic() > deadline:
                        raise RedisModuleError(f"sentinel {first} still prefers another replica over {target} "
                                               "after 15s; nothing was failed over. Check SENTINEL REPLICAS "
                                               f"{master_name}")
                    time.sleep(0.25)
            started = None
            errors = []
            for sentinel in sentinels:
                try:
                    connect(self.conn, sentinel, sentinel=True).execute_command("SENTINEL", "FAILOVER", master_name)
                    started = sentinel
                    break
                except RedisModuleError as exc:
                    errors.append(str(exc))
                except redis.exceptions.ResponseError as exc:
                    if "INPROG" in str(exc):
                        # The sentinels reached o_down and are failing over themselves: wait for them.
                        started = sentinel
                        break
                    raise RedisModuleError(f"sentinel {sentinel} refused SENTINEL FAILOVER {master_name}: "
                                           f"{truncate(exc)}") from None
            if started is None:
                raise RedisModuleError("no sentinel accepted SENTINEL FAILOVER: " + "; ".join(errors))
            self.actions.append(action_record("sentinel_failover", master_name, "started", sentinel=str(started),
                                              wanted_master=target))
            deadline = time.monotonic() + sentinel_timeout
            views: list[dict[str, t.Any]] = []
            while time.monotonic() < deadline:
                views = [sentinel_view(self.conn, s, master_name) for s in sentinels]
                live = [v for v in views if v.get("reachable")]
                if live and all(v["master_canonical"] == dest.canonical and not v["failover_in_progress"]
                                for v in live):
                    break
                time.sleep(0.2)
            else:
                seen = ", ".join(f"{v['address']}: {v.get('master', 'unreachable')}" for v in views)
                raise RedisModuleError(f"sentinels did not agree on {target} as master of {master_name} within "
                                       f"{sentinel_timeout:g}s ({seen}); check the sentinel logs")
            self.actions.append(action_record("sentinel_agreement", master_name, "done", master=target,
                                              sentinels=len(live)))
            # The sentinels re-point the old master only ~8s after it reports its old role; do
            # it now, as they would, so the group converges without that wait.
            for p in probes:
                if p["address"] == target or not p.get("reachable"):
                    continue
                now = probe_node(self.conn, self.by_address[p["address"]])
                if now.get("reachable") and not _follows(now, dest.canonical):
                    self.replicaof(p["address"], target, "demote" if now.get("role") == "master" else "replicaof")
        finally:
            for address, priority in saved.items():
                try:
                    self.client(address).config_set("replica-priority", priority)
                except (RedisModuleError, redis.exceptions.RedisError):
                    self.actions.append(action_record("restore_replica_priority", address, "failed"))

    def wait_converged(self, master: str, others: list[str]) -> list[dict[str, t.Any]]:
        """Until master is master and every other reachable node replicates it with link up.
        Returns the final probes; raises naming the node that did not converge."""
        want = self.by_address[master].canonical
        deadline = time.monotonic() + self.wait_timeout
        while True:
            probes = {a: probe_node(self.conn, self.by_address[a]) for a in [master, *others]}
            lagging = [a for a in others if probes[a].get("reachable") and not (
                _follows(probes[a], want) and probes[a].get("master_link_status") == "up")]
            if probes[master].get("role") == "master" and not lagging:
                return list(probes.values())
            if time.monotonic() > deadline:
                bad = lagging or [master]
                detail = "; ".join(f"{a}: role {probes[a].get('role')}, master {probes[a].get('master')}, "
                                   f"link {probes[a].get('master_link_status')}" for a in bad)
                raise RedisModuleError(f"not converged within {self.wait_timeout:g}s: {detail}; check masterauth "
                                       "and network between the nodes, then run again")
            time.sleep(0.1)
