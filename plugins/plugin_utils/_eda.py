# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions for alert-driven runs (sre.runbooks.eda_gate, extensions/eda/rulebooks/outage.yml).

One alert (an Alertmanager alert, split out of its webhook by eda.builtin.event_splitter) becomes
at most one scenario run against one inventory host:

- target_for(): which inventory host the alert's labels name - exactly one host of the scenario's
  group, or none (the alert then runs nothing and says why; never "all hosts");
- decide(): remediate, or check mode only - per-scenario auto_remediate (off by default) and a
  per-scenario rate limit over the ledger of earlier runs on this controller;
- the ledger: one JSON line per decided run under the incident state dir, flock-protected.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import typing as t

# The inventory group each scenario playbook targets by default (playbooks/outage/*.yml hosts:).
SCENARIO_GROUPS = {
    "db_exhaustion": "postgresql",
    "lock_contention": "postgresql",
    "slow_queries": "postgresql",
    "db_down": "postgresql_replication",
    "redis_unavailable": "redis",
    "service_down": "systemd_hosts",
    "disk_full": "systemd_hosts",
    "network_partition": "systemd_hosts",
    "crashloop": "kubernetes",
    "node_failure": "kubernetes",
    "api_gateway_down": "kubernetes",
    "memory_exhaustion": "kubernetes",
    "kafka_lag": "kafka",
    "stripe_webhooks": "stripe",
}
# Labels that may name the target, in order: an explicit inventory host, then Prometheus' instance.
TARGET_LABELS = ("inventory_host", "host", "instance")
_HOSTNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PORT = re.compile(r"^(?P<host>[^:\[\]]+):\d+$")
# Alert labels that narrow a scenario run: label -> the role variable it sets (a list for node).
LABEL_VARS = {
    "crashloop": {"namespace": "crashloop_namespace"},
    "memory_exhaustion": {"namespace": "memory_exhaustion_namespace"},
    "api_gateway_down": {"namespace": "api_gateway_down_namespace", "deployment": "api_gateway_down_deployment"},
    "node_failure": {"node": "node_failure_nodes"},
}
LIST_VARS = frozenset({"node_failure_nodes"})
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LEDGER_FILE = "eda-ledger.jsonl"
LEDGER_KEEP_SECONDS = 24 * 3600
HOUR = 3600.0


def _strip_port(value: str) -> str:
    match = _PORT.match(value)
    return match.group("host") if match else value


def target_for(labels: t.Mapping[str, t.Any] | None, scenario: str, hosts: t.Mapping[str, t.Mapping[str, t.Any]],
               groups: t.Mapping[str, t.Sequence[str]]) -> tuple[str | None, str]:
    """(inventory host, why) for an alert's labels; (None, why not) when they name no single host.

    `hosts`: inventory hostname -> its variables (only `ansible_host` is read); `groups`: group ->
    hostnames. A label value is used only if it is a plain host name (no pattern, group or range),
    names an inventory host exactly, or is the `ansible_host` of exactly one host. The host must
    belong to the scenario's group when the inventory has that group.
    """
    labels = labels or {}
    group = SCENARIO_GROUPS.get(scenario)
    members = set(groups.get(group) or ()) if group and group in groups else None
    tried = []
    for key in TARGET_LABELS:
        raw = labels.get(key)
        if raw in (None, ""):
            continue
        value = _strip_port(str(raw).strip())
        tried.append(f"{key}={raw}")
        if not _HOSTNAME.match(value) or value in ("all", "localhost") or value in groups:
            return None, (f"label {key}={raw!r} is not one host name (a pattern, a group or 'all' would widen "
                          "the run): running nothing")
        if value in hosts:
            found = value
        else:
            by_address = sorted(h for h, hv in hosts.items() if str((hv or {}).get("ansible_host", "")) == value)
            if len(by_address) > 1:
                return None, f"label {key}={raw!r} is the address of {len(by_address)} hosts ({', '.join(by_address)}): ambiguous, running nothing"
            if not by_address:
                continue
            found = by_address[0]
        if members is not None and found not in members:
            return None, f"label {key}={raw!r} names {found}, which is not in group {group} ({scenario}): running nothing"
        return found, f"label {key}={raw!r} -> inventory host {found}"
    if not tried:
        return None, f"the alert has none of the labels {', '.join(TARGET_LABELS)}: no target, running nothing"
    return None, f"no inventory host matches {', '.join(tried)}: running nothing"


def label_vars(labels: t.Mapping[str, t.Any] | None, scenario: str) -> dict[str, t.Any]:
    """Role variables the alert's labels set (namespace, deployment, node); a value that is not a
    Kubernetes name is ignored, so the role keeps its inventory setting."""
    found: dict[str, t.Any] = {}
    for label, var in LABEL_VARS.get(scenario, {}).items():
        value = str((labels or {}).get(label) or "")
        if value and _K8S_NAME.match(value):
            found[var] = [value] if var in LIST_VARS else value
    return found


def _per_scenario(setting: t.Any, scenario: str, default: t.Any) -> t.Any:
    if isinstance(setting, t.Mapping):
        return setting.get(scenario, setting.get("default", default))
    return default if setting is None else setting


def _truthy(value: t.Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value == 1)


def remediations_within(ledger: t.Iterable[t.Mapping[str, t.Any]], scenario: str, now: float,
                        seconds: float = HOUR) -> int:
    """How many real (non-check) runs of scenario the ledger holds in the last `seconds`."""
    return sum(1 for e in ledger if e.get("scenario") == scenario and not e.get("check_mode", True)
               and e.get("run") and e.get("kind", "remediate") == "remediate" and 0 <= now - float(e.get("ts", 0)) <= seconds)


def decide(scenario: str, auto_remediate: t.Any, max_per_hour: t.Any,
           ledger: t.Iterable[t.Mapping[str, t.Any]], now: float) -> dict[str, t.Any]:
    """Remediate or only check: {check_mode, reason, recent, limit}.

    auto_remediate / max_per_hour: one value for every scenario, or a mapping scenario -> value
    (key `default` for the others). auto_remediate is off unless it is exactly true for the scenario;
    a limit below 1 allows no real run.
    """
    recent = remediations_within(ledger, scenario, now)
    try:
        limit = int(_per_scenario(max_per_hour, scenario, 3))
    except (TypeError, ValueError):
        limit = 0
    if not _truthy(_per_scenario(auto_remediate, scenario, False)):
        return dict(check_mode=True, recent=recent, limit=limit,
                    reason=f"auto_remediate is off for {scenario}: check mode only "
                           f"(rulebook vars: auto_remediate: {{{scenario}: true}})")
    if recent >= limit:
        return dict(check_mode=True, recent=recent, limit=limit,
                    reason=f"rate limit: {recent} remediation(s) of {scenario} in the last hour, at most {limit} "
                           "(max_remediations_per_hour): check mode and notify only")
    return dict(check_mode=False, recent=recent, limit=limit,
                reason=f"auto_remediate is on for {scenario}; {recent} of {limit} remediations used this hour")


def alert_summary(event: t.Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """The parts of an alert event a record needs (labels, times, webhook arrival), nothing else."""
    event = event or {}
    meta = event.get("meta") or {}
    labels = event.get("labels") or {}
    return {
        "alertname": labels.get("alertname"),
        "status": event.get("status"),
        "fingerprint": event.get("fingerprint"),
        "labels": dict(labels),
        "starts_at": event.get("startsAt"),
        "ends_at": event.get("endsAt"),
        "received_at": meta.get("received_at"),
    }


def alert_started_at(event: t.Mapping[str, t.Any] | None) -> str | None:
    """The alert's startsAt trimmed to microseconds (Alertmanager writes nanoseconds), or None."""
    value = str((event or {}).get("startsAt") or "")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not match or value.startswith("0001-"):
        return None
    frac = (match.group(2) or "")[:7]
    return f"{match.group(1)}{frac}{'Z' if match.group(3) == 'Z' else match.group(3)}"


@contextlib.contextmanager
def _locked(path: str) -> t.Iterator[None]:
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_ledger(state_dir: str) -> list[dict[str, t.Any]]:
    path = os.path.join(state_dir, LEDGER_FILE)
    entries = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict):
                        entries.append(entry)
    except FileNotFoundError:
        pass
    return entries


def decide_and_record(state_dir: str, entry: dict[str, t.Any], scenario: str, auto_remediate: t.Any,
                      max_per_hour: t.Any, now: float | None = None, write: bool = True) -> dict[str, t.Any]:
    """decide() over the ledger and append the entry with the verdict, under one lock: two alerts
    at once cannot both take the last remediation of the hour."""
    now = datetime.datetime.now(datetime.timezone.utc).timestamp() if now is None else now
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, LEDGER_FILE)
    with _locked(path):
        ledger = read_ledger(state_dir)
        if entry.get("run") and entry.get("kind", "remediate") == "remediate":
            verdict = decide(scenario, auto_remediate, max_per_hour, ledger, now)
        else:  # no target (runs nothing), or a resolved alert (notifications only, no remediation)
            verdict = dict(check_mode=not entry.get("run"), reason=entry.get("reason", ""),
                           recent=remediations_within(ledger, scenario, now), limit=None)
        record = {**entry, "ts": now, "scenario": scenario, "check_mode": verdict["check_mode"],
                  "reason": entry.get("reason") or verdict["reason"]}
        if write:
            kept = [e for e in ledger if now - float(e.get("ts", 0)) <= LEDGER_KEEP_SECONDS]
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                for e in [*kept, record]:
                    fh.write(json.dumps(e, sort_keys=True) + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
    return {**verdict, "record": record}
