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
  - V(redis_unavailable) starts (stopped) or restarts once (restarting, crash-looping, unhealthy and
    not answering PING, or with no healthcheck and not answering PING) the container of the Redis
    service O(service), judged on Docker's evidence and on the PING result O(ping); reports a Redis
    that answers LOADING or max clients (alive), one Docker finds healthy that this host cannot
    PING (a path problem), a paused one, and one down again after this incident's start or restart.
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
    choices: [memory_exhaustion, redis_unavailable]
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
  service:
    description: V(redis_unavailable) - the Redis service of the project.
    type: str
    default: redis
  ping:
    description:
      - V(redis_unavailable) - the registered result of C(sre.runbooks.redis_health_info) for the
        addresses the Redis service listens on (its C(nodes)); omitted - Docker's evidence only.
    type: dict
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    verdict: "{{ info | sre.runbooks.compose_verdict('memory_exhaustion', max_actions=3) }}"

- name: Decide what to do about the project's Redis
  ansible.builtin.set_fact:
    verdict: "{{ info | sre.runbooks.compose_verdict('redis_unavailable', service='redis', ping=redis_ping, max_actions=2) }}"
"""

RETURN = r"""
_value:
  description: >-
    found, oom_killed (name, service, state, problem, memory_limit_bytes, memory_usage_bytes,
    memory_percent, restart_count, exit_code), near_limit, to_restart, services_to_restart,
    report (name -> why not acted on), down_after_restart (OOM-killed again after this
    incident's restart), other (down for another reason), act, problem (guardrail), summary.
    V(redis_unavailable) - found, healthy, ping (ok, unreachable, busy, loading or null), containers,
    failing, to_start, to_restart, services_to_start, services_to_restart, report (name -> why not
    acted on), down_after_action, act, problem, summary.
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._compose_redis import redis_container_verdict
from ansible_collections.sre.runbooks.plugins.module_utils._docker import oom_verdict


def compose_verdict(info: dict[str, t.Any], scenario: str, max_actions: int = 3, warn_percent: float = 90.0,
                    restart: bool = True, service: str = "redis", ping: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    if not isinstance(info, dict) or not isinstance(info.get("services"), dict):
        raise AnsibleFilterError("compose_verdict: expects the registered result of sre.runbooks.compose_service_info")
    if scenario not in ("memory_exhaustion", "redis_unavailable"):
        raise AnsibleFilterError(f"compose_verdict: unknown scenario {scenario!r} (known: memory_exhaustion, redis_unavailable)")
    containers = [c for group in info["services"].values() for c in group]
    if scenario == "redis_unavailable":
        if ping is not None and not isinstance((ping or {}).get("nodes", []), list):
            raise AnsibleFilterError("compose_verdict: ping must be the registered result of sre.runbooks.redis_health_info")
        return redis_container_verdict(containers, service, (ping or {}).get("nodes") or [], info.get("acted") or {},
                                       int(max_actions), bool(restart))
    return oom_verdict(containers, info.get("acted") or {}, int(max_actions), float(warn_percent), bool(restart))


class FilterModule:
    def filters(self) -> dict[str, t.Any]:
        return {"compose_verdict": compose_verdict}
