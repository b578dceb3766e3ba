# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.runbooks.incident_report: reads the incident timeline on the controller
and writes the postmortem there; never touches a target."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident, _timeline

ARGUMENT_SPEC = {
    "incident_id": {"type": "str"},
    "state_dir": {"type": "path"},
    "timeline": {"type": "path"},
    "dest": {"type": "path"},
    "detail": {"type": "str", "default": "notable", "choices": ["notable", "all"]},
}


def _known(state_dir: str) -> list[str]:
    try:
        return sorted(name[:-6] for name in os.listdir(state_dir) if name.endswith(".jsonl"))[-10:]
    except OSError:
        return []


def _write_atomic(path: str, content: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".postmortem.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        del validation
        state_dir = args.get("state_dir") or _incident.default_state_dir()
        if not args.get("incident_id") and not args.get("timeline"):
            known = _known(state_dir)
            raise AnsibleActionFail(
                "incident_report: which incident? Run with -e incident_id=ID (the id the outage playbook "
                f"printed as incident_id). Timelines in {state_dir}: {', '.join(known) or 'none'}")
        try:
            incident_id = _incident.validate_incident_id(args["incident_id"]) if args.get("incident_id") else None
        except ValueError as exc:
            raise AnsibleActionFail(f"incident_report: {exc}") from None
        path = args.get("timeline") or _timeline.timeline_path(state_dir, incident_id)
        incident_id = incident_id or os.path.basename(path).rsplit(".jsonl", 1)[0]
        try:
            events, unreadable = _timeline.read_timeline(path)
        except FileNotFoundError:
            known = _known(os.path.dirname(path))
            raise AnsibleActionFail(
                f"incident_report: no timeline for incident {incident_id} at {path}. Is the callback enabled "
                "(callbacks_enabled = sre.runbooks.incident_timeline in ansible.cfg) and is incident_state_dir "
                f"the same as the outage runs'? Timelines there: {', '.join(known) or 'none'}") from None
        except OSError as exc:
            raise AnsibleActionFail(f"incident_report: cannot read {path}: {exc}") from None
        record = {}
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(os.path.dirname(path), incident_id + ".json"), encoding="utf-8") as fh:
                loaded = json.load(fh)
                record = loaded if isinstance(loaded, dict) else {}
        analysis = _timeline.analyse(events)
        markdown = _timeline.render_markdown(incident_id, analysis, record=record, source=path,
                                             unreadable=unreadable, detail=args["detail"])
        dest = args.get("dest") or os.path.join(os.path.dirname(path), incident_id + ".postmortem.md")
        try:
            with open(dest, encoding="utf-8") as fh:
                before = fh.read()
        except OSError:
            before = None
        # the footer's generation time changes every run: compare without it
        changed = before is None or before.rsplit("\n---\n", 1)[0] != markdown.rsplit("\n---\n", 1)[0]
        if changed and not self._task.check_mode:
            try:
                _write_atomic(dest, markdown)
            except OSError as exc:
                raise AnsibleActionFail(f"incident_report: cannot write {dest}: {exc}; set dest "
                                        "(incident_report_path) to a writable path") from None
        marks = analysis["marks"]
        result.update(
            changed=changed, dest=dest, timeline=path, incident_id=incident_id,
            lines=len(events), unreadable_lines=unreadable, runs=len(analysis["runs"]),
            started_at=_timeline.iso(analysis["start"]) if analysis["start"] else None,
            detected_at=_timeline.iso(marks["detected"][0]) if marks["detected"] else None,
            mitigated_at=_timeline.iso(marks["mitigated"][0]) if marks["mitigated"] else None,
            resolved_at=_timeline.iso(marks["resolved"][0]) if marks["resolved"] else None,
            time_to_detect_seconds=analysis["time_to_detect"],
            time_to_mitigate_seconds=analysis["time_to_mitigate"],
            time_to_resolve_seconds=analysis["time_to_resolve"],
            mermaid=_timeline.mermaid_gantt(incident_id, analysis["events"], analysis["runs"], marks),
        )
        return result
