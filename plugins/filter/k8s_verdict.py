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
    type: raw
    required: true
  decision:
    description: Which decision to take.
    type: str
    required: true
    choices: [api_gateway_down, api_gateway_down_bounce, crashloop_candidates, crashloop]
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
  max_workloads:
    description: For V(crashloop) - guardrail, never roll back more workloads than this in one run.
    type: int
    default: 3
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
      description: For V(crashloop) - the guardrail message when one tripped (the role fails with it), else null.
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


DECISIONS: dict[str, t.Callable[..., t.Any]] = {
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
