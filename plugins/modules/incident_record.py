#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_record
short_description: The structured record of one outage role's run, in the one shape every role uses
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin); it never connects to the target.
  - Sets the fact O(fact) (default C(SCENARIO_result)) that the incident timeline, the report and
    the tests read. Every record has the same keys first - C(scenario), C(host), C(started),
    C(finished), C(duration_seconds), C(check_mode), C(outcome), C(error), C(verdict), C(actions) -
    then the role's own O(details).
  - Times are ISO 8601 UTC with milliseconds and a C(Z), the format of every module's C(actions).
  - "The outcome is decided here, in one order - V(failed) (O(error) is set), V(no action needed)
    (nothing wrong was O(found)), V(reported: WHY) (something is wrong but the verdict says not
    to O(act)), V(check mode: would REMEDY), V(assessed only) (the act phase did not run), V(healed)."
  - C(actions) are the C(actions) entries the modules returned in O(results) (each stamped when
    it happened), oldest first.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
options:
  scenario:
    description: The scenario (the role's name).
    type: str
    required: true
  fact:
    description: The fact to set; default C(SCENARIO_result).
    type: str
  started:
    description: When the role started (ISO 8601; naive means UTC; or epoch seconds).
    type: str
  error:
    description: Why the run failed (the rescue's message); empty when it did not.
    type: str
  verdict:
    description:
      - The role's decision - a verdict mapping (its C(summary) or C(reason) is recorded, its
        C(act) is the default of O(found) and O(act)) or a sentence.
    type: raw
  found:
    description: Whether something was wrong. Default is the verdict's C(act).
    type: bool
  act:
    description: Whether the verdict says to act. Default is the verdict's C(act).
    type: bool
  reported:
    description: "Why the run only reported (the outcome becomes V(reported: WHY)) when O(found) and not O(act)."
    type: str
  remedy:
    description: "What the role would do, for the check-mode outcome V(check mode: would REMEDY)."
    type: str
    default: act
  acted:
    description: Whether the act phase ran (false under C(--tags assess) or when a guard skipped it).
    type: bool
    default: false
  results:
    description:
      - Registered results of the act and verify tasks; the C(actions) they hold (loops included)
        become the record's C(actions).
      - For a module that returns no C(actions), an entry C({result, action, target, at, check_mode})
        turns each changed item into an action stamped with C(at), the time its task ran; with
        C(item_key) the target is that key of the loop item, and C(item_fields) copies more of its keys.
    type: list
    elements: raw
    default: []
  details:
    description: The role's own keys (they may not redefine a common key).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Records the run as it went, check mode included.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Sets a fact only.
  action:
    support: full
    description: Implemented as an action plugin that runs on the controller.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
"""

EXAMPLES = r"""
- name: Record | structured result for the incident timeline
  sre.runbooks.incident_record:
    scenario: node_failure
    started: "{{ node_failure_started_at | default(omit) }}"
    error: "{{ node_failure_error | default(omit) }}"
    verdict: "{{ node_failure_verdict | default({}) }}"
    remedy: cordon and drain
    acted: "{{ node_failure_after is defined }}"
    results: ["{{ node_failure_drained | default({}) }}"]
    details:
      nodes: "{{ (node_failure_verdict | default({})).nodes | default([]) }}"
  tags: [always]
"""

RETURN = r"""
record:
  description: The record (also set as the fact O(fact)).
  returned: always
  type: dict
  contains:
    scenario: {description: The scenario., type: str}
    host: {description: The inventory host the role ran for., type: str}
    started: {description: When the role started (ISO 8601 UTC)., type: str}
    finished: {description: When the record was made (ISO 8601 UTC)., type: str}
    duration_seconds: {description: finished - started., type: float}
    check_mode: {description: Whether the run was in check mode., type: bool}
    outcome: {description: The outcome (see the description)., type: str}
    error: {description: "Why the run failed, or null.", type: str}
    verdict: {description: The decision in one sentence., type: str}
    actions: {description: "What was done and when, oldest first.", type: list, elements: dict}
"""

from ansible.module_utils.basic import AnsibleModule

# The same options as the action plugin's (plugins/action/incident_record.py).
ARGUMENT_SPEC = {
    "scenario": {"type": "str", "required": True},
    "fact": {"type": "str"},
    "started": {"type": "str"},
    "error": {"type": "str"},
    "verdict": {"type": "raw"},
    "found": {"type": "bool"},
    "act": {"type": "bool"},
    "reported": {"type": "str"},
    "remedy": {"type": "str", "default": "act"},
    "acted": {"type": "bool", "default": False},
    "results": {"type": "list", "elements": "raw", "default": []},
    "details": {"type": "dict", "default": {}},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="sre.runbooks.incident_record runs on the controller as an action plugin; "
                         "call it as a task of a role, not as a module on a host")


if __name__ == "__main__":
    main()
