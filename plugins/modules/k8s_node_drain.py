#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_node_drain
short_description: Cordon and drain a Kubernetes node as kubectl drain does, with check mode and a truthful record
version_added: 0.1.0
description:
  - V(cordon) marks the node unschedulable; V(drain) cordons it and evicts its pods through the
    Eviction API, so PodDisruptionBudgets apply; V(uncordon) makes it schedulable again.
  - Before anything changes, every pod the drain could not move is named (an C(emptyDir) volume
    without O(delete_emptydir_data), a pod no controller manages without O(force), a DaemonSet pod
    without O(ignore_daemonsets)) and the module fails without cordoning.
  - Pods already marked for deletion are not evicted again (on a dead node they stay Terminating
    until the kubelet or the pod garbage collector removes them, and an eviction in a namespace
    being deleted is refused forever); DaemonSet and mirror pods are left; finished pods are deleted.
  - An eviction a PodDisruptionBudget refuses (HTTP 429) is retried every O(retry_interval) seconds
    for up to O(disruption_budget_timeout) seconds, then the module fails naming the pods still
    blocked, with the record of what it already did. The node stays cordoned.
  - Unlike C(kubernetes.core.k8s_drain), it supports check mode and returns only names and counts,
    never pod objects.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.k8s
attributes:
  check_mode:
    support: full
    description: Reports whether it would cordon and which pods it would evict or delete; changes nothing.
  diff_mode:
    support: none
    description: The record of what changed is the C(actions) list.
  idempotent:
    support: full
    description: A cordoned node with nothing left to evict is V(changed=false).
options:
  name:
    description: The node's name.
    type: str
    required: true
  state:
    description:
      - V(cordon) marks the node unschedulable.
      - V(drain) cordons the node and evicts its pods.
      - V(uncordon) marks the node schedulable again.
    type: str
    choices: [cordon, drain, uncordon]
    default: drain
  ignore_daemonsets:
    description: Leave DaemonSet pods on the node (their controller ignores C(unschedulable)); when false they block the drain.
    type: bool
    default: true
  delete_emptydir_data:
    description: Evict pods with C(emptyDir) volumes, whose data is lost (C(kubectl drain --delete-emptydir-data)).
    type: bool
    default: false
  force:
    description: Evict pods no controller manages; nothing recreates them (C(kubectl drain --force)).
    type: bool
    default: false
  disruption_budget_timeout:
    description: Seconds to keep retrying evictions a PodDisruptionBudget refuses. V(0) tries once.
    type: float
    default: 60
  retry_interval:
    description: Seconds between two rounds of evictions a budget refused.
    type: float
    default: 5
  wait_timeout:
    description:
      - Seconds to wait, after the evictions, for the evicted pods to leave the node. V(0) does not
        wait. On a NotReady node the kubelet never confirms a deletion, so there is nothing to wait for.
    type: float
    default: 120
"""

EXAMPLES = r"""
- name: What would a drain of node-3 do? (changes nothing)
  sre.runbooks.k8s_node_drain:
    name: node-3
  check_mode: true
  register: plan

- name: Drain node-3, waiting up to 5 minutes for budgets to allow each eviction
  sre.runbooks.k8s_node_drain:
    name: node-3
    delete_emptydir_data: true
    disruption_budget_timeout: 300
    retry_interval: 5

- name: Put the node back into service
  sre.runbooks.k8s_node_drain:
    name: node-3
    state: uncordon
"""

RETURN = r"""
node:
  description: The node.
  returned: always
  type: str
ready:
  description: Whether the node's Ready condition was True.
  returned: always
  type: bool
cordoned:
  description: Whether the node was cordoned by this run (in check mode, would be).
  returned: always
  type: bool
evicted:
  description: Pods evicted (namespace/name); in check mode, the pods it would evict.
  returned: always
  type: list
  elements: str
deleted:
  description: Finished pods deleted (namespace/name); in check mode, those it would delete.
  returned: always
  type: list
  elements: str
left_alone:
  description: Pods the drain leaves on the node, by why (daemonset, mirror, terminating - already marked for deletion).
  returned: always
  type: dict
blocked:
  description: Why pods could not be moved; non-empty only when the module failed.
  returned: always
  type: list
  elements: str
remaining:
  description: Evicted pods still on the node when the wait ended (a Ready node's kubelet was still stopping them).
  returned: always
  type: list
  elements: str
message:
  description: What happened, in one sentence.
  returned: always
  type: str
actions:
  description: What was done, for the incident timeline (cordon, evict, delete, uncordon).
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record
from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    K8sError,
    connect,
    drain_plan,
    k8s_argument_spec,
    node_ready,
    q,
)

NAMESPACE_TERMINATING = "NamespaceTerminating"


class Drain:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.node = module.params["name"]
        self._eviction_version = None
        self.changed = False
        self.actions = []
        self.result = {"node": self.node, "ready": False, "cordoned": False, "evicted": [], "deleted": [],
                       "left_alone": {"daemonset": [], "mirror": [], "terminating": []}, "blocked": [],
                       "remaining": [], "actions": self.actions}

    def fail(self, msg):
        self.module.fail_json(msg=msg, changed=self.changed, **self.result)

    def set_unschedulable(self, value, node):
        if bool((node.get("spec") or {}).get("unschedulable")) == value:
            return False
        verb = "cordon" if value else "uncordon"
        if not self.module.check_mode:
            self.api.patch(f"/api/v1/nodes/{q(self.node)}", {"spec": {"unschedulable": value}})
            self.changed = True
        self.actions.append(action_record(verb, f"Node/{self.node}", "check mode" if self.module.check_mode else "done"))
        return True

    def pods(self):
        return self.api.items("/api/v1/pods", fieldSelector=f"spec.nodeName={self.node}")

    def eviction_version(self):
        """policy/v1 where the cluster serves it (1.22+), else policy/v1beta1 (1.20, 1.21)."""
        if self._eviction_version is None:
            try:
                self.api.get("/apis/policy/v1")
                self._eviction_version = "policy/v1"
            except K8sError as exc:
                if exc.status != 404:
                    raise
                self._eviction_version = "policy/v1beta1"
        return self._eviction_version

    def evict(self, where):
        """None when the pod is evicted or gone; the refusal's message when a budget refuses it."""
        namespace, name = where.split("/", 1)
        body = {"apiVersion": self.eviction_version(), "kind": "Eviction",
                "metadata": {"name": name, "namespace": namespace}}
        try:
            self.api.request("POST", f"/api/v1/namespaces/{q(namespace)}/pods/{q(name)}/eviction", body=body)
        except K8sError as exc:
            if exc.status == 429:
                return str(exc).split(": ", 1)[-1] or "refused by a PodDisruptionBudget"
            if exc.status == 404:
                return None
            if exc.status == 403 and (exc.reason == NAMESPACE_TERMINATING or "being terminated" in str(exc)):
                # kubectl's rule: the namespace controller deletes the pod; an eviction never will.
                self.result["left_alone"]["terminating"].append(where)
                return None
            raise
        self.changed = True
        self.result["evicted"].append(where)
        self.actions.append(action_record("evict pod", f"Pod/{where}", "done", node=self.node))
        return None

    def run(self):
        p = self.module.params
        try:
            node = self.api.get(f"/api/v1/nodes/{q(self.node)}")
        except K8sError as exc:
            if exc.status == 404:
                self.fail(f"node {self.node} not found (kubectl get nodes)")
            raise
        self.result["ready"] = node_ready(node)
        if p["state"] == "uncordon":
            changed = self.set_unschedulable(False, node)
            verb = ("would uncordon" if self.module.check_mode else "uncordoned") if changed else "already schedulable"
            self.finish(f"{verb} {self.node}")
        pods = self.pods() if p["state"] == "drain" else []
        plan = drain_plan(pods, p["ignore_daemonsets"], p["delete_emptydir_data"], p["force"])
        for why in ("daemonset", "mirror", "terminating"):
            self.result["left_alone"][why] = plan[why]
        if plan["blocked"]:
            self.result["blocked"] = plan["blocked"]
            self.fail(f"the drain of {self.node} would be refused, nothing was changed: " + "; ".join(plan["blocked"]))
        self.result["cordoned"] = self.set_unschedulable(True, node)
        if p["state"] == "cordon":
            verb = ("would cordon" if self.module.check_mode else "cordoned") if self.result["cordoned"] else "already cordoned"
            self.finish(f"{verb} {self.node}")
        if self.module.check_mode:
            self.result["evicted"], self.result["deleted"] = plan["evict"], plan["delete"]
            for where in plan["evict"]:
                self.actions.append(action_record("evict pod", f"Pod/{where}", "check mode", node=self.node))
            for where in plan["delete"]:
                self.actions.append(action_record("delete pod", f"Pod/{where}", "check mode", node=self.node))
            self.finish(self.summary("would"))
        for where in plan["delete"]:
            self.api.delete_pod(*where.split("/", 1))
            self.changed = True
            self.result["deleted"].append(where)
            self.actions.append(action_record("delete pod", f"Pod/{where}", "done", node=self.node, reason="finished"))
        self.evict_all(plan["evict"], p["disruption_budget_timeout"], p["retry_interval"])
        self.wait_gone(p["wait_timeout"] if self.result["ready"] else 0)
        self.finish(self.summary(""))

    def evict_all(self, pending, timeout, interval):
        deadline = time.monotonic() + timeout
        while True:
            refused = {}
            for where in pending:
                why = self.evict(where)
                if why is not None:
                    refused[where] = why
            if not refused:
                return
            if time.monotonic() + interval > deadline:
                self.result["blocked"] = [f"{where}: {why}" for where, why in refused.items()]
                self.fail(f"node {self.node} is cordoned, but a PodDisruptionBudget still refused to evict "
                          f"{', '.join(refused)} after {timeout:g} s ({next(iter(refused.values()))}); "
                          f"evicted so far: {', '.join(self.result['evicted']) or 'none'}. Wait for the other "
                          "replicas to be ready, relax the budget, or run again")
            pending = list(refused)
            time.sleep(interval)

    def wait_gone(self, timeout):
        evicted = set(self.result["evicted"])
        deadline = time.monotonic() + timeout
        while evicted:
            left = {f"{pod['metadata']['namespace']}/{pod['metadata']['name']}" for pod in self.pods()} & evicted
            self.result["remaining"] = sorted(left)
            if not left or time.monotonic() >= deadline:
                return
            time.sleep(1)

    def summary(self, mood):
        r = self.result
        verb = {"would": ("would evict", "would delete"), "": ("evicted", "deleted")}[mood]
        parts = [f"{verb[0]} {len(r['evicted'])} pods", f"{verb[1]} {len(r['deleted'])} finished pods"]
        left = [f"{len(v)} {k}" for k, v in r["left_alone"].items() if v]
        if left:
            parts.append("left " + ", ".join(left))
        if r["remaining"]:
            parts.append(f"{len(r['remaining'])} evicted pods still stopping")
        cordon = ("would cordon" if mood else "cordoned") if r["cordoned"] else "already cordoned"
        return f"{cordon} {self.node}; " + "; ".join(parts)

    def finish(self, message):
        self.module.exit_json(changed=self.changed or (self.module.check_mode and bool(
            self.result["cordoned"] or self.result["evicted"] or self.result["deleted"]
            or any(a["action"] == "uncordon" for a in self.actions))), message=message, **self.result)


def main():
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="drain", choices=["cordon", "drain", "uncordon"]),
        ignore_daemonsets=dict(type="bool", default=True),
        delete_emptydir_data=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        disruption_budget_timeout=dict(type="float", default=60),
        retry_interval=dict(type="float", default=5),
        wait_timeout=dict(type="float", default=120),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    for key in ("disruption_budget_timeout", "retry_interval", "wait_timeout"):
        if p[key] < 0:
            module.fail_json(msg=f"{key} must not be negative")
    drain = Drain(module, connect(module))
    try:
        drain.run()
    except K8sError as exc:
        # An API error after an action must not lose the record of what was already done.
        drain.fail(f"node {drain.node}: {exc}")


if __name__ == "__main__":
    main()
