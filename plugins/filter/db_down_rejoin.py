# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: db_down_rejoin
short_description: Whether the db_down runbook rejoins the fenced old primary as a standby (pg_rewind)
version_added: 0.3.0
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
description:
  - From the assessment (check-mode M(sre.runbooks.pg_failover)) and this run's failover, decides whether
    M(sre.runbooks.pg_rejoin) runs on the old primary - only when asked (O(enabled)), when the data directory
    and its host are configured, when the group has one primary that is not the old primary, and when the
    old primary does not answer (it is fenced; a running node is never rewound). The module checks the rest
    (clean shutdown, wal_log_hints) and refuses on its own.
options:
  _input:
    description: The registered check-mode result of M(sre.runbooks.pg_failover) (the assessment).
    type: dict
    required: true
  failover:
    description: The registered result of this run's M(sre.runbooks.pg_failover) act task (empty or skipped - none).
    type: dict
    default: {}
  enabled:
    description: C(db_down_rewind_old_primary).
    type: bool
    default: false
  node:
    description: The old primary, C(host:port) - the node whose data directory is O(data_directory).
    type: str
    default: ""
  data_directory:
    description: Its data directory.
    type: str
    default: ""
  host:
    description: The inventory host that holds it.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Decide | rejoin the old primary?
  ansible.builtin.set_fact:
    db_down_rejoin: "{{ db_down_plan | sre.runbooks.db_down_rejoin(failover=db_down_failover | default({}),
                        enabled=true, node='db1:5432', data_directory='/var/lib/postgresql/15/main', host='db1') }}"
"""

RETURN = r"""
_value:
  description: C(act), C(state) (V(not_requested), V(not_configured), V(after_promotion), V(no_primary), V(is_primary),
    V(streaming), V(running), V(rejoin)), C(reason), C(node), C(primary).
  type: dict
"""

import typing as t

PRIMARY_UP_STATES = ("healthy", "nodes_unreachable", "standbys_astray")


def db_down_rejoin(plan: dict[str, t.Any], failover: dict[str, t.Any] | None = None, enabled: bool = False,
                   node: str = "", data_directory: str = "", host: str = "") -> dict[str, t.Any]:
    plan = plan or {}
    failover = failover or {}
    out: dict[str, t.Any] = {"act": False, "node": node or None, "primary": None}
    promoted = bool(failover.get("changed") and not failover.get("failed") and failover.get("primary"))
    if not enabled:
        hint = f" {node} stays fenced;" if promoted and node else ""
        return dict(out, state="not_requested", reason=f"rejoin of the old primary not requested:{hint} set "
                    "db_down_rewind_old_primary: true to rewind it into a standby (pg_rewind)")
    if not (node and data_directory and host):
        return dict(out, state="not_configured", reason="rejoin of the old primary: set postgresql_data_directory, "
                    "postgresql_primary_host and db_down_rewind_node (its host:port)")
    state = (plan.get("verdict") or {}).get("state")
    if promoted:
        primary, probes = failover["primary"], failover.get("nodes") or []
    elif (plan.get("plan") or {}).get("candidate") and state == "primary_down":
        return dict(out, state="after_promotion", reason=f"{node} would be rejoined as a standby (pg_rewind) once "
                    "the promotion has run")
    elif state in PRIMARY_UP_STATES and plan.get("primary") and not plan.get("failed"):
        primary, probes = plan["primary"], plan.get("nodes") or []
    else:
        return dict(out, state="no_primary", reason=f"rejoin of {node}: the group has no single primary "
                    f"({state or plan.get('msg') or 'unknown'}); nothing to rewind against")
    out["primary"] = primary
    if node == primary:
        return dict(out, state="is_primary", reason=f"{node} is the primary: nothing to rejoin")
    probe = next((p for p in probes if p.get("node") == node), {})
    if probe.get("reachable"):
        receiver = probe.get("wal_receiver") or {}
        if probe.get("role") == "standby" and probe.get("upstream") == primary and receiver.get("status") == "streaming":
            return dict(out, state="streaming", reason=f"{node} streams from {primary}: nothing to rejoin")
        return dict(out, state="running", reason=f"{node} answers as a {probe.get('role')}: a running node is never "
                    "rewound (stop it cleanly first, or re-point it)")
    return dict(out, act=True, state="rejoin", reason=f"{node} does not answer and {primary} is the primary: rewind "
                f"{node} (pg_rewind) and start it as a standby of {primary}")


class FilterModule:
    """The db_down runbook's rejoin decision."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"db_down_rejoin": db_down_rejoin}
