#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_age_info
short_description: The age and size of the newest backup (runbook "verify backups")
version_added: 0.3.0
description:
  - Finds the backups that O(paths) (globs - a directory of base backups, dump files) match on the host that
    runs the module, and reports the newest one's age and size, with a warning when it is older than
    O(max_age) or smaller than O(min_size_bytes), or when nothing matches.
  - A directory counts as one backup - its size is the sum of the files under it, its time the newest
    modification time under it.
  - Read-only - it reports, never acts. Empty O(paths) - state V(not_configured), not an error.
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Reads only.
options:
  paths:
    description: Globs of the backups, for example C(/backup/base/*) or C(/backup/dumps/*.dump).
    type: list
    elements: str
    default: []
  max_age:
    description: Warn when the newest backup is older than this (seconds, or a duration such as C(26h)).
    type: str
    default: 26h
  min_size_bytes:
    description: Warn when the newest backup is smaller than this.
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Verify backups
  sre.runbooks.backup_age_info:
    paths: [/var/backups/postgresql/base/*, /var/backups/postgresql/*.dump]
    max_age: 26h
  register: backups
"""

RETURN = r"""
state:
  description: V(not_configured), V(none_found), V(stale), V(too_small) or V(ok).
  returned: always
  type: str
  sample: stale
warn:
  description: Whether the on-call should look at the backups.
  returned: always
  type: bool
reason:
  description: One sentence for the report.
  returned: always
  type: str
  sample: "backups: newest backup /backup/base/2026-01-01 is 30.2 h old, 123456 bytes - older than 26.0 h"
count:
  description: How many backups the globs match.
  returned: always
  type: int
newest:
  description: C(path), C(kind) (file or directory), C(size_bytes), C(mtime) (epoch), C(age_seconds); null if none.
  returned: always
  type: dict
max_age_seconds:
  description: O(max_age) in seconds.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._backup_age import backup_verdict, find_backups
from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        paths=dict(type="list", elements="str", default=[]),
        max_age=dict(type="str", default="26h"),
        min_size_bytes=dict(type="int", default=1),
    ), supports_check_mode=True)
    try:
        max_age = parse_duration(module.params["max_age"], "max_age")
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    patterns = [p for p in module.params["paths"] if p and p.strip()]
    entries = find_backups(patterns)
    verdict = backup_verdict(patterns, entries, time.time(), max_age, module.params["min_size_bytes"])
    module.exit_json(changed=False, max_age_seconds=max_age, **verdict)


if __name__ == "__main__":
    main()
