# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the compose runbooks that compose_service_info's own verdict does not
cover, as a Jinja filter over its result. Every branch is unit-tested (tests/unit/docker)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: compose_verdict
short_description: Decide what a compose runbook may do, from what compose_service_info found
version_added: 0.3.0
description:
  - Takes the registered result of C(sre.runbooks.compose_service_info) (run with O(restarted_after)
    so that this incident's restarts are known) and returns a verdict.
  - V(memory_exhaustion) restarts, once per incident, the containers the kernel OOM-killed that do
    not serve now; reports those OOM-killed again after that restart, those serving again, and
    those at or above O(warn_percent) of their memory limit, each with its limit and usage; it
    never changes a limit (that is an edit of the compose file, a human's decision).
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
positional: scenario
options:
  _input:
    description: The registered result of C(sre.runbooks.compose_service_info).
    type: dict
    required: true
  scenario:
    description: The runbook.
    type: str
    choices: [memory_exhaustion]
    required: true
  max_actions:
    description: Restart nothing when more containers than this need it.
    type: int
    default: 3
  warn_percent:
    description: Report a container whose memory use is at or above this percentage of its limit.
    type: float
    default: 90
  restart:
    description: Allow the restart (false - report only).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    verdict: "{{ info | sre.runbooks.compose_verdict('memory_exhaustion', max_actions=3) }}"
"""

RETURN = r"""
_value:
  description: >-
    found, oom_killed (name, service, state, problem, memory_limit_bytes, memory_usage_bytes,
    memory_percent, restart_count, exit_code), near_limit, to_restart, services_to_restart,
    report (name -> why not acted on), down_after_restart (OOM-killed again after this
    incident's restart), other (down for another reason), act, problem (guardrail), summary.
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._docker import oom_verdict


def compose_verdict(info: dict[str, t.Any], scenario: str, max_actions: int = 3, warn_percent: float = 90.0,
                    restart: bool = True) -> dict[str, t.Any]:
    if not isinstance(info, dict) or not isinstance(info.get("services"), dict):
        raise AnsibleFilterError("compose_verdict: expects the registered result of sre.runbooks.compose_service_info")
    if scenario != "memory_exhaustion":
        raise AnsibleFilterError(f"compose_verdict: unknown scenario {scenario!r} (known: memory_exhaustion)")
    containers = [c for group in info["services"].values() for c in group]
    return oom_verdict(containers, info.get("acted") or {}, int(max_actions), float(warn_percent), bool(restart))


class FilterModule:
    def filters(self) -> dict[str, t.Any]:
        return {"compose_verdict": compose_verdict}
