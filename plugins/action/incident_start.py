# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.runbooks.incident_start: runs on the controller, never on the target."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration
from ansible_collections.sre.runbooks.plugins.modules.incident_start import ARGUMENT_SPEC
from ansible_collections.sre.runbooks.plugins.plugin_utils import _eda, _incident


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        del validation
        # An alert-driven run (ansible-rulebook passes the alert as ansible_eda.event): the incident
        # started when the alert fired, unless started_at says otherwise. docs/eda.md.
        eda_event = ((task_vars or {}).get("ansible_eda") or {}).get("event")
        eda_event = eda_event if isinstance(eda_event, dict) else None
        started_at = args.get("started_at") or _eda.alert_started_at(eda_event)
        try:
            window = parse_duration(args["window"], "window")
            given = _incident.parse_timestamp(started_at) if started_at else None
            if args.get("incident_id"):
                incident_id = _incident.validate_incident_id(args["incident_id"])
            else:
                incident_id = _incident.incident_id_for(args["scenario"], args.get("target"))
        except ValueError as exc:
            raise AnsibleActionFail(f"incident_start: {exc}") from None
        state_dir = args.get("state_dir") or _incident.default_state_dir()
        try:
            info = _incident.establish(state_dir, incident_id, args["scenario"], args.get("target"),
                                       window, given, write=not self._task.check_mode)
        except OSError as exc:
            raise AnsibleActionFail(
                f"incident_start: cannot use the incident record under {state_dir}: {exc}; "
                "set incident_state_dir (or SRE_RUNBOOKS_STATE_DIR) to a writable folder, "
                "or pass incident_started_at") from None
        result.update(info)
        if eda_event is not None:
            result["alert"] = _eda.alert_summary(eda_event)
        # Bookkeeping on the controller, not a change to any system: a healthy run stays changed=0.
        result["changed"] = False
        return result
