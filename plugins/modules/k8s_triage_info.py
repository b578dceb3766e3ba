#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_triage_info
short_description: Find what is broken in a Kubernetes namespace or cluster, in one pass
version_added: 0.1.0
description:
  - The first five minutes of a Kubernetes incident in one read-only call - workloads below
    their desired replicas, pods in C(CrashLoopBackOff), C(ImagePullBackOff), C(Error) or
    C(Pending) (with the scheduler's reason), restart counts and the last termination reason
    (C(OOMKilled), C(Error), exit code), recent Warning events, nodes that are NotReady or
    under memory, disk or PID pressure, and Services without ready endpoints.
  - Optionally fetches the tail of the previous (crashed) container's log for the worst
    O(previous_logs) pods - what C(kubectl logs --previous) shows.
  - One list call per kind, never one per pod, so it stays fast on namespaces with hundreds
    of pods. Only the optional log tails cost one request per pod.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.k8s
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Read-only; there is nothing to diff.
  idempotent:
    support: full
    description: Changes nothing, ever.
options:
  namespace:
    description:
      - Namespace to examine. Omit (or set O(all_namespaces=true)) for every namespace.
    type: str
  all_namespaces:
    description: Examine every namespace, even when O(namespace) is set by a default.
    type: bool
    default: false
  label_selectors:
    description:
      - Only pods and workloads with these labels, as in C(kubectl -l), for example
        V(app=checkout) or V(tier in (web,api)). All selectors must match.
    type: list
    elements: str
    default: []
  previous_logs:
    description:
      - Fetch the previous container's log tail for the worst N crashing pods (0 fetches none).
    type: int
    default: 0
  log_lines:
    description: Lines of log to return per pod when O(previous_logs) is set.
    type: int
    default: 20
  event_window:
    description:
      - Only Warning events seen within this window. Seconds or a duration such as V(15m), V(1h).
    type: str
    default: 1h
  max_events:
    description: The most recent Warning events to return.
    type: int
    default: 50
  max_pods:
    description:
      - The most unhealthy pods to list (worst first); RV(summary) still counts them all.
    type: int
    default: 100
  include_nodes:
    description: Report nodes (a cluster-scoped read; turn off when the credentials cannot list nodes).
    type: bool
    default: true
  include_services:
    description: Report Services that select pods but have no ready endpoint.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: What is wrong in the checkout namespace?
  sre.runbooks.k8s_triage_info:
    kubeconfig: "{{ k8s_kubeconfig }}"
    namespace: checkout
    previous_logs: 3
  register: triage
  delegate_to: localhost

- name: Stop if a pod was OOMKilled
  ansible.builtin.assert:
    that: triage.summary.oom_killed == 0
    fail_msg: "{{ triage.unhealthy_pods | selectattr('oom_killed') | map(attribute='name') | list }} were OOMKilled"

- name: The whole cluster, only the API gateway's pods
  sre.runbooks.k8s_triage_info:
    all_namespaces: true
    label_selectors: [app.kubernetes.io/name=api-gateway]
"""

RETURN = r"""
healthy:
  description:
    - True when nothing below was found - no unhealthy pod, degraded workload, bad node or empty Service.
    - Pods that restarted and run Ready again are listed (reason V(Restarted)) but do not count,
      unless their last termination was OOMKilled.
  returned: always
  type: bool
summary:
  description: Counts, for conditions and the incident timeline.
  returned: always
  type: dict
  contains:
    pods_total: {description: Pods examined., type: int}
    pods_unhealthy: {description: Pods not Running-and-Ready (or restarted)., type: int}
    crashloop: {description: Pods with a container in CrashLoopBackOff., type: int}
    oom_killed: {description: Pods whose last container termination was OOMKilled., type: int}
    image_pull: {description: Pods that cannot pull an image., type: int}
    pending: {description: Pods in phase Pending., type: int}
    workloads_degraded: {description: "Deployments, StatefulSets and DaemonSets below desired.", type: int}
    nodes_not_ready: {description: Nodes whose Ready condition is not True., type: int}
    nodes_under_pressure: {description: "Nodes with memory, disk or PID pressure.", type: int}
    services_without_endpoints: {description: Services with a selector and no ready endpoint., type: int}
    warning_events: {description: Warning events within O(event_window)., type: int}
    by_reason: {description: Unhealthy pods per primary reason., type: dict}
  sample: {"pods_total": 500, "pods_unhealthy": 50, "crashloop": 50, "oom_killed": 0}
unhealthy_pods:
  description: Unhealthy pods, worst first (crash-looping and OOMKilled first, then by restarts).
  returned: always
  type: list
  elements: dict
  contains:
    namespace: {description: Namespace., type: str}
    name: {description: Pod name., type: str}
    phase: {description: Pod phase., type: str}
    reason: {description: "The most severe reason, for example V(CrashLoopBackOff).", type: str}
    reasons: {description: Every reason found., type: list, elements: str}
    node: {description: Node the pod is bound to., type: str}
    owner: {description: "Owning workload: kind, name (a ReplicaSet is resolved to its Deployment).", type: dict}
    restart_count: {description: Restarts summed over containers., type: int}
    oom_killed: {description: Whether a container's last termination was OOMKilled., type: bool}
    last_termination_reasons: {description: Distinct last termination reasons., type: list, elements: str}
    containers:
      description: "Per container: name, ready, state, reason, restart_count, last_termination (reason, exit_code, finished_at)."
      type: list
      elements: dict
    memory: {description: Memory limit and request per container., type: dict}
    scheduler_message: {description: Why the scheduler could not place a Pending pod., type: str}
    previous_log:
      description:
        - Tail of the previous container's log (only for the worst O(previous_logs) pods), with
          the values of secret-looking keys, URL credentials and bearer tokens masked.
      type: str
workloads:
  description: Workloads below their desired state.
  returned: always
  type: list
  elements: dict
  contains:
    kind: {description: "Deployment, StatefulSet or DaemonSet.", type: str}
    name: {description: Name., type: str}
    desired: {description: Desired replicas., type: int}
    ready: {description: Ready replicas., type: int}
    available: {description: Available replicas., type: int}
    updated: {description: Replicas on the current template., type: int}
    stuck_reason: {description: For example ProgressDeadlineExceeded with its message., type: str}
nodes:
  description: Nodes that are NotReady, unschedulable or under pressure.
  returned: when O(include_nodes=true)
  type: list
  elements: dict
  contains:
    name: {description: Node name., type: str}
    ready: {description: Whether Ready is True., type: bool}
    unschedulable: {description: Cordoned., type: bool}
    problems: {description: "Conditions in a bad state, for example V(Ready=False: KubeletNotReady).", type: list, elements: str}
    pods: {description: Pods bound to the node (of those examined)., type: int}
    pod_list:
      description:
        - The pods bound to the node (of those examined), for drain and verify decisions - namespace,
          name, owner_kind, phase, terminating (marked for deletion), local_storage (an emptyDir
          volume), mirror (a static pod).
      type: list
      elements: dict
services_without_endpoints:
  description: Services that select pods but have no ready endpoint address.
  returned: when O(include_services=true)
  type: list
  elements: dict
  contains:
    namespace: {description: Namespace., type: str}
    name: {description: Service name., type: str}
    selector: {description: The Service's selector., type: dict}
    not_ready_addresses: {description: Endpoints that exist but are not ready., type: int}
events:
  description: Recent Warning events, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    object: {description: Kind/name of the object., type: str}
    reason: {description: Event reason., type: str}
    message: {description: Event message (300 characters at most)., type: str}
    count: {description: How often it happened., type: int}
    last_seen: {description: Timestamp., type: str}
elapsed_seconds:
  description: Time spent, for the benchmark and the timeline.
  returned: always
  type: float
"""

import concurrent.futures
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration, utc_now
from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    K8sError,
    connect,
    event_summary,
    k8s_argument_spec,
    mask_log,
    pod_problem,
    q,
    workload_health,
)

PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def scoped(namespace, resource, group="/api/v1"):
    if namespace:
        return f"{group}/namespaces/{q(namespace)}/{resource}"
    return f"{group}/{resource}"


def pod_on_node(pod):
    """What a drain and its verify need to know about one pod on a node."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    owner = next((ref.get("kind") for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    return {"namespace": meta.get("namespace"), "name": meta.get("name"), "owner_kind": owner,
            "phase": (pod.get("status") or {}).get("phase"),
            "terminating": bool(meta.get("deletionTimestamp")),
            "local_storage": any("emptyDir" in (v or {}) for v in spec.get("volumes") or []),
            "mirror": "kubernetes.io/config.mirror" in (meta.get("annotations") or {})}


def node_report(nodes):
    report, not_ready, pressure = [], set(), 0
    for node in nodes:
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        problems = [f"{c['type']}={c['status']}: {c.get('reason') or ''}".rstrip(": ") for c in conditions
                    if (c["type"] == "Ready" and c["status"] != "True")
                    or (c["type"] in PRESSURE and c["status"] == "True")]
        under_pressure = any(c["type"] in PRESSURE and c["status"] == "True" for c in conditions)
        unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        if not ready:
            not_ready.add(node["metadata"]["name"])
        pressure += under_pressure
        if problems or unschedulable:
            report.append({"name": node["metadata"]["name"], "ready": ready, "unschedulable": unschedulable,
                           "problems": problems, "under_pressure": under_pressure,
                           "taints": [f"{tt.get('key')}:{tt.get('effect')}"
                                      for tt in (node.get("spec") or {}).get("taints") or []]})
    return report, not_ready, pressure


def empty_services(services, endpoints):
    by_name = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints}
    found = []
    for svc in services:
        spec = svc.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            continue
        key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
        subsets = (by_name.get(key) or {}).get("subsets") or []
        ready = sum(len(s.get("addresses") or []) for s in subsets)
        if ready == 0:
            found.append({"namespace": key[0], "name": key[1], "selector": spec["selector"],
                          "not_ready_addresses": sum(len(s.get("notReadyAddresses") or []) for s in subsets)})
    return found


def main():
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        namespace=dict(type="str"),
        all_namespaces=dict(type="bool", default=False),
        label_selectors=dict(type="list", elements="str", default=[]),
        previous_logs=dict(type="int", default=0),
        log_lines=dict(type="int", default=20),
        event_window=dict(type="str", default="1h"),
        max_events=dict(type="int", default=50),
        max_pods=dict(type="int", default=100),
        include_nodes=dict(type="bool", default=True),
        include_services=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    started = time.monotonic()
    try:
        window = parse_duration(params["event_window"], "event_window")
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    for option in ("previous_logs", "log_lines", "max_events", "max_pods"):
        if params[option] < 0:
            module.fail_json(msg=f"{option} must not be negative")
    namespace = None if params["all_namespaces"] else params["namespace"]
    selector = ",".join(s for s in params["label_selectors"] if s) or None
    where = f"namespace {namespace}" if namespace else "all namespaces"
    api = connect(module)
    now = utc_now()

    calls = {
        "pods": (scoped(namespace, "pods"), {"labelSelector": selector}),
        "deployments": (scoped(namespace, "deployments", "/apis/apps/v1"), {"labelSelector": selector}),
        "statefulsets": (scoped(namespace, "statefulsets", "/apis/apps/v1"), {"labelSelector": selector}),
        "daemonsets": (scoped(namespace, "daemonsets", "/apis/apps/v1"), {"labelSelector": selector}),
        "events": (scoped(namespace, "events"), {"fieldSelector": "type=Warning"}),
    }
    if params["include_nodes"]:
        calls["nodes"] = ("/api/v1/nodes", {})
    if params["include_services"]:
        calls["services"] = (scoped(namespace, "services"), {})
        calls["endpoints"] = (scoped(namespace, "endpoints"), {})
    # The list calls are independent: run them side by side so the slowest one sets the pace.
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {kind: pool.submit(api.items, path, **query) for kind, (path, query) in calls.items()}
            lists = {kind: future.result() for kind, future in futures.items()}
    except K8sError as exc:
        hint = ""
        if exc.status == 403:
            hint = "; the credentials may not list this kind (set include_nodes=false for namespace-only access)"
        module.fail_json(msg=f"cannot read {where}: {exc}{hint}")

    nodes, not_ready, pressure = node_report(lists.get("nodes", []))
    problems = [p for p in (pod_problem(pod, now, not_ready) for pod in lists["pods"]) if p]
    problems.sort(key=lambda p: (-p["score"], p["namespace"], p["name"]))

    log_targets = [p for p in problems if p["restart_count"] > 0][: params["previous_logs"]]

    def previous_log(problem):
        container = next((c["name"] for c in problem["containers"] if c["last_termination"]), None)
        if container is None:
            return None
        try:
            # A crashing app often logs its config on the way down: mask before it leaves the module.
            return mask_log(api.request(
                "GET", f"/api/v1/namespaces/{q(problem['namespace'])}/pods/{q(problem['name'])}/log",
                {"container": container, "previous": "true", "tailLines": params["log_lines"]}, raw=True))
        except K8sError as exc:
            return f"(no previous log: {exc})"

    if log_targets:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(log_targets))) as pool:
            for problem, text in zip(log_targets, pool.map(previous_log, log_targets)):
                problem["previous_log"] = text

    workloads = []
    for kind, key in (("Deployment", "deployments"), ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")):
        for obj in lists[key]:
            health = workload_health(kind, obj)
            if not health["complete"] or health["available"] < health["desired"]:
                workloads.append(health)

    events = [event_summary(e, now) for e in lists["events"]]
    events = [e for e in events if e["age_seconds"] is None or e["age_seconds"] <= window]
    events.sort(key=lambda e: e["last_seen"] or "", reverse=True)

    services = empty_services(lists.get("services", []), lists.get("endpoints", [])) if params["include_services"] else []
    by_reason = {}
    for p in problems:
        by_reason[p["reason"]] = by_reason.get(p["reason"], 0) + 1
    node_pods = {}
    for pod in lists["pods"]:
        node_name = (pod.get("spec") or {}).get("nodeName")
        node_pods.setdefault(node_name, []).append(pod)
    for node in nodes:
        bound = node_pods.get(node["name"], [])
        node["pods"] = len(bound)
        node["pod_list"] = [pod_on_node(pod) for pod in bound]

    summary = {
        "namespace": namespace,
        "pods_total": len(lists["pods"]),
        "pods_unhealthy": len(problems),
        "crashloop": sum(1 for p in problems if "CrashLoopBackOff" in p["reasons"]),
        "oom_killed": sum(1 for p in problems if p["oom_killed"]),
        "image_pull": sum(1 for p in problems if {"ImagePullBackOff", "ErrImagePull"} & set(p["reasons"])),
        "pending": sum(1 for p in problems if p["phase"] == "Pending"),
        "workloads_degraded": len(workloads),
        "nodes_not_ready": len(not_ready),
        "nodes_under_pressure": pressure,
        "services_without_endpoints": len(services),
        "warning_events": len(events),
        "by_reason": by_reason,
    }
    for p in problems:
        p.pop("score", None)
    # A pod that restarted and runs Ready again is reported, but only an OOMKill makes it a problem.
    serious = [p for p in problems if p["reason"] != "Restarted" or p["oom_killed"]]
    healthy = not (serious or workloads or not_ready or pressure or services)
    module.exit_json(changed=False, healthy=healthy, summary=summary,
                     unhealthy_pods=problems[: params["max_pods"]], workloads=workloads, nodes=nodes,
                     services_without_endpoints=services, events=events[: params["max_events"]],
                     elapsed_seconds=round(time.monotonic() - started, 3))


if __name__ == "__main__":
    main()
