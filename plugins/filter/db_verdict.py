# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: db_verdict
short_description: The decisions of the db_exhaustion runbook, from pg_activity_info and pg_backends results
version_added: 0.2.0
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
description:
  - Decides, from module results only, whether the connection-exhaustion runbook acts, whether
    terminating sessions was enough or the pooler needs a restart, whether there is a pooler unit
    to restart, and whether the server healed. The role only wires its flags.
  - Each step adds to the same verdict; give what is known so far.
options:
  _input:
    description: The result of M(sre.runbooks.pg_activity_info) before any action.
    type: dict
    required: true
  threshold:
    description: Act when client sessions use at least this percent of the usable slots.
    type: float
    default: 80
  force:
    description: Act even under the threshold.
    type: bool
    default: false
  terminated:
    description: The result of M(sre.runbooks.pg_backends) that terminated sessions (its RV(server) is read).
    type: dict
  restart_pooler:
    description: Whether the operator allows a pooler restart at all.
    type: bool
    default: true
  pooler_unit:
    description:
      - The result of M(sre.runbooks.systemd_unit_info) for the pooler's unit. A unit that does
        not exist is skipped with a reason, never restarted.
    type: dict
  after:
    description: The result of M(sre.runbooks.pg_activity_info) after acting (a fresh connection).
    type: dict
"""

EXAMPLES = r"""
- name: Decide | act when utilisation is at or over the threshold
  ansible.builtin.set_fact:
    db_verdict: "{{ pg_before | sre.runbooks.db_verdict(threshold=80) }}"

- name: Act | terminate idle sessions
  sre.runbooks.pg_backends:
    backend_states: [idle]
  register: pg_terminated
  when: db_verdict.act

- name: Decide | does the pooler need a restart
  ansible.builtin.set_fact:
    db_verdict: "{{ pg_before | sre.runbooks.db_verdict(threshold=80, terminated=pg_terminated) }}"
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    act:
      description: Utilisation is at or over the threshold (or O(force)) - terminate old idle sessions.
      type: bool
    healthy:
      description: Under the threshold and not forced - healthy, nothing to do.
      type: bool
    reason:
      description: Why it acts or not.
      type: str
    utilisation_percent:
      description: Utilisation before acting; null when unknown.
      type: float
    pooler:
      description:
        - C(needed) (utilisation still at or over the threshold after terminating), C(restart)
          (needed, allowed, and the unit exists or the platform has no unit to check),
          C(skipped) (why a needed restart is not done; null otherwise).
      type: dict
    healed:
      description: After acting, a fresh connection sees utilisation under the threshold. Null before.
      type: bool
    verify_message:
      description: What the verify step says, healed or not. Null before.
      type: str
    summary:
      description: The verdict in one sentence.
      type: str
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def _percent(result: t.Any) -> float | None:
    if not isinstance(result, dict):
        return None
    value = result.get("utilisation_percent")
    if value is None and isinstance(result.get("server"), dict):
        value = result["server"].get("utilisation_percent")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def db_verdict(before: t.Any, threshold: t.Any = 80, force: bool = False, terminated: t.Any = None,
               restart_pooler: bool = True, pooler_unit: t.Any = None, after: t.Any = None) -> dict[str, t.Any]:
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"db_verdict: threshold must be a number, got {threshold!r}") from None
    force, restart_pooler = boolean(force, strict=False), boolean(restart_pooler, strict=False)
    used = _percent(before)
    verdict: dict[str, t.Any] = {"utilisation_percent": used, "threshold_percent": threshold,
                                 "pooler": None, "healed": None, "verify_message": None}
    if used is None:
        verdict.update(act=False, healthy=False,
                       reason="connection usage unknown (pg_activity_info returned no utilisation); nothing done")
    elif force:
        verdict.update(act=True, healthy=False, reason=f"forced at {used}% (threshold {threshold:g}%)")
    elif used >= threshold:
        verdict.update(act=True, healthy=False, reason=f"{used}% of usable slots used, at or over {threshold:g}%")
    else:
        verdict.update(act=False, healthy=True,
                       reason=f"healthy, nothing to do: {used}% of usable slots used, under {threshold:g}%")
    verdict["summary"] = verdict["reason"]

    if verdict["act"] and isinstance(terminated, dict) and terminated:
        left = _percent(terminated)
        needed = left is not None and left >= threshold
        pooler: dict[str, t.Any] = {"needed": needed, "restart": False, "skipped": None,
                                    "utilisation_after_terminating": left}
        if needed and not restart_pooler:
            pooler["skipped"] = "a pooler restart is needed but disabled (db_exhaustion_restart_pooler: false)"
        elif needed and isinstance(pooler_unit, dict) and pooler_unit.get("missing_units"):
            pooler["skipped"] = (f"pooler unit {', '.join(pooler_unit['missing_units'])} not found on this host; "
                                 "skipped the pooler restart (set db_exhaustion_pooler_unit, or "
                                 "db_exhaustion_restart_pooler: false when there is no pooler)")
        elif needed:
            pooler["restart"] = True
        verdict["pooler"] = pooler
        if pooler["restart"]:
            verdict["summary"] += f"; still {left}% after terminating: restart the pooler"
        elif pooler["skipped"]:
            verdict["summary"] += f"; still {left}% after terminating: {pooler['skipped']}"

    if isinstance(after, dict) and after:
        left = _percent(after)
        verdict["healed"] = left is not None and left < threshold
        if verdict["healed"]:
            verdict["verify_message"] = f"{left}% used, a fresh connection works"
        else:
            by_app = after.get("by_application")
            verdict["verify_message"] = (
                f"still {left}% used after remediation (threshold {threshold:g}%); by application {by_app}. "
                "Escalate: find the leaking application."
                + (f" ({verdict['pooler']['skipped']})" if verdict["pooler"] and verdict["pooler"]["skipped"] else ""))
        verdict["summary"] += "; " + verdict["verify_message"]
    return verdict


class FilterModule:
    """The db_exhaustion runbook's decisions."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"db_verdict": db_verdict}
