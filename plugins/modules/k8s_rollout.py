#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_rollout
short_description: Restart, roll back, scale or watch the rollout of a Deployment, StatefulSet or DaemonSet
version_added: 0.1.0
description:
  - V(restart) does what C(kubectl rollout restart) does (a new C(kubectl.kubernetes.io/restartedAt)
    pod template annotation, so the controller replaces every pod), but idempotently - with
    O(restarted_after), a workload whose pods all started after that moment, or whose restart
    was already requested after it, is left alone. A re-run of a half-finished playbook does
    not restart twice.
  - V(undo) rolls back to the previous revision, or to O(to_revision) - ReplicaSet revisions
    for Deployments, ControllerRevisions for StatefulSets and DaemonSets. Unlike
    C(kubectl rollout undo), which toggles between the last two revisions, a second run of
    the same undo is a no-op - the module records the rollback in the workload's
    C(sre.runbooks/rolled-back) annotation (metadata only; it does not trigger a rollout) and
    recognises it. V(changed=false) when the live template already equals the target's.
  - V(scale) sets the replica count of a Deployment or StatefulSet to O(replicas) (C(kubectl scale))
    and returns only the counts - never the workload object, whose pod template can hold secrets.
    V(changed=false) when it already has that many replicas.
  - V(status) reports rollout progress (updated, ready and available against desired,
    observedGeneration, C(ProgressDeadlineExceeded)); with O(wait=true) it blocks up to
    O(wait_timeout) and fails with the reason the rollout is stuck, naming the pods that hold it.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.k8s
attributes:
  check_mode:
    support: full
    description: Reports the restart or the revision it would roll back to, and changes nothing.
  diff_mode:
    support: full
    description: The pod template before and after.
  idempotent:
    support: full
    description: V(restart) with O(restarted_after) and every V(undo) are idempotent; V(status) changes nothing.
options:
  kind:
    description: The workload kind.
    type: str
    choices: [Deployment, StatefulSet, DaemonSet]
    default: Deployment
  name:
    description: The workload's name.
    type: str
    required: true
  namespace:
    description: The workload's namespace.
    type: str
    default: default
  action:
    description:
      - V(restart) replaces every pod with a rolling update.
      - V(undo) rolls back to the previous revision or O(to_revision).
      - V(scale) sets the replica count to O(replicas).
      - V(status) reports, and with O(wait=true) waits for, rollout completion.
    type: str
    choices: [restart, undo, scale, status]
    required: true
  restarted_after:
    description:
      - For O(action=restart) - the restart is wanted only if some current pod started before
        this moment. An ISO 8601 timestamp (V(2024-05-01T03:12:00Z)), or a duration such as
        V(15m) meaning "within the last 15 minutes".
      - Without it every run restarts (like C(kubectl rollout restart)).
    type: str
  to_revision:
    description:
      - For O(action=undo) - the revision to roll back to, as listed by C(kubectl rollout history).
        Default is the newest earlier revision whose template differs from the live one; a
        C(kubectl.kubernetes.io/restartedAt) stamp (a rollout restart) and this collection's own
        C(sre.runbooks/*) annotations do not make a template different.
    type: int
  replace_crashing_pods:
    description:
      - For O(action=undo) of a StatefulSet - after the rollback, delete the pods of the bad
        revision that are crash-looping, so the controller recreates them from the restored
        template. Kubernetes does not replace them by itself (a StatefulSet with ordered pod
        management waits forever for the broken pod to become Ready).
      - Only pods that are not Ready, crash (C(CrashLoopBackOff), C(Error), config errors) and
        belong to a revision other than the restored one are deleted; never a Ready pod.
    type: bool
    default: false
  max_replaced_pods:
    description:
      - Guardrail for O(replace_crashing_pods) - never delete more pods than this in one run.
        When more crash, the rollback stays done, no pod is deleted, and the module fails naming them.
    type: int
    default: 1
  replicas:
    description:
      - For O(action=scale) (required there) - the replica count to set.
    type: int
  wait:
    description:
      - Wait until the rollout is complete (after a restart, undo or scale, or for O(action=status)).
        After a scale to 0 that is when no replica is left running.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait when O(wait=true).
    type: float
    default: 300
"""

EXAMPLES = r"""
- name: Restart the API gateway once for this incident (a re-run will not restart again)
  sre.runbooks.k8s_rollout:
    kubeconfig: "{{ k8s_kubeconfig }}"
    namespace: edge
    name: api-gateway
    action: restart
    restarted_after: "{{ incident_started_at }}"
    wait: true
    wait_timeout: 300

- name: Roll back the bad release (twice is the same as once)
  sre.runbooks.k8s_rollout:
    namespace: payments
    name: webhook-worker
    action: undo
  register: undo

- name: Roll a StatefulSet back to revision 3
  sre.runbooks.k8s_rollout:
    kind: StatefulSet
    namespace: data
    name: redis
    action: undo
    to_revision: 3

- name: Scale to 0 and wait until no replica runs
  sre.runbooks.k8s_rollout:
    namespace: edge
    name: api-gateway
    action: scale
    replicas: 0
    wait: true

- name: Fail unless the rollout completes within 2 minutes
  sre.runbooks.k8s_rollout:
    namespace: payments
    name: webhook-worker
    action: status
    wait: true
    wait_timeout: 120
"""

RETURN = r"""
revision:
  description: The live revision after the action (in check mode, the revision it would go to).
  returned: always
  type: int
  sample: 7
previous_revision:
  description: The live revision before the action.
  returned: always
  type: int
  sample: 6
replicas:
  description: For V(scale), the replica count before and after (in check mode, the count it would set).
  returned: when O(action=scale)
  type: dict
  contains:
    before: {description: spec.replicas before the action., type: int}
    after: {description: spec.replicas after the action., type: int}
rolled_back_to:
  description: For V(undo), the revision number whose template was restored (its number before the rollback renumbered it).
  returned: when O(action=undo)
  type: int
  sample: 5
message:
  description: What happened, in one sentence.
  returned: always
  type: str
status:
  description: Rollout progress after the action.
  returned: always
  type: dict
  contains:
    desired: {description: Desired replicas (or scheduled pods for a DaemonSet)., type: int}
    updated: {description: Replicas on the current template., type: int}
    ready: {description: Ready replicas., type: int}
    available: {description: Available replicas., type: int}
    generation: {description: metadata.generation., type: int}
    observed_generation: {description: status.observedGeneration., type: int}
    complete: {description: Whether the rollout is complete., type: bool}
    stuck_reason: {description: For example ProgressDeadlineExceeded and its message., type: str}
    blocking_pods:
      description: When a wait timed out, the unhealthy pods holding the rollout (name, reason, restarts).
      type: list
      elements: dict
replicaset:
  description: For a Deployment, the ReplicaSet that runs the live pod template (its newest rollout).
  returned: when O(kind=Deployment)
  type: str
  sample: api-gateway-5f887798c5
releases:
  description:
    - For O(action=status), the live release and the one an undo would return to, with the health
      of their pods. A release is every revision with the same pod template up to restart stamps.
  returned: when O(action=status)
  type: dict
  contains:
    live:
      description: The live release - revision, revisions (names), pods, ready, crashing, oom_killed, unhealthy (pod names).
      type: dict
    previous:
      description: The previous different release (same fields), or null when there is none.
      type: dict
replaced_pods:
  description: For O(replace_crashing_pods), the crash-looping pods of the bad revision deleted (or, in check mode, that would be).
  returned: when O(action=undo) and O(kind=StatefulSet)
  type: list
  elements: str
revisions:
  description: The revision history known to the module, oldest first (revision, name).
  returned: when O(action=undo)
  type: list
  elements: dict
actions:
  description: What was done, for the incident timeline.
  returned: always
  type: list
  elements: dict
  contains:
    timestamp: {description: UTC time (ISO 8601)., type: str}
    action: {description: "V(rollout restart), V(rollout undo) or V(scale).", type: str}
    target: {description: Kind/namespace/name., type: str}
    result: {description: "V(done), V(check mode) or V(already done).", type: str}
diff:
  description:
    - The pod template before and after (for V(scale), the replica count). Env C(value)s are never shown (V(******** (differs)) marks
      one that changes), nor the values of secret-looking arguments, keys or URL credentials.
  returned: when diff mode is on and something would change
  type: dict
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record, parse_moment, utc_now
from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    CRASH_REASONS,
    DEPLOYMENT_REVISION,
    RESTARTED_AT,
    ROLLBACK_MARKER,
    K8sError,
    connect,
    current_revision,
    k8s_argument_spec,
    masked_template_pair,
    normalized_template,
    parse_time,
    pod_problem,
    pod_revision_name,
    q,
    release_hash,
    release_pods,
    revisions,
    rfc3339,
    selector_string,
    template_hash,
    template_of,
    workload_health,
    workload_path,
)


class Rollout:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        p = module.params
        self.kind, self.name, self.namespace = p["kind"], p["name"], p["namespace"]
        self.target = f"{self.kind}/{self.namespace}/{self.name}"
        self.path = workload_path(self.kind, self.namespace, self.name)
        self.changed = False
        self.actions = []

    def fail(self, msg, **extra):
        # Whatever failed, the record of what was already done goes with the failure.
        extra.setdefault("changed", self.changed)
        extra.setdefault("actions", self.actions)
        self.module.fail_json(msg=msg, target=self.target, **extra)

    def read(self):
        try:
            obj = self.api.get_or_none(self.path)
        except K8sError as exc:
            self.fail(f"cannot read {self.target}: {exc}")
        if obj is None:
            self.fail(f"{self.target} not found; check kind, name and namespace "
                      f"(kubectl get {self.kind.lower()} -n {self.namespace})")
        return obj

    def pods(self, workload):
        selector = selector_string((workload.get("spec") or {}).get("selector"))
        return [p for p in self.api.items(f"/api/v1/namespaces/{q(self.namespace)}/pods", labelSelector=selector)
                if not p["metadata"].get("deletionTimestamp")]

    def settle(self, workload, timeout=5.0):
        """Re-read until the controller has observed the latest generation (revision numbers set)."""
        deadline = time.monotonic() + timeout
        generation = workload["metadata"].get("generation", 0)
        while True:
            current = self.read()
            observed = (current.get("status") or {}).get("observedGeneration", 0)
            if observed >= generation or time.monotonic() >= deadline:
                return current
            time.sleep(0.1)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        scaling = self.module.params["action"] == "scale"
        while True:
            workload = self.read()
            health = workload_health(self.kind, workload)
            # After a scale down, complete also means the surplus replicas are gone.
            if health["complete"] and not (scaling and health["current"] > health["desired"]):
                return workload, health
            if health["stuck_reason"] or time.monotonic() >= deadline:
                now = utc_now()
                blocking = [p for p in (pod_problem(pod, now, set()) for pod in self.pods(workload)) if p]
                blocking.sort(key=lambda p: -p["score"])
                health["blocking_pods"] = [
                    {"name": p["name"], "reason": p["reason"], "restart_count": p["restart_count"],
                     "last_termination_reasons": p["last_termination_reasons"],
                     "scheduler_message": p["scheduler_message"]} for p in blocking[:10]]
                pods_text = ", ".join(f"{p['name']} ({p['reason']}"
                                      f"{', last ' + '/'.join(p['last_termination_reasons']) if p['last_termination_reasons'] else ''})"
                                      for p in blocking[:5]) or "no unhealthy pod found"
                why = health["stuck_reason"] or f"not complete after {timeout:g} s"
                self.fail(f"rollout of {self.target} is stuck: {why}; {health['updated']}/{health['desired']} "
                          f"updated, {health['available']}/{health['desired']} available; pods: {pods_text}. "
                          "Inspect with k8s_triage_info or roll back with action=undo",
                          status=health, changed=self.changed, actions=self.actions)
            time.sleep(0.5)

    def revision_of(self, workload):
        if self.kind == "Deployment":
            value = (workload["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION)
            return int(value) if value and value.isdigit() else None
        return current_revision(self.kind, workload, revisions(self.api, self.kind, workload))

    # ------------------------------------------------------------------ restart
    def restart(self, workload):
        p = self.module.params
        template = template_of(workload)
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        if p["restarted_after"]:
            try:
                # Kubernetes stamps start and restart times in whole seconds; compare likewise, or
                # a restart in the same second as the threshold would look "before" it.
                threshold = parse_moment(p["restarted_after"], "restarted_after").replace(microsecond=0)
            except ValueError as exc:
                self.fail(str(exc))
            requested = parse_time(annotations.get(RESTARTED_AT)) if annotations.get(RESTARTED_AT) else None
            if requested and requested >= threshold:
                return None, f"a restart was already requested at {annotations[RESTARTED_AT]}, after {rfc3339(threshold)}"
            pods = self.pods(workload)
            starts = [parse_time((pod.get("status") or {}).get("startTime")) for pod in pods]
            if pods and all(s and s >= threshold for s in starts):
                return None, f"all {len(pods)} pods started after {rfc3339(threshold)}"
        new_template = json.loads(json.dumps(template))
        new_template.setdefault("metadata", {}).setdefault("annotations", {})[RESTARTED_AT] = rfc3339(utc_now())
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: new_template["metadata"]["annotations"][RESTARTED_AT]}}}}}
        return (patch, "merge", template, new_template), "restarted"

    # ------------------------------------------------------------------ scale
    def scale(self, workload, replicas):
        current = (workload.get("spec") or {}).get("replicas", 1)
        if current == replicas:
            return None, f"{self.target} already has {replicas} replicas"
        # The diff shows the count only: the template is not what changes.
        patch = {"spec": {"replicas": replicas}}
        return (patch, "merge", {"replicas": current}, {"replicas": replicas}), f"scaled from {current} to {replicas} replicas"

    # ------------------------------------------------------------------ StatefulSet pods after undo
    def replace_crashing_pods(self, workload, target, cap):
        """Delete the crash-looping pods of any revision but the restored one (never a Ready pod)."""
        now = utc_now()
        stuck = []
        for pod in self.pods(workload):
            if pod_revision_name(self.kind, self.name, pod) == target["name"]:
                continue
            problem = pod_problem(pod, now, set())
            if problem and not problem["ready"] and problem["reason"] in CRASH_REASONS:
                stuck.append(problem)
        names = sorted(p["name"] for p in stuck)
        if len(names) > cap:
            self.fail(f"guardrail 'max_replaced_pods' tripped: {len(names)} pods of the bad revision crash "
                      f"({', '.join(names)}), more than {cap}; the rollback is done but no pod was deleted. "
                      f"To override: max_replaced_pods={len(names)}, or delete them by hand",
                      changed=self.changed, actions=self.actions, replaced_pods=[])
        for problem in stuck:
            detail = f"{problem['reason']} on a revision other than {target['name']}"
            if self.module.check_mode:
                self.actions.append(action_record("delete pod", f"Pod/{self.namespace}/{problem['name']}",
                                                  "check mode", reason=detail))
                continue
            self.api.delete_pod(self.namespace, problem["name"])
            self.changed = True
            self.actions.append(action_record("delete pod", f"Pod/{self.namespace}/{problem['name']}", "done",
                                              reason=detail))
        return names

    # ------------------------------------------------------------------ undo
    def undo(self, workload, history):
        p = self.module.params
        meta = workload["metadata"]
        if self.kind == "Deployment" and (workload.get("spec") or {}).get("paused"):
            self.fail(f"{self.target} is paused; resume it (kubectl rollout resume) before rolling back")
        live = template_of(workload)
        live_hash = template_hash(live)
        try:
            marker = json.loads((meta.get("annotations") or {}).get(ROLLBACK_MARKER) or "{}")
        except ValueError:
            marker = {}
        already = marker.get("to_hash") == live_hash and marker.get("to_revision") == p["to_revision"]
        current = current_revision(self.kind, workload, history)
        if p["to_revision"] is not None:
            target = next((r for r in history if r["revision"] == p["to_revision"]), None)
            if target is None:
                if already:
                    return None, None, f"already rolled back to revision {p['to_revision']} (now revision {current})"
                known = ", ".join(str(r["revision"]) for r in history) or "none"
                self.fail(f"{self.target} has no revision {p['to_revision']}; known revisions: {known}",
                          revisions=[{"revision": r["revision"], "name": r["name"]} for r in history])
        else:
            if already:
                return None, None, (f"already rolled back from revision {marker.get('from_revision')} "
                                    f"(now revision {current}); not toggling back")
            # The last DIFFERENT release: a revision made by `rollout restart` of the live release
            # (same template plus restartedAt) is the same broken release, not a way back.
            live_release = release_hash(live)
            earlier = [r for r in history if (current is None or r["revision"] < current)
                       and release_hash(r["template"]) != live_release]
            if not earlier:
                self.fail(f"{self.target} has no earlier revision with a different pod template to roll back to "
                          f"(live revision {current}, known: {', '.join(str(r['revision']) for r in history) or 'none'})")
            target = earlier[-1]
        if template_hash(target["template"]) == live_hash:
            return None, target, f"the live template already equals revision {target['revision']}"
        new_template = normalized_template(target["template"])
        new_template.setdefault("metadata", {})
        for label_key in ("pod-template-hash", "controller-revision-hash"):
            (new_template["metadata"].get("labels") or {}).pop(label_key, None)
        marker_value = json.dumps({"to_hash": template_hash(new_template), "to_revision": p["to_revision"],
                                   "from_revision": current, "from_hash": live_hash,
                                   "at": rfc3339(utc_now())}, sort_keys=True)
        patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                 {"op": "replace", "path": "/spec/template", "value": new_template}]
        if meta.get("annotations"):
            patch.append({"op": "add", "path": "/metadata/annotations/" + ROLLBACK_MARKER.replace("~", "~0").replace("/", "~1"),
                          "value": marker_value})
        else:
            patch.append({"op": "add", "path": "/metadata/annotations", "value": {ROLLBACK_MARKER: marker_value}})
        return (patch, "json", live, new_template), target, f"rolled back to revision {target['revision']}"


def main():
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        kind=dict(type="str", default="Deployment", choices=["Deployment", "StatefulSet", "DaemonSet"]),
        name=dict(type="str", required=True),
        namespace=dict(type="str", default="default"),
        action=dict(type="str", required=True, choices=["restart", "undo", "scale", "status"]),
        replicas=dict(type="int"),
        restarted_after=dict(type="str"),
        to_revision=dict(type="int"),
        replace_crashing_pods=dict(type="bool", default=False),
        max_replaced_pods=dict(type="int", default=1),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout must not be negative")
    if p["to_revision"] is not None and p["action"] != "undo":
        module.fail_json(msg="to_revision only applies to action=undo")
    if p["restarted_after"] and p["action"] != "restart":
        module.fail_json(msg="restarted_after only applies to action=restart")
    if p["replace_crashing_pods"] and (p["action"] != "undo" or p["kind"] != "StatefulSet"):
        module.fail_json(msg="replace_crashing_pods only applies to action=undo of a StatefulSet")
    if p["action"] == "scale":
        if p["replicas"] is None or p["replicas"] < 0:
            module.fail_json(msg="action=scale needs replicas, a count of 0 or more")
        if p["kind"] == "DaemonSet":
            module.fail_json(msg="a DaemonSet has no replica count; it runs one pod per node")
    elif p["replicas"] is not None:
        module.fail_json(msg="replicas only applies to action=scale")
    if p["max_replaced_pods"] < 0:
        module.fail_json(msg="max_replaced_pods must not be negative")
    api = connect(module)
    rollout = Rollout(module, api)
    try:
        run(module, api, rollout)
    except K8sError as exc:
        # An API error after an action must not lose the record of what was already done.
        module.fail_json(msg=f"{rollout.target}: {exc}"
                             f"{'; already done: ' + ', '.join(a['action'] for a in rollout.actions) if rollout.actions else ''}",
                         changed=rollout.changed, actions=rollout.actions, target=rollout.target)


def run(module, api, rollout):
    p = module.params
    workload = rollout.read()
    result = {"changed": False, "actions": rollout.actions}
    before_revision = rollout.revision_of(workload)
    result["previous_revision"] = before_revision
    result["revision"] = before_revision
    verb = f"rollout {p['action']}"

    change, message = None, None
    if p["action"] == "restart":
        change, message = rollout.restart(workload)
        if change is None:
            message = f"no restart needed: {message}"
    elif p["action"] == "undo":
        try:
            history = revisions(api, p["kind"], workload)
        except K8sError as exc:
            module.fail_json(msg=f"cannot read the revision history of {rollout.target}: {exc}")
        result["revisions"] = [{"revision": r["revision"], "name": r["name"]} for r in history]
        change, target, message = rollout.undo(workload, history)
        result["rolled_back_to"] = target["revision"] if target else None
    elif p["action"] == "scale":
        change, message = rollout.scale(workload, p["replicas"])
        result["replicas"] = {"before": (workload.get("spec") or {}).get("replicas", 1), "after": p["replicas"]}
        verb = "scale"
    else:
        message = "status"

    if change is not None:
        body, patch_type, before, after = change
        result["changed"] = True
        if module._diff:
            # Never an env value or a secret-looking argument: a diff ends up in CI logs and tickets.
            what = "spec" if p["action"] == "scale" else "pod template"
            if p["action"] != "scale":
                before, after = masked_template_pair(before, after)
            result["diff"] = {"before_header": f"{rollout.target} {what}", "before": before,
                              "after_header": f"{rollout.target} {what}", "after": after}
        if module.check_mode:
            result["actions"].append(action_record(verb, rollout.target, "check mode"))
            if p["action"] == "undo" and before_revision is not None:
                history_max = max([r["revision"] for r in history] or [before_revision])
                result["revision"] = history_max + 1 if p["kind"] == "Deployment" else result["rolled_back_to"]
            message = f"would have {message}"
        else:
            try:
                workload = api.patch(rollout.path, body, patch_type)
            except K8sError as exc:
                if exc.status in (409, 422) and patch_type == "json":
                    module.fail_json(msg=f"{rollout.target} changed while rolling back ({exc}); run again",
                                     changed=False)
                module.fail_json(msg=f"cannot {verb} {rollout.target}: {exc}", changed=False)
            rollout.changed = True
            workload = rollout.settle(workload)
            result["revision"] = rollout.revision_of(workload)
            result["actions"].append(action_record(verb, rollout.target, "done", revision=result["revision"],
                                                   previous_revision=before_revision))
    elif p["action"] != "status":
        result["actions"].append(action_record(verb, rollout.target, "already done", detail=message))
    if p["action"] == "undo" and p["kind"] == "StatefulSet":
        result["replaced_pods"] = []
        # On a re-run (undo already done) the restored revision is the live one.
        restored = target or {"name": (workload.get("status") or {}).get("updateRevision")}
        if p["replace_crashing_pods"] and restored.get("name"):
            result["replaced_pods"] = rollout.replace_crashing_pods(workload, restored, p["max_replaced_pods"])
            if result["replaced_pods"]:
                result["changed"] = True
                message += f"; {'would replace' if module.check_mode else 'replaced'} the crash-looping pods " \
                           f"{', '.join(result['replaced_pods'])}"

    if p["wait"] and not (module.check_mode and change is not None):
        workload, health = rollout.wait(p["wait_timeout"])
        result["revision"] = rollout.revision_of(workload)
    else:
        health = workload_health(p["kind"], workload)
    result["status"] = health
    if p["kind"] == "Deployment":
        try:
            live = template_hash(template_of(workload))
            result["replicaset"] = next((r["name"] for r in revisions(api, "Deployment", workload)
                                         if template_hash(r["template"]) == live), None)
        except K8sError:
            result["replicaset"] = None
    if p["action"] == "status":
        result["releases"] = release_pods(p["kind"], workload, revisions(api, p["kind"], workload),
                                          rollout.pods(workload), utc_now())
        message = (f"rollout of {rollout.target} is {'complete' if health['complete'] else 'in progress'}: "
                   f"{health['updated']}/{health['desired']} updated, {health['available']}/{health['desired']} available")
        if health["stuck_reason"]:
            message += f"; {health['stuck_reason']}"
    result["message"] = message
    module.exit_json(**result)


if __name__ == "__main__":
    main()
