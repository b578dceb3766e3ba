#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_memory_limit
short_description: Raise a workload's container memory limits by a bounded factor, once
version_added: 0.1.0
description:
  - The remediation step for OOMKilled pods - sets each selected container's memory limit to
    its baseline limit times O(factor), as a rolling update of the workload's pod template.
  - The baseline is the limit before this module first raised it, recorded in the workload's
    C(sre.runbooks/memory-baseline) annotation (metadata only), so running the same task
    twice raises once - the wanted state is "limit = baseline x factor", not "double it again".
  - Guardrail - O(factor) may not exceed O(max_factor) (default 2); the module fails and
    changes nothing, naming the option to override. Containers without a memory limit are
    left alone and reported.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.k8s
attributes:
  check_mode:
    support: full
    description: Returns the limits it would set and changes nothing.
  diff_mode:
    support: full
    description: Memory limits per container before and after.
  idempotent:
    support: full
    description: The target is computed from the recorded baseline; a second run reports no change.
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
  containers:
    description: Only these containers. Default is every container that has a memory limit.
    type: list
    elements: str
    default: []
  factor:
    description: New limit = baseline limit x O(factor).
    type: float
    default: 1.5
  max_factor:
    description: The guardrail - the largest O(factor) allowed.
    type: float
    default: 2.0
  incident_started_at:
    description:
      - When the current incident started (ISO 8601). The recorded baseline belongs to the
        incident that raised the limit; a baseline recorded before this moment belongs to an
        earlier incident, so this run starts from the current limit (and records a new baseline).
      - Without it (and without O(incident_id)) any recorded baseline is used, whatever its age.
    type: str
  incident_id:
    description:
      - An identifier of the current incident (a ticket number). A baseline recorded under a
        different identifier belongs to another incident; this run starts from the current limit.
    type: str
  raise_requests:
    description:
      - Also raise each memory request so its ratio to the limit stays the same. By default
        requests are left alone (a limit above the request is valid).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Give the API 50% more memory after OOMKills (once, however often the play runs)
  sre.runbooks.k8s_memory_limit:
    namespace: platform
    name: multitenant-api
    containers: [api]
    factor: 1.5

- name: Preview doubling every container's limit
  sre.runbooks.k8s_memory_limit:
    namespace: platform
    name: multitenant-api
    factor: 2
  check_mode: true
  diff: true
"""

RETURN = r"""
containers:
  description: Per selected container, the limits involved.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Container name., type: str}
    baseline: {description: The limit before the first raise in this incident., type: str}
    before: {description: The limit before this run., type: str}
    after: {description: The limit after this run (or that would be set in check mode)., type: str}
    skipped: {description: Why the container was left alone (no memory limit)., type: str}
baseline_source:
  description: Where the baseline came from - recorded in this incident, or the current limit (a new incident).
  returned: always
  type: str
  sample: "recorded at 2026-01-01T10:00:00Z, before this incident: the current limit"
actions:
  description: What was done, for the incident timeline.
  returned: always
  type: list
  elements: dict
message:
  description: What happened, in one sentence.
  returned: always
  type: str
diff:
  description: Memory limits before and after.
  returned: when diff mode is on
  type: dict
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped, action_record, utc_iso
from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    K8sError,
    connect,
    k8s_argument_spec,
    memory_quantity,
    parse_quantity,
    parse_time,
    workload_path,
)

BASELINE = "sre.runbooks/memory-baseline"


def baselines_for_incident(recorded, incident_started_at, incident_id):
    """The per-container baselines that belong to this incident, and where they came from.

    The annotation is {"containers": {name: limit}, "incident_id": ..., "raised_at": ...}; the
    format before 0.2 was the bare {name: limit} (no incident: only usable without incident options).
    """
    if not isinstance(recorded, dict) or not recorded:
        return {}, "none recorded: the current limit"
    legacy = "containers" not in recorded
    containers = recorded if legacy else (recorded.get("containers") or {})
    if not (incident_started_at or incident_id):
        return dict(containers), "recorded (no incident given)"
    if legacy:
        return {}, "recorded without an incident: the current limit"
    if incident_id and recorded.get("incident_id") != incident_id:
        return {}, f"recorded for incident {recorded.get('incident_id')!r}, not {incident_id!r}: the current limit"
    if incident_started_at:
        started = parse_time(incident_started_at)
        raised = parse_time(recorded.get("raised_at")) if recorded.get("raised_at") else None
        if raised is None or raised < started.replace(microsecond=0):
            return {}, f"recorded at {recorded.get('raised_at')}, before this incident: the current limit"
    return dict(containers), "recorded in this incident"


def main():
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        kind=dict(type="str", default="Deployment", choices=["Deployment", "StatefulSet", "DaemonSet"]),
        name=dict(type="str", required=True),
        namespace=dict(type="str", default="default"),
        containers=dict(type="list", elements="str", default=[]),
        factor=dict(type="float", default=1.5),
        max_factor=dict(type="float", default=2.0),
        raise_requests=dict(type="bool", default=False),
        incident_started_at=dict(type="str"),
        incident_id=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    target = f"{p['kind']}/{p['namespace']}/{p['name']}"
    try:
        if p["factor"] < 1:
            raise ValueError(f"factor must be at least 1 (this module only raises limits), got {p['factor']}")
        if p["factor"] > p["max_factor"]:
            raise GuardrailTripped("max_factor", f"factor {p['factor']:g} exceeds max_factor {p['max_factor']:g}",
                                   f"set max_factor to at least {p['factor']:g} if the workload really needs it")
    except GuardrailTripped as exc:
        module.fail_json(msg=str(exc), guardrail=exc.guardrail, changed=False, target=target)
    except ValueError as exc:
        module.fail_json(msg=str(exc), target=target)

    api = connect(module)
    path = workload_path(p["kind"], p["namespace"], p["name"])
    try:
        workload = api.get_or_none(path)
    except K8sError as exc:
        module.fail_json(msg=f"cannot read {target}: {exc}")
    if workload is None:
        module.fail_json(msg=f"{target} not found; check kind, name and namespace")
    meta = workload["metadata"]
    try:
        recorded = json.loads((meta.get("annotations") or {}).get(BASELINE) or "{}")
    except ValueError:
        recorded = {}
    try:
        baselines, baseline_note = baselines_for_incident(recorded, p["incident_started_at"], p["incident_id"])
    except ValueError as exc:
        module.fail_json(msg=f"incident_started_at: {exc}", target=target)
    containers = workload["spec"]["template"]["spec"]["containers"]
    names = [c["name"] for c in containers]
    unknown = [n for n in p["containers"] if n not in names]
    if unknown:
        module.fail_json(msg=f"{target} has no container {', '.join(unknown)}; it has {', '.join(names)}")

    report, patch_ops, new_baselines = [], [], dict(baselines)
    for index, container in enumerate(containers):
        if p["containers"] and container["name"] not in p["containers"]:
            continue
        limits = (container.get("resources") or {}).get("limits") or {}
        if "memory" not in limits:
            report.append({"name": container["name"], "skipped": "no memory limit set"})
            continue
        current = limits["memory"]
        baseline = baselines.get(container["name"]) or current
        new_baselines[container["name"]] = baseline
        wanted = memory_quantity(parse_quantity(baseline) * p["factor"])
        entry = {"name": container["name"], "baseline": baseline, "before": current, "after": current}
        if parse_quantity(current) < parse_quantity(wanted):
            entry["after"] = wanted
            patch_ops.append({"op": "replace", "path": f"/spec/template/spec/containers/{index}/resources/limits/memory",
                              "value": wanted})
            requests = (container.get("resources") or {}).get("requests") or {}
            if p["raise_requests"] and "memory" in requests:
                ratio = parse_quantity(requests["memory"]) / parse_quantity(current)
                patch_ops.append({"op": "replace",
                                  "path": f"/spec/template/spec/containers/{index}/resources/requests/memory",
                                  "value": memory_quantity(parse_quantity(wanted) * ratio)})
        report.append(entry)

    changed = bool(patch_ops)
    result = {"changed": changed, "containers": report, "actions": [], "baseline_source": baseline_note}
    if module._diff:
        result["diff"] = {"before": {e["name"]: e.get("before") for e in report},
                          "after": {e["name"]: e.get("after") for e in report}}
    raised = [e for e in report if e.get("after") != e.get("before")]
    summary = ", ".join(f"{e['name']} {e['before']} -> {e['after']}" for e in raised)
    if not changed:
        result["message"] = (f"memory limits of {target} already at baseline x {p['factor']:g}"
                             if any("before" in e for e in report) else f"no container of {target} has a memory limit")
        module.exit_json(**result)
    if module.check_mode:
        result["message"] = f"would raise memory limits of {target}: {summary}"
        result["actions"].append(action_record("raise memory limit", target, "check mode", detail=summary))
        module.exit_json(**result)
    annotations_path = "/metadata/annotations"
    value = json.dumps({"containers": new_baselines, "incident_id": p["incident_id"],
                        "raised_at": utc_iso()}, sort_keys=True)
    if meta.get("annotations"):
        patch_ops.append({"op": "add", "path": f"{annotations_path}/{BASELINE.replace('/', '~1')}", "value": value})
    else:
        patch_ops.append({"op": "add", "path": annotations_path, "value": {BASELINE: value}})
    patch_ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]})
    try:
        api.patch(path, patch_ops, "json")
    except K8sError as exc:
        module.fail_json(msg=f"cannot raise memory limits of {target}: {exc}; run again if it changed meanwhile",
                         changed=False)
    result["message"] = f"raised memory limits of {target}: {summary}"
    result["actions"].append(action_record("raise memory limit", target, "done", detail=summary))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
