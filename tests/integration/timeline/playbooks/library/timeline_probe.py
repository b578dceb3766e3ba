# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only module for the incident timeline tests: a 'fault' is a file; assess reports it,
act removes it and returns `actions` stamped when it happened, verify fails while it is there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: timeline_probe
short_description: Test fixture of the incident timeline tests
description: [A fault is a file. Not part of the collection.]
options:
  mode: {description: What to do., type: str, required: true, choices: [assess, act, verify, noop]}
  fault_file: {description: The fault., type: path}
  sleep: {description: Seconds to sleep before acting., type: float, default: 0}
  token: {description: A secret the task must not leak., type: str, no_log: true}
  echo: {description: Text returned as msg., type: str}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record


def main():
    module = AnsibleModule(argument_spec=dict(
        mode=dict(type="str", required=True, choices=["assess", "act", "verify", "noop"]),
        fault_file=dict(type="path"), sleep=dict(type="float", default=0),
        token=dict(type="str", no_log=True), echo=dict(type="str")), supports_check_mode=True)
    p = module.params
    time.sleep(p["sleep"])
    fault = bool(p["fault_file"]) and os.path.exists(p["fault_file"])
    result = dict(changed=False)
    if p["echo"]:
        result["msg"] = p["echo"]
    if p["token"]:
        # what a careless module does; the task's no_log must keep it out of the timeline
        result["leaked"] = "token was " + p["token"]
    if p["mode"] == "assess":
        result.update(healthy=not fault, verdict=dict(act=fault, summary="fault file present" if fault else "healthy, nothing to do"))
    elif p["mode"] == "act":
        result["actions"] = []
        if fault:
            if module.check_mode:
                result["actions"].append(action_record("remove fault", p["fault_file"], "check mode"))
            else:
                time.sleep(0.05)
                os.unlink(p["fault_file"])
                result["actions"].append(action_record("remove fault", p["fault_file"], "done"))
                time.sleep(0.05)
                result["actions"].append(action_record("confirm removal", p["fault_file"], "done"))
            result["changed"] = True
    elif p["mode"] == "verify" and fault:
        module.fail_json(msg=f"the fault is still there: {p['fault_file']}", healthy=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
