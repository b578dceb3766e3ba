# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the kafka_lag role, in Python so every branch is unit-tested: the role
only wires (two samples, this filter, `when: kafka_lag_verdict.act`).

The documentation of each filter is in the YAML file of the same name beside this one
(ansible-doc reads a DOCUMENTATION here for every filter of the file).
"""

from __future__ import annotations

import datetime
import typing as t

from ansible.errors import AnsibleFilterError


def _epoch(value: t.Any) -> float | None:
    """Epoch seconds from a number, an ISO 8601 time, or systemctl's '@1700000000' (--timestamp=unix);
    None for empty or unknown ('', 'n/a', None, '@0')."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) or None
    text = str(value).strip().lstrip("@")
    if not text or text.lower() == "n/a":
        return None
    try:
        return float(text) or None
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise AnsibleFilterError(f"kafka_lag_verdict: cannot read a time from {value!r}") from exc


def _committed(sample: dict[str, t.Any]) -> dict[str, dict[tuple[str, int], int]]:
    return {g["group"]: {(p["topic"], p["partition"]): p["committed_offset"] for p in g.get("partitions", [])}
            for g in sample.get("groups", [])}


def kafka_lag_verdict(first: dict[str, t.Any], second: dict[str, t.Any], threshold: int = 1000,
                      consumers: dict[str, t.Any] | None = None, unit_started: dict[str, t.Any] | None = None,
                      incident_started: t.Any = None) -> dict[str, t.Any]:
    if not isinstance(first, dict) or not isinstance(second, dict):
        raise AnsibleFilterError("kafka_lag_verdict wants two kafka_consumer_lag_info results")
    if int(threshold) < 0:
        raise AnsibleFilterError(f"kafka_lag_verdict: threshold must be >= 0, got {threshold}")
    consumers = consumers or {}
    unit_started = unit_started or {}
    out: dict[str, t.Any] = {"act": False, "restart": [], "stuck": [], "draining": [], "lagging": [],
                             "unmapped": [], "already_restarted": [], "healthy": False, "problem": None}
    if not first.get("reachable") or not second.get("reachable"):
        out["problem"] = "no Kafka broker reachable: a broker problem, not a consumer one; nothing restarted"
        out["summary"] = out["problem"]
        return out
    before = _committed(first)
    for group in second.get("groups", []):
        name = group["group"]
        if group.get("total_lag", 0) <= int(threshold):
            continue
        out["lagging"].append(name)
        now = _committed({"groups": [group]})[name]
        then = before.get(name)
        if then is None:
            # Not in the first sample: no evidence it is stuck. Next run decides.
            out["draining"].append(name)
            continue
        if any(off > then.get(key, -1) for key, off in now.items()):
            out["draining"].append(name)
            continue
        out["stuck"].append(name)
        target = consumers.get(name)
        if not isinstance(target, dict) or not target.get("unit"):
            out["unmapped"].append(name)
            continue
        unit = target["unit"]
        started, since = _epoch(unit_started.get(unit)), _epoch(incident_started)
        if since is not None and started is not None and started >= since:
            out["already_restarted"].append(name)
            continue
        out["restart"].append({"group": name, "unit": unit, "host": target.get("host"),
                               "lag": group.get("total_lag", 0)})
    out["act"] = bool(out["restart"])
    out["healthy"] = not out["lagging"]
    parts = []
    if out["healthy"]:
        parts.append(f"healthy: no group lags more than {threshold} messages, nothing to do")
    if out["restart"]:
        parts.append("restart " + ", ".join(f"{r['unit']} ({r['group']}, lag {r['lag']})" for r in out["restart"]))
    if out["draining"]:
        parts.append("catching up, left alone: " + ", ".join(out["draining"]))
    if out["unmapped"]:
        parts.append("stuck but no consumer unit mapped (kafka_lag_consumers): " + ", ".join(out["unmapped"]))
    if out["already_restarted"]:
        parts.append("stuck again after this incident's restart, a human must look: "
                     + ", ".join(out["already_restarted"]))
    out["summary"] = "; ".join(parts)
    return out


def kafka_lag_still_stuck(sample: dict[str, t.Any], restarted: list[dict[str, t.Any]],
                          threshold: int = 1000) -> list[str]:
    """Verify step: the restarted groups whose lag has not fallen - still above the threshold and
    not below the lag seen when the restart was decided. A group missing from the sample, or no
    broker reachable, counts as still stuck (no evidence of recovery)."""
    if not isinstance(sample, dict) or not sample.get("reachable"):
        return [r["group"] for r in restarted or []]
    lags = {g["group"]: g.get("total_lag", 0) for g in sample.get("groups", [])}
    stuck = []
    for r in restarted or []:
        lag = lags.get(r["group"])
        if lag is None or (lag > int(threshold) and lag >= int(r.get("lag", 0))):
            stuck.append(r["group"])
    return stuck


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"kafka_lag_verdict": kafka_lag_verdict, "kafka_lag_still_stuck": kafka_lag_still_stuck}
