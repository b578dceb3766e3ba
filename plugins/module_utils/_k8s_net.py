# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Services without ready endpoints and NetworkPolicies that select the affected pods (runbook
001 "Network Partition": `kubectl get endpoints`, `kubectl describe networkpolicies`).

Pure functions over the objects of four list calls (services, endpoints, network policies,
pods), so that unit tests reach every branch; the module makes the calls.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import typing as t


def expression_matches(expr: dict[str, t.Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def selector_matches(selector: t.Optional[dict[str, t.Any]], labels: t.Optional[dict[str, str]]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; {} selects everything."""
    labels = labels or {}
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


def labels_of(obj: dict[str, t.Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def pod_ready(pod: dict[str, t.Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def endpoint_counts(endpoints: t.Optional[dict[str, t.Any]]) -> tuple[int, int]:
    """(ready, not ready) addresses of an Endpoints object (None: no object)."""
    ready = not_ready = 0
    for subset in (endpoints or {}).get("subsets") or []:
        ready += len(subset.get("addresses") or [])
        not_ready += len(subset.get("notReadyAddresses") or [])
    return ready, not_ready


def service_report(service: dict[str, t.Any], endpoints: t.Optional[dict[str, t.Any]],
                   pods: t.Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    selector = spec.get("selector") or {}
    ready, not_ready = endpoint_counts(endpoints)
    selected = [p for p in pods if selector and selector_matches({"matchLabels": selector}, labels_of(p))]
    ready_pods = [p for p in selected if pod_ready(p)]
    report = {"name": meta.get("name"), "type": spec.get("type") or "ClusterIP", "selector": selector,
              "ports": [{"port": p.get("port"), "target_port": p.get("targetPort"), "protocol": p.get("protocol")}
                        for p in spec.get("ports") or []],
              "ready_endpoints": ready, "not_ready_endpoints": not_ready,
              "pods": len(selected), "ready_pods": len(ready_pods),
              "no_ready_endpoints": False, "reason": None}
    if not selector:
        report["reason"] = "no selector: endpoints are managed by hand (or it is an ExternalName service)"
        report["no_ready_endpoints"] = spec.get("type") != "ExternalName" and ready == 0
        if report["no_ready_endpoints"]:
            report["reason"] = "no selector and no ready endpoint address: the manual endpoints are empty"
        return report
    if ready > 0:
        return report
    report["no_ready_endpoints"] = True
    if not selected:
        report["reason"] = (f"no pod matches the selector {selector_text(selector)}: a label typo, "
                            "or the workload is scaled to zero or gone")
    elif not ready_pods:
        report["reason"] = (f"{len(selected)} pods match, none is Ready: the pods fail their readiness "
                            "probe (or their node is NotReady)")
    else:
        report["reason"] = (f"{len(ready_pods)} Ready pods match but the endpoints list none: the endpoints "
                            "controller has not caught up, or the service's ports name no container port")
    return report


def selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def policy_report(policy: dict[str, t.Any], affected: t.Sequence[dict[str, t.Any]]) -> t.Optional[dict[str, t.Any]]:
    """The policy's effect on the affected pods; None when it selects none of them."""
    meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
    pod_selector = spec.get("podSelector") or {}
    selected = [(p.get("metadata") or {}).get("name") for p in affected
                if selector_matches(pod_selector, (p.get("metadata") or {}).get("labels"))]
    if not selected:
        return None
    ingress, egress = spec.get("ingress"), spec.get("egress")
    types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if egress is not None else []))
    return {"name": meta.get("name"), "pod_selector": pod_selector, "policy_types": types,
            "selects": sorted(selected),
            "ingress_rules": len(ingress or []), "egress_rules": len(egress or []),
            "denies_all_ingress": "Ingress" in types and not ingress,
            "denies_all_egress": "Egress" in types and not egress}


def network_report(services: t.Sequence[dict[str, t.Any]], endpoints: t.Sequence[dict[str, t.Any]],
                   policies: t.Sequence[dict[str, t.Any]], pods: t.Sequence[dict[str, t.Any]],
                   wanted: t.Optional[t.Sequence[str]] = None,
                   pod_selector: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
    """The report and its verdict. ``wanted``: service names to check (default every one);
    ``pod_selector``: the affected pods (default the pods of the checked services)."""
    by_name = {(s.get("metadata") or {}).get("name"): s for s in services}
    missing = [n for n in (wanted or []) if n not in by_name]
    names = [n for n in (wanted or sorted(by_name)) if n in by_name]
    endpoints_by_name = {(e.get("metadata") or {}).get("name"): e for e in endpoints}
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    reports = [service_report(by_name[n], endpoints_by_name.get(n), live) for n in names]
    if pod_selector is not None:
        affected = [p for p in live if selector_matches(pod_selector, labels_of(p))]
    else:
        affected = [p for p in live
                    if any(r["selector"] and selector_matches({"matchLabels": r["selector"]}, labels_of(p)) for r in reports)]
    selecting = [r for r in (policy_report(p, affected) for p in policies) if r]
    empty = [r["name"] for r in reports if r["no_ready_endpoints"]]
    isolating = [r["name"] for r in selecting if r["denies_all_ingress"] or r["denies_all_egress"]]
    parts = [f"{r['name']}: no ready endpoints ({r['reason']})" for r in reports if r["no_ready_endpoints"]]
    if missing:
        parts.append(f"no such service: {', '.join(missing)}")
    if isolating:
        parts.append(f"network policies that deny all traffic of a direction to the affected pods: {', '.join(isolating)}")
    elif selecting:
        parts.append(f"network policies selecting the affected pods (read their rules): "
                     f"{', '.join(r['name'] for r in selecting)}")
    healthy = not empty and not missing and not isolating
    summary = (f"healthy, nothing to do: {len(reports)} services have ready endpoints"
               + (f"; {len(selecting)} network policies select the affected pods, none denies all" if selecting else "")
               if healthy else "; ".join(parts) + "; report only")
    return {
        "services": reports,
        "network_policies": selecting,
        "affected_pods": sorted((p.get("metadata") or {}).get("name") for p in affected),
        "verdict": {"healthy": healthy, "act": False, "problem": None,
                    "services_without_endpoints": empty, "missing_services": missing,
                    "isolating_policies": isolating, "summary": summary},
    }
