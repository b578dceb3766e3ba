# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: db_down_verdict
short_description: The decision of the db_down runbook, from a check-mode pg_failover result
version_added: 0.2.0
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
description:
  - Turns the plan of M(sre.runbooks.pg_failover) (run in check mode, C(failed_when=false)) into the
    runbook's decision - C(action) is V(none) (healthy), V(report) (something is wrong but acting
    would be unsafe or is not automated - busy, starting, partitioned, split brain, fencing missing),
    V(restart) (PostgreSQL is down on a host that is up, and a restart command is configured),
    V(promote) (the primary is down, confirmed and fenced) or V(repoint) (one primary, and standbys whose
    WAL receiver streams from nowhere, with re-pointing enabled). The role only wires its flags.
options:
  _input:
    description: The registered check-mode result of M(sre.runbooks.pg_failover).
    type: dict
    required: true
  restart_command:
    description: The argv that restarts the primary (empty when none is configured).
    type: list
    elements: str
    default: []
  storage:
    description:
      - The registered result of M(sre.runbooks.host_resources_info) on the primary's host (empty or
        failed - not measured, no effect). When the filesystem that holds O(data_directory) is full
        (its C(disk_verdict)), neither a restart nor a promotion is chosen - state V(primary_disk_full),
        action V(report) - a full disk is freed first (the disk_full runbook), and a promotion would not
        fix the primary.
    type: dict
    default: {}
  data_directory:
    description: The primary's data directory on that host.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    db_down_verdict: "{{ db_down_plan | sre.runbooks.db_down_verdict(restart_command=db_down_restart_command) }}"
"""

RETURN = r"""
_value:
  description: C(state), C(found), C(act), C(action), C(summary), C(primary), C(previous_primary), C(candidate),
    C(data_mount) (the primary's data filesystem - C(mount), C(used_percent), C(available_bytes), C(full) - or null).
  type: dict
"""

import typing as t

HEALTHY = ("healthy",)
REPORT_ONLY = ("nodes_unreachable", "standbys_astray", "primary_busy", "primary_starting", "primary_partitioned",
               "primary_down_unconfirmed")


def data_mount(storage: dict[str, t.Any] | None, data_directory: str | None) -> dict[str, t.Any] | None:
    """The df entry of the filesystem that holds data_directory (longest mount prefix), with 'full'
    (reasons) when host_resources_info's disk_verdict names it. None when not measured."""
    if not storage or storage.get("failed") or storage.get("skipped") or not data_directory:
        return None
    path = data_directory.rstrip("/") + "/"
    best = None
    for disk in storage.get("disks") or []:
        mount = (disk.get("mount") or "").rstrip("/") + "/"
        if path.startswith(mount) and (best is None or len(mount) > len(best["mount"].rstrip("/") + "/")):
            best = disk
    if best is None:
        return None
    full = {f.get("mount"): f for f in (storage.get("disk_verdict") or {}).get("full") or []}
    out = {"mount": best["mount"], "used_percent": best.get("used_percent"),
           "available_bytes": best.get("available_bytes"), "full": best["mount"] in full}
    if out["full"]:
        out["reasons"] = full[best["mount"]].get("reasons") or []
    return out


def db_down_verdict(plan: dict[str, t.Any], restart_command: list[str] | None = None,
                    storage: dict[str, t.Any] | None = None, data_directory: str | None = None) -> dict[str, t.Any]:
    plan = plan or {}
    verdict = plan.get("verdict") or {}
    # The role registers the plan with failed_when: false, so ansible-core has set failed to false:
    # a refusal is known by its guardrail (or a message without a verdict), not by failed.
    refused = bool(plan.get("failed") or plan.get("guardrail") or (not verdict and plan.get("msg")))
    state = verdict.get("state") or ("error" if refused else "unknown")
    out = {"state": state, "found": True, "act": False, "action": "report",
           "summary": verdict.get("reason") or plan.get("msg") or "no assessment",
           "primary": plan.get("primary"), "previous_primary": plan.get("previous_primary"),
           "candidate": (plan.get("plan") or {}).get("candidate"), "guardrail": plan.get("guardrail")}
    disk = data_mount(storage, data_directory)
    out["data_mount"] = disk
    if refused:
        # A guardrail (split brain, fencing missing, no candidate) or a bad input: report it, touch nothing.
        out["summary"] = plan.get("msg") or "pg_failover failed"
        return out
    if state in HEALTHY:
        out.update(found=False, action="none", summary=f"healthy, nothing to do: {out['summary']}")
        return out
    if state == "standbys_astray" and verdict.get("act"):
        out.update(act=True, action="repoint")
        return out
    if state in REPORT_ONLY:
        return out
    if disk and disk["full"] and state in ("primary_down_host_up", "primary_down"):
        out.update(state="primary_disk_full",
                   summary=f"{out['previous_primary']}: its data directory {data_directory} is on {disk['mount']}, "
                   f"which is full ({'; '.join(disk.get('reasons') or [])}): neither restart nor promote - free "
                   "space first (the disk_full runbook), then run again")
        return out
    if state == "primary_down_host_up":
        if restart_command:
            out.update(act=True, action="restart",
                       summary=f"{out['previous_primary']}: PostgreSQL is down on a host that is up; restart it")
        else:
            out["summary"] += " (no db_down_restart_command is configured: restart it by hand)"
        return out
    if state == "primary_down" and verdict.get("act"):
        out.update(act=True, action="promote")
        return out
    out["summary"] = f"unexpected pg_failover state {state!r}: {out['summary']}"
    return out


class FilterModule:
    """The db_down runbook's decision."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"db_down_verdict": db_down_verdict}
