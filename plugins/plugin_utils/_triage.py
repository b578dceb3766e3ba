# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The triage verdict: from the read-only modules' results to what is failing, the suspected
component, the scenario playbook to run next, the severity and who to page.

Runbook 000 Steps 2-3 (assess impact, identify the failing component), 001 Phases 2-3 and
004 Observe/Orient, as one pure function over registered module results. The runbook-specific
parts (the component table, severity per impact, thresholds, escalation matrix) are data passed
in from the `incident` role's defaults; the fallbacks here only make the function usable alone.

Controller-side only (plugin_utils): filter plugins import it; modules never do.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import shlex
import typing as t

# --- fallbacks (the incident role's defaults hold the same values; a unit test keeps them equal) ---

SEVERITY_LEVELS: dict[str, dict[str, t.Any]] = {
    "P0": {"description": "Full system outage - all services down", "response_minutes": 5},
    "P1": {"description": "Critical service degraded - payments, auth, bookings affected", "response_minutes": 15},
    "P2": {"description": "Non-critical service degraded - analytics, content, notifications", "response_minutes": 30},
    "P3": {"description": "Minor degradation - slow responses, partial feature failure", "response_minutes": 120},
}
SEVERITY_BY_IMPACT: dict[str, str] = {"outage": "P0", "critical": "P1", "secondary": "P2", "degraded": "P3"}
THRESHOLDS: dict[str, float] = {
    "pg_utilisation_percent": 80,      # 000 Scenario B / db_exhaustion_utilisation_threshold
    "pg_exhausted_percent": 100,       # every usable slot taken: new connections are refused
    "pg_blocked_sessions": 1,          # sessions waiting on a lock (003 "Lock contention")
    "redis_memory_ratio": 0.95,        # used/maxmemory, redis_unavailable_memory_full_ratio
    "http_latency_p95_ms": 1000,       # 001 "High latency alerts (>1s 95th percentile)"
    "http_error_rate": 0.05,           # 001 "High error rate alerts (>5%)"
    "host_memory_percent": 95,
    "host_disk_percent": 90,
    "host_load_per_cpu": 2.0,
}
DEFAULT_IMPACT = "secondary"
# Which scenario playbook handles which finding (a component may override per platform).
PLAYBOOK_BY_KIND: dict[str, str | None] = {
    "crashloop": "crashloop",
    "oom_killed": "memory_exhaustion",
    "image_pull": None,
    "config_error": "crashloop",
    "pod_failing": None,
    "pending": None,
    "workload_down": None,
    "workload_degraded": None,
    "no_endpoints": None,
    "node_not_ready": "node_failure",
    "node_pressure": None,
    "unit_down": "service_down",
    "unit_probe_failed": "service_down",
    "unit_restart_loop": "service_down",
    "unit_missing": None,
    "pg_exhausted": "db_exhaustion",
    "pg_saturated": "db_exhaustion",
    "pg_lock_contention": "db_exhaustion",
    "redis_master_down": "redis_unavailable",
    "redis_node_down": "redis_unavailable",
    "redis_replication_broken": "redis_unavailable",
    "redis_memory_full": "redis_unavailable",
    "redis_loading": None,
    "endpoint_down": None,
    "endpoint_slow": None,
    "host_memory": None,
    "host_disk": "disk_full",
    "host_load": None,
    "host_oom": None,
    "assessment_failed": None,
}
ESCALATION: list[dict[str, t.Any]] = [
    {"level": "L1", "who": "On-call engineer", "after_minutes": {"P0": 0, "P1": 0, "P2": 0, "P3": 0}},
    {"level": "L2", "who": "Lead backend engineer / secondary on-call",
     "after_minutes": {"P0": 15, "P1": 15, "P2": 30, "P3": 30}},
    {"level": "L3", "who": "CTO / Engineering Manager", "after_minutes": {"P0": 30, "P1": 60}},
    {"level": "L4", "who": "Executive leadership", "after_minutes": {"P0": 120, "P1": 120}},
]
# Playbooks whose findings are causes the on-call acts on; http and host findings are symptoms
# or context unless nothing else explains them.
SOURCES = ("pg_activity_info", "redis_health_info", "systemd_unit_info", "host_resources_info",
           "k8s_triage_info", "http_health")
HEALTHY_SUMMARY = "healthy, nothing to do"
_LEVEL_ORDER = ("P0", "P1", "P2", "P3", "P4")


class TriageError(ValueError):
    """Input the triage cannot read; the message says which observation and what was expected."""


# --- input -------------------------------------------------------------------------------------


def normalize_observations(observations: t.Any) -> list[dict[str, t.Any]]:
    """Accept a list of {source, host, result} or a mapping {source: {host: result}}."""
    if observations is None:
        return []
    items: list[dict[str, t.Any]] = []
    if isinstance(observations, dict):
        for source, per_host in observations.items():
            if not isinstance(per_host, dict):
                raise TriageError(f"observations[{source!r}]: expected a mapping of host -> module result")
            for host, result in per_host.items():
                items.append({"source": source, "host": host, "result": result})
    elif isinstance(observations, (list, tuple)):
        for index, item in enumerate(observations):
            if not isinstance(item, dict) or "source" not in item or "result" not in item:
                raise TriageError(f"observations[{index}]: expected a mapping with source, host and result")
            items.append({"source": item["source"], "host": item.get("host") or "localhost",
                          "result": item["result"]})
    else:
        raise TriageError("observations: expected a list of {source, host, result} or {source: {host: result}}")
    expanded = []
    for item in items:
        looped = item["result"].get("results") if isinstance(item["result"], dict) else None
        if isinstance(looped, list) and looped and all(isinstance(r, dict) and ("ansible_loop_var" in r or "item" in r)
                                                       for r in looped):
            # A task with a loop registers {results: [...]}: each item is one observation.
            expanded.extend({"source": item["source"], "host": item["host"], "result": r} for r in looped)
        else:
            expanded.append(item)
    items = expanded
    for item in items:
        source = str(item["source"]).rsplit(".", maxsplit=1)[-1]  # sre.runbooks.pg_activity_info -> pg_activity_info
        if source not in SOURCES:
            raise TriageError(f"observation from {item['source']!r}: unknown source; expected one of {', '.join(SOURCES)}")
        item["source"] = source
        if not isinstance(item["result"], dict):
            raise TriageError(f"observation {source} on {item['host']}: the result is not a mapping")
    return items


def _finding(source: str, host: str, kind: str, status: str, detail: str, keys: list[str],
             cause: bool = True, **names: t.Any) -> dict[str, t.Any]:
    return {"source": source, "host": host, "kind": kind, "status": status, "detail": detail,
            "keys": [k for k in keys if k], "cause": cause, **names}


def _num(value: t.Any, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


# --- per-source findings -----------------------------------------------------------------------


def findings_pg(host: str, r: dict[str, t.Any], th: dict[str, float]) -> list[dict[str, t.Any]]:
    out = []
    keys = ["postgresql", f"host/{host}"]
    util = _num(r.get("utilisation_percent"))
    slots = f"{r.get('client_backends')}/{r.get('usable_connections')} connections ({util:g}%)"
    if util >= th["pg_exhausted_percent"]:
        out.append(_finding("pg_activity_info", host, "pg_exhausted", "down",
                            f"PostgreSQL connection slots exhausted: {slots}", keys))
    elif util >= th["pg_utilisation_percent"]:
        out.append(_finding("pg_activity_info", host, "pg_saturated", "degraded",
                            f"PostgreSQL connections near the limit: {slots}", keys))
    blocked = r.get("blocked") or []
    if len(blocked) >= th["pg_blocked_sessions"] and blocked:
        out.append(_finding("pg_activity_info", host, "pg_lock_contention", "degraded",
                            f"{len(blocked)} session(s) waiting on locks held by PIDs "
                            f"{', '.join(str(p) for p in (r.get('blocking_pids') or [])[:5]) or '?'}", keys))
    return out


def findings_redis(host: str, r: dict[str, t.Any], th: dict[str, float]) -> list[dict[str, t.Any]]:
    out = []
    keys = ["redis", f"host/{host}"]
    nodes = r.get("nodes") or ([r["node"]] if isinstance(r.get("node"), dict) else [])
    reachable = [n for n in nodes if n.get("reachable")]
    down = [n for n in nodes if not n.get("reachable")]
    masters = [n for n in reachable if n.get("role") == "master"]
    odown = any(s.get("odown") for s in r.get("sentinels") or [] if s.get("reachable"))
    if nodes and not masters:
        why = "; ".join(f"{n.get('address')}: {n.get('error') or 'unreachable'}" for n in down) or "no node reports role master"
        out.append(_finding("redis_health_info", host, "redis_master_down", "down",
                            f"Redis has no reachable master ({why})", keys))
    elif odown:
        out.append(_finding("redis_health_info", host, "redis_master_down", "down",
                            "Redis sentinels agree the master is objectively down", keys))
    elif down:
        out.append(_finding("redis_health_info", host, "redis_node_down", "degraded",
                            "Redis node(s) unreachable: " + ", ".join(str(n.get("address")) for n in down), keys))
    for node in reachable:
        repl = node.get("replication") or {}
        if node.get("role") == "replica" and repl.get("master_link_status") not in (None, "up"):
            out.append(_finding("redis_health_info", host, "redis_replication_broken", "degraded",
                                f"Redis replica {node.get('address')}: link to master "
                                f"{repl.get('master')} is {repl.get('master_link_status')}", keys))
        ratio = (node.get("memory") or {}).get("used_ratio")
        if ratio is not None and _num(ratio) >= th["redis_memory_ratio"]:
            out.append(_finding("redis_health_info", host, "redis_memory_full", "degraded",
                                f"Redis {node.get('address')} uses {_num(ratio) * 100:.0f}% of maxmemory", keys))
        if (node.get("persistence") or {}).get("loading"):
            out.append(_finding("redis_health_info", host, "redis_loading", "degraded",
                                f"Redis {node.get('address')} is loading its dataset (busy, not dead)", keys,
                                cause=False))
    return out


def findings_systemd(host: str, r: dict[str, t.Any], th: dict[str, float]) -> list[dict[str, t.Any]]:
    del th
    out = []
    units = r.get("units") or {}
    failed = set(r.get("failed_units") or [])
    probe_failed = set(r.get("probe_failed_units") or [])
    missing = set(r.get("missing_units") or [])
    for name in sorted(failed | probe_failed | missing):
        unit = units.get(name) or {}
        base = name[:-len(".service")] if name.endswith(".service") else name
        keys = [base, name, f"host/{host}"]
        if name in missing:
            out.append(_finding("systemd_unit_info", host, "unit_missing", "down",
                                f"{name} on {host}: systemd does not know this unit", keys, unit=name))
            continue
        if unit.get("restart_looping"):
            kind, detail = "unit_restart_loop", f"{name} on {host}: crash-looping ({unit.get('n_restarts')} automatic restarts)"
        elif name in failed:
            kind = "unit_down"
            detail = (f"{name} on {host}: {unit.get('active_state')}/{unit.get('sub_state')}"
                      + (f", result {unit.get('result')}" if unit.get("result") not in (None, "success") else "")
                      + (" (OOM-killed)" if unit.get("oom_killed") else ""))
        else:
            probe = unit.get("probe") or {}
            kind = "unit_probe_failed"
            detail = f"{name} on {host}: active but its {probe.get('type')} probe {probe.get('target')} fails: {probe.get('error') or probe.get('status')}"
        out.append(_finding("systemd_unit_info", host, kind, "down", detail, keys, unit=name))
    return out


def findings_host(host: str, r: dict[str, t.Any], th: dict[str, float]) -> list[dict[str, t.Any]]:
    out = []
    keys = [f"host/{host}"]
    memory = r.get("memory") or {}
    if _num(memory.get("used_percent")) >= th["host_memory_percent"]:
        out.append(_finding("host_resources_info", host, "host_memory", "degraded",
                            f"{host}: memory {memory.get('used_percent')}% used", keys, cause=False))
    for disk in r.get("disks") or []:
        if _num(disk.get("used_percent")) >= th["host_disk_percent"] or _num(disk.get("inodes_used_percent")) >= th["host_disk_percent"]:
            out.append(_finding("host_resources_info", host, "host_disk", "degraded",
                                f"{host}: {disk.get('mount')} {disk.get('used_percent')}% used "
                                f"(inodes {disk.get('inodes_used_percent')}%)", keys, cause=False))
    load = r.get("load") or {}
    if _num(load.get("load_1m_per_cpu")) >= th["host_load_per_cpu"]:
        out.append(_finding("host_resources_info", host, "host_load", "degraded",
                            f"{host}: load {load.get('load_1m')} on {load.get('cpus')} CPU(s)", keys, cause=False))
    kills = (r.get("oom") or {}).get("kills") or []
    if kills:
        names = sorted({str(k.get("name")) for k in kills})
        out.append(_finding("host_resources_info", host, "host_oom", "degraded",
                            f"{host}: {len(kills)} OOM kill(s) ({', '.join(names[:5])})", keys, cause=False))
    return out


def _k8s_kind(pod: dict[str, t.Any]) -> str:
    reason = pod.get("reason") or ""
    if pod.get("oom_killed") or reason == "OOMKilled":
        return "oom_killed"
    if reason == "CrashLoopBackOff":
        return "crashloop"
    if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
        return "image_pull"
    if reason in ("CreateContainerConfigError", "CreateContainerError"):
        return "config_error"
    if reason in ("Pending", "Unschedulable", "ContainerCreating"):
        return "pending"
    return "pod_failing"


# When one workload's pods show several reasons, the cause the playbooks act on comes first.
_K8S_KIND_ORDER = ("oom_killed", "crashloop", "config_error", "image_pull", "pod_failing", "pending")


def findings_k8s(host: str, r: dict[str, t.Any], th: dict[str, float]) -> list[dict[str, t.Any]]:
    del th
    out = []
    bad_nodes = {n.get("name"): n for n in r.get("nodes") or [] if not n.get("ready", True)}
    for name, node in sorted(bad_nodes.items()):
        out.append(_finding("k8s_triage_info", host, "node_not_ready", "down",
                            f"node {name} NotReady: {'; '.join(node.get('problems') or []) or 'Ready is not True'}",
                            [f"node/{name}", "kubernetes-node"], node=name))
    for node in r.get("nodes") or []:
        if node.get("ready", True) and [p for p in node.get("problems") or [] if "Pressure" in p]:
            out.append(_finding("k8s_triage_info", host, "node_pressure", "degraded",
                                f"node {node.get('name')}: {'; '.join(node.get('problems') or [])}",
                                [f"node/{node.get('name')}", "kubernetes-node"], cause=False, node=node.get("name")))
    workloads = {(w.get("namespace"), w.get("name")): w for w in r.get("workloads") or []}
    by_owner: dict[tuple[str | None, str, str], list[dict[str, t.Any]]] = {}
    for pod in r.get("unhealthy_pods") or []:
        if pod.get("reason") == "Restarted" and not pod.get("oom_killed"):
            continue  # restarted and Ready again: k8s_triage_info does not count it either
        owner = pod.get("owner") or {"kind": "Pod", "name": pod.get("name")}
        by_owner.setdefault((pod.get("namespace"), owner.get("kind") or "Pod", owner.get("name") or pod.get("name")), []).append(pod)
    seen_workloads = set()
    for (namespace, kind, name), pods in sorted(by_owner.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        kinds = {_k8s_kind(p) for p in pods}
        on_bad_node = all(p.get("node") in bad_nodes for p in pods) and bad_nodes
        finding_kind = next(k for k in _K8S_KIND_ORDER if k in kinds)
        workload = workloads.get((namespace, name))
        seen_workloads.add((namespace, name))
        if workload is not None:
            down = _num(workload.get("ready")) == 0 and _num(workload.get("desired")) > 0
            replicas = f"{workload.get('ready')}/{workload.get('desired')} ready"
        else:
            down = True
            replicas = f"{len(pods)} pod(s) failing"
        reasons = sorted({str(p.get("reason")) for p in pods})
        detail = f"{kind.lower()}/{name} in {namespace}: {', '.join(reasons)}; {replicas}"
        if on_bad_node:
            detail += f" (on NotReady node {', '.join(sorted({str(p.get('node')) for p in pods}))})"
        out.append(_finding("k8s_triage_info", host, finding_kind, "down" if down else "degraded", detail,
                            [name, f"{kind.lower()}/{name}"], cause=not on_bad_node,
                            namespace=namespace, workload=name, workload_kind=kind,
                            explained_by_node=sorted({str(p.get("node")) for p in pods}) if on_bad_node else []))
    for (namespace, name), w in sorted(workloads.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if (namespace, name) in seen_workloads:
            continue
        down = _num(w.get("ready")) == 0 and _num(w.get("desired")) > 0
        out.append(_finding("k8s_triage_info", host, "workload_down" if down else "workload_degraded",
                            "down" if down else "degraded",
                            f"{str(w.get('kind')).lower()}/{name} in {namespace}: {w.get('ready')}/{w.get('desired')} ready"
                            + (f" ({w.get('stuck_reason')})" if w.get("stuck_reason") else ""),
                            [name, f"{str(w.get('kind')).lower()}/{name}"],
                            namespace=namespace, workload=name, workload_kind=w.get("kind")))
    for svc in r.get("services_without_endpoints") or []:
        out.append(_finding("k8s_triage_info", host, "no_endpoints", "down",
                            f"service/{svc.get('name')} in {svc.get('namespace')}: no ready endpoint",
                            [str(svc.get("name")), f"service/{svc.get('name')}"], cause=False,
                            namespace=svc.get("namespace"), service=svc.get("name")))
    return out


def findings_http(host: str, r: dict[str, t.Any], th: dict[str, float]) -> list[dict[str, t.Any]]:
    out = []
    endpoints = r.get("endpoints") or []
    for ep in endpoints:
        name = str(ep.get("name") or ep.get("url"))
        keys = [name, str(ep.get("url") or "")]
        if not ep.get("ok"):
            why = ep.get("error") or (f"HTTP {ep.get('status')}" if ep.get("status") is not None else "failed")
            out.append(_finding("http_health", host, "endpoint_down", "down",
                                f"endpoint {name} ({ep.get('url')}): {why}", keys, cause=False, endpoint=name))
        elif ep.get("latency_ms") is not None and _num(ep.get("latency_ms")) > th["http_latency_p95_ms"]:
            out.append(_finding("http_health", host, "endpoint_slow", "degraded",
                                f"endpoint {name}: {_num(ep.get('latency_ms')):.0f} ms "
                                f"(threshold {th['http_latency_p95_ms']:g} ms)", keys, cause=False, endpoint=name))
    return out


_BY_SOURCE: dict[str, t.Callable[[str, dict[str, t.Any], dict[str, float]], list[dict[str, t.Any]]]] = {
    "pg_activity_info": findings_pg,
    "redis_health_info": findings_redis,
    "systemd_unit_info": findings_systemd,
    "host_resources_info": findings_host,
    "k8s_triage_info": findings_k8s,
    "http_health": findings_http,
}
_SOURCE_COMPONENT_KEYS = {"pg_activity_info": ["postgresql"], "redis_health_info": ["redis"],
                          "k8s_triage_info": ["kubernetes"], "http_health": ["http"],
                          "systemd_unit_info": [], "host_resources_info": []}


def http_aggregate(observations: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Every http_health result together: total, failed, error rate and the worst p95.

    http_health puts its aggregates under `summary` (total, failed, error_rate, latency_ms.p95);
    without them they are counted from `endpoints`.
    """
    total = failed = 0
    p95 = 0.0
    for item in observations:
        r = item["result"]
        if item["source"] != "http_health" or r.get("failed") is True or r.get("skipped"):
            continue
        endpoints = r.get("endpoints") or []
        summary = r.get("summary") if isinstance(r.get("summary"), dict) else {}
        total += int(summary.get("total", len(endpoints)) or 0)
        failed += int(summary.get("failed", len([e for e in endpoints if not e.get("ok")])) or 0)
        latency = summary.get("latency_ms") if isinstance(summary.get("latency_ms"), dict) else {}
        p95 = max(p95, _num(latency.get("p95")), _num(summary.get("latency_p95_ms")))
    return {"total": total, "failed": failed, "error_rate": round(failed / total, 4) if total else 0.0,
            "latency_p95_ms": p95}


def collect_findings(observations: list[dict[str, t.Any]], thresholds: dict[str, float]) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """Findings from every observation, and the observations that could not be assessed."""
    findings: list[dict[str, t.Any]] = []
    unassessed: list[dict[str, t.Any]] = []
    for item in observations:
        source, host, r = item["source"], str(item["host"]), item["result"]
        if r.get("skipped"):
            continue  # a skipped task is no evidence either way
        if r.get("unreachable") or r.get("failed") is True:
            msg = str(r.get("msg") or "the assessment failed")
            unassessed.append({"source": source, "host": host, "msg": msg})
            findings.append(_finding(source, host, "assessment_failed", "unknown",
                                     f"cannot assess {source} on {host}: {msg}",
                                     _SOURCE_COMPONENT_KEYS[source] + [f"host/{host}"], cause=False))
            continue
        findings.extend(_BY_SOURCE[source](host, r, thresholds))
    return findings, unassessed


# --- components, candidates, severity -----------------------------------------------------------


def _component_table(components: t.Any) -> list[dict[str, t.Any]]:
    if components is None:
        return []
    if isinstance(components, dict):  # {name: {...}} is accepted as well as a list
        components = [{"name": name, **(spec or {})} for name, spec in components.items()]
    table = []
    for index, spec in enumerate(components):
        if not isinstance(spec, dict) or not spec.get("name"):
            raise TriageError(f"components[{index}]: each component needs a name")
        table.append(spec)
    return table


def match_component(finding: dict[str, t.Any], table: list[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    keys = [str(k).lower() for k in finding["keys"]]
    for spec in table:
        patterns = [str(p).lower() for p in (spec.get("match") or [spec["name"]])]
        if any(fnmatch.fnmatchcase(key, pattern) for key in keys for pattern in patterns):
            return spec
    return None


def _default_component_name(finding: dict[str, t.Any]) -> str:
    # The first key names the subject: the workload, the unit, the endpoint, "postgresql", "host/x".
    return str(finding["keys"][0]) if finding["keys"] else finding["source"]


def _playbook_for(finding: dict[str, t.Any], spec: dict[str, t.Any] | None,
                  by_kind: dict[str, t.Any]) -> str | None:
    platform = {"k8s_triage_info": "kubernetes", "systemd_unit_info": "systemd", "http_health": "http",
                "pg_activity_info": "postgresql", "redis_health_info": "redis",
                "host_resources_info": "host"}[finding["source"]]
    overrides = (spec or {}).get("playbooks") or {}
    if platform in overrides and finding["status"] != "unknown":
        return overrides[platform] or None
    return by_kind.get(finding["kind"]) or None


def playbook_args(playbook: str, findings: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The extra vars a scenario playbook needs to act on exactly these findings."""
    # http_health runs on the controller: its host says nothing about where the playbook must run,
    # so with only HTTP evidence the playbook keeps its default group.
    hosts = sorted({f["host"] for f in findings if f["source"] != "http_health"})
    args: dict[str, t.Any] = {"target": ",".join(hosts)} if hosts else {}
    namespaces = sorted({str(f["namespace"]) for f in findings if f.get("namespace")})
    workloads = sorted({str(f["workload"]) for f in findings if f.get("workload")})
    if playbook == "api_gateway_down":
        if namespaces:
            args["api_gateway_down_namespace"] = namespaces[0]
        if workloads:
            args["api_gateway_down_deployment"] = workloads[0]
    elif playbook == "crashloop":
        if namespaces:
            args["crashloop_namespace"] = namespaces[0]
        if workloads:
            args["crashloop_workloads"] = workloads
    elif playbook == "memory_exhaustion":
        if namespaces:
            args["memory_exhaustion_namespace"] = namespaces[0]
    elif playbook == "node_failure":
        nodes = sorted({str(f["node"]) for f in findings if f.get("node")})
        if nodes:
            args["node_failure_nodes"] = nodes
    return args


def next_step(playbook: str, component: str, findings: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    extra = playbook_args(playbook, findings)
    path = f"playbooks/outage/{playbook}.yml"
    return {
        "playbook": playbook,
        "path": path,
        "fqcn": f"sre.runbooks.outage.{playbook}",
        "component": component,
        "extra_vars": extra,
        "command": f"ansible-playbook {path} -i INVENTORY -e {shlex.quote(json.dumps(extra, sort_keys=True))}",
        "reason": "; ".join(f["detail"] for f in findings)[:500],
    }


def severity_of(components: list[dict[str, t.Any]], http: dict[str, t.Any],
                by_impact: dict[str, str], thresholds: dict[str, float],
                order: t.Sequence[str] | None = None) -> tuple[str | None, str]:
    """The worst level any failing component or the HTTP picture maps to, and why.

    A component that is down counts with its impact (outage/critical/secondary); one that is only
    slow or partly failing, or that could not be assessed, counts as `degraded`.
    """
    candidates: list[tuple[str, str]] = []
    if http["total"] and http["failed"] == http["total"]:
        candidates.append((by_impact.get("outage", "P0"),
                           f"full outage: all {http['total']} health endpoint(s) fail"))
    elif http["total"] and http["error_rate"] > thresholds["http_error_rate"]:
        candidates.append((by_impact.get("degraded", "P3"),
                           f"error rate {http['error_rate'] * 100:.0f}% above {thresholds['http_error_rate'] * 100:g}%"))
    if http["total"] and http["latency_p95_ms"] > thresholds["http_latency_p95_ms"]:
        candidates.append((by_impact.get("degraded", "P3"),
                           f"p95 latency {http['latency_p95_ms']:.0f} ms above {thresholds['http_latency_p95_ms']:g} ms"))
    for comp in components:
        impact = comp["impact"] if comp["status"] == "down" else "degraded"
        level = by_impact.get(impact)
        if level:
            word = {"down": "down", "degraded": "degraded", "unknown": "not assessable"}[comp["status"]]
            candidates.append((level, f"{comp['name']} {word} (impact {impact})"))
    if not candidates:
        return None, ""
    # Worst first: the order of the severity levels given (P0 before P1...), unknown names last.
    ranking = list(order or _LEVEL_ORDER)

    def rank(level: str) -> int:
        return ranking.index(level) if level in ranking else len(ranking)

    worst = min((level for level, _why in candidates), key=rank)
    return worst, "; ".join(why for level, why in candidates if level == worst)


def verdict(observations: t.Any, components: t.Any = None, severity_by_impact: dict[str, str] | None = None,
            severity_levels: dict[str, dict[str, t.Any]] | None = None,
            thresholds: dict[str, float] | None = None, playbooks: dict[str, t.Any] | None = None,
            default_impact: str | None = None) -> dict[str, t.Any]:
    """The triage verdict. See the triage_verdict filter's documentation for the shape."""
    items = normalize_observations(observations)
    th = {**THRESHOLDS, **(thresholds or {})}
    by_impact = dict(severity_by_impact or SEVERITY_BY_IMPACT)
    levels = dict(severity_levels or SEVERITY_LEVELS)
    by_kind = {**PLAYBOOK_BY_KIND, **(playbooks or {})}
    table = _component_table(components)
    fallback_impact = default_impact or DEFAULT_IMPACT

    findings, unassessed = collect_findings(items, th)
    comps: dict[str, dict[str, t.Any]] = {}
    for f in findings:
        spec = match_component(f, table)
        name = spec["name"] if spec else _default_component_name(f)
        f["component"] = name
        f["playbook"] = _playbook_for(f, spec, by_kind)
        comp = comps.setdefault(name, {
            "name": name,
            "description": (spec or {}).get("description") or name,
            "impact": (spec or {}).get("impact") or fallback_impact,
            "runbook": (spec or {}).get("runbook"),
            "depends_on": list((spec or {}).get("depends_on") or []),
            "findings": [],
        })
        comp["findings"].append(f)
    for comp in comps.values():
        statuses = {f["status"] for f in comp["findings"]}
        comp["status"] = "down" if "down" in statuses else ("degraded" if "degraded" in statuses else "unknown")
        comp["has_cause"] = any(f["cause"] for f in comp["findings"])
        comp["evidence"] = [f["detail"] for f in comp["findings"]]

    # Which failing components are explained by another one: a symptom-only component (its
    # endpoint fails, its Service has no endpoint) whose dependency fails; pods on a NotReady node.
    for comp in comps.values():
        comp["explained_by"] = []
        if comp["has_cause"]:
            continue
        for dep in comp["depends_on"]:
            if dep in comps and dep != comp["name"] and comps[dep]["status"] in ("down", "degraded"):
                comp["explained_by"].append(dep)
        nodes = sorted({n for f in comp["findings"] for n in f.get("explained_by_node") or []})
        for node_comp in comps.values():
            if any(f.get("node") in nodes and f["kind"] == "node_not_ready" for f in node_comp["findings"]):
                comp["explained_by"].append(node_comp["name"])
    # Context: host-level findings (memory, disk, OOM kills, load) attach to the causes on that host.
    cause_hosts = {f["host"] for c in comps.values() if c["has_cause"] for f in c["findings"] if f["cause"]}
    for comp in comps.values():
        if not comp["has_cause"] and not comp["explained_by"] and all(
                f["source"] == "host_resources_info" and f["host"] in cause_hosts for f in comp["findings"]):
            comp["explained_by"] = sorted({c["name"] for c in comps.values() if c["has_cause"]
                                           and any(f["host"] in {g["host"] for g in comp["findings"]} for f in c["findings"])})

    roots = [c for c in comps.values() if not c["explained_by"]]
    candidates = []
    for comp in roots:
        acting = [f for f in comp["findings"] if f["cause"]] or comp["findings"]
        steps: dict[str, list[dict[str, t.Any]]] = {}
        for f in acting:
            if f.get("playbook"):
                steps.setdefault(f["playbook"], []).append(f)
        candidates.append({
            "component": comp["name"],
            "description": comp["description"],
            "status": comp["status"],
            "evidence": comp["evidence"],
            "next": [next_step(pb, comp["name"], fs) for pb, fs in sorted(steps.items())],
        })

    http = http_aggregate(items)
    severity, severity_reason = severity_of(list(comps.values()), http, by_impact, th, order=list(levels))
    level = levels.get(severity or "", {})
    conflicting = len(candidates) > 1 or any(len(c["next"]) > 1 for c in candidates)
    result: dict[str, t.Any] = {
        "healthy": not findings,
        "findings": [{k: v for k, v in f.items() if k != "keys"} for f in findings],
        # Suspects first, then what they explain.
        "components": [{k: c[k] for k in ("name", "description", "status", "impact", "evidence", "explained_by", "runbook")}
                       for c in sorted(comps.values(), key=lambda c: bool(c["explained_by"]))],
        "suspected": [c["component"] for c in candidates],
        "suspected_component": candidates[0]["component"] if len(candidates) == 1 else None,
        "candidates": candidates,
        "ambiguous": conflicting,
        "next": [],
        "act": False,
        "severity": severity,
        "severity_reason": severity_reason,
        "severity_description": level.get("description"),
        "response_minutes": level.get("response_minutes"),
        "http": http,
        "unassessed": unassessed,
        "assessed": sorted({f"{i['source']}@{i['host']}" for i in items if not i["result"].get("skipped")}),
    }
    if not findings:
        result["status"] = "healthy"
        result["summary"] = HEALTHY_SUMMARY if items else "nothing was assessed; run the assessment first"
        result["healthy"] = bool(items)
        return result
    if conflicting:
        result["status"] = "ambiguous"
        names = [c["component"] for c in candidates]
        options = [s["playbook"] for c in candidates for s in c["next"]]
        if len(names) == 2:
            result["summary"] = f"ambiguous: {names[0]} and {names[1]} both fail and neither explains the other"
        elif len(names) > 2:
            result["summary"] = f"ambiguous: {', '.join(names[:-1])} and {names[-1]} fail and none explains another"
        else:
            result["summary"] = f"ambiguous: {names[0]} matches several playbooks"
        result["summary"] += (f"; candidates {', '.join(options)}; nothing picked, decide and run one"
                              if options else "; no playbook picked")
        return result
    only = candidates[0]
    result["next"] = only["next"]
    result["act"] = bool(only["next"])
    if only["status"] == "unknown":
        result["status"] = "unassessed"
        result["summary"] = f"{only['component']} could not be assessed: {only['evidence'][0]}"
    else:
        result["status"] = "failing"
        result["summary"] = (f"{only['component']} {only['status']}: {only['evidence'][0]}"
                             + (f"; run {only['next'][0]['playbook']}" if only["next"] else "; no scenario playbook fits, investigate"))
    return result


# --- escalation --------------------------------------------------------------------------------


def escalation(severity: str | None, elapsed_minutes: float, matrix: list[dict[str, t.Any]] | None = None,
               resolved: bool = False) -> dict[str, t.Any]:
    """Who to page `elapsed_minutes` into an incident of `severity`, and who comes next."""
    matrix = ESCALATION if matrix is None else matrix
    if elapsed_minutes is None or _num(elapsed_minutes, -1) < 0:
        raise TriageError(f"elapsed_minutes: expected minutes >= 0, got {elapsed_minutes!r}")
    elapsed = _num(elapsed_minutes)
    reached, upcoming = [], []
    for step in matrix:
        after = step.get("after_minutes")
        at = after.get(severity) if isinstance(after, dict) else after
        if at is None:
            continue
        entry = {"level": step.get("level"), "who": step.get("who"), "after_minutes": _num(at)}
        (reached if elapsed >= _num(at) else upcoming).append(entry)
    upcoming.sort(key=lambda e: e["after_minutes"])
    if resolved or severity is None:
        return {"severity": severity, "elapsed_minutes": elapsed, "page": [], "current": None,
                "next": None, "reached": reached}
    return {
        "severity": severity,
        "elapsed_minutes": elapsed,
        "page": [e["who"] for e in reached],
        "current": reached[-1] if reached else None,
        "next": {**upcoming[0], "in_minutes": round(upcoming[0]["after_minutes"] - elapsed, 1)} if upcoming else None,
        "reached": reached,
    }


def elapsed_minutes(started_at: t.Any, now: datetime.datetime | None = None) -> float:
    from ansible_collections.sre.runbooks.plugins.plugin_utils._incident import parse_timestamp
    start = parse_timestamp(started_at, "started_at")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (now - start).total_seconds() / 60)


# --- rendering ---------------------------------------------------------------------------------


def _cut(text: t.Any, width: int) -> str:
    text = " ".join(str(text if text is not None else "-").split())
    return text if len(text) <= width else text[: width - 1] + "~"


def render_table(v: dict[str, t.Any], width: int = 120) -> str:
    """The short triage table for the console and the #incidents message (plain text)."""
    lines = []
    sev = v.get("severity") or "-"
    response = f"respond < {v['response_minutes']} min" if v.get("response_minutes") else ""
    lines.append(f"TRIAGE  {v.get('status', '?').upper()}  severity {sev}"
                 + (f" ({response})" if response else "") + f"  {v.get('summary', '')}")
    if v.get("healthy"):
        return lines[0]
    lines.append(f"{'COMPONENT':<22} {'STATUS':<9} {'CAUSE OF':<16} EVIDENCE")
    cause_of = {}
    for comp in v.get("components") or []:
        for dep in comp.get("explained_by") or []:
            cause_of.setdefault(dep, []).append(comp["name"])
    for comp in v.get("components") or []:
        role = "<- " + ",".join(comp["explained_by"]) if comp.get("explained_by") else ",".join(cause_of.get(comp["name"], [])) or "-"
        evidence = comp.get("evidence") or ["-"]
        lines.append(f"{_cut(comp['name'], 22):<22} {comp['status']:<9} {_cut(role, 16):<16} {_cut(evidence[0], max(20, width - 50))}")
        for more in evidence[1:3]:
            lines.append(f"{'':<22} {'':<9} {'':<16} {_cut(more, max(20, width - 50))}")
        if len(evidence) > 3:
            lines.append(f"{'':<22} {'':<9} {'':<16} (+{len(evidence) - 3} more)")
    if v.get("next"):
        for step in v["next"]:
            lines.append(f"NEXT    {step['command']}")
    elif v.get("ambiguous"):
        for cand in v.get("candidates") or []:
            for step in cand["next"]:
                lines.append(f"OPTION  {step['command']}")
        lines.append("NEXT    none picked: the evidence points at more than one cause")
    else:
        lines.append("NEXT    no scenario playbook fits; investigate the evidence above")
    for gap in v.get("unassessed") or []:
        lines.append(f"GAP     {gap['source']}@{gap['host']}: {_cut(gap['msg'], width - 20)}")
    return "\n".join(lines)


# --- incident messages ---------------------------------------------------------------------------

PAGERDUTY_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
EVENTS = ("open", "update", "resolve")


def slack_escape(text: t.Any) -> str:
    """Slack mrkdwn needs &, < and > escaped when they are not markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dedup_key(incident_id: str, prefix: str = "sre-runbooks") -> str:
    """The PagerDuty alert key of an incident: stable across open, update and resolve."""
    key = f"{prefix}/{incident_id}" if prefix else str(incident_id)
    return key[:255]


def _minutes(value: float) -> str:
    value = int(round(value))
    return f"{value // 60} h {value % 60:02d} min" if value >= 60 else f"{value} min"


def incident_message(v: dict[str, t.Any] | None, event: str, incident_id: str, started_at: t.Any = None,
                     now: datetime.datetime | None = None, matrix: list[dict[str, t.Any]] | None = None,
                     levels: dict[str, dict[str, t.Any]] | None = None,
                     pagerduty_severity: dict[str, str] | None = None, note: str = "",
                     root_cause: str = "", resolution: str = "", severity: str | None = None,
                     dedup_prefix: str = "sre-runbooks", detected_at: t.Any = None) -> dict[str, t.Any]:
    """The #incidents message and the PagerDuty event fields for one incident event.

    open: severity, suspected component, next playbook, who is paged, the triage table (000 Step 1).
    update: elapsed time, the escalation reached, the note, the current triage table.
    resolve: what happened, root cause, how it was resolved, time to detection and to resolution
    (000 Post-Incident step 2).
    """
    if event not in EVENTS:
        raise TriageError(f"event: expected one of {', '.join(EVENTS)}, got {event!r}")
    v = v or {}
    levels = levels or SEVERITY_LEVELS
    sev = severity or v.get("severity")
    level = levels.get(sev or "", {})
    now = now or datetime.datetime.now(datetime.timezone.utc)
    elapsed = elapsed_minutes(started_at, now) if started_at else 0.0
    esc = escalation(sev, elapsed, matrix, resolved=event == "resolve")
    table = render_table(v) if v else ""
    component = v.get("suspected_component") or ", ".join(v.get("suspected") or []) or None
    tag = f"[{sev}] " if sev else ""
    headline_what = v.get("summary") or note or "incident"

    lines: list[str] = []
    if event == "open":
        lines.append(f":rotating_light: *{tag}Incident {slack_escape(incident_id)} opened*: {slack_escape(headline_what)}")
        if sev:
            lines.append(f"*Severity* {sev} - {slack_escape(level.get('description', ''))}; respond < {level.get('response_minutes', '?')} min")
        if component:
            lines.append(f"*Suspected component* {slack_escape(component)}")
        for step in v.get("next") or []:
            lines.append(f"*Next* `{slack_escape(step['command'])}`")
        if esc["page"]:
            lines.append("*Paging* " + slack_escape(", ".join(esc["page"]))
                         + (f"; then {slack_escape(esc['next']['who'])} ({esc['next']['level']}) at +{esc['next']['after_minutes']:g} min"
                            if esc["next"] else ""))
        lines.append("Reply `I am taking ownership of this incident` to claim it (runbook 000 Step 1).")
    elif event == "update":
        lines.append(f":large_orange_circle: *{tag}Incident {slack_escape(incident_id)} update* (+{_minutes(elapsed)}): {slack_escape(note or headline_what)}")
        if esc["current"]:
            lines.append(f"*Escalation* {esc['current']['level']} reached: page {slack_escape(', '.join(esc['page']))}"
                         + (f"; next {slack_escape(esc['next']['who'])} ({esc['next']['level']}) in {esc['next']['in_minutes']:g} min"
                            if esc["next"] else ""))
        for step in v.get("next") or []:
            lines.append(f"*Next* `{slack_escape(step['command'])}`")
    else:
        lines.append(f":white_check_mark: *{tag}Incident {slack_escape(incident_id)} resolved* after {_minutes(elapsed)}")
        lines.append(f"*What happened* {slack_escape(note or headline_what)}")
        lines.append(f"*Root cause* {slack_escape(root_cause or '[to fill in the post-mortem]')}")
        lines.append(f"*How it was resolved* {slack_escape(resolution or '[to fill]')}")
        if detected_at and started_at:
            detect = max(0.0, elapsed_minutes(started_at, _incident_time(detected_at)))
            lines.append(f"*Time to detection* {_minutes(detect)}; *time to resolution* {_minutes(elapsed)}")
        else:
            lines.append(f"*Time to resolution* {_minutes(elapsed)}")
    if table:
        lines.append("```\n" + slack_escape(table) + "\n```")
    text = "\n".join(lines)

    summary = {"open": f"{tag}{headline_what}", "update": f"{tag}{note or headline_what}",
               "resolve": f"{tag}resolved: {note or headline_what}"}[event]
    findings = v.get("findings") or []
    details = {
        "incident_id": incident_id,
        "severity": sev,
        "severity_description": level.get("description"),
        "response_minutes": level.get("response_minutes"),
        "suspected": v.get("suspected") or [],
        "evidence": [f.get("detail") for f in findings][:20],
        "next": [s["command"] for s in v.get("next") or []],
        "page": esc["page"],
        "elapsed_minutes": round(elapsed, 1),
        "triage": table,
    }
    if note:
        details["note"] = note
    hosts = sorted({str(f.get("host")) for f in findings if f.get("host")})
    return {
        "event": event,
        "incident_id": incident_id,
        "severity": sev,
        "dedup_key": dedup_key(incident_id, dedup_prefix),
        "escalation": esc,
        "slack": {"text": text},
        "pagerduty": {
            "action": {"open": "trigger", "update": "acknowledge", "resolve": "resolve"}[event],
            "summary": summary[:1024],
            "severity": (pagerduty_severity or PAGERDUTY_SEVERITY).get(sev or "", "error"),
            "source": ",".join(hosts) or "sre.runbooks",
            "component": component or "",
            "class": findings[0].get("kind", "") if findings else "",
            "custom_details": details,
        },
    }


def _incident_time(value: t.Any) -> datetime.datetime:
    from ansible_collections.sre.runbooks.plugins.plugin_utils._incident import parse_timestamp
    return parse_timestamp(value, "detected_at")
