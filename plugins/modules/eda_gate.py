#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eda_gate
short_description: Decide what one alert may run - which host, remediate or check only
version_added: 0.2.0
description:
  - Runs on the controller (an action plugin) for C(sre.runbooks.eda_remediate), the playbook the
    rulebook C(extensions/eda/rulebooks/outage.yml) runs for every alert.
  - Resolves the alert's labels (C(inventory_host), C(host), C(instance) without its port) to
    exactly one inventory host of the scenario's group. A label that names nothing, a group, a
    pattern or several hosts resolves to no host - the alert runs nothing and the result says why.
    An empty target never becomes "all hosts".
  - Decides remediate or check mode - check mode unless O(auto_remediate) is true for the scenario,
    and check mode once the scenario had O(max_remediations_per_hour) real runs in the last hour on
    this controller (the rate limit; the run then only assesses and notifies).
  - Appends every decision to a ledger (C(STATE_DIR/eda-ledger.jsonl), flock-protected, 24 h kept),
    the state the rate limit counts. On AWX, where each job runs in a fresh container, point
    O(state_dir) at persistent storage or the limit cannot hold.
  - Returns the C(ansible-playbook) command line of the scenario run (C(--limit HOST), C(--check)
    when so decided) and writes its extra vars (the alert as C(ansible_eda), the scenario's vars) to
    a 0600 file.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
options:
  scenario:
    description: The scenario playbook (C(playbooks/outage/SCENARIO.yml)) the rule chose for the alert.
    type: str
    required: true
  event:
    description:
      - The alert, one element of an Alertmanager webhook's C(alerts) (C(status), C(labels),
        C(startsAt), C(fingerprint), C(meta.received_at)).
      - Defaults to C(ansible_eda.event), which ansible-rulebook passes to every playbook it runs.
    type: dict
  auto_remediate:
    description:
      - True for every scenario, or a mapping scenario -> bool (key C(default) for the rest).
      - Anything but true means check mode.
    type: raw
    default: false
  max_remediations_per_hour:
    description: One limit for every scenario, or a mapping scenario -> int (key C(default) for the rest).
    type: raw
    default: 3
  scenario_vars:
    description:
      - Extra vars per scenario (thresholds, guardrails), a mapping scenario -> vars, as the rulebook vars give them.
      - The alert's C(namespace), C(deployment) and C(node) labels set the Kubernetes scenarios' role
        variables on top (a value that is not a Kubernetes name is ignored).
    type: dict
    default: {}
  state_dir:
    description:
      - Folder of the ledger and the run's vars files; defaults to the incident records' folder
        (E(SRE_RUNBOOKS_STATE_DIR), else C($XDG_STATE_HOME/sre-runbooks/incidents)).
    type: path
attributes:
  check_mode:
    support: full
    description: In check mode the ledger is read, never written.
  diff_mode:
    support: none
    description: Nothing on a target changes.
  idempotent:
    support: none
    description: Every call appends one decision to the ledger.
  action:
    support: full
    description: Implemented as an action plugin that runs on the controller.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
notes:
  - Always returns C(changed=false); the ledger is bookkeeping on the controller.
"""

EXAMPLES = r"""
- name: EDA | which host this alert names, and may it remediate
  sre.runbooks.eda_gate:
    scenario: db_exhaustion
    auto_remediate: {db_exhaustion: true}
    max_remediations_per_hour: 3
    scenario_vars: {db_exhaustion_utilisation_threshold: 80}
  register: gate
"""

RETURN = r"""
run:
  description: Whether the alert runs a playbook (false - it names no single inventory host).
  returned: always
  type: bool
target:
  description: The inventory host the run is limited to (null when RV(run) is false).
  returned: always
  type: str
  sample: lab-postgres
kind:
  description: C(remediate) for a firing alert, C(resolve) for a resolved one.
  returned: always
  type: str
check_mode:
  description: Whether the scenario runs with C(--check).
  returned: always
  type: bool
reason:
  description: Why - the label that chose the host (or why none), and the auto_remediate / rate limit verdict.
  returned: always
  type: str
recent_remediations:
  description: Real runs of this scenario in the last hour, before this one.
  returned: always
  type: int
alert:
  description: The alert's name, status, fingerprint, labels, startsAt and webhook arrival time.
  returned: always
  type: dict
argv:
  description: The C(ansible-playbook) command of the run (empty when RV(run) is false).
  returned: always
  type: list
  elements: str
vars_file:
  description: The 0600 extra-vars file the command reads (removed by the playbook afterwards).
  returned: when RV(run) is true
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

# The same options as the action plugin's (plugins/action/eda_gate.py).
ARGUMENT_SPEC = {
    "scenario": {"type": "str", "required": True},
    "event": {"type": "dict"},
    "auto_remediate": {"type": "raw", "default": False},
    "max_remediations_per_hour": {"type": "raw", "default": 3},
    "scenario_vars": {"type": "dict", "default": {}},
    "state_dir": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="sre.runbooks.eda_gate runs on the controller as an action plugin; "
                         "call it as a task of a playbook, not as a module on a host")


if __name__ == "__main__":
    main()
