# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the kafka_lag role, in Python so every branch is unit-tested: the role
only wires (two samples, this filter, `when: kafka_lag_verdict.act`)."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: kafka_lag_verdict
short_description: Decide which Kafka consumers the kafka_lag runbook restarts
version_added: 0.2.0
description:
  - Compares two samples of C(sre.runbooks.kafka_consumer_lag_info) taken a short window apart and
    returns which consumer groups are stuck - total lag over the threshold B(and) not draining (their
    committed offsets did not advance between the samples) - and which systemd unit to restart for each.
  - A group that is catching up (its committed offsets advanced) is left alone, however large its lag.
  - A stuck group without a unit in the mapping, or whose unit was already (re)started since the
    incident began, is reported and not restarted (once per incident).
  - No broker reachable is not a consumer problem - nothing is restarted.
author:
  - sre.runbooks maintainers (@sre-runbooks)
options:
  _input:
    description: The first sample (registered result of C(sre.runbooks.kafka_consumer_lag_info)).
    type: dict
    required: true
  second:
    description: The second sample, taken after the window.
    type: dict
    required: true
  threshold:
    description: A group with a total lag above this many messages lags.
    type: int
    default: 1000
  consumers:
    description: Group id to the consumer behind it, C({group: {unit: name, host: inventory_host}}).
    type: dict
    default: {}
  unit_started:
    description: Unit name to the epoch seconds it last became active (absent - unknown).
    type: dict
    default: {}
  incident_started:
    description: Epoch seconds the incident started; a unit started after it was restarted already.
    type: float
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    verdict: "{{ first | sre.runbooks.kafka_lag_verdict(second, threshold=1000, consumers=map) }}"
"""

RETURN = r"""
_value:
  description: C(act), C(restart) (list of group, unit, host, lag), C(stuck), C(draining), C(lagging),
    C(unmapped), C(already_restarted), C(healthy), C(problem) and C(summary).
  type: dict
"""


def _committed(sample: dict[str, t.Any]) -> dict[str, dict[tuple[str, int], int]]:
    return {g["group"]: {(p["topic"], p["partition"]): p["committed_offset"] for p in g.get("partitions", [])}
            for g in sample.get("groups", [])}


def kafka_lag_verdict(first: dict[str, t.Any], second: dict[str, t.Any], threshold: int = 1000,
                      consumers: dict[str, t.Any] | None = None, unit_started: dict[str, t.Any] | None = None,
                      incident_started: float | None = None) -> dict[str, t.Any]:
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
        started = unit_started.get(unit)
        if incident_started is not None and started is not None and float(started) >= float(incident_started):
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


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"kafka_lag_verdict": kafka_lag_verdict}
