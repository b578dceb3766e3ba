# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The db_down decisions that need the primary's host: which inventory host runs the primary,
whether that host is up (SSH) or gone, and whether its PostgreSQL unit is restarted (once per
incident) or the standby promoted. Wired by roles/db_down/tasks/systemd_hosts.yml."""

from __future__ import annotations

import datetime
import typing as t

from ansible.errors import AnsibleFilterError

# pg_failover error kinds that say nothing answers at the primary's address (its host is gone, or
# the path is cut). "refused" is not one of them: a kernel answered, so the host is up.
SILENT_KINDS = ("timeout", "unreachable", "dns")
# Unit states in which a restart is not the remedy: it runs, or systemd is changing it already.
UNIT_BUSY = ("active", "activating", "reloading", "deactivating", "refreshing")


def _probe_of(plan: dict[str, t.Any], node: str | None) -> dict[str, t.Any]:
    for probe in (plan or {}).get("nodes") or []:
        if probe.get("node") == node:
            return probe
    return {}


def old_primary(plan: dict[str, t.Any]) -> str | None:
    """The node that was the primary: pg_failover's previous_primary, else (a guardrail result carries
    only the probes) the one upstream every reachable standby names."""
    plan = plan or {}
    if plan.get("previous_primary"):
        return plan["previous_primary"]
    upstreams = {p.get("upstream") for p in plan.get("nodes") or []
                 if p.get("reachable") and p.get("role") == "standby" and p.get("upstream")}
    return upstreams.pop() if len(upstreams) == 1 else None


def db_down_primary_host(plan: dict[str, t.Any], node_hosts: dict[str, str] | None) -> dict[str, t.Any]:
    """{node, host, probe}: the old primary, the inventory host that runs it (None when the
    inventory does not say), and whether its host must be looked at (the primary does not answer)."""
    if node_hosts is not None and not isinstance(node_hosts, dict):
        raise AnsibleFilterError("db_down_node_hosts must map host:port of each node to its inventory host")
    plan = plan or {}
    node = old_primary(plan)
    host = (node_hosts or {}).get(node) if node else None
    state = (plan.get("verdict") or {}).get("state")
    # The role registers pg_failover with failed_when: false, so a guardrail result has failed: false.
    down = state in ("primary_down_host_up", "primary_down", "primary_down_unconfirmed", "fencing") \
        or plan.get("guardrail") == "fencing"
    return {"node": node, "host": host, "probe": bool(host and down)}


def ssh_state(ssh: dict[str, t.Any] | None) -> str:
    """'reachable', 'unreachable' or 'not probed' from a registered ping (ignore_unreachable)."""
    if not ssh or ssh.get("skipped"):
        return "not probed"
    if ssh.get("unreachable"):
        return "unreachable"
    return "reachable" if ssh.get("ping") == "pong" and not ssh.get("failed") else "unreachable"


def db_down_host_gone(plan: dict[str, t.Any], target: dict[str, t.Any], ssh: dict[str, t.Any] | None,
                      gone_fencing: str = "") -> dict[str, t.Any]:
    """Is the primary's host gone - SSH does not reach it AND PostgreSQL does not answer at all (no
    "refused")? replan: assess again with fenced=true, because the inventory says how a gone host is
    kept from coming back (gone_fencing); pg_failover then still wants no standby streaming from
    it for min_primary_down_seconds before it plans the promotion."""
    target = target or {}
    kind = _probe_of(plan, target.get("node")).get("error_kind")
    reach = ssh_state(ssh)
    gone = bool(target.get("probe")) and reach == "unreachable" and kind in SILENT_KINDS
    replan = gone and bool((gone_fencing or "").strip()) and (plan or {}).get("guardrail") == "fencing"
    return {"gone": gone, "replan": replan, "ssh": reach, "postgresql": kind}


def _unit_props(unit_show: dict[str, t.Any] | None) -> dict[str, str]:
    if not unit_show or unit_show.get("skipped") or unit_show.get("failed") or unit_show.get("unreachable"):
        return {}
    props = {}
    for line in (unit_show.get("stdout") or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def _epoch(text: str | None) -> float | None:
    """systemctl show --timestamp=unix ('@1764745000') or an ISO time -> epoch seconds; None if unset."""
    if not text or text in ("n/a", "0", "@0"):
        return None
    if text.startswith("@"):
        try:
            return float(text[1:])
        except ValueError:
            return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def db_down_host_verdict(verdict: dict[str, t.Any], plan: dict[str, t.Any], target: dict[str, t.Any] | None = None,
                         gone: dict[str, t.Any] | None = None, unit: str = "postgresql.service",
                         unit_show: dict[str, t.Any] | None = None, data_present: dict[str, t.Any] | None = None,
                         incident_started: str | None = None, gone_fencing: str = "",
                         fence_command: list[str] | None = None) -> dict[str, t.Any]:
    """db_down_verdict's decision, refined with the primary's host (systemd hosts): restart the unit
    through systemd when SSH reaches the host, the data directory is there and not full (the base
    verdict reports a full one first), the unit is down and was not started since the incident began;
    promote (fenced by the inventory's word) only when the host is gone. Everything else reports."""
    out = dict(verdict or {})
    target = target or {}
    if not target.get("host") or not target.get("probe"):
        out["host"] = None  # the primary answers, or the inventory does not say where it runs
        return out
    gone = gone or {}
    props = _unit_props(unit_show)
    evidence = {"name": target["host"], "node": target.get("node"), "ssh": gone.get("ssh") or "not probed",
                "gone": bool(gone.get("gone")), "unit": unit, "unit_state": props.get("ActiveState"),
                "unit_active_since": props.get("ActiveEnterTimestamp") or None}
    out["host"] = evidence
    state = out.get("state")
    old = target.get("node")
    where = f"{old} on {target['host']}"

    def report(summary: str) -> dict[str, t.Any]:
        out.update(act=False, action="report", summary=summary)
        return out

    if state == "primary_down_host_up":
        if evidence["ssh"] != "reachable":
            return report(f"PostgreSQL {where} refuses connections (the host's kernel answers) but SSH to "
                          f"{target['host']} does not: it cannot be restarted from here; check sshd and the "
                          "network, then run again")
        if data_present is not None and not data_present.get("skipped") and \
                not (data_present.get("stat") or {}).get("exists"):
            return report(f"PostgreSQL {where} is down and its data directory has no PG_VERSION: a restart "
                          "cannot start it; restore the data directory (or promote by hand)")
        unit_state = props.get("ActiveState")
        if not unit_state:
            return report(f"PostgreSQL {where} is down but the state of {unit} could not be read: check "
                          "db_down_unit (postgresql_unit)")
        if unit_state in UNIT_BUSY:
            return report(f"PostgreSQL {where} refuses connections while systemd says {unit} is {unit_state}: "
                          "not a crash a restart heals (starting? listen_addresses, port?); check its log")
        since = _epoch(props.get("ActiveEnterTimestamp"))
        began = _epoch(incident_started)
        if since is not None and began is not None and since >= began:
            return report(f"{unit} on {target['host']} was started during this incident already (became active "
                          f"at {props.get('ActiveEnterTimestamp')}) and PostgreSQL is down again: a crash loop a "
                          f"second restart would not heal; read journalctl -u {unit} (restart once per incident)")
        out.update(act=True, action="restart_unit",
                   summary=f"PostgreSQL {where} is down ({unit} {unit_state}) and the host is up: restart {unit} "
                           "through systemd")
        return out

    if state == "primary_down" and out.get("action") == "promote" and not fence_command and gone.get("gone"):
        now_kind = _probe_of(plan, old).get("error_kind")
        if now_kind not in SILENT_KINDS:
            return report(f"{target['host']} was gone (SSH unreachable, PostgreSQL {gone.get('postgresql')}) but "
                          f"{old} now answers differently ({now_kind or 'up'}): the evidence changed, nothing is "
                          "promoted; run again")
        out["fenced_by_inventory"] = True
        out["fencing"] = {
            "how": (gone_fencing or "").strip(), "old_primary": old, "host": target["host"],
            "warning": f"{old} must not come back as a primary: rebuild it as a standby of the new primary "
                       "(pg_basebackup, or pg_rewind) before it rejoins; a run that finds two primaries "
                       "refuses (split_brain)"}
        out["summary"] = (f"{out.get('summary')}; {target['host']} is gone (SSH unreachable, PostgreSQL "
                          f"{gone.get('postgresql')}) and fenced by the inventory's word: "
                          f"{out['fencing']['how']}. {out['fencing']['warning']}")
        return out

    if (out.get("guardrail") == "fencing" or state == "fencing") and target.get("probe"):
        if evidence["ssh"] == "reachable":
            return report(f"PostgreSQL {where} does not answer ({_probe_of(plan, old).get('error_kind')}) but "
                          f"SSH reaches {target['host']}: the host is not gone, nothing is promoted; check "
                          f"{unit} and the network path to {old}")
        if gone.get("gone"):
            return report(f"{target['host']} is gone (SSH unreachable, PostgreSQL "
                          f"{gone.get('postgresql')}) but nothing says how it is kept from coming back as "
                          "a primary: nothing is promoted. Set db_down_host_gone_fencing "
                          "(postgresql_host_gone_fencing: how a gone host is fenced) or db_down_fence_command "
                          "(e.g. the hypervisor's power-off), then run again")
        return report(f"{out.get('summary')} (SSH to {target['host']}: {evidence['ssh']}; PostgreSQL "
                      f"{gone.get('postgresql')}: the host is not clearly gone)")
    return out


class FilterModule:
    """db_down on systemd hosts."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"db_down_primary_host": db_down_primary_host, "db_down_host_gone": db_down_host_gone,
                "db_down_host_verdict": db_down_host_verdict}
