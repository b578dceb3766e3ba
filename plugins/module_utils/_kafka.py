# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kafka for sre.runbooks modules: one argument spec, client settings, the ApiVersions probe,
and the consumer-lag report.

The pure pieces (client_config, parse_api_versions, partition_lag, group_report, topic_health)
are unit-tested without a broker. Everything that talks to Kafka goes through confluent-kafka's
AdminClient in batches: one metadata call, one list_offsets call for every partition, one
committed-offsets call per group (never one call per partition). Passwords never leave here.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
import traceback
import typing as t

from ansible.module_utils.basic import missing_required_lib

try:
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec
    HAS_KAFKA = True
    KAFKA_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by check_library
    HAS_KAFKA = False
    KAFKA_IMPORT_ERROR = traceback.format_exc()

KAFKA_ARGUMENT_SPEC: dict[str, t.Any] = {
    "bootstrap_servers": {"type": "list", "elements": "str", "required": True},
    "security_protocol": {"type": "str", "default": "PLAINTEXT",
                          "choices": ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]},
    "sasl_mechanism": {"type": "str", "default": "PLAIN",
                       "choices": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
    "sasl_username": {"type": "str"},
    "sasl_password": {"type": "str", "no_log": True},
    "ssl_cafile": {"type": "path"},
    "ssl_certfile": {"type": "path"},
    "ssl_keyfile": {"type": "path"},
    "ssl_keyfile_password": {"type": "str", "no_log": True},
    "timeout": {"type": "float", "default": 10.0},
}

API_VERSIONS_KEY = 18
# The API keys an operator asks about first (names from the Kafka protocol guide).
API_NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
             9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
             13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
             17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
             21: "DeleteRecords", 32: "DescribeConfigs", 36: "SaslAuthenticate", 60: "DescribeCluster"}


def check_library(module: t.Any) -> None:
    if not HAS_KAFKA:
        module.fail_json(msg=missing_required_lib("confluent-kafka"), exception=KAFKA_IMPORT_ERROR)


def client_config(params: dict[str, t.Any]) -> dict[str, t.Any]:
    """librdkafka settings from the module options (holds the password: never return it)."""
    conf: dict[str, t.Any] = {
        "bootstrap.servers": ",".join(params["bootstrap_servers"]),
        "security.protocol": params.get("security_protocol") or "PLAINTEXT",
        "socket.timeout.ms": int(float(params.get("timeout") or 10) * 1000),
        "client.id": "sre-runbooks",
    }
    proto = conf["security.protocol"]
    if proto.startswith("SASL"):
        if not params.get("sasl_username") or params.get("sasl_password") is None:
            raise ValueError(f"security_protocol {proto} needs sasl_username and sasl_password")
        conf["sasl.mechanism"] = params.get("sasl_mechanism") or "PLAIN"
        conf["sasl.username"] = params["sasl_username"]
        conf["sasl.password"] = params["sasl_password"]
    if proto.endswith("SSL"):
        for opt, key in (("ssl_cafile", "ssl.ca.location"), ("ssl_certfile", "ssl.certificate.location"),
                         ("ssl_keyfile", "ssl.key.location"), ("ssl_keyfile_password", "ssl.key.password")):
            if params.get(opt):
                conf[key] = params[opt]
    return conf


def split_server(server: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); port defaults to 9092."""
    server = server.strip()
    if server.startswith("["):
        host, _sep, rest = server[1:].partition("]")
        return host, int(rest.lstrip(":") or 9092)
    host, sep, port = server.rpartition(":")
    if not sep:
        return server, 9092
    return host, int(port)


def api_versions_request(correlation_id: int = 1, client_id: str = "sre-runbooks") -> bytes:
    """An ApiVersions v0 request, framed (the one request every broker answers before auth)."""
    cid = client_id.encode()
    body = struct.pack(">hhih", API_VERSIONS_KEY, 0, correlation_id, len(cid)) + cid
    return struct.pack(">i", len(body)) + body


def parse_api_versions(payload: bytes, correlation_id: int = 1) -> dict[str, t.Any]:
    """An ApiVersions v0 response (without its size prefix) -> {error_code, apis: {name: [min, max]}}."""
    if len(payload) < 10:
        raise ValueError(f"ApiVersions response too short ({len(payload)} bytes)")
    got_cid, error_code, count = struct.unpack_from(">ihi", payload, 0)
    if got_cid != correlation_id:
        raise ValueError(f"ApiVersions response for request {got_cid}, expected {correlation_id}")
    if count < 0 or 10 + 6 * count > len(payload):
        raise ValueError(f"ApiVersions response lists {count} APIs in {len(payload)} bytes")
    apis: dict[str, list[int]] = {}
    for i in range(count):
        key, vmin, vmax = struct.unpack_from(">hhh", payload, 10 + 6 * i)
        apis[API_NAMES.get(key, f"api_{key}")] = [vmin, vmax]
    return {"error_code": error_code, "apis": apis}


def _recv_exact(sock: t.Any, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


def probe_broker(server: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Reachability, round trip and API versions of one broker (ApiVersions v0, TLS if asked)."""
    host, port = split_server(server)
    timeout = float(params.get("timeout") or 10)
    out: dict[str, t.Any] = {"address": f"{host}:{port}", "reachable": False}
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock: t.Any = raw
            if (params.get("security_protocol") or "PLAINTEXT").endswith("SSL"):
                ctx = ssl.create_default_context(cafile=params.get("ssl_cafile"))
                if params.get("ssl_certfile"):
                    ctx.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"),
                                        params.get("ssl_keyfile_password"))
                sock = ctx.wrap_socket(raw, server_hostname=host)
            sock.sendall(api_versions_request())
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            parsed = parse_api_versions(_recv_exact(sock, size))
    except (OSError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out.update(reachable=True, rtt_ms=round((time.monotonic() - start) * 1000, 2),
               api_error_code=parsed["error_code"], api_versions=parsed["apis"])
    return out


def partition_lag(committed: int | None, end: int | None) -> int | None:
    """Lag of one partition: end offset minus committed offset; None when either is unknown
    (no commit yet, or the end offset could not be read). Never negative."""
    if committed is None or end is None or committed < 0 or end < 0:
        return None
    return max(end - committed, 0)


def topic_health(topics: dict[str, list[dict[str, t.Any]]]) -> dict[str, list[str]]:
    """Topics with a partition that has no leader, or fewer in-sync replicas than replicas."""
    no_leader, under = [], []
    for name, parts in sorted(topics.items()):
        if any(p.get("leader") is None or p["leader"] < 0 for p in parts):
            no_leader.append(name)
        if any(len(p.get("isrs") or []) < len(p.get("replicas") or []) for p in parts):
            under.append(name)
    return {"without_leader": no_leader, "under_replicated": under}


def group_report(group: str, committed: dict[tuple[str, int], int], ends: dict[tuple[str, int], int],
                 state: str | None = None, members: list[dict[str, t.Any]] | None = None,
                 error: str | None = None) -> dict[str, t.Any]:
    """One consumer group's lag: per partition committed, end, lag; the total and the worst."""
    partitions = []
    for (topic, part), off in sorted(committed.items()):
        end = ends.get((topic, part))
        partitions.append({"topic": topic, "partition": part, "committed_offset": off,
                           "end_offset": end, "lag": partition_lag(off, end)})
    lags = [p["lag"] for p in partitions if p["lag"] is not None]
    return {"group": group, "state": state, "members": members or [], "member_count": len(members or []),
            "partitions": partitions, "total_lag": sum(lags), "max_lag": max(lags) if lags else 0,
            "unknown_lag_partitions": len(partitions) - len(lags), "error": error}


def _result(future: t.Any, timeout: float) -> t.Any:
    return future.result(timeout=timeout)


def collect(params: dict[str, t.Any], groups: list[str] | None) -> dict[str, t.Any]:
    """Everything the module returns. Partial failures are reported per item, not raised."""
    timeout = float(params.get("timeout") or 10)
    brokers = [probe_broker(s, params) for s in params["bootstrap_servers"]]
    out: dict[str, t.Any] = {"brokers": brokers, "reachable": any(b["reachable"] for b in brokers),
                             "groups": [], "topics": {}, "errors": []}
    if not out["reachable"]:
        return out
    admin = AdminClient(client_config(params))
    # 1. one metadata call: topics, partitions, leaders, replicas, ISRs; brokers in the cluster
    md = admin.list_topics(timeout=timeout)
    out["cluster_brokers"] = sorted(f"{b.host}:{b.port}" for b in md.brokers.values())
    topics: dict[str, list[dict[str, t.Any]]] = {}
    for name, tm in md.topics.items():
        if name.startswith("__"):
            continue
        topics[name] = [{"partition": p.id, "leader": p.leader, "replicas": list(p.replicas),
                         "isrs": list(p.isrs)} for p in sorted(tm.partitions.values(), key=lambda x: x.id)]
    out["topics"] = topics
    out["topic_health"] = topic_health(topics)
    # which groups
    if groups is None:
        listed = _result(admin.list_consumer_groups(request_timeout=timeout), timeout)
        groups = sorted(g.group_id for g in listed.valid)
    # 2. one committed-offsets call per group
    committed: dict[str, dict[tuple[str, int], int]] = {}
    errors: dict[str, str] = {}
    for g in groups:
        try:
            fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)],
                                                    request_timeout=timeout)[g]
            res = _result(fut, timeout)
            committed[g] = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions
                            if tp.offset >= 0}
        except KafkaException as exc:
            errors[g] = f"committed offsets: {exc}"
            committed[g] = {}
    # 3. one list_offsets call for the end offset of every committed partition
    wanted = sorted({k for c in committed.values() for k in c})
    ends: dict[tuple[str, int], int] = {}
    if wanted:
        futs = admin.list_offsets({TopicPartition(tp, p): OffsetSpec.latest() for tp, p in wanted},
                                  request_timeout=timeout)
        for tp, fut in futs.items():
            try:
                ends[(tp.topic, tp.partition)] = _result(fut, timeout).offset
            except KafkaException as exc:
                out["errors"].append(f"end offset of {tp.topic}[{tp.partition}]: {exc}")
    # 4. one describe call for every group: state and members
    described: dict[str, t.Any] = {}
    if groups:
        for g, fut in admin.describe_consumer_groups(groups, request_timeout=timeout).items():
            try:
                described[g] = _result(fut, timeout)
            except KafkaException as exc:
                errors[g] = (errors.get(g, "") + f" describe: {exc}").strip()
    for g in groups:
        d = described.get(g)
        state = d.state.name.lower() if d is not None and d.state is not None else None
        members = []
        if d is not None:
            for m in d.members:
                assigned = [f"{x.topic}[{x.partition}]" for x in (m.assignment.topic_partitions if m.assignment else [])]
                members.append({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                                "assignment": assigned})
        out["groups"].append(group_report(g, committed[g], ends, state, members, errors.get(g)))
    return out
