# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one shape of a role's incident record (`<scenario>_result`), built on the controller.

Every outage role ends with one `sre.runbooks.incident_record` task; this module decides its
outcome and normalises its times, so the seven roles share keys, vocabulary and timestamp format.
"""

from __future__ import annotations

import datetime
import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._common import utc_iso

# The keys every record has (scenario-specific keys from `details` come after them).
COMMON_KEYS = ("scenario", "host", "started", "finished", "duration_seconds", "check_mode", "outcome", "error",
               "verdict", "actions")


def parse_time(value: t.Any) -> datetime.datetime | None:
    """An aware UTC datetime from an ISO 8601 string (naive means UTC) or epoch seconds; None if empty."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(float(value), tz=datetime.timezone.utc)
    text = str(value).strip()
    try:
        return datetime.datetime.fromtimestamp(float(text), tz=datetime.timezone.utc)
    except ValueError:
        pass
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def outcome(error: t.Any = None, found: bool = False, act: bool = False, check_mode: bool = False,
            acted: bool = False, remedy: str = "act", reported: str | None = None) -> str:
    """The run's outcome, in the words every record uses.

    failed -> no action needed (nothing wrong) -> reported: WHY (wrong, but the verdict says do not
    act) -> check mode: would REMEDY -> assessed only (the act phase did not run, e.g. --tags
    assess) -> healed (acted, and verify passed: a failed verify is an error)."""
    if error:
        return "failed"
    if not found:
        return "no action needed"
    if not act:
        return f"reported: {reported}" if reported else "reported only"
    if check_mode:
        return f"check mode: would {remedy}"
    if not acted:
        return "assessed only"
    return "healed"


def collect_actions(results: t.Any) -> list[dict[str, t.Any]]:
    """The `actions` our modules returned, from registered results (loops included), oldest first.

    An entry may also be ``{"result": REGISTERED, "action": NAME, "target": PREFIX, "at": TIME}``
    for a module that returns no `actions` (ansible.builtin.systemd_service): each changed item
    becomes one action stamped with ``at`` (when its task ran), not with the record's time. With
    ``item_key`` the target is that key of a mapping item; ``item_fields`` copies more of its keys."""
    found: list[dict[str, t.Any]] = []
    for entry in results or []:
        if not isinstance(entry, dict):
            continue
        if "action" in entry and "result" in entry and isinstance(entry.get("result"), dict):
            registered = entry["result"]
            items = registered.get("results") if isinstance(registered.get("results"), list) else [registered]
            for item in items:
                if not isinstance(item, dict) or not item.get("changed"):
                    continue
                when = parse_time(entry.get("at"))
                loop_item = item.get("item", "")
                fields = loop_item if isinstance(loop_item, dict) else {}
                name = fields.get(entry["item_key"], "") if entry.get("item_key") else loop_item
                action = {"timestamp": utc_iso(when) if when else None, "action": entry["action"],
                          "target": f"{entry.get('target') or ''}{name}".strip(),
                          "result": "check mode" if entry.get("check_mode") else "done"}
                action.update({key: fields.get(key) for key in entry.get("item_fields") or []})
                found.append(action)
            continue
        items = entry.get("results") if isinstance(entry.get("results"), list) else [entry]
        for item in items:
            if isinstance(item, dict):
                found.extend(a for a in item.get("actions") or [] if isinstance(a, dict))
    return sorted(found, key=lambda a: a.get("timestamp") or "")


def build(scenario: str, host: str, check_mode: bool, started: t.Any = None, error: t.Any = None,
          found: bool = False, act: bool = False, acted: bool = False, remedy: str = "act",
          reported: str | None = None, verdict: t.Any = None, results: t.Any = None,
          details: dict[str, t.Any] | None = None, now: datetime.datetime | None = None) -> dict[str, t.Any]:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    begun = parse_time(started)
    if isinstance(verdict, dict):
        verdict = verdict.get("summary") or verdict.get("reason")
    record = {
        "scenario": scenario,
        "host": host,
        "started": utc_iso(begun) if begun else None,
        "finished": utc_iso(now),
        "duration_seconds": round((now - begun).total_seconds(), 3) if begun else None,
        "check_mode": bool(check_mode),
        "outcome": outcome(error, found, act, check_mode, acted, remedy, reported),
        "error": str(error) if error else None,
        "verdict": verdict if verdict not in ("", {}) else None,
        "actions": collect_actions(results),
    }
    for key, value in (details or {}).items():
        if key in COMMON_KEYS:
            raise ValueError(f"details may not redefine the common key {key!r}")
        record[key] = value
    return record
