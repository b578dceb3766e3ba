#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_cleanup
short_description: Free disk space by rules - old files deleted or compressed, open files truncated, the journal vacuumed
version_added: 0.1.0
description:
  - Runbook 003 "Disk space issues" (prune old logs, delete backups older than 7 days) as a
    desired state - no file matching a rule is older than its O(rules[].min_age), beyond the
    O(rules[].keep_newest) newest.
  - Each rule names a directory, file name globs, a minimum age, how many of the newest
    matching files to keep, and an action - V(delete), V(compress) (gzip, for logs) or
    V(truncate).
  - A file that a process holds open is truncated, never deleted or compressed - deleting it
    frees nothing until the process closes it. Files already deleted but still held open under
    a rule's directory (found in C(/proc/*/fd)) are truncated through the holder's descriptor.
  - Never acts outside the rules' directories - symlinks are neither followed nor descended
    into, a rule whose directory is a symlink or lies under one is refused, and recursion stays
    on the rule directory's filesystem. System roots such as C(/var) or C(/etc) are refused as
    rule directories.
  - Optionally vacuums the systemd journal to a size (C(journalctl --vacuum-size)).
  - Deleted-but-open files go first, then deletions, then compression (which needs room for the
    compressed copy); oldest first within each.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Returns exactly which files would be deleted, compressed or truncated, with their sizes, and changes nothing.
  diff_mode:
    support: full
    description: With C(--diff), the files each action touches before and after.
  idempotent:
    support: full
    description: >-
      A second run finds nothing to do - deleted files are gone, compressed ones end in C(.gz),
      truncated ones are empty. A journal vacuum that frees nothing reports no change.
options:
  rules:
    description: What may be cleaned. At least one rule, or O(journal_vacuum_size).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory to clean. Absolute, a real directory (not a symlink), not a system root.
        type: path
        required: true
      patterns:
        description: Globs on the file name (not the path), as C(find -name).
        type: list
        elements: str
        default: ['*']
      min_age:
        description: Only files not modified for this long (V(7d), V(12h), seconds).
        type: str
        default: 7d
      keep_newest:
        description: Keep this many of the newest matching files, whatever their age.
        type: int
        default: 0
      action:
        description: What to do to a matching file that no process holds open.
        type: str
        choices: [delete, compress, truncate]
        default: delete
      recurse:
        description: Also clean the subdirectories (on the same filesystem).
        type: bool
        default: false
      deleted_open:
        description: >-
          Truncate files under O(rules[].path) whose name matches, that were deleted while a
          process still holds them open. Age and O(rules[].keep_newest) do not apply - nothing
          can reach them by name any more.
        type: bool
        default: true
  only_on_mounts:
    description:
      - Apply only the rules (and the journal vacuum) whose directory lives on one of these mount
        points, for example the full mounts of M(sre.runbooks.host_resources_info)'s
        RV(sre.runbooks.host_resources_info#module:disk_verdict.full_mounts). Default is every rule.
      - An empty list applies nothing.
    type: list
    elements: path
  journal_vacuum_size:
    description:
      - Vacuum the systemd journal down to this size (V(200M), V(1G)) when it is bigger.
        journald keeps its active files, so the journal may stay somewhat above it.
    type: str
  max_files:
    description: Guardrail - the most files one run touches.
    type: int
    default: 200
  max_bytes:
    description: Guardrail - the most bytes one run frees (V(10G)). Default is no limit.
    type: str
  cap_mode:
    description:
      - V(fail) - when the rules match more than a cap, fail naming the guardrail and change nothing.
      - V(partial) - clean up to the caps, in the order above, and report the rest in RV(over_cap).
    type: str
    choices: [fail, partial]
    default: fail
notes:
  - Runs as a user who may delete the files (usually root, with C(become)); truncating a
    deleted-but-open file needs access to the holder's C(/proc/PID/fd).
  - A partial failure (a file vanished, a write failed) fails the task with RV(actions) and
    RV(bytes_freed) of what was done.
seealso:
  - module: sre.runbooks.host_resources_info
requirements:
  - Linux (C(/proc)); C(journalctl) for O(journal_vacuum_size)
"""

EXAMPLES = r"""
- name: Which mounts are full, and what fills them
  sre.runbooks.host_resources_info:
    largest_dirs_under: [/var/log, /var/backups]
    top_processes: 0
  register: disks

- name: Free space on the full mounts only (runbook 003)
  sre.runbooks.disk_cleanup:
    only_on_mounts: "{{ disks.disk_verdict.full_mounts }}"
    rules:
      - path: /var/backups/postgresql
        patterns: ['*.sql.gz']
        min_age: 7d
        keep_newest: 2
      - path: /var/log/myapp
        patterns: ['*.log.[0-9]*']
        min_age: 1d
        action: compress
      - path: /var/log/myapp
        patterns: ['*.gz']
        min_age: 30d
    journal_vacuum_size: 200M
    max_bytes: 20G
  become: true
  register: cleanup
  when: disks.disk_verdict.act
"""

RETURN = r"""
planned:
  description: Every file the run touches (or, in check mode, would touch), in order.
  returned: always
  type: list
  elements: dict
  contains:
    path: {description: "The file (for a deleted file, the name it had).", type: str}
    action: {description: "V(delete), V(compress), V(truncate) or V(journal_vacuum).", type: str}
    bytes: {description: "Disk space it holds (allocated blocks; for the journal, the most vacuuming can free).", type: int}
    size: {description: Its apparent size., type: int}
    age_seconds: {description: Seconds since it was last modified., type: float}
    rule: {description: The rule directory that matched it., type: str}
    deleted: {description: True for a file deleted but still held open., type: bool}
    holders: {description: "The processes holding it open (C(pid), C(fd), C(name)).", type: list, elements: dict}
    reason: {description: "Why it was chosen, and why this action.", type: str}
  sample:
    - {path: /var/log/app/app.log.3, action: delete, bytes: 10485760, size: 10485760, age_seconds: 864000.0,
       rule: /var/log/app, deleted: false, holders: [], reason: older than 604800s}
planned_bytes:
  description: The bytes the planned actions hold (for compression, before compressing).
  returned: always
  type: int
over_cap:
  description: With O(cap_mode=partial), the files left alone because a cap was reached.
  returned: always
  type: list
  elements: dict
kept:
  description: Per rule directory, how many matching files were kept - C(newest), C(too_young), C(empty).
  returned: always
  type: dict
rules_skipped:
  description: Rule directories left alone because they are not on O(only_on_mounts).
  returned: always
  type: list
  elements: str
rules_missing:
  description: Rule directories this host does not have (nothing to clean there; check for a typo).
  returned: always
  type: list
  elements: str
actions:
  description: What was done, one record per file (C(timestamp), C(action), C(target), C(result), C(bytes), C(rule), C(reason)).
  returned: always
  type: list
  elements: dict
bytes_freed:
  description: Bytes freed (0 in check mode).
  returned: always
  type: int
files_changed:
  description: Files deleted, compressed or truncated.
  returned: always
  type: int
errors:
  description: Actions that failed; the task fails when there is any.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _disk, _host
from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped, action_record, parse_duration

JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")

RULE_SPEC = dict(
    path=dict(type="path", required=True),
    patterns=dict(type="list", elements="str", default=["*"]),
    min_age=dict(type="str", default="7d"),
    keep_newest=dict(type="int", default=0),
    action=dict(type="str", choices=list(_disk.ACTIONS), default="delete"),
    recurse=dict(type="bool", default=False),
    deleted_open=dict(type="bool", default=True),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            rules=dict(type="list", elements="dict", options=RULE_SPEC, default=[]),
            only_on_mounts=dict(type="list", elements="path"),
            journal_vacuum_size=dict(type="str"),
            max_files=dict(type="int", default=200),
            max_bytes=dict(type="str"),
            cap_mode=dict(type="str", choices=["fail", "partial"], default="fail"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not p["rules"] and not p["journal_vacuum_size"]:
        module.fail_json(msg="nothing to clean: give rules, journal_vacuum_size, or both")
    try:
        max_bytes = _disk.parse_size(p["max_bytes"], "max_bytes") if p["max_bytes"] else None
        journal_limit = _disk.parse_size(p["journal_vacuum_size"], "journal_vacuum_size") if p["journal_vacuum_size"] else None
        rules = [_disk.Rule(path=r["path"], patterns=r["patterns"],
                            min_age_seconds=parse_duration(r["min_age"], f"rules[{r['path']}].min_age"),
                            keep_newest=r["keep_newest"], action=r["action"], recurse=r["recurse"],
                            deleted_open=r["deleted_open"]) for r in p["rules"]]
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if p["max_files"] < 1:
        module.fail_json(msg="max_files must be at least 1")
    missing = []
    for rule in rules:
        if not os.path.lexists(rule.root):
            missing.append(rule.root)
            continue
        problem = _disk.check_rule(rule)
        if problem is None and not os.path.isdir(rule.root):
            problem = f"path {rule.root} is not a directory on this host"
        if problem:
            module.fail_json(msg=f"rules: {problem}")
    # A directory this host does not have holds nothing to clean; it is reported, not an error,
    # so one rule set serves a fleet.
    rules = [r for r in rules if r.root not in missing]

    rules, skipped = _disk.on_mounts(rules, p["only_on_mounts"], _host.mount_of)
    journal_dir = next((d for d in JOURNAL_DIRS if os.path.isdir(d)), None)
    journalctl = None
    journal = None
    if journal_limit is not None and journal_dir:
        mount = _host.mount_of(journal_dir)
        if p["only_on_mounts"] is None or (mount and mount["mount"] in {m.rstrip("/") or "/" for m in p["only_on_mounts"]}):
            journalctl = module.get_bin_path("journalctl", required=True)
            rc, out, err = module.run_command([journalctl, "--disk-usage"])
            if rc != 0:
                module.fail_json(msg=f"journalctl --disk-usage failed: {(err or out).strip()}")
            journal = _disk.journal_plan(_disk.journal_usage(out), journal_limit)

    holders, deleted = _disk.open_files()
    now = _disk.now()
    scans = [_disk.scan_rule(rule, now, holders, deleted) for rule in rules]
    result = dict(changed=False, planned=[], planned_bytes=0, over_cap=[], rules_skipped=skipped,
                  rules_missing=missing,
                  kept={s["path"]: s["kept"] for s in scans}, actions=[], bytes_freed=0, files_changed=0, errors=[])
    try:
        plan = _disk.plan_cleanup(scans, p["max_files"], max_bytes, p["cap_mode"])
    except GuardrailTripped as exc:
        module.fail_json(msg=str(exc), guardrail=exc.guardrail, **result)
    result.update(planned=[_disk.public(c) for c in plan["planned"]], planned_bytes=plan["bytes"],
                  over_cap=[_disk.public(c) for c in plan["over_cap"]])

    done = _disk.execute(plan["planned"], module.check_mode)
    actions, freed, errors = done["actions"], done["bytes_freed"], done["errors"]
    files_changed = sum(1 for a in actions if a["result"] == "done")

    if journal:
        result["planned"].append({"path": journal_dir, "action": "journal_vacuum", "bytes": journal["bytes"],
                                  "size": journal["usage_bytes"], "age_seconds": None, "rule": journal_dir,
                                  "deleted": False, "holders": [],
                                  "reason": f"journal takes {_disk.human(journal['usage_bytes'])}, "
                                            f"more than {_disk.human(journal_limit)}"})
        result["planned_bytes"] += journal["bytes"]
        if module.check_mode:
            actions.append(action_record("journal_vacuum", journal_dir, "would vacuum (check mode)",
                                         bytes=journal["bytes"], limit_bytes=journal_limit))
        else:
            rc, out, err = module.run_command([journalctl, f"--vacuum-size={journal_limit}"])
            gained = _disk.journal_freed(out + "\n" + err)
            if rc != 0:
                errors.append(f"journalctl --vacuum-size failed: {(err or out).strip()}")
                actions.append(action_record("journal_vacuum", journal_dir, "failed", bytes=0,
                                             error=(err or out).strip()[:200]))
            elif gained:
                freed += gained
                actions.append(action_record("journal_vacuum", journal_dir, "done", bytes=gained,
                                             limit_bytes=journal_limit))

    result.update(actions=actions, bytes_freed=freed, files_changed=files_changed, errors=errors,
                  changed=bool(result["planned"]) if module.check_mode
                  else any(a["result"] == "done" for a in actions))
    if module._diff:
        touched = [c for c in result["planned"] if not c["deleted"] and c["action"] != "journal_vacuum"]
        result["diff"] = {
            "before": "".join(f"{c['path']} {c['bytes']}\n" for c in touched),
            "after": "".join(f"{c['path']}.gz\n" for c in touched if c["action"] == "compress")
            + "".join(f"{c['path']} 0\n" for c in touched if c["action"] == "truncate"),
            "before_header": "files", "after_header": "files",
        }
    if errors:
        module.fail_json(msg=f"disk_cleanup: {len(errors)} action(s) failed, {files_changed} done, "
                             f"{_disk.human(freed)} freed: {'; '.join(errors[:5])}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
