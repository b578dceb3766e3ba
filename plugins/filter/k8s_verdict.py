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
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
positional: decision
options:
  _input:
    description:
      - For V(api_gateway_down) - the registered result of C(k8s_rollout action=status) before
        acting.
      - For V(api_gateway_down_bounce) - the same registered result (the state before acting).
    type: dict
    required: true
  decision:
    description: Which decision to take.
    type: str
    required: true
    choices: [api_gateway_down, api_gateway_down_bounce]
  triage:
    description: For V(api_gateway_down) - the registered result of C(k8s_triage_info) on the gateway's pods.
    type: dict
  crash_reasons:
    description: For V(api_gateway_down) - pod reasons that count as a failing release.
    type: list
    elements: str
  undo_enabled:
    description: For V(api_gateway_down) - whether rolling back a bad rollout is allowed.
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
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    act:
      description: Whether to act (for V(api_gateway_down_bounce), whether to scale to 0 and back).
      type: bool
    stop:
      description:
        - For V(api_gateway_down_bounce) - the restart did not heal and nothing more may be tried;
          the role stops and reports O(reason).
      type: bool
    remedy:
      description: For V(api_gateway_down) - V(none), V(undo) or V(restart).
      type: str
    reason:
      description: Why, in one sentence.
      type: str
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


DECISIONS: dict[str, t.Callable[..., dict[str, t.Any]]] = {
    "api_gateway_down": api_gateway_down,
    "api_gateway_down_bounce": api_gateway_down_bounce,
}


def k8s_verdict(data: t.Any, decision: str, **options: t.Any) -> dict[str, t.Any]:
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
