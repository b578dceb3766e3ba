#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_start
short_description: Which incident a run belongs to, and when that incident started
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin); it never connects to the target.
  - Guards such as "restart the pooler once per incident" compare against the incident's start.
    Without this, each run started a new incident and a re-run restarted again.
  - The first run of an incident writes a small JSON record (C(STATE_DIR/INCIDENT_ID.json));
    later runs with the same incident id, within O(window) of the previous run, return the start
    that record holds. A record older than O(window) starts a new incident.
  - O(started_at) (the playbooks pass C(incident_started_at)) always wins and is recorded.
  - In a run started by ansible-rulebook (the variable C(ansible_eda) holds the alert), the alert's
    C(startsAt) is the incident's start unless O(started_at) is given, and the result carries the
    alert (C(alert)). Every outage playbook calls this module first, so this is the one place
    that reads the alert.
  - In check mode the record is read, never written.
  - The outage playbooks run it first and set C(incident_started_at) from its result for their roles.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
options:
  scenario:
    description: Scenario name (the playbook's), part of the default incident id.
    type: str
    required: true
  target:
    description: The hosts or group the run targets, part of the default incident id.
    type: str
  incident_id:
    description:
      - The incident's id; runs that share it share one start.
      - Defaults to C(SCENARIO--TARGET), lower case, with unsafe characters replaced by C(-).
      - Letters, digits, C(.), C(_) and C(-) only.
    type: str
  started_at:
    description:
      - When the incident started (ISO 8601 such as C(2026-01-31T03:12:00Z), or epoch seconds).
        Overrides the record, and is written to it.
    type: str
  state_dir:
    description:
      - Folder of incident records on the controller.
      - Defaults to E(SRE_RUNBOOKS_STATE_DIR), else C($XDG_STATE_HOME/sre-runbooks/incidents),
        else C(~/.local/state/sre-runbooks/incidents).
      - On AWX, where each job runs in a fresh container, pass O(started_at) or point this at
        persistent storage.
    type: path
  window:
    description:
      - A run within this long of the incident's previous run belongs to the same incident.
      - Seconds or a duration such as C(90m) or C(2h).
    type: raw
    default: 2h
attributes:
  check_mode:
    support: full
    description: Reads the record and returns the start it would use; writes nothing.
  diff_mode:
    support: none
    description: Nothing on the target changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Runs of one incident return the same start; only the record's run count grows.
  action:
    support: full
    description: Implemented as an action plugin that runs on the controller.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
notes:
  - Always returns C(changed=false), because the record is bookkeeping on the controller, not a
    change to the system in trouble.
"""

EXAMPLES = r"""
- name: Incident | when did this incident start
  sre.runbooks.incident_start:
    scenario: db_exhaustion
    target: "{{ target | default('postgresql') }}"
    incident_id: "{{ incident_id | default(omit) }}"
    started_at: "{{ incident_started_at | default(omit) }}"
  register: incident

- name: Incident | the roles read incident_started_at
  ansible.builtin.set_fact:
    incident_started_at: "{{ incident.started_at }}"
"""

RETURN = r"""
incident_id:
  description: The incident's id.
  returned: always
  type: str
  sample: db_exhaustion--db1
started_at:
  description: When the incident started, ISO 8601 UTC.
  returned: always
  type: str
  sample: "2026-01-31T03:12:00.000Z"
source:
  description: >-
    Where O(started_at) comes from: C(variable) (given), C(record) (an earlier run of the same
    incident) or C(new) (this run starts the incident).
  returned: always
  type: str
  sample: record
runs:
  description: How many runs this incident has had, this one included.
  returned: always
  type: int
  sample: 2
record_path:
  description: The incident record's path on the controller.
  returned: always
  type: str
written:
  description: Whether the record was written (false in check mode).
  returned: always
  type: bool
alert:
  description: The alert of an alert-driven run - name, status, fingerprint, labels, startsAt, webhook arrival.
  returned: when the variable C(ansible_eda) holds an alert (C(ansible_eda.event))
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

# The same options as the action plugin's ARGUMENT_SPEC (plugins/action/incident_start.py).
ARGUMENT_SPEC = {
    "scenario": {"type": "str", "required": True},
    "target": {"type": "str"},
    "incident_id": {"type": "str"},
    "started_at": {"type": "str"},
    "state_dir": {"type": "path"},
    "window": {"type": "raw", "default": "2h"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="sre.runbooks.incident_start runs on the controller as an action plugin; "
                         "call it as a task of a playbook, not as a module on a host")


if __name__ == "__main__":
    main()
