#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_report
short_description: Write an incident's postmortem (Markdown) from its timeline
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin); it never connects to a target.
  - Reads the timeline that the C(sre.runbooks.incident_timeline) callback appends to
    (C(STATE_DIR/INCIDENT_ID.jsonl)) and writes the postmortem of the runbooks' templates -
    Summary, Timeline (a table and a Mermaid gantt chart), Root Cause (to fill, with what the
    assessment found), Impact, Resolution (the actions done, each at its own time), Action Items and
    Lessons Learned.
  - Computes when the incident was detected, mitigated and resolved, measured from the incident's
    start. Detected - the first assessment (C(Assess |) or C(Decide |) task) that failed or whose
    result says unhealthy. Mitigated - the first action a module reports as done in an C(Act |)
    task of a run not in check mode. Resolved - the first healthy check after that, that is all
    C(Verify |) tasks of one run on one host passed, or a later assessment found the host healthy.
  - Unreadable lines (a line torn by a crash) are skipped and counted.
  - C(playbooks/incident/report.yml) wires it.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
options:
  incident_id:
    description:
      - The incident whose timeline to read (the id M(sre.runbooks.incident_start) returned).
      - Required unless O(timeline) is given.
    type: str
  state_dir:
    description:
      - Folder of incident records and timelines; the same default as M(sre.runbooks.incident_start)'s.
    type: path
  timeline:
    description: Read this JSONL file instead of C(STATE_DIR/INCIDENT_ID.jsonl).
    type: path
  dest:
    description: Where to write the Markdown. Defaults to C(STATE_DIR/INCIDENT_ID.postmortem.md).
    type: path
  detail:
    description:
      - V(notable) - the timeline table lists run starts and ends, actions, failures, verifications,
        health findings and the milestones. V(all) - every task as well.
    type: str
    choices: [notable, all]
    default: notable
attributes:
  check_mode:
    support: full
    description: Computes the report and whether it would change; writes nothing.
  diff_mode:
    support: none
    description: Returns no diff; the report is a new file each incident.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
"""

EXAMPLES = r"""
- name: Record | postmortem from the timeline
  sre.runbooks.incident_report:
    incident_id: db_exhaustion--postgresql
    dest: /tmp/postmortem.md
  register: postmortem

- name: Record | how long it took
  ansible.builtin.debug:
    msg: "detected after {{ postmortem.time_to_detect_seconds }}s, resolved after {{ postmortem.time_to_resolve_seconds }}s"
"""

RETURN = r"""
dest:
  description: Path of the postmortem.
  returned: always
  type: str
timeline:
  description: Path of the timeline read.
  returned: always
  type: str
incident_id:
  description: The incident.
  returned: always
  type: str
lines:
  description: Readable lines of the timeline.
  returned: always
  type: int
unreadable_lines:
  description: Lines skipped because they are not complete JSON objects.
  returned: always
  type: int
runs:
  description: Runs (playbook runs) in the timeline.
  returned: always
  type: int
started_at:
  description: The incident's start, ISO 8601 UTC.
  returned: always
  type: str
detected_at:
  description: When it was detected, or null.
  returned: always
  type: str
mitigated_at:
  description: When the first remediation action was done, or null.
  returned: always
  type: str
resolved_at:
  description: When a healthy check first followed, or null.
  returned: always
  type: str
time_to_detect_seconds:
  description: Seconds from the start to the detection, or null.
  returned: always
  type: float
time_to_mitigate_seconds:
  description: Seconds from the start to the mitigation, or null.
  returned: always
  type: float
time_to_resolve_seconds:
  description: Seconds from the start to the resolution, or null.
  returned: always
  type: float
mermaid:
  description: The Mermaid gantt chart of the report.
  returned: always
  type: str
"""

if __name__ == "__main__":
    from ansible.module_utils.basic import AnsibleModule

    # the action plugin's argument spec, so the documentation can be checked against it
    AnsibleModule(argument_spec=dict(
        incident_id=dict(type="str"), state_dir=dict(type="path"), timeline=dict(type="path"),
        dest=dict(type="path"), detail=dict(type="str", default="notable", choices=["notable", "all"]),
    ), supports_check_mode=True).fail_json(
        msg="sre.runbooks.incident_report runs on the controller as an action plugin; call it as a task")
