# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.runbooks.eda_gate: runs on the controller, never on a target."""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sre.runbooks.plugins.modules.eda_gate import ARGUMENT_SPEC
from ansible_collections.sre.runbooks.plugins.plugin_utils import _eda, _incident

RESOLVE_PLAYBOOK = "sre.runbooks.incident.resolve"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        scenario = args["scenario"]
        event = args.get("event")
        if event is None:
            event = (task_vars.get("ansible_eda") or {}).get("event")
        if not isinstance(event, dict):
            raise AnsibleActionFail("eda_gate: no alert - pass event, or run from ansible-rulebook (ansible_eda.event)")
        alert = _eda.alert_summary(event)
        hostvars = task_vars.get("hostvars") or {}
        hosts = {h: {"ansible_host": (hostvars.get(h) or {}).get("ansible_host")} for h in
                 (task_vars.get("groups") or {}).get("all", [])}
        groups = {g: list(m) for g, m in (task_vars.get("groups") or {}).items() if g not in ("all", "ungrouped")}
        target, why = _eda.target_for(alert["labels"], scenario, hosts, groups)
        kind = "resolve" if alert["status"] == "resolved" else "remediate"
        state_dir = args.get("state_dir") or _incident.default_state_dir()
        entry = {"run": target is not None, "kind": kind, "target": target, "alert": alert,
                 "reason": None if target else why}
        try:
            verdict = _eda.decide_and_record(state_dir, entry, scenario, args["auto_remediate"],
                                             args["max_remediations_per_hour"], write=not self._task.check_mode)
        except OSError as exc:
            raise AnsibleActionFail(f"eda_gate: cannot use the ledger under {state_dir}: {exc}; set state_dir "
                                    "(or SRE_RUNBOOKS_STATE_DIR) to a writable folder") from None
        reason = why if target is None else f"{why}; {verdict['reason']}" if kind == "remediate" else why
        result.update(changed=False, run=target is not None, target=target, kind=kind,
                      check_mode=bool(verdict["check_mode"]) if kind == "remediate" else False,
                      reason=reason, recent_remediations=verdict["recent"], alert=alert, argv=[])
        if target is None:
            return result
        incident_id = _incident.incident_id_for(scenario, target)
        extra = {"target": target, "incident_id": incident_id, "ansible_eda": task_vars.get("ansible_eda") or
                 {"event": event}}
        if kind == "remediate":
            extra.update(((args["scenario_vars"] or {}).get(scenario)) or {})
            extra.update(_eda.label_vars(alert["labels"], scenario))
            started = _eda.alert_started_at(event)
            if started:
                extra["incident_started_at"] = started
            playbook = f"sre.runbooks.outage.{scenario}"
        else:
            extra.update(incident_scenario=scenario, incident_note=f"alert {alert['alertname']} resolved on {target}")
            playbook = RESOLVE_PLAYBOOK
        fd, vars_file = tempfile.mkstemp(prefix="eda-run.", suffix=".json", dir=state_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(extra, fh)
        binary = os.path.join(os.path.dirname(task_vars.get("ansible_playbook_python") or ""), "ansible-playbook")
        if not os.path.exists(binary):
            binary = "ansible-playbook"
        argv = [binary, playbook]
        for source in task_vars.get("ansible_inventory_sources") or []:
            argv += ["-i", source]
        if kind == "remediate":  # the resolve playbook runs on localhost: no limit
            argv += ["--limit", target]
        argv += ["-e", f"@{vars_file}"]
        if result["check_mode"]:
            argv.append("--check")
        result.update(argv=argv, vars_file=vars_file)
        return result
