# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by every sre.runbooks module: durations, timestamps, action records, guardrails.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import datetime
import math
import re
import typing as t

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


class GuardrailTripped(Exception):
    """A safety limit stopped a remediation. The message names the guardrail and its override."""

    def __init__(self, guardrail: str, detail: str, override: str) -> None:
        self.guardrail = guardrail
        self.detail = detail
        self.override = override
        super().__init__(f"guardrail '{guardrail}' tripped: {detail}; nothing was changed. To override: {override}")


def parse_duration(value: t.Any, option: str = "duration") -> float:
    """Return seconds for 300, "300", "5m", "1h30m", "1.5h", "250ms".

    Raises ValueError naming ``option`` for anything negative or unparsable, so the caller can
    fail with a message the user can act on.
    """
    if isinstance(value, bool):
        raise ValueError(f"{option}: expected seconds or a duration such as '5m', got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        if not text:
            raise ValueError(f"{option}: expected seconds or a duration such as '5m', got an empty value")
        try:
            seconds = float(text)
        except ValueError:
            compact = text.replace(" ", "")
            parts = _DURATION_PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise ValueError(
                    f"{option}: cannot parse {value!r}; use seconds (300) or a duration "
                    "such as '90s', '5m', '1h30m', '2d'"
                ) from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not math.isfinite(seconds):
        raise ValueError(f"{option}: must be a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{option}: must not be negative, got {value!r}")
    return seconds


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def parse_moment(value: t.Any, option: str = "time") -> datetime.datetime:
    """An ISO 8601 timestamp (naive means UTC), or a duration meaning that long ago (`10m`):
    the form of the once-per-incident options (`restarted_after`)."""
    text = str(value).strip()
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return utc_now() - datetime.timedelta(seconds=parse_duration(text, option))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def utc_iso(moment: datetime.datetime | None = None) -> str:
    """ISO 8601 UTC timestamp with a Z suffix, the format every `actions` entry uses."""
    moment = moment or utc_now()
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def action_record(action: str, target: t.Any, result: str, **details: t.Any) -> dict[str, t.Any]:
    """One entry of a module's `actions` list, as the incident timeline records it."""
    record = {"timestamp": utc_iso(), "action": action, "target": target, "result": result}
    record.update(details)
    return record


def truncate(text: t.Any, limit: int = 200) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
