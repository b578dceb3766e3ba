# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the redis_unavailable role, in Python so every branch is unit-tested:
the role only wires (call, register, `when: findings.act`).

The documentation of each filter is in the YAML file of the same name beside this one
(ansible-doc reads a DOCUMENTATION here for every filter of the file).
"""

from __future__ import annotations

import re
import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._redis import Address, RedisModuleError


def _node(address: str) -> dict[str, t.Any]:
    try:
        parsed = Address.parse(address)
    except RedisModuleError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return {"address": address, "host": parsed.host, "port": parsed.port}


def _pod(address: str, host: str, pods: dict[str, str], statefulset: str) -> str | None:
    if address in pods:
        return pods[address]
    first = host.split(".", 1)[0]
    return first if re.fullmatch(rf"{re.escape(statefulset)}-\d+", first) else None


def redis_verdict(plan: dict[str, t.Any], health: dict[str, t.Any] | None = None, memory_full_ratio: float = 0.95,
                  allow_flush: bool = False, flush_dbs: list[int] | None = None,
                  units: dict[str, str] | None = None, pods: dict[str, str] | None = None,
                  statefulset: str = "redis") -> dict[str, t.Any]:
    plan = plan or {}
    health = health or {}
    units = units or {}
    pods = pods or {}
    flush_dbs = [0] if flush_dbs is None else [int(db) for db in flush_dbs]
    nodes = health.get("nodes") or []
    views = health.get("sentinels") or []
    verdict = plan.get("verdict") or {}
    # A failed plan task (failed_when: false) has a msg and no master.
    plan_error = plan.get("msg") if (plan.get("msg") and "master" not in plan) else None
    steps = (plan.get("plan") or {}).get("steps") or []
    failover_needed = plan_error is None and bool(steps)

    unreachable = [n["address"] for n in nodes if not n.get("reachable")]
    if "dead_nodes" in verdict:
        dead = list(verdict["dead_nodes"])
    else:
        # No plan (it failed): a node that does not answer at all is dead, one that answers busy/LOADING is not.
        dead = [n["address"] for n in nodes if not n.get("reachable")
                and n.get("error_kind") not in ("busy", "loading", "auth")]
    dead_nodes = [_node(a) for a in dead]
    broken = [n["address"] for n in nodes if n.get("reachable") and n.get("role") == "replica"
              and (n.get("replication") or {}).get("master_link_status") != "up"]

    full, flush, refused = [], [], []
    for n in nodes:
        memory = n.get("memory") or {}
        ratio = memory.get("used_ratio")
        if not n.get("reachable") or ratio is None or float(ratio) < float(memory_full_ratio):
            continue
        entry = {"address": n["address"], "role": n.get("role"), "used_human": memory.get("used_human"),
                 "maxmemory_bytes": memory.get("maxmemory_bytes"), "used_ratio": ratio,
                 "maxmemory_policy": memory.get("maxmemory_policy"), "evicted_keys": memory.get("evicted_keys"),
                 "hit_rate": (n.get("stats") or {}).get("hit_rate")}
        full.append(entry)
        if n.get("role") != "master":
            refused.append({"address": n["address"], "reason": "a replica is a read-only copy of its master and "
                                                               "cannot be flushed; raise its maxmemory"})
        elif not allow_flush:
            refused.append({"address": n["address"], "reason": "flushing deletes keys; set "
                                                               "redis_unavailable_allow_flush=true to allow it"})
        else:
            flush.extend(dict(_node(n["address"]), db=db) for db in flush_dbs)

    state = verdict.get("state") or ("plan_failed" if plan_error else "unknown")
    reason = plan_error or verdict.get("reason") or ""
    act = failover_needed or plan_error is not None or bool(dead_nodes) or bool(full)
    if not act and state in ("healthy", "nodes_unreachable"):
        summary = f"healthy, nothing to do: {reason}"
    elif not act:
        summary = f"no action ({state}): {reason}"
    else:
        parts = []
        if plan_error:
            parts.append(f"cannot plan: {plan_error}")
        elif failover_needed:
            parts.append(f"{plan.get('method')} ({state}): {reason}")
        if dead_nodes:
            parts.append("dead: " + ", ".join(d["address"] for d in dead_nodes))
        if full:
            parts.append("memory full: " + ", ".join(f["address"] for f in full))
        summary = "acting: " + "; ".join(parts)
    # The master the run keeps, once the plan has one: nodes that come back (restarted, replaced)
    # re-join it even when they come back as masters.
    has_master = state in ("healthy", "nodes_unreachable", "replicas_astray", "switchover", "master_down",
                           "split_brain") and plan_error is None
    return {
        "state": state, "reason": reason, "summary": summary, "act": act,
        "rejoin_target": plan.get("master") if has_master else None,
        "failover_needed": failover_needed,
        "master": plan.get("master"), "previous_master": plan.get("previous_master"),
        "plan_method": plan.get("method", "none"), "plan_steps": steps,
        "plan_reasons": (plan.get("plan") or {}).get("reasons") or [],
        "plan_error": plan_error, "guardrail": plan.get("guardrail"), "split_brain": plan.get("split_brain"),
        "unreachable": unreachable,
        "unreachable_sentinels": [v["address"] for v in views if not v.get("reachable")],
        "dead_nodes": dead_nodes,
        "restart_units": [dict(d, unit=units[d["address"]]) for d in dead_nodes if d["address"] in units],
        "restart_pods": [dict(d, pod=p) for d in dead_nodes
                         for p in [_pod(d["address"], d["host"], pods, statefulset)] if p],
        "no_pod": [d["address"] for d in dead_nodes if not _pod(d["address"], d["host"], pods, statefulset)],
        "alive_unreachable": verdict.get("alive_unreachable") or [],
        "broken_replicas": broken,
        "memory_full": full, "flush": flush, "flush_refused": refused,
        "flush_note": ("Memory is full and not flushed: "
                       + "; ".join(f"{r['address']}: {r['reason']}" for r in refused) + ".") if refused else "",
        "sentinel_master": health.get("sentinel_master"),
        "sentinels_in_odown": [v["address"] for v in views if v.get("reachable") and v.get("odown")],
    }


def redis_group_leader(group_keys: list[t.Any], hosts: list[str], key: t.Any) -> str:
    """The first host of the play whose replication group is ``key``: it runs the group-wide steps."""
    if len(group_keys) != len(hosts):
        raise AnsibleFilterError("redis_group_leader: one group key per host is needed")
    for host, host_key in zip(hosts, group_keys):
        if host_key == key:
            return host
    raise AnsibleFilterError(f"redis_group_leader: no host of the play has the group {key!r}")


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"redis_verdict": redis_verdict, "redis_group_leader": redis_group_leader}
