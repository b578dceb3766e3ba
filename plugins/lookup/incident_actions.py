# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: incident_actions
short_description: What this incident already did, read from its timeline (for once-per-incident guards)
version_added: 0.3.0
description:
  - Reads the incident timeline that the C(sre.runbooks.incident_timeline) callback writes
    (C(STATE_DIR/INCIDENT_ID.jsonl)) and returns, for one action name, the targets on which it was
    really done (not a check-mode preview, not a failure) since the incident started, with the
    time of the first one.
  - A guard that must act at most once per incident (recreating a Kafka topic) reads it before
    acting. When the timeline cannot be read the result says so (RV(_raw[].readable=false)) and
    the guard refuses rather than guess.
  - Runs on the controller, like the callback that writes the file.
author:
  - sre.runbooks maintainers (@sre-runbooks)
options:
  _terms:
    description: The incident id (the playbook's C(incident_id), set by M(sre.runbooks.incident_start)).
    required: true
    type: str
  action:
    description: The action name as the module records it, for example C(recreate topic).
    type: str
    required: true
  since:
    description:
      - The incident's start (ISO 8601); actions before it belong to an earlier incident of the
        same id. Default - every action in the file.
    type: str
  record_path:
    description:
      - The incident record M(sre.runbooks.incident_start) returned (C(record_path)); the timeline
        is beside it. Default - the default state dir (E(SRE_RUNBOOKS_STATE_DIR), else
        C($XDG_STATE_HOME/sre-runbooks/incidents)).
    type: str
  file:
    description: The timeline file, when the callback writes elsewhere (its E(SRE_RUNBOOKS_TIMELINE_FILE)).
    type: str
    env:
      - name: SRE_RUNBOOKS_TIMELINE_FILE
"""

EXAMPLES = r"""
- name: Topics recreated in this incident already
  ansible.builtin.set_fact:
    recreated_before: "{{ lookup('sre.runbooks.incident_actions', incident_id, action='recreate topic',
      since=incident_started_at) }}"
"""

RETURN = r"""
_raw:
  description: One mapping.
  type: list
  elements: dict
  contains:
    readable: {description: Whether the timeline was found and read., type: bool}
    path: {description: The timeline file read., type: str}
    done: {description: Target to the time the action was first done on it in this incident., type: dict}
    error: {description: Why it could not be read., type: str}
"""

import os
import typing as t

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident, _timeline


def done_actions(events: t.Iterable[t.Mapping[str, t.Any]], action: str, since: t.Any = None) -> dict[str, str]:
    """Target -> first time `action` was really done on it (at or after `since`), from timeline events."""
    start = _timeline.parse_time(since) if since else None
    done: dict[str, str] = {}
    for event in events:
        if event.get("type") != "task" or event.get("check_mode"):
            continue
        for entry in event.get("actions") or []:
            if not isinstance(entry, dict) or entry.get("action") != action or not _timeline.action_done(entry):
                continue
            when = _timeline.parse_time(entry.get("timestamp"))
            if start is not None and (when is None or when < start):
                continue
            target = str(entry.get("target"))
            stamp = entry.get("timestamp") or ""
            if target not in done or stamp < done[target]:
                done[target] = stamp
    return done


def timeline_file(incident_id: str, record_path: str | None = None, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    state_dir = os.path.dirname(record_path) if record_path else _incident.default_state_dir()
    return _timeline.timeline_path(state_dir, incident_id)


def read(incident_id: str, action: str, since: t.Any = None, record_path: str | None = None,
         explicit: str | None = None) -> dict[str, t.Any]:
    """The lookup's answer: {readable, path, done} (and error when the timeline cannot be read)."""
    path = timeline_file(incident_id, record_path, explicit)
    out: dict[str, t.Any] = {"readable": False, "path": path, "done": {}}
    try:
        events, _bad = _timeline.read_timeline(path)
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out.update(readable=True, done=done_actions(events, action, since))
    return out


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or not str(terms[0]).strip():
            raise AnsibleLookupError("incident_actions: give exactly one incident id")
        try:
            incident_id = _incident.validate_incident_id(str(terms[0]))
        except ValueError as exc:
            raise AnsibleLookupError(f"incident_actions: {exc}") from None
        return [read(incident_id, self.get_option("action"), self.get_option("since"),
                     self.get_option("record_path"), self.get_option("file"))]
