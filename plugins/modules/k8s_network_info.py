#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_network_info
short_description: Services without ready endpoints and the NetworkPolicies that select the affected pods
version_added: 0.1.0
description:
  - Runbook 001 "Network Partition" on Kubernetes ("service unavailable but pods running") in one
    read-only call - C(kubectl get endpoints) and C(kubectl describe networkpolicies).
  - For each Service of O(services) (default every Service of O(namespace)) - its ready and not
    ready endpoint addresses, the pods its selector matches and how many are Ready, and when it
    has no ready endpoint, why - no pod matches the selector, the pods are not Ready, or Ready
    pods the endpoints do not list.
  - The NetworkPolicies whose C(podSelector) selects the affected pods (O(pod_selector), default
    the pods of the checked Services), with their policy types, rule counts and whether they
    deny all ingress or all egress to those pods.
  - Four list calls (services, endpoints, network policies, pods), never one per object.
  - Returns a C(verdict) and never changes anything - a Service without endpoints or an
    isolating policy is reported for a human (the fix is in the workload or the policy).
author:
  - sre.runbooks maintainers (@sre-runbooks)
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
    description: The namespace of the Services, pods and policies.
    type: str
    required: true
  services:
    description: Names of the Services to check; default every Service of the namespace.
    type: list
    elements: str
    default: []
  pod_selector:
    description:
      - The affected pods, as a mapping of label names to values; default the pods the checked Services select.
    type: dict
"""

EXAMPLES = r"""
- name: Why is the API unreachable inside the cluster?
  sre.runbooks.k8s_network_info:
    kubeconfig: ~/.kube/config
    namespace: platform
    services: [multitenant-api-service]
  register: net

- name: Report
  ansible.builtin.debug:
    msg: "{{ net.verdict.summary }}"
"""

RETURN = r"""
services:
  description: One entry per checked Service.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The Service.
      type: str
    selector:
      description: Its pod selector (labels).
      type: dict
    ready_endpoints:
      description: Ready addresses in its Endpoints.
      type: int
    not_ready_endpoints:
      description: Not-ready addresses in its Endpoints.
      type: int
    pods:
      description: Pods its selector matches.
      type: int
    ready_pods:
      description: Of those, how many are Ready.
      type: int
    no_ready_endpoints:
      description: Whether it has no ready endpoint.
      type: bool
    reason:
      description: Why it has none, or null.
      type: str
      sample: "2 pods match, none is Ready: the pods fail their readiness probe (or their node is NotReady)"
network_policies:
  description:
    - The NetworkPolicies that select at least one affected pod - C(name), C(pod_selector),
      C(policy_types), C(selects) (pod names), C(ingress_rules), C(egress_rules),
      C(denies_all_ingress), C(denies_all_egress).
  returned: always
  type: list
  elements: dict
affected_pods:
  description: Names of the affected pods.
  returned: always
  type: list
  elements: str
verdict:
  description:
    - C(healthy), C(act) (always false), C(problem), C(services_without_endpoints),
      C(missing_services), C(isolating_policies) (deny all ingress or egress to affected pods),
      C(summary).
  returned: always
  type: dict
"""

import concurrent.futures

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._k8s import K8sError, connect, k8s_argument_spec, q
from ansible_collections.sre.runbooks.plugins.module_utils._k8s_net import network_report


def main() -> None:
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        namespace=dict(type="str", required=True),
        services=dict(type="list", elements="str", default=[]),
        pod_selector=dict(type="dict"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    namespace = params["namespace"]
    api = connect(module)
    base = f"/api/v1/namespaces/{q(namespace)}"
    calls = {
        "services": f"{base}/services",
        "endpoints": f"{base}/endpoints",
        "pods": f"{base}/pods",
        "policies": f"/apis/networking.k8s.io/v1/namespaces/{q(namespace)}/networkpolicies",
    }
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {kind: pool.submit(api.items, path) for kind, path in calls.items()}
            lists = {kind: future.result() for kind, future in futures.items()}
    except K8sError as exc:
        module.fail_json(msg=f"cannot read namespace {namespace}: {exc}")
    selector = params["pod_selector"]
    report = network_report(lists["services"], lists["endpoints"], lists["policies"], lists["pods"],
                            params["services"] or None,
                            {"matchLabels": {str(k): str(v) for k, v in selector.items()}} if selector else None)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
