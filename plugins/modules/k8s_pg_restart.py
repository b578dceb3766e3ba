#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_pg_restart
short_description: Restart the one failing pod of a PostgreSQL StatefulSet, unless an operator owns failover
version_added: 0.2.0
description:
  - Assesses PostgreSQL running as a StatefulSet - each pod's phase, readiness, restarts, last termination
    (reason, exit code), the previous container log of a crashing pod (masked), its node, and which pod is
    the primary (O(primary_pod), else the pods' role labels) - and who owns its failover - an operator or
    Patroni found on the StatefulSet and its pods (CloudNativePG C(cnpg.io/*) labels or a C(Cluster) owner,
    Zalando Spilo C(application=spilo) / C(spilo-role), Crunchy PGO, StackGres, Percona, KubeDB, a Patroni
    C(status) annotation, C(PATRONI_*) / C(REPMGR_*) / C(STOLON_*) environment names), or O(failover_owner).
  - Returns a C(verdict). The state wanted is "every pod Running and Ready"; the only action is deleting
    the one failing pod, so the StatefulSet controller recreates it on the same volume. Never the StatefulSet,
    never a scale. It acts only when exactly one pod fails, for a reason a new pod heals (a crash, a hang),
    for at least O(min_failing_seconds), on a node that is Ready, not after a full disk, not on a new revision
    of an unfinished rollout, not twice in one incident (O(restarted_after)), and when nothing else owns
    failover. Everything else is reported with the reason and what heals it.
  - Promotion is not automated on Kubernetes; the verdict says so (C(verdict.promotion)).
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.k8s
attributes:
  check_mode:
    support: full
    description: Returns the verdict and the pod it would delete, and deletes nothing.
  diff_mode:
    support: none
    description: Nothing is returned as a diff; C(deleted) and C(actions) name the pod.
  idempotent:
    support: full
    description: A healthy StatefulSet is left alone; with O(restarted_after) a pod recreated in this incident is not deleted again.
options:
  namespace:
    description: The namespace of the StatefulSet.
    type: str
    default: default
  name:
    description:
      - The StatefulSet's name. Its own pods (owner reference) are assessed, and ordinals with no pod are
        reported as missing.
      - Without it, O(label_selector) names the pods (an operator such as CloudNativePG runs no StatefulSet).
    type: str
  label_selector:
    description: Selects the pods when O(name) is not set, or narrows the StatefulSet's own selector's pods.
    type: str
  failover_owner:
    description:
      - Who owns failover, as the inventory knows it (C(postgresql_failover_owner)).
      - V(auto) - the evidence found on the StatefulSet and its pods decides.
      - V(none) - no operator or Patroni; when the cluster carries operator evidence anyway, nothing is done
        (the two disagree) until the inventory or the stale labels are fixed.
      - Any other value names the owner (V(patroni), V(cloudnativepg)) - nothing is ever done.
    type: str
    default: auto
  primary_pod:
    description: The primary's pod name, when no role label says it (reported only; either pod may be restarted).
    type: str
  restarted_after:
    description:
      - Once per incident - a failing pod created after this moment (an ISO 8601 timestamp, or a duration
        such as V(15m) meaning that long ago) is already a replacement, and is reported, not deleted again.
        Pass the incident's start (C(incident_started_at)).
    type: str
  min_failing_seconds:
    description: The pod must have been not Ready for at least this long (a blip is not an outage).
    type: float
    default: 30
  log_lines:
    description: Lines of the previous container log of each crashing pod to read (at most 3 pods; V(0) - none).
    type: int
    default: 20
  wait:
    description: After deleting the pod, wait until its replacement (a new UID) is Ready.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait when O(wait=true); then the module fails, naming the replacement's state.
    type: float
    default: 300
"""

EXAMPLES = r"""
- name: Assess (read-only) - pods, failover owner, verdict
  sre.runbooks.k8s_pg_restart:
    namespace: db
    name: postgresql
  check_mode: true
  register: plan

- name: Restart the one failing pod, once for this incident
  sre.runbooks.k8s_pg_restart:
    namespace: db
    name: postgresql
    failover_owner: none
    restarted_after: "{{ incident_started_at }}"
    wait_timeout: 300
  when: plan.verdict.act
"""

RETURN = r"""
verdict:
  description:
    - C(state) - V(healthy), V(restart_pod) (the one action), V(operator_owned), V(several_failing),
      V(not_restartable), V(node_not_ready), V(disk_full), V(bad_release), V(already_restarted), V(settling),
      V(scaled_to_zero). C(found) (something is wrong), C(act), C(action) (V(restart_pod), V(report), V(none)),
      C(target) (the failing pod), C(failing) (names), C(primary), C(summary) (one sentence with the reason),
      C(promotion) (why promotion is not automated here, when something is wrong).
  returned: always
  type: dict
statefulset:
  description: C(name), C(selector), C(desired), C(ready), C(current_revision), C(update_revision).
  returned: always
  type: dict
pods:
  description:
    - One entry per pod (and per missing ordinal) - C(name), C(ordinal), C(role) (primary, replica, unknown),
      C(phase), C(ready), C(failing), C(reason), C(restart_count), C(last_termination) (C(reason), C(exit_code)),
      C(node), C(node_ready), C(created), C(unready_seconds), C(revision), and for a crashing pod
      C(previous_log) (masked) and C(disk_full).
  returned: always
  type: list
  elements: dict
failover_owner:
  description: C(owner) (null when none), C(source) (detected, inventory), C(detected), C(evidence)
    (C(owner), C(where), C(what) - names of labels, annotations, env variables, never values), C(conflict).
  returned: always
  type: dict
deleted:
  description: The pod deleted (or, in check mode, that would be) with its old UID, and its replacement's UID once Ready.
  returned: when a pod was (or would be) deleted
  type: dict
actions:
  description: What was done (C(delete pod)), to what, when; in check mode what would be.
  returned: always
  type: list
  elements: dict
message:
  description: The verdict's summary, or what was done.
  returned: always
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record, parse_moment, utc_now
from ansible_collections.sre.runbooks.plugins.module_utils._k8s import K8sError, connect, k8s_argument_spec, q
from ansible_collections.sre.runbooks.plugins.module_utils._k8s_pg import assess


def wait_replaced(api, namespace, name, old_uid, timeout):
    """Wait until pod NAME exists with another UID and is Ready; returns (pod or None, last state seen)."""
    deadline = time.monotonic() + timeout
    seen = "not recreated yet"
    while True:
        pod = api.get_or_none(f"/api/v1/namespaces/{q(namespace)}/pods/{q(name)}")
        if pod is not None and pod["metadata"].get("uid") != old_uid:
            status = pod.get("status") or {}
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                return pod, "Ready"
            waiting = [((c.get("state") or {}).get("waiting") or {}).get("reason") for c in status.get("containerStatuses") or []]
            seen = f"recreated, {status.get('phase') or 'Pending'}{', ' + ', '.join(w for w in waiting if w) if any(waiting) else ''}"
        if time.monotonic() >= deadline:
            return None, seen
        time.sleep(0.5)


def main():
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        namespace=dict(type="str", default="default"),
        name=dict(type="str"),
        label_selector=dict(type="str"),
        failover_owner=dict(type="str", default="auto"),
        primary_pod=dict(type="str"),
        restarted_after=dict(type="str"),
        min_failing_seconds=dict(type="float", default=30),
        log_lines=dict(type="int", default=20),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="float", default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("name", "label_selector")])
    p = module.params
    if p["min_failing_seconds"] < 0 or p["wait_timeout"] < 0 or p["log_lines"] < 0:
        module.fail_json(msg="min_failing_seconds, wait_timeout and log_lines must not be negative")
    restarted_after = None
    if p["restarted_after"]:
        try:
            restarted_after = parse_moment(p["restarted_after"], "restarted_after")
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    namespace = p["namespace"]
    target = f"StatefulSet/{namespace}/{p['name']}" if p["name"] else f"pods {p['label_selector']!r} in {namespace}"
    api = connect(module)
    actions = []
    try:
        state = assess(api, namespace, p["name"], p["label_selector"], p["failover_owner"], p["primary_pod"],
                       restarted_after, p["min_failing_seconds"], p["log_lines"], utc_now())
    except K8sError as exc:
        module.fail_json(msg=f"cannot assess {target}: {exc}", changed=False, actions=actions)
    if not state["found_statefulset"]:
        module.fail_json(msg=f"{target} not found (no StatefulSet and no pod); check the namespace and name "
                             f"(kubectl get statefulset,pods -n {namespace})", changed=False, actions=actions)
    for warning in state.pop("warnings"):
        module.warn(warning)
    state.pop("found_statefulset")
    verdict = state["verdict"]
    result = dict(changed=False, actions=actions, message=verdict["summary"], **state)
    if not verdict["act"]:
        module.exit_json(**result)

    pod = next(r for r in state["pods"] if r["name"] == verdict["target"])
    pod_target = f"Pod/{namespace}/{pod['name']}"
    result["changed"] = True
    result["deleted"] = {"pod": pod["name"], "uid": pod["uid"], "replacement_uid": None}
    if module.check_mode:
        actions.append(action_record("delete pod", pod_target, "check mode", reason=verdict["summary"]))
        result["message"] = f"would delete {pod['name']}: {verdict['summary']}"
        module.exit_json(**result)
    # The UID precondition: a replacement that appeared since the assessment is never deleted.
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": pod["uid"]}}
    try:
        api.request("DELETE", f"/api/v1/namespaces/{q(namespace)}/pods/{q(pod['name'])}", body=body)
    except K8sError as exc:
        if exc.status in (404, 409):
            result.update(changed=False, message=f"{pod['name']} was already replaced or gone ({exc}); nothing deleted")
            result.pop("deleted")
            module.exit_json(**result)
        module.fail_json(msg=f"cannot delete {pod_target}: {exc}", changed=False, actions=actions)
    actions.append(action_record("delete pod", pod_target, "done", reason=verdict["summary"], uid=pod["uid"]))
    result["message"] = f"deleted {pod['name']} (the StatefulSet recreates it): {verdict['summary']}"
    if p["wait"]:
        try:
            replacement, seen = wait_replaced(api, namespace, pod["name"], pod["uid"], p["wait_timeout"])
        except K8sError as exc:
            module.fail_json(msg=f"deleted {pod_target}, then could not watch its replacement: {exc}",
                             **{k: v for k, v in result.items() if k != "message"})
        if replacement is None:
            module.fail_json(msg=f"deleted {pod_target}; its replacement is not Ready after {p['wait_timeout']:g} s "
                                 f"({seen}): the cause is not in the pod. Escalate (see pods, previous_log)",
                             **{k: v for k, v in result.items() if k != "message"})
        result["deleted"]["replacement_uid"] = replacement["metadata"].get("uid")
        result["message"] += "; the replacement is Ready"
    module.exit_json(**result)


if __name__ == "__main__":
    main()
