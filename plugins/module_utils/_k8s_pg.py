# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL on Kubernetes (private): the pods of a StatefulSet, who owns its failover, and the
decision of the db_down runbook there - restart (delete) the one failing pod, or report.

Everything but ``read_state`` is pure and unit-tested (tests/unit/k8s/test_k8s_pg.py).
"""

from __future__ import annotations

import datetime
import json
import re
import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    K8sError,
    age_seconds,
    mask_log,
    node_ready,
    parse_time,
    pod_problem,
    q,
    rfc3339,
    selector_string,
    workload_path,
)

# Who owns failover, from the API group of an owner reference ...
OWNER_GROUPS = {
    "postgresql.cnpg.io": "CloudNativePG",
    "acid.zalan.do": "Zalando postgres-operator (Patroni)",
    "postgres-operator.crunchydata.com": "Crunchy PGO (Patroni)",
    "stackgres.io": "StackGres (Patroni)",
    "pgv2.percona.com": "Percona operator (Patroni)",
    "pg.percona.com": "Percona operator (Patroni)",
    "kubedb.com": "KubeDB",
    "apps.kubeblocks.io": "KubeBlocks",
}
# ... from the prefix of a label or annotation key ...
KEY_PREFIXES = {
    "cnpg.io/": "CloudNativePG",
    "postgres-operator.crunchydata.com/": "Crunchy PGO (Patroni)",
    "stackgres.io/": "StackGres (Patroni)",
    "pgv2.percona.com/": "Percona operator (Patroni)",
    "kubedb.com/": "KubeDB",
    "apps.kubeblocks.io/": "KubeBlocks",
}
# ... from a label key or a label key=value ...
LABEL_KEYS = {
    "spilo-role": "Zalando Spilo (Patroni)",
    "stolon-cluster": "Stolon",
}
LABEL_VALUES = {
    ("application", "spilo"): "Zalando Spilo (Patroni)",
    ("app.kubernetes.io/managed-by", "cloudnative-pg"): "CloudNativePG",
    ("app.kubernetes.io/managed-by", "postgres-operator"): "Zalando postgres-operator (Patroni)",
    ("app.kubernetes.io/managed-by", "percona-postgresql-operator"): "Percona operator (Patroni)",
}
# ... from the name of a container environment variable (never its value).
ENV_PREFIXES = {
    "PATRONI_": "Patroni",
    "REPMGR_": "repmgr",
    "STOLON_": "Stolon",
    "STKEEPER_": "Stolon",
}
# Pod labels that say which pod is the primary, and the values that mean primary or replica.
ROLE_LABELS = ("cnpg.io/instanceRole", "postgres-operator.crunchydata.com/role", "spilo-role", "role",
               "app.kubernetes.io/component")
PRIMARY_VALUES = {"primary", "master", "leader"}
REPLICA_VALUES = {"replica", "standby", "sync_standby", "read", "secondary"}

# Failures a new pod (same template, same volume) can heal: the process died or hangs.
RESTARTABLE = {"CrashLoopBackOff", "Error", "NotReady", "RunContainerError", "ContainerCannotRun",
               "CreateContainerError", "Failed"}
# Failures a new pod does not heal, and what does.
NOT_RESTARTABLE = {
    "ImagePullBackOff": "the image cannot be pulled: fix the image reference or the registry credentials",
    "ErrImagePull": "the image cannot be pulled: fix the image reference or the registry credentials",
    "InvalidImageName": "the image reference is invalid: fix the StatefulSet's image",
    "CreateContainerConfigError": "a Secret or ConfigMap key the pod needs is missing: restore it (crashloop runbook)",
    "Unschedulable": "no node can take the pod: see the scheduler's message (node capacity, volume zone)",
    "Pending": "the pod is not scheduled: see its events (volume binding, quota)",
    "ContainerCreating": "the pod is stuck creating (volume attach, network): see its events",
    "Missing": "the StatefulSet controller did not create the pod: see the StatefulSet's events (quota, volume claim)",
    "OOMKilled": "the container runs out of memory: a new pod OOMs again (memory_exhaustion runbook)",
}
DISK_FULL = re.compile(r"No space left on device|could not extend file|disk full", re.IGNORECASE)
PROMOTION = ("promotion on Kubernetes is not automated: where an operator owns failover it is the operator's job; "
             "without one, promote by hand (pg_promote() in the most advanced standby pod, point the Service "
             "at it, and keep the old primary's pod from starting as a second primary)")


def _sources(obj: dict[str, t.Any], where: str) -> list[dict[str, str]]:
    """Operator evidence on one object: owner references, label and annotation keys, env names."""
    meta = obj.get("metadata") or {}
    found = []
    for ref in meta.get("ownerReferences") or []:
        group = (ref.get("apiVersion") or "").split("/")[0]
        if group in OWNER_GROUPS:
            found.append({"owner": OWNER_GROUPS[group], "where": where,
                          "what": f"owned by {ref.get('kind')}/{ref.get('name')} ({group})"})
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    for kind, keys in (("label", labels), ("annotation", annotations)):
        for key in sorted(keys):
            owner = next((o for p, o in KEY_PREFIXES.items() if key.startswith(p)), None)
            if owner:
                found.append({"owner": owner, "where": where, "what": f"{kind} {key}"})
    for key in sorted(labels):
        if key in LABEL_KEYS:
            found.append({"owner": LABEL_KEYS[key], "where": where, "what": f"label {key}"})
        if (key, labels[key]) in LABEL_VALUES:
            found.append({"owner": LABEL_VALUES[(key, labels[key])], "where": where,
                          "what": f"label {key}={labels[key]}"})
    # Patroni on Kubernetes keeps each member's state in a pod annotation "status" (JSON with conn_url
    # and role). Only its keys are looked at.
    status = annotations.get("status")
    if status:
        try:
            parsed = json.loads(status)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "role" in parsed and ("conn_url" in parsed or "api_url" in parsed):
            found.append({"owner": "Patroni", "where": where, "what": "annotation status (a Patroni member state)"})
    spec = obj.get("spec") or {}
    template_spec = ((spec.get("template") or {}).get("spec")) or spec
    for container in (template_spec.get("containers") or []) + (template_spec.get("initContainers") or []):
        names = [e.get("name") or "" for e in container.get("env") or []]
        for prefix, owner in ENV_PREFIXES.items():
            hits = sorted(n for n in names if n.startswith(prefix))
            if hits:
                found.append({"owner": owner, "where": where,
                              "what": f"container {container.get('name')} env {hits[0]}"
                                      f"{f' (+{len(hits) - 1} more)' if len(hits) > 1 else ''}"})
    return found


def failover_owner(statefulset: dict[str, t.Any] | None, pods: list[dict[str, t.Any]],
                   declared: str = "auto") -> dict[str, t.Any]:
    """Who owns failover of this PostgreSQL: the evidence on the StatefulSet and its pods, and the
    inventory's word (``declared``: auto, none, or the owner's name).

    Returns owner (None when nothing owns it), source (detected / inventory), evidence, conflict
    (the inventory says none but the cluster says otherwise: treated as owned, never acted on)."""
    evidence: list[dict[str, str]] = []
    if statefulset:
        meta = statefulset["metadata"]
        evidence += _sources(statefulset, f"StatefulSet/{meta.get('namespace')}/{meta.get('name')}")
    for pod in pods:
        meta = pod["metadata"]
        evidence += _sources(pod, f"Pod/{meta.get('namespace')}/{meta.get('name')}")
    seen, unique = set(), []
    for item in evidence:
        key = (item["owner"], item["what"].split(" ", 1)[-1])
        if key not in seen:
            seen.add(key)
            unique.append(item)
    detected = sorted({e["owner"] for e in unique})
    declared = (declared or "auto").strip()
    if declared.lower() not in ("auto", "none"):
        return {"owner": declared, "source": "inventory", "detected": detected, "evidence": unique[:10],
                "conflict": False}
    if declared.lower() == "none":
        return {"owner": ", ".join(detected) if detected else None, "source": "detected" if detected else "inventory",
                "detected": detected, "evidence": unique[:10], "conflict": bool(detected)}
    return {"owner": ", ".join(detected) if detected else None, "source": "detected" if detected else None,
            "detected": detected, "evidence": unique[:10], "conflict": False}


def pod_role(pod: dict[str, t.Any], primary_pod: str | None) -> str:
    """primary / replica / unknown, from the inventory's primary_pod or the pod's role labels."""
    name = pod["metadata"]["name"]
    if primary_pod:
        return "primary" if name == primary_pod else "replica"
    labels = pod["metadata"].get("labels") or {}
    for key in ROLE_LABELS:
        value = str(labels.get(key, "")).lower()
        if value in PRIMARY_VALUES:
            return "primary"
        if value in REPLICA_VALUES:
            return "replica"
    return "unknown"


def ordinal(name: str, set_name: str | None) -> int | None:
    if set_name and name.startswith(set_name + "-") and name[len(set_name) + 1:].isdigit():
        return int(name[len(set_name) + 1:])
    return None


def pod_record(pod: dict[str, t.Any], now: datetime.datetime, nodes_not_ready: set[str], set_name: str | None,
               primary_pod: str | None) -> dict[str, t.Any]:
    """One pod as the verdict and the on-call need it."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    problem = pod_problem(pod, now, nodes_not_ready)
    ready_cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    ready = ready_cond.get("status") == "True"
    terminating = bool(meta.get("deletionTimestamp"))
    failing = terminating or not ready
    last = None
    if problem:
        last = next((c["last_termination"] for c in problem["containers"] if c["last_termination"]), None)
    since = ready_cond.get("lastTransitionTime") if not ready else None
    record = {
        "name": meta["name"],
        "ordinal": ordinal(meta["name"], set_name),
        "uid": meta.get("uid"),
        "role": pod_role(pod, primary_pod),
        "phase": status.get("phase") or "Unknown",
        "ready": ready,
        "failing": failing,
        "terminating": terminating,
        "reason": (problem or {}).get("reason") if failing else None,
        "reasons": (problem or {}).get("reasons", []) if failing else [],
        "oom_killed": bool((problem or {}).get("oom_killed")),
        "restart_count": sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or []),
        "last_termination": last,
        "node": spec.get("nodeName"),
        "node_ready": None if not spec.get("nodeName") else spec.get("nodeName") not in nodes_not_ready,
        "created": meta.get("creationTimestamp"),
        "unready_seconds": age_seconds(since or meta.get("creationTimestamp"), now) if not ready else None,
        "revision": (meta.get("labels") or {}).get("controller-revision-hash"),
        "scheduler_message": (problem or {}).get("scheduler_message"),
    }
    return record


def missing_pods(set_name: str | None, desired: int, present: list[str]) -> list[dict[str, t.Any]]:
    """The ordinals the StatefulSet should have but no pod holds (the controller could not create them)."""
    if not set_name:
        return []
    names = set(present)
    return [{"name": f"{set_name}-{i}", "ordinal": i, "uid": None, "role": "unknown", "phase": "Missing",
             "ready": False, "failing": True, "terminating": False, "reason": "Missing", "reasons": ["Missing"],
             "oom_killed": False, "restart_count": 0, "last_termination": None, "node": None, "node_ready": None,
             "created": None, "unready_seconds": None, "revision": None, "scheduler_message": None}
            for i in range(desired) if f"{set_name}-{i}" not in names]


def _verdict(state: str, found: bool, summary: str, act: bool = False, target: str | None = None,
             **extra: t.Any) -> dict[str, t.Any]:
    verdict = {"state": state, "found": found, "act": act, "action": "restart_pod" if act else (
        "report" if found else "none"), "target": target, "summary": summary, "promotion": PROMOTION if found else None}
    verdict.update(extra)
    return verdict


def decide(workload: dict[str, t.Any], pods: list[dict[str, t.Any]], owner: dict[str, t.Any],
           restarted_after: datetime.datetime | None, min_failing_seconds: float) -> dict[str, t.Any]:
    """The runbook's decision on Kubernetes. ``workload``: name, desired, current_revision, update_revision;
    ``pods``: pod_record()s plus missing_pods(); ``owner``: failover_owner().

    Acts (restart_pod: delete the pod, the StatefulSet recreates it) only when exactly one pod fails,
    for a reason a new pod heals, for long enough, not already restarted since restarted_after, and
    nothing else owns failover. Everything else is reported with the reason."""
    where = workload.get("name") or "the PostgreSQL pods"
    failing = sorted((p for p in pods if p["failing"]), key=lambda p: (p["ordinal"] is None, p["ordinal"], p["name"]))
    primaries = [p["name"] for p in pods if p["role"] == "primary" and p["phase"] != "Missing"]
    base = {"primary": primaries[0] if len(primaries) == 1 else None, "failing": [p["name"] for p in failing]}
    names = ", ".join(f"{p['name']} ({p['reason']}{', ' + p['role'] if p['role'] != 'unknown' else ''})"
                      for p in failing)

    if owner.get("owner"):
        evidence = "; ".join(f"{e['where']}: {e['what']}" for e in (owner.get("evidence") or [])[:3]) or "the inventory"
        if owner.get("conflict"):
            why = (f"the inventory says no operator owns failover (postgresql_failover_owner=none) but {where} "
                   f"carries {owner['owner']} evidence ({evidence}): fix the inventory or the stale labels; "
                   "nothing is done while they disagree")
        else:
            why = (f"failover of {where} is owned by {owner['owner']} ({owner.get('source')}: {evidence}); "
                   "the operator restarts and promotes, and a pod deleted behind its back can start a second "
                   "primary: nothing is done here")
        state_pods = f"{len(failing)} failing: {names}" if failing else "no pod fails"
        return _verdict("operator_owned", bool(failing), f"{why}. {state_pods}", **base)

    if workload.get("desired") == 0:
        return _verdict("scaled_to_zero", True, f"{where} is scaled to 0 replicas; this runbook never scales: "
                                                "scale it back by hand if that was not deliberate", **base)
    if not failing:
        return _verdict("healthy", False, f"all {len(pods)} pods of {where} are Running and Ready: nothing to do",
                        **base)
    if len(failing) > 1:
        return _verdict("several_failing", True, (
            f"{len(failing)} pods of {where} fail ({names}): a cause shared by several pods (node, storage, "
            "config, a bad release) is not healed by restarting one; triage the namespace "
            "(crashloop / node_failure runbooks)"), **base)

    pod = failing[0]
    label = f"{pod['name']}{' (the primary)' if pod['role'] == 'primary' else ''}"
    base["target"] = pod["name"]
    if pod["terminating"]:
        return _verdict("settling", True, f"{label} is already being replaced (Terminating): watch again", **base)
    if pod["reason"] == "Missing":
        return _verdict("not_restartable", True, f"{label} does not exist: {NOT_RESTARTABLE['Missing']}", **base)
    if pod["node_ready"] is False:
        return _verdict("node_not_ready", True, (
            f"{label} runs on node {pod['node']}, which is NotReady: a deleted StatefulSet pod on an unreachable "
            "node keeps its identity (Terminating) and force-deleting it can run two PostgreSQL on one volume; "
            "fence the node first (node_failure runbook)"), **base)
    if pod.get("disk_full"):
        return _verdict("disk_full", True, (
            f"{label} crashes because its volume is full (log: no space left on device): a restart does not free "
            "space; grow the PersistentVolumeClaim or free WAL/logs first"), **base)
    update, current = workload.get("update_revision"), workload.get("current_revision")
    if update and current and update != current and pod["revision"] == update:
        return _verdict("bad_release", True, (
            f"{label} fails on the new revision {update} of an unfinished rollout (others run {current}): a "
            "bad release is rolled back, not restarted (crashloop runbook)"), **base)
    reason = "OOMKilled" if pod["oom_killed"] else pod["reason"]
    if reason not in RESTARTABLE:
        hint = NOT_RESTARTABLE.get(reason, f"a pod restart does not fix {reason}")
        return _verdict("not_restartable", True, f"{label} fails with {reason}: {hint}", **base)
    created = parse_time(pod["created"])
    if restarted_after is not None and created is not None and created >= restarted_after.replace(microsecond=0):
        return _verdict("already_restarted", True, (
            f"{label} was recreated at {pod['created']}, after {rfc3339(restarted_after)} (this incident), and "
            f"still fails ({reason}): a second restart will not heal it; escalate"), **base)
    unready = pod["unready_seconds"] or 0
    if unready < min_failing_seconds:
        return _verdict("settling", True, (
            f"{label} is not Ready ({reason}) for {unready:g} s only, less than {min_failing_seconds:g} s: "
            "watch again before acting"), **base)
    return _verdict("restart_pod", True, (
        f"{label} fails ({reason}{', last exit ' + str(pod['last_termination'].get('exit_code')) if pod['last_termination'] else ''}"
        f", not Ready for {unready:g} s) while the other {len(pods) - 1} pods serve: delete it, the StatefulSet "
        "recreates it on the same volume"), act=True, **base)


# --------------------------------------------------------------------------- reading the cluster

def read_state(api: t.Any, namespace: str, name: str | None, label_selector: str | None,
               log_lines: int) -> dict[str, t.Any]:
    """The StatefulSet (or the pods of a selector), its pods, NotReady nodes and the failing pods' logs:
    one GET of the StatefulSet, one pod list, one node list, one log call per failing pod (at most 3).
    Raises K8sError; a StatefulSet named but absent is reported as statefulset None."""
    statefulset = None
    if name:
        statefulset = api.get_or_none(workload_path("StatefulSet", namespace, name))
        if statefulset is None:
            return {"statefulset": None, "pods": [], "nodes_not_ready": set(), "logs": {}, "warnings": []}
    selector = label_selector or selector_string(((statefulset or {}).get("spec") or {}).get("selector"))
    pods = api.items(f"/api/v1/namespaces/{q(namespace)}/pods", labelSelector=selector)
    if statefulset is not None:
        uid = statefulset["metadata"].get("uid")
        # Only the set's own pods: a selector can also match another workload's.
        pods = [p for p in pods if not uid or any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]
    elif pods:
        owners = {(r.get("kind"), r.get("name")) for p in pods for r in p["metadata"].get("ownerReferences") or []
                  if r.get("controller")}
        sets = sorted(n for k, n in owners if k == "StatefulSet")
        if len(sets) == 1:
            statefulset = api.get_or_none(workload_path("StatefulSet", namespace, sets[0]))
    warnings: list[str] = []
    nodes_not_ready: set[str] = set()
    try:
        nodes_not_ready = {n["metadata"]["name"] for n in api.items("/api/v1/nodes") if not node_ready(n)}
    except K8sError as exc:
        warnings.append(f"cannot list nodes ({exc}); a pod on a NotReady node is not recognised as such")
    logs: dict[str, str] = {}
    if log_lines > 0:
        for pod in pods:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (pod.get("status") or {}).get("conditions") or [])
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if ready or len(logs) >= 3 or not any(s.get("lastState", {}).get("terminated") for s in statuses):
                continue
            container = next((s["name"] for s in statuses if s.get("lastState", {}).get("terminated")), None)
            try:
                text = api.request("GET", f"/api/v1/namespaces/{q(namespace)}/pods/{q(pod['metadata']['name'])}/log",
                                   {"container": container, "previous": "true", "tailLines": log_lines}, raw=True)
            except K8sError:
                continue
            logs[pod["metadata"]["name"]] = mask_log(text)
    return {"statefulset": statefulset, "pods": pods, "nodes_not_ready": nodes_not_ready, "logs": logs,
            "warnings": warnings}


def workload_summary(statefulset: dict[str, t.Any] | None, pods: list[dict[str, t.Any]],
                     label_selector: str | None) -> dict[str, t.Any]:
    if statefulset is None:
        return {"name": None, "selector": label_selector, "desired": len(pods), "ready": None,
                "current_revision": None, "update_revision": None}
    spec, status = statefulset.get("spec") or {}, statefulset.get("status") or {}
    return {"name": statefulset["metadata"]["name"], "selector": selector_string(spec.get("selector")),
            "desired": spec.get("replicas", 1), "ready": status.get("readyReplicas", 0),
            "current_revision": status.get("currentRevision"), "update_revision": status.get("updateRevision")}


def assess(api: t.Any, namespace: str, name: str | None, label_selector: str | None, declared_owner: str,
           primary_pod: str | None, restarted_after: datetime.datetime | None, min_failing_seconds: float,
           log_lines: int, now: datetime.datetime) -> dict[str, t.Any]:
    """read_state + records + owner + decide, as the module returns them."""
    state = read_state(api, namespace, name, label_selector, log_lines)
    statefulset = state["statefulset"]
    workload = workload_summary(statefulset, state["pods"], label_selector)
    set_name = workload["name"]
    records = [pod_record(p, now, state["nodes_not_ready"], set_name, primary_pod) for p in state["pods"]]
    for record in records:
        log = state["logs"].get(record["name"])
        if log is not None:
            record["previous_log"] = log
            record["disk_full"] = bool(DISK_FULL.search(log))
    records += missing_pods(set_name, workload["desired"] or 0, [r["name"] for r in records])
    records.sort(key=lambda r: (r["ordinal"] is None, r["ordinal"], r["name"]))
    owner = failover_owner(statefulset, state["pods"], declared_owner)
    verdict = decide(workload, records, owner, restarted_after, min_failing_seconds)
    return {"statefulset": workload, "pods": records, "failover_owner": owner, "verdict": verdict,
            "warnings": state["warnings"], "found_statefulset": statefulset is not None or bool(state["pods"])}
