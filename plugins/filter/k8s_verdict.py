# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the Kubernetes runbooks, as Jinja filters over module results.

Roles only wire: they register what the k8s_* modules found, pass it through one of these
filters and act on ``verdict.act``. Every branch is unit-tested (tests/unit/k8s).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_verdict
short_description: Decide what a Kubernetes runbook may do, from what the k8s_* modules found
version_added: 0.2.0
description:
  - Takes the registered results of C(sre.runbooks.k8s_rollout) and C(sre.runbooks.k8s_triage_info)
    and returns a verdict - whether to act, which remedy, and why - so that roles hold no
    decision logic in Jinja.
  - V(api_gateway_down) decides whether the gateway needs help, and whether to roll back
    (every failing pod belongs to the newest rollout) or to restart.
  - V(api_gateway_down_bounce) decides whether the runbook's last resort, scaling to 0 and
    back, is allowed - only when no replica was available before and none is after a restart
    that really ran. Never while some replicas serve, never after a restart that itself failed,
    never in check mode.
  - V(crashloop_candidates) lists the workloads (kind, name) that own crash-looping pods.
  - V(crashloop) decides, per candidate, whether to roll back - only when every crashing pod
    belongs to the live release and the previous release has healthy, running pods - or to
    report - OOMKilled pods (memory exhaustion), a missing Secret or ConfigMap key, crashing
    pods of an older release, no earlier release, or an unhealthy one - and applies the
    C(max_workloads) guardrail.
  - V(memory_exhaustion) lists the workloads whose containers were OOMKilled (and which
    containers), and allows a raise only with O(allow_raise) and within C(max_workloads).
  - V(node_failure) picks the nodes to take out (the NotReady ones, or O(nodes)), applies the
    C(max_nodes) guardrail, and names the pods a drain would refuse to move (an emptyDir volume
    without O(delete_emptydir_data), a pod no controller manages without O(force)) before any
    change. On a NotReady node the drain does not wait for deletions a dead kubelet never confirms.
  - V(node_failure_verify) is done when nothing but DaemonSet pods, finished pods, and pods marked
    for deletion on a NotReady node (a dead kubelet leaves them Terminating) is left on the nodes,
    and the workloads that had pods there are whole again.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
positional: decision
options:
  _input:
    description:
      - For V(api_gateway_down) - the registered result of C(k8s_rollout action=status) before
        acting.
      - For V(api_gateway_down_bounce) - the same registered result (the state before acting).
      - For V(crashloop_candidates) - the registered result of C(k8s_triage_info).
      - For V(crashloop) - the output of V(crashloop_candidates).
      - For V(memory_exhaustion) - the registered result of C(k8s_triage_info).
      - For V(node_failure) - the registered result of C(k8s_triage_info all_namespaces=true) before acting.
      - For V(node_failure_verify) - the same, after the drain.
    type: raw
    required: true
  decision:
    description: Which decision to take.
    type: str
    required: true
    choices: [api_gateway_down, api_gateway_down_bounce, crashloop_candidates, crashloop, memory_exhaustion,
              node_failure, node_failure_verify]
  triage:
    description:
      - For V(api_gateway_down) - the registered result of C(k8s_triage_info) on the gateway's pods.
      - For V(crashloop) - the registered result of C(k8s_triage_info) in the namespace.
    type: dict
  reasons:
    description: For V(crashloop_candidates) and V(crashloop) - pod reasons that count as crash-looping.
    type: list
    elements: str
  workloads:
    description: For V(crashloop_candidates) - only workloads with these names (empty means all).
    type: list
    elements: str
  rollouts:
    description: For V(crashloop) - the loop results of C(k8s_rollout action=status) over the candidates.
    type: list
    elements: dict
  configs:
    description: For V(crashloop) - the loop results of C(k8s_config_check) over the candidates.
    type: list
    elements: dict
  allow_raise:
    description: For V(memory_exhaustion) - whether raising limits is allowed at all.
    type: bool
    default: false
  max_workloads:
    description: For V(crashloop) and V(memory_exhaustion) - guardrail, never change more workloads than this in one run.
    type: int
    default: 3
  nodes:
    description: For V(node_failure) - the nodes to take out; empty means every NotReady node.
    type: list
    elements: str
  max_nodes:
    description: For V(node_failure) - guardrail, never take out more nodes than this in one run.
    type: int
    default: 1
  delete_emptydir_data:
    description: For V(node_failure) - the drain may delete emptyDir data (C(--delete-emptydir-data)).
    type: bool
    default: false
  force:
    description: For V(node_failure) - the drain may delete pods no controller manages.
    type: bool
    default: false
  drain_wait_timeout:
    description: For V(node_failure) - seconds a drain of a Ready node waits for its pods to go.
    type: int
    default: 120
  targets:
    description: For V(node_failure_verify) - the nodes that were drained.
    type: list
    elements: str
  before:
    description: For V(node_failure_verify) - the triage result before acting (to find the affected workloads).
    type: dict
  crash_reasons:
    description: For V(api_gateway_down) - pod reasons that count as a failing release.
    type: list
    elements: str
  undo_enabled:
    description: For V(api_gateway_down) and V(crashloop) - whether rolling back a bad rollout is allowed.
    type: bool
    default: true
  restart:
    description: For V(api_gateway_down_bounce) - the registered result of the C(k8s_rollout action=restart) task.
    type: dict
  enabled:
    description: For V(api_gateway_down_bounce) - whether the scale bounce is allowed at all.
    type: bool
    default: true
  check_mode:
    description: For V(api_gateway_down_bounce) - the run is in check mode (never bounce).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    gateway_verdict: >-
      {{ gateway_status | sre.runbooks.k8s_verdict('api_gateway_down', triage=gateway_triage,
         crash_reasons=['CrashLoopBackOff', 'Error'], undo_enabled=true) }}

- name: Scale to 0 and back only when nothing serves and the restart ran
  ansible.builtin.set_fact:
    bounce: >-
      {{ gateway_status | sre.runbooks.k8s_verdict('api_gateway_down_bounce', restart=gateway_restart,
         enabled=true, check_mode=ansible_check_mode) }}

- name: Which crash-looping workloads to roll back, and which only to report
  ansible.builtin.set_fact:
    crash_verdict: >-
      {{ candidates | sre.runbooks.k8s_verdict('crashloop', triage=triage, rollouts=rollouts.results,
         configs=configs.results, reasons=['CrashLoopBackOff'], max_workloads=3) }}
"""

RETURN = r"""
_value:
  description: The verdict (for V(crashloop_candidates), a list of C(kind)/C(name) dicts).
  type: raw
  contains:
    act:
      description: Whether to act (for V(api_gateway_down_bounce), whether to scale to 0 and back).
      type: bool
    stop:
      description:
        - For V(api_gateway_down_bounce) - the restart did not heal and nothing more may be tried;
          the role stops and reports the reason.
        - For V(crashloop) - a guardrail tripped; the role fails with RV(_value.guardrail).
      type: bool
    remedy:
      description: For V(api_gateway_down) - V(none), V(undo) or V(restart).
      type: str
    reason:
      description: Why, in one sentence.
      type: str
    rollback:
      description: For V(crashloop) - the workloads to roll back (kind, name).
      type: list
      elements: dict
    report:
      description: For V(crashloop) - the workloads only reported (kind, name, reason).
      type: list
      elements: dict
    guardrail:
      description: For V(crashloop), V(memory_exhaustion) and V(node_failure) - the guardrail message when one tripped (the role fails with it), else null.
      type: str
    targets:
      description: For V(memory_exhaustion) - the workloads to resize (kind, name, containers).
      type: list
      elements: dict
    oom_pods:
      description: For V(memory_exhaustion) - the OOMKilled pods.
      type: list
      elements: str
    nodes:
      description: For V(node_failure) - the nodes to take out.
      type: list
      elements: str
    drain:
      description: For V(node_failure) - one entry per node to drain (name, wait_timeout).
      type: list
      elements: dict
    blockers:
      description: For V(node_failure) - the pods a drain would refuse to move (node, pod, why).
      type: list
      elements: dict
    done:
      description: For V(node_failure_verify) - whether the nodes are empty and the workloads whole.
      type: bool
    remaining:
      description: For V(node_failure_verify) - pods still on the nodes.
      type: list
      elements: str
    degraded:
      description: For V(node_failure_verify) - affected workloads not yet whole elsewhere.
      type: list
      elements: str
    available:
      description: Available replicas the decision saw.
      type: int
    desired:
      description: Desired replicas the decision saw.
      type: int
"""

import typing as t

from ansible.errors import AnsibleFilterError

RESTART_RAN = ("done", "already done")


def _status(result: t.Any) -> dict[str, t.Any]:
    return dict((result or {}).get("status") or {}) if isinstance(result, dict) else {}


def _int(value: t.Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def api_gateway_down(before: dict[str, t.Any], triage: dict[str, t.Any] | None = None,
                     crash_reasons: list[str] | None = None, undo_enabled: bool = True) -> dict[str, t.Any]:
    """Act when the gateway is not fully available; undo when the newest rollout is what fails."""
    status = _status(before)
    desired, available = _int(status.get("desired")), _int(status.get("available"))
    verdict = {"act": False, "remedy": "none", "available": available, "desired": desired}
    if not status:
        return {**verdict, "reason": "no rollout status: cannot judge the gateway, so nothing is done"}
    if status.get("complete") and available >= desired:
        return {**verdict, "reason": f"healthy: {available}/{desired} available, rollout complete; nothing to do"}
    reasons = set(crash_reasons or [])
    failing = [p for p in (triage or {}).get("unhealthy_pods") or []
               if p.get("owner") and p.get("reason") in reasons]
    replicasets = {(p.get("owner") or {}).get("replicaset") or "" for p in failing}
    live_rs = (before or {}).get("replicaset")
    revision = _int((before or {}).get("revision"), 1)
    state = f"{available}/{desired} available"
    if undo_enabled and revision > 1 and failing and live_rs and replicasets == {live_rs}:
        return {**verdict, "act": True, "remedy": "undo",
                "reason": f"{state}; every failing pod ({len(failing)}) belongs to the newest rollout {live_rs} "
                          f"(revision {revision}): roll it back"}
    return {**verdict, "act": True, "remedy": "restart",
            "reason": f"{state}; the failing pods are not all from the newest rollout: restart"}


def api_gateway_down_bounce(before: dict[str, t.Any], restart: dict[str, t.Any] | None = None,
                            enabled: bool = True, check_mode: bool = False) -> dict[str, t.Any]:
    """Scale to 0 and back only in a full outage that a restart, which really ran, did not heal."""
    before_status = _status(before)
    restart = restart if isinstance(restart, dict) else {}
    after_status = _status(restart)
    verdict = {"act": False, "stop": False,
               "available": _int(after_status.get("available", before_status.get("available"))),
               "desired": _int(before_status.get("desired"))}
    if check_mode:
        return {**verdict, "reason": "check mode: never scale"}
    if not restart or restart.get("skipped"):
        return {**verdict, "reason": "no restart ran, so no scale bounce"}
    failure = restart.get("msg") or "no restart action recorded"
    ran = [a for a in restart.get("actions") or [] if (a or {}).get("result") in RESTART_RAN]
    if not ran or not after_status:
        return {**verdict, "stop": True,
                "reason": f"the restart itself failed ({failure}); not scaling to 0 on top of it"}
    if after_status.get("complete"):
        return {**verdict, "reason": "the restart healed the gateway"}
    if not enabled:
        return {**verdict, "stop": True, "reason": f"the restart did not heal ({failure}); scale bounce disabled"}
    serving = max(_int(before_status.get("available")), _int(after_status.get("available")))
    if serving > 0:
        return {**verdict, "stop": True, "available": serving,
                "reason": f"the restart did not heal ({failure}); {serving} replica(s) still serve: scaling to 0 "
                          "would turn a partial outage into a full one, so not scaling"}
    return {**verdict, "act": True, "available": 0,
            "reason": "no replica was available before or after the restart (a full outage already): "
                      "scale to 0 and back"}


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _workload(item: t.Any) -> tuple[str, str]:
    item = item or {}
    return str(item.get("kind")), str(item.get("name"))


def crashloop_candidates(triage: dict[str, t.Any], reasons: list[str] | None = None,
                         workloads: list[str] | None = None) -> list[dict[str, str]]:
    """The workloads (kind, name) that own crash-looping pods, optionally only those named."""
    wanted = set(workloads or [])
    found: list[dict[str, str]] = []
    for pod in (triage or {}).get("unhealthy_pods") or []:
        owner = pod.get("owner") or {}
        if pod.get("reason") not in set(reasons or []) or owner.get("kind") not in WORKLOAD_KINDS:
            continue
        if wanted and owner.get("name") not in wanted:
            continue
        entry = {"kind": owner["kind"], "name": owner["name"]}
        if entry not in found:
            found.append(entry)
    return found


def _by_workload(results: list[dict[str, t.Any]] | None) -> dict[tuple[str, str], dict[str, t.Any]]:
    return {_workload(r.get("item")): r for r in results or [] if isinstance(r, dict)}


def crashloop_workload(workload: dict[str, str], crashing: list[dict[str, t.Any]], rollout: dict[str, t.Any] | None,
                       config: dict[str, t.Any] | None) -> tuple[bool, str]:
    """(roll back?, why) for one workload whose pods crash."""
    oom = sorted(p["name"] for p in crashing if p.get("oom_killed") or p.get("reason") == "OOMKilled")
    if oom:
        return False, (f"pods {', '.join(oom)} are OOMKilled: that is memory exhaustion (runbook memory_exhaustion), "
                       "not a bad release; not rolling back")
    missing = [m.get("description") or f"{m.get('kind')} {m.get('name')} key {m.get('key')}"
               for m in (config or {}).get("missing") or []]
    if config is None or config.get("failed") or config.get("skipped"):
        return False, f"the configuration check did not run ({(config or {}).get('msg', 'no result')}); not rolling back"
    if missing:
        return False, (f"missing configuration: {'; '.join(missing)}. Create the key or fix the reference; "
                       "a rollback would hide it, so not rolling back")
    releases = (rollout or {}).get("releases")
    if not releases or (rollout or {}).get("failed"):
        return False, f"no release information ({(rollout or {}).get('msg', 'no result')}); not rolling back"
    live, previous = releases.get("live") or {}, releases.get("previous")
    names = sorted(p["name"] for p in crashing)
    outside = sorted(set(names) - set(live.get("crashing") or []) - set(live.get("unhealthy") or []))
    if outside:
        return False, (f"crashing pods {', '.join(outside)} do not belong to the live release (revision "
                       f"{live.get('revision')}): the release is not what fails; not rolling back")
    if not previous:
        return False, f"no earlier release to return to (live revision {live.get('revision')}); not rolling back"
    if previous.get("unhealthy"):
        return False, (f"the previous release (revision {previous.get('revision')}) is unhealthy too "
                       f"({', '.join(previous['unhealthy'])}); a rollback would not heal; not rolling back")
    if not previous.get("ready"):
        return False, (f"no pod of the previous release (revision {previous.get('revision')}) runs, so nothing "
                       "shows it was healthy; not rolling back (roll back by hand with k8s_rollout action=undo)")
    return True, (f"the crashing pods ({', '.join(names)}) all belong to the live release (revision "
                  f"{live.get('revision')}) and {previous['ready']} pod(s) of the previous release (revision "
                  f"{previous.get('revision')}) are healthy: roll back")


def crashloop(candidates: list[dict[str, str]], triage: dict[str, t.Any] | None = None,
              rollouts: list[dict[str, t.Any]] | None = None, configs: list[dict[str, t.Any]] | None = None,
              reasons: list[str] | None = None, undo_enabled: bool = True, max_workloads: int = 3) -> dict[str, t.Any]:
    """Which crash-looping workloads to roll back, which to report, and the guardrail."""
    rollout_of, config_of = _by_workload(rollouts), _by_workload(configs)
    rollback: list[dict[str, str]] = []
    report: list[dict[str, str]] = []
    for workload in candidates or []:
        key = _workload(workload)
        crashing = [p for p in (triage or {}).get("unhealthy_pods") or []
                    if _workload(p.get("owner")) == key and p.get("reason") in set(reasons or [])]
        act, why = crashloop_workload(workload, crashing, rollout_of.get(key), config_of.get(key))
        entry = {"kind": key[0], "name": key[1], "reason": why}
        (rollback if act else report).append(entry)
    verdict = {"act": False, "stop": False, "rollback": [], "report": report, "guardrail": None}
    if not candidates:
        return {**verdict, "reason": "healthy: no crash-looping pod; nothing to do"}
    if not rollback:
        return {**verdict, "reason": "nothing to roll back: " + " | ".join(f"{r['name']}: {r['reason']}" for r in report)}
    if not undo_enabled:
        return {**verdict, "report": report + rollback,
                "reason": "rollback disabled (crashloop_undo=false): reporting only"}
    if len(rollback) > int(max_workloads):
        names = ", ".join(r["name"] for r in rollback)
        return {**verdict, "report": report + rollback, "stop": True,
                "guardrail": (f"guardrail 'crashloop_max_workloads' tripped: {len(rollback)} workloads crash-loop "
                              f"({names}), more than {max_workloads}; this looks like a platform failure rather "
                              f"than a bad release, so nothing was rolled back. To override: "
                              f"-e crashloop_max_workloads={len(rollback)} or list crashloop_workloads"),
                "reason": "too many workloads to roll back at once"}
    return {**verdict, "act": True, "rollback": [{"kind": r["kind"], "name": r["name"]} for r in rollback],
            "reason": " | ".join(f"{r['name']}: {r['reason']}" for r in rollback + report)}


def _nodes(triage: dict[str, t.Any] | None) -> dict[str, dict[str, t.Any]]:
    return {n.get("name"): n for n in (triage or {}).get("nodes") or [] if isinstance(n, dict)}


def node_failure(before: dict[str, t.Any], nodes: list[str] | None = None, max_nodes: int = 1,
                 delete_emptydir_data: bool = False, force: bool = False,
                 drain_wait_timeout: int = 120) -> dict[str, t.Any]:
    """The nodes to take out, the guardrail, and the pods that would block their drain."""
    reported = _nodes(before)
    not_ready = [name for name, node in reported.items() if not node.get("ready")]
    targets = list(nodes or not_ready)
    verdict: dict[str, t.Any] = {"act": False, "stop": False, "nodes": targets, "drain": [], "blockers": [],
                                 "guardrail": None}
    if not targets:
        return {**verdict, "reason": "healthy: every node is Ready; nothing to do"}
    if len(targets) > int(max_nodes):
        return {**verdict, "stop": True, "reason": "too many nodes to take out at once",
                "guardrail": (f"guardrail 'node_failure_max_nodes' tripped: {len(targets)} nodes are NotReady "
                              f"({', '.join(targets)}), more than {max_nodes}; draining them all could leave nowhere "
                              "to run. This looks like a network or control-plane problem; nothing was changed. "
                              f"To override: -e node_failure_max_nodes={len(targets)} or list node_failure_nodes.")}
    blockers = []
    for name in targets:
        for pod in (reported.get(name) or {}).get("pod_list") or []:
            if pod.get("terminating") or pod.get("mirror") or pod.get("owner_kind") == "DaemonSet" \
                    or pod.get("phase") in ("Succeeded", "Failed"):
                continue
            where = f"{pod.get('namespace')}/{pod.get('name')} on {name}"
            if pod.get("local_storage") and not delete_emptydir_data:
                blockers.append({"node": name, "pod": where,
                                 "why": "has an emptyDir volume, whose data an eviction deletes; the runbook drains "
                                        "with --delete-emptydir-data: set node_failure_delete_emptydir_data=true"})
            elif not pod.get("owner_kind") and not force:
                blockers.append({"node": name, "pod": where,
                                 "why": "is not managed by a controller, so nothing would recreate it; "
                                        "set node_failure_force=true to delete it anyway"})
    if blockers:
        return {**verdict, "stop": True, "blockers": blockers,
                "reason": "the drain would be refused: " + "; ".join(f"{b['pod']} {b['why']}" for b in blockers)}
    # A dead kubelet never confirms a deletion: do not wait for it; verify counts such pods as gone.
    drain = [{"name": name, "wait_timeout": 1 if name in not_ready else int(drain_wait_timeout)} for name in targets]
    return {**verdict, "act": True, "drain": drain,
            "reason": f"cordon and drain {', '.join(targets)}"
                      + (f" (NotReady: {', '.join(n for n in targets if n in not_ready)})" if not_ready else "")}


def node_failure_verify(after: dict[str, t.Any], targets: list[str] | None = None,
                        before: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """Done when nothing but DaemonSet pods stays on the nodes and the affected workloads are whole.

    A pod marked for deletion on a NotReady node counts as gone: its kubelet is dead and will
    never confirm the deletion (it stays Terminating until the node returns or is deleted)."""
    reported = _nodes(after)
    remaining = []
    for name in targets or []:
        node = reported.get(name) or {}
        for pod in node.get("pod_list") or []:
            if pod.get("owner_kind") == "DaemonSet" or pod.get("mirror") or pod.get("phase") in ("Succeeded", "Failed"):
                continue
            if pod.get("terminating") and not node.get("ready", True):
                continue
            remaining.append(f"{pod.get('namespace')}/{pod.get('name')} on {name}"
                             + (" (terminating)" if pod.get("terminating") else ""))
    on_targets = [p for p in (before or {}).get("unhealthy_pods") or []
                  if p.get("node") in set(targets or []) and (p.get("owner") or {}).get("kind") not in (None, "DaemonSet")]
    affected = {(p.get("namespace"), (p.get("owner") or {}).get("name")) for p in on_targets}
    degraded = sorted(f"{w.get('kind')}/{w.get('namespace')}/{w.get('name')}" for w in (after or {}).get("workloads") or []
                      if (w.get("namespace"), w.get("name")) in affected)
    done = not remaining and not degraded
    parts = []
    if remaining:
        parts.append(f"still on the nodes: {', '.join(remaining)}")
    if degraded:
        parts.append(f"not yet whole elsewhere: {', '.join(degraded)}")
    return {"done": done, "remaining": remaining, "degraded": degraded,
            "reason": "the evicted pods run elsewhere" if done else "; ".join(parts)}


def memory_exhaustion(triage: dict[str, t.Any], allow_raise: bool = False, max_workloads: int = 3) -> dict[str, t.Any]:
    """The workloads whose containers were OOMKilled (and which containers), and whether to raise."""
    oom = [p for p in (triage or {}).get("unhealthy_pods") or [] if p.get("oom_killed")]
    targets: list[dict[str, t.Any]] = []
    unowned = []
    for pod in oom:
        owner = pod.get("owner") or {}
        if owner.get("kind") not in WORKLOAD_KINDS:
            unowned.append(pod.get("name"))
            continue
        entry = next((x for x in targets if (x["kind"], x["name"]) == (owner["kind"], owner["name"])), None)
        if entry is None:
            entry = {"kind": owner["kind"], "name": owner["name"], "containers": []}
            targets.append(entry)
        for container in pod.get("containers") or []:
            if ((container.get("last_termination") or {}).get("reason") == "OOMKilled"
                    and container.get("name") not in entry["containers"]):
                entry["containers"].append(container.get("name"))
    verdict = {"act": False, "stop": False, "targets": targets, "oom_pods": [p.get("name") for p in oom],
               "unowned": unowned, "guardrail": None}
    if not oom:
        return {**verdict, "reason": "healthy: no OOMKilled pod; nothing to do"}
    if not targets:
        return {**verdict, "reason": f"OOMKilled pods without a workload to resize ({', '.join(unowned)}): reporting only"}
    names = ", ".join(x["name"] for x in targets)
    if not allow_raise:
        return {**verdict, "reason": f"OOMKilled: {names}; raising limits is not allowed "
                                     "(memory_exhaustion_allow_limit_raise=false): reporting only"}
    if len(targets) > int(max_workloads):
        return {**verdict, "stop": True, "reason": "too many workloads to change at once",
                "guardrail": (f"guardrail 'memory_exhaustion_max_workloads' tripped: {len(targets)} workloads were "
                              f"OOMKilled, more than {max_workloads}; nothing was changed. Node-level memory pressure "
                              "is more likely than one undersized workload. To override: "
                              f"-e memory_exhaustion_max_workloads={len(targets)}.")}
    return {**verdict, "act": True, "reason": f"raise the memory limit of the OOMKilled containers of {names}"}


DECISIONS: dict[str, t.Callable[..., t.Any]] = {
    "memory_exhaustion": memory_exhaustion,
    "node_failure": node_failure,
    "node_failure_verify": node_failure_verify,
    "api_gateway_down": api_gateway_down,
    "api_gateway_down_bounce": api_gateway_down_bounce,
    "crashloop_candidates": crashloop_candidates,
    "crashloop": crashloop,
}


def k8s_verdict(data: t.Any, decision: str, **options: t.Any) -> t.Any:
    try:
        function = DECISIONS[decision]
    except KeyError:
        raise AnsibleFilterError(f"k8s_verdict: unknown decision {decision!r}; "
                                 f"choose one of {', '.join(sorted(DECISIONS))}") from None
    try:
        return function(data, **options)
    except TypeError as exc:
        raise AnsibleFilterError(f"k8s_verdict({decision!r}): {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"k8s_verdict": k8s_verdict}
