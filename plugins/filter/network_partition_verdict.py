# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the network_partition role, in Python so every branch is unit-tested:
the role only wires (probe, register, `when: verdict.act`)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: network_partition_verdict
short_description: Name the cut dependency and the side of the path that is cut, from the probes of every host and the controller
version_added: 0.1.0
description:
  - Reads the registered results of C(sre.runbooks.net_probe) run on every host of the play
    (a mapping host -> result) and, optionally, on the controller, and classifies each
    dependency.
  - C(healthy) - every host reaches it. C(partition) - some vantage points reach it (another
    host, or the controller) and these hosts do not - the hosts' side of the path is cut.
    C(down) - no host reaches it and the controller does not either (or, without a controller
    probe, at least two hosts agree) - the dependency itself is down or its own side is cut; not
    a partition of these hosts. C(unknown) - a single host fails and there is no other vantage
    point, so a partition cannot be told from an outage; nothing is done.
    C(controller_cut) - every host reaches it, the controller does not; the hosts are fine.
  - The one remediation it may ask for is a restart of a stuck resolver unit on this host, and
    only when the evidence agrees - every dependency with a name fails at the name lookup on this
    host with a resolver failure (not C(nxdomain), which is an answer), another vantage point
    resolves those names, TCP to their known address (C(address) of the dependency) works from
    this host, and the resolver unit exists here. A timeout of one dependency never restarts
    anything.
author:
  - sre.runbooks maintainers (@sre-runbooks)
options:
  _input:
    description: Registered C(sre.runbooks.net_probe) results by inventory host name (failed or skipped ones are ignored).
    type: dict
    required: true
  controller:
    description: The registered C(sre.runbooks.net_probe) result from the controller; V({}) or a skipped result when not probed.
    type: dict
    default: {}
  host:
    description: The inventory host this verdict is for (its C(act) and C(restart_units)).
    type: str
    required: true
  restart_resolver:
    description: Whether a stuck resolver unit may be restarted at all.
    type: bool
    default: true
  resolver_units:
    description: The resolver units that may be restarted, in order of preference.
    type: list
    elements: str
    default: [systemd-resolved.service]
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    network_partition_verdict: >-
      {{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'probe')))
         | sre.runbooks.network_partition_verdict(controller=from_controller, host=inventory_hostname) }}
"""

RETURN = r"""
_value:
  description:
    - C(healthy) (this host reaches every dependency), C(act) and C(restart_units) (the resolver
      unit to restart on this host, or none), C(dependencies) (per dependency - C(state),
      C(side), C(unreachable_from), C(reachable_from), C(step), C(category), C(error)),
      C(cut) (dependencies this host cannot reach while others can), C(partitions), C(down),
      C(unknown), C(controller_cut) (names), C(resolver) (the DNS finding on this host, or null),
      C(report) (something for a human) and C(summary).
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

CONTROLLER = "controller"
RESOLVER_FAILURES = ("dns_timeout", "dns_error")


def _usable(result: t.Any) -> bool:
    return isinstance(result, dict) and isinstance(result.get("dependencies"), list) \
        and not result.get("failed") and not result.get("skipped")


def _by_name(result: t.Any) -> dict[str, dict[str, t.Any]]:
    return {d["name"]: d for d in result["dependencies"]} if _usable(result) else {}


def _where(dep: dict[str, t.Any]) -> str:
    return f"{dep.get('host')}:{dep['port']}" if dep.get("port") else str(dep.get("host"))


def classify(name: str, views: dict[str, dict[str, t.Any]], controller: t.Optional[dict[str, t.Any]]) -> dict[str, t.Any]:
    """One dependency, from every host's view (host -> probe result of it) and the controller's."""
    failing = sorted(h for h, d in views.items() if not d["ok"])
    reaching = sorted(h for h, d in views.items() if d["ok"])
    ctl = None if controller is None else bool(controller["ok"])
    unreachable = failing + ([CONTROLLER] if ctl is False else [])
    reachable = reaching + ([CONTROLLER] if ctl else [])
    first = views[failing[0]] if failing else (controller if ctl is False else None)
    entry = {"state": "healthy", "side": None, "where": _where(next(iter(views.values()))),
             "unreachable_from": unreachable, "reachable_from": reachable,
             "step": first["failed_step"] if first else None,
             "category": first["error_category"] if first else None,
             "error": first["error"] if first else None,
             "errors": {h: views[h]["error"] for h in failing}}
    if not failing:
        if ctl is False:
            entry.update(state="controller_cut", side=CONTROLLER,
                         reason=f"every host reaches {name}, the controller does not: the controller's side is cut")
        else:
            entry["reason"] = f"every host reaches {name}"
        return entry
    if reachable:
        entry.update(state="partition", side="hosts",
                     reason=f"{', '.join(failing)} cannot reach {name} ({entry['where']}) while "
                            f"{', '.join(reachable)} can: the side of {', '.join(failing)} is cut")
        return entry
    if ctl is False or len(failing) >= 2:
        seen = f"every host ({', '.join(failing)})" + (" and the controller" if ctl is False else "")
        entry.update(state="down", side="dependency",
                     reason=f"{name} ({entry['where']}) is unreachable from {seen}: the dependency is down "
                            "or its own side is cut, not a partition of these hosts")
        return entry
    entry.update(state="unknown", side=None,
                 reason=f"only {failing[0]} probed {name} and it fails; with no other vantage point (probe "
                        "from the controller or more hosts) a partition cannot be told from an outage")
    return entry


def resolver_finding(mine: dict[str, dict[str, t.Any]], classified: dict[str, dict[str, t.Any]],
                     units: dict[str, t.Any], candidates: t.Sequence[str]) -> t.Optional[dict[str, t.Any]]:
    """Whether this host's resolver is what fails, and which unit to restart. None: DNS is not the problem."""
    named = {n: d for n, d in mine.items() if d.get("dns") is None or not d["dns"].get("skipped")}
    dns_failed = {n: d for n, d in named.items() if d["failed_step"] == "dns"}
    if not dns_failed:
        return None
    finding: dict[str, t.Any] = {"names": sorted(dns_failed), "restart": None}
    answered = sorted(n for n, d in dns_failed.items() if d["error_category"] not in RESOLVER_FAILURES)
    if answered:
        finding["reason"] = (f"a name server answered for {', '.join(answered)} "
                             f"({dns_failed[answered[0]]['error_category']}): the resolver works, the record is wrong")
        return finding
    if len(dns_failed) < 2:
        finding["reason"] = (f"only one name ({', '.join(dns_failed)}) fails to resolve: too little evidence "
                             "that the resolver is stuck; not restarting it")
        return finding
    if len(dns_failed) < len(named):
        finding["reason"] = (f"only {', '.join(sorted(dns_failed))} of {len(named)} names fail to resolve: "
                             "the resolver works for the others; not restarting it")
        return finding
    unresolved_elsewhere = sorted(n for n in dns_failed if classified[n]["state"] != "partition")
    if unresolved_elsewhere:
        finding["reason"] = (f"no other vantage point reaches {', '.join(unresolved_elsewhere)} either: "
                             "not this host's resolver alone")
        return finding
    fallbacks = {n: d.get("tcp") for n, d in dns_failed.items()}
    if not any(f and f.get("ok") for f in fallbacks.values()):
        finding["reason"] = ("no TCP connect by address succeeded (give the dependencies an address): "
                             "cannot tell a stuck resolver from a cut path")
        return finding
    cut_too = sorted(n for n, f in fallbacks.items() if f and not f.get("ok"))
    if cut_too:
        finding["reason"] = f"TCP by address fails too for {', '.join(cut_too)}: the path is cut, not only DNS"
        return finding
    present = [u for u in candidates if (units.get(u) or {}).get("exists")]
    if not present:
        finding["reason"] = (f"names fail to resolve while TCP by address works, but no resolver unit "
                             f"({', '.join(candidates) or 'none configured'}) exists on this host to restart: "
                             "check its /etc/resolv.conf name servers")
        return finding
    finding.update(restart=present[0],
                   reason=f"every name fails to resolve here, other vantage points resolve them and TCP by address "
                          f"works: the resolver is stuck; restart {present[0]}")
    return finding


def network_partition_verdict(probes: t.Any, controller: t.Any = None, host: t.Optional[str] = None,
                              restart_resolver: bool = True,
                              resolver_units: t.Optional[t.Sequence[str]] = None) -> dict[str, t.Any]:
    if not isinstance(probes, dict):
        raise AnsibleFilterError(f"network_partition_verdict expects a mapping host -> net_probe result, "
                                 f"got {type(probes).__name__}")
    if not host:
        raise AnsibleFilterError("network_partition_verdict needs host (the inventory host the verdict is for)")
    candidates = list(resolver_units if resolver_units is not None else ["systemd-resolved.service"])
    hosts = {h: _by_name(r) for h, r in probes.items() if _usable(r)}
    ctl = _by_name(controller) if _usable(controller) else None
    names: list[str] = []
    for view in hosts.values():
        names.extend(n for n in view if n not in names)
    classified = {}
    for name in names:
        views = {h: v[name] for h, v in hosts.items() if name in v}
        classified[name] = classify(name, views, ctl.get(name) if ctl is not None else None)

    mine = hosts.get(host, {})
    by_state = {s: [n for n, c in classified.items() if c["state"] == s]
                for s in ("partition", "down", "unknown", "controller_cut")}
    cut = [n for n in by_state["partition"] if host in classified[n]["unreachable_from"]]
    resolver = None
    if host in hosts:
        resolver = resolver_finding(mine, classified, (probes[host].get("resolver") or {}).get("units") or {},
                                    candidates)
    restart_units = [resolver["restart"]] if resolver and resolver["restart"] and restart_resolver else []
    if resolver and resolver["restart"] and not restart_resolver:
        resolver["reason"] += " (network_partition_restart_resolver is false: report only)"
    problem = None
    if host not in hosts:
        problem = f"{host} has no probe result (the probe failed or was skipped): nothing can be decided for it"
    healthy = problem is None and all(d["ok"] for d in mine.values())

    if problem:
        summary = problem
    elif healthy and not any(by_state.values()):
        summary = f"healthy, nothing to do: {host} reaches all {len(mine)} dependencies"
    else:
        parts = []
        for n in cut:
            c = classified[n]
            parts.append(f"partition: {host} cannot reach {n} ({c['where']}; {c['step']} {c['category']}) while "
                         f"{', '.join(c['reachable_from'])} can: {host}'s side of the path is cut")
        for n in by_state["partition"]:
            if n not in cut:
                parts.append(f"partition elsewhere: {classified[n]['reason']}")
        for n in by_state["down"] + by_state["unknown"] + by_state["controller_cut"]:
            parts.append(f"{classified[n]['state']}: {classified[n]['reason']}")
        if resolver:
            parts.append(f"resolver: {resolver['reason']}")
        if healthy:
            parts.insert(0, f"{host} reaches all {len(mine)} dependencies")
        parts.append(f"restart {', '.join(restart_units)}" if restart_units else "report only, nothing restarted")
        summary = "; ".join(parts)

    return {
        "healthy": healthy,
        "act": bool(restart_units),
        "restart_units": restart_units,
        "report": not healthy or any(by_state.values()),
        "dependencies": classified,
        "cut": cut,
        "partitions": by_state["partition"],
        "down": by_state["down"],
        "unknown": by_state["unknown"],
        "controller_cut": by_state["controller_cut"],
        "resolver": resolver,
        "problem": problem,
        "summary": summary,
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"network_partition_verdict": network_partition_verdict}
