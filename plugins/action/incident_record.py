# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.runbooks.incident_record: builds the role's record on the controller."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sre.runbooks.plugins.modules.incident_record import ARGUMENT_SPEC
from ansible_collections.sre.runbooks.plugins.plugin_utils import _record


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        verdict = args.get("verdict")
        says_act = bool(verdict.get("act")) if isinstance(verdict, dict) else False
        found = says_act if args["found"] is None else args["found"]
        act = says_act if args["act"] is None else args["act"]
        try:
            record = _record.build(
                args["scenario"], task_vars.get("inventory_hostname", ""), bool(self._task.check_mode),
                started=args.get("started"), error=args.get("error"), found=found, act=act,
                acted=args["acted"], remedy=args["remedy"], reported=args.get("reported"),
                verdict=args.get("verdict"), results=args.get("results"), details=args.get("details"))
        except (ValueError, TypeError) as exc:
            raise AnsibleActionFail(f"incident_record: {exc}") from None
        fact = args.get("fact") or f"{args['scenario']}_result"
        result.update(changed=False, record=record, ansible_facts={fact: record})
        return result
