# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the incident triage: the verdict, the escalation, the triage table, the messages.

The documentation of each filter is in the YAML file of the same name beside this one.
"""

from __future__ import annotations

import datetime
import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage


def _when(now: t.Any) -> datetime.datetime | None:
    if now is None or now == "":
        return None
    if isinstance(now, datetime.datetime):
        return now if now.tzinfo else now.replace(tzinfo=datetime.timezone.utc)
    from ansible_collections.sre.runbooks.plugins.plugin_utils._incident import parse_timestamp
    return parse_timestamp(now, "now")


def triage_verdict(observations: t.Any, components: t.Any = None, severity_by_impact: t.Any = None,
                   severity_levels: t.Any = None, thresholds: t.Any = None, playbooks: t.Any = None,
                   default_impact: t.Any = None) -> dict[str, t.Any]:
    try:
        return _triage.verdict(observations, components=components, severity_by_impact=severity_by_impact,
                               severity_levels=severity_levels, thresholds=thresholds, playbooks=playbooks,
                               default_impact=default_impact)
    except _triage.TriageError as exc:
        raise AnsibleFilterError(f"triage_verdict: {exc}") from None


def triage_table(verdict: t.Any, width: int = 120, slack: bool = False) -> str:
    if not isinstance(verdict, dict):
        raise AnsibleFilterError("triage_table: expected the verdict of sre.runbooks.triage_verdict")
    text = _triage.render_table(verdict, int(width))
    return "```\n" + _triage.slack_escape(text) + "\n```" if slack else text


def incident_escalation(severity: t.Any, elapsed_minutes: t.Any = None, matrix: t.Any = None,
                        started_at: t.Any = None, now: t.Any = None, resolved: bool = False) -> dict[str, t.Any]:
    try:
        if elapsed_minutes is None:
            if not started_at:
                raise _triage.TriageError("give elapsed_minutes or started_at")
            elapsed_minutes = _triage.elapsed_minutes(started_at, _when(now))
        return _triage.escalation(severity or None, elapsed_minutes, matrix, resolved=bool(resolved))
    except ValueError as exc:
        raise AnsibleFilterError(f"incident_escalation: {exc}") from None


def incident_message(verdict: t.Any, event: str, incident_id: str, started_at: t.Any = None, now: t.Any = None,
                     matrix: t.Any = None, levels: t.Any = None, pagerduty_severity: t.Any = None,
                     note: str = "", root_cause: str = "", resolution: str = "", severity: t.Any = None,
                     dedup_prefix: str = "sre-runbooks", detected_at: t.Any = None) -> dict[str, t.Any]:
    if not incident_id:
        raise AnsibleFilterError("incident_message: incident_id is empty; run sre.runbooks.incident_start first")
    try:
        return _triage.incident_message(verdict if isinstance(verdict, dict) else None, event, str(incident_id),
                                        started_at=started_at or None, now=_when(now), matrix=matrix,
                                        levels=levels, pagerduty_severity=pagerduty_severity, note=note or "",
                                        root_cause=root_cause or "", resolution=resolution or "",
                                        severity=severity or None, dedup_prefix=dedup_prefix,
                                        detected_at=detected_at or None)
    except ValueError as exc:
        raise AnsibleFilterError(f"incident_message: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "triage_verdict": triage_verdict,
            "triage_table": triage_table,
            "incident_escalation": incident_escalation,
            "incident_message": incident_message,
        }
