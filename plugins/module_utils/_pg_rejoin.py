# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rejoin a fenced old primary as a standby of the new primary with pg_rewind (private; used by
pg_rejoin). The decision (``plan_rejoin``) is a pure function of the evidence, unit-tested branch by
branch; the rest builds the exact commands and edits the standby configuration."""

from __future__ import annotations

import re
import typing as t

# The control file states pg_rewind accepts without a crash recovery first: a clean shutdown of a
# primary, or of a standby.
CLEAN_STATES = ("shut down", "shut down in recovery")
# Configuration files pg_rewind would copy from the source over the target's own (its port, socket
# directory, pg_hba.conf): kept aside before the rewind and put back after it.
KEPT_CONFIG_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
STANDBY_SETTINGS = ("primary_conninfo", "primary_slot_name")


def parse_controldata(text: str) -> dict[str, str]:
    """pg_controldata output (LC_ALL=C) -> {label: value}."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        if ":" in line:
            key, _sep, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def control_facts(fields: dict[str, str]) -> dict[str, t.Any]:
    """The few control-file facts the decision needs."""
    def number(key: str) -> int | None:
        try:
            return int(fields.get(key, ""))
        except ValueError:
            return None
    return {
        "state": fields.get("Database cluster state"),
        "system_identifier": fields.get("Database system identifier"),
        "timeline": number("Latest checkpoint's TimeLineID"),
        "checkpoint_lsn": fields.get("Latest checkpoint location"),
        "wal_log_hints": fields.get("wal_log_hints setting") == "on",
        "data_checksums": (number("Data page checksum version") or 0) > 0,
    }


class Verdict(t.NamedTuple):
    state: str
    act: bool
    reason: str
    guardrail: str | None = None


def plan_rejoin(*, node: str, primary: str, primary_probe: dict[str, t.Any], node_probe: dict[str, t.Any],
                running: bool, control: dict[str, t.Any] | None,
                source_full_page_writes: bool | None) -> Verdict:
    """May the old primary `node` be rewound against `primary` and started as its standby?"""
    if node == primary:
        return Verdict("refused", False, f"{node} is the current primary: it is never rewound", "target_is_primary")
    if not primary_probe.get("reachable"):
        return Verdict("refused", False, f"the new primary {primary} does not answer "
                       f"({primary_probe.get('error_kind') or 'error'}): nothing to rewind against", "no_primary")
    if primary_probe.get("role") != "primary":
        return Verdict("refused", False, f"{primary} is not a primary (it is in recovery): pg_rewind needs the "
                       "group's current primary as its source", "no_primary")
    if node_probe.get("reachable"):
        if node_probe.get("role") == "primary":
            return Verdict("refused", False, f"{node} is running as a primary beside {primary} (split brain): "
                           "fence it (stop it cleanly) first; it is never rewound while it runs", "target_running")
        receiver = node_probe.get("wal_receiver") or {}
        if node_probe.get("upstream") == primary and receiver.get("status") == "streaming":
            return Verdict("streaming", False, f"{node} is a standby streaming from {primary}: nothing to do")
        return Verdict("refused", False, f"{node} is running as a standby that does not stream from {primary} "
                       f"(upstream {node_probe.get('upstream') or 'none'}): it is never rewound while it runs - "
                       "re-point it (pg_failover repoint_standbys) or stop it cleanly first", "target_running")
    if running:
        return Verdict("refused", False, f"{node} does not answer ({node_probe.get('error_kind') or 'error'}) but "
                       "its postmaster runs (pg_ctl status): stop it cleanly first", "target_running")
    if not control:
        return Verdict("refused", False, f"the data directory of {node} could not be read (pg_controldata)",
                       "data_directory")
    if control.get("system_identifier") and primary_probe.get("system_identifier") and \
            str(control["system_identifier"]) != str(primary_probe["system_identifier"]):
        return Verdict("refused", False, f"the data directory of {node} belongs to another cluster (system "
                       f"identifier {control['system_identifier']}, {primary} has "
                       f"{primary_probe['system_identifier']}): rebuild it with pg_basebackup", "other_cluster")
    if control.get("state") not in CLEAN_STATES:
        return Verdict("refused", False, f"{node} was not stopped cleanly (control file state "
                       f"{control.get('state')!r}): pg_rewind needs a clean shutdown - start it without clients "
                       "(for example postgres --single) and stop it, or rebuild it", "not_clean")
    if not (control.get("wal_log_hints") or control.get("data_checksums")):
        return Verdict("refused", False, f"{node} has neither wal_log_hints=on nor data checksums: pg_rewind "
                       "cannot rewind it - rebuild it with pg_basebackup (and set wal_log_hints=on)",
                       "wal_log_hints")
    if source_full_page_writes is False:
        return Verdict("refused", False, f"{primary} runs with full_page_writes=off: pg_rewind needs it on",
                       "full_page_writes")
    if control.get("state") == "shut down" and primary_probe.get("timeline") is not None and \
            control.get("timeline") is not None and control["timeline"] >= primary_probe["timeline"]:
        return Verdict("refused", False, f"{node} was a primary on timeline {control['timeline']}, not behind "
                       f"{primary} (timeline {primary_probe['timeline']}): it was not failed over from - refusing",
                       "timeline")
    return Verdict("rejoin", True, f"{node} is stopped cleanly on timeline {control.get('timeline')}; "
                   f"{primary} is the primary on timeline {primary_probe.get('timeline')}: rewind it, make it "
                   "a standby of the primary and start it")


# --- commands and files ---------------------------------------------------------------------

def conninfo_quote(value: str) -> str:
    """A libpq key=value value, quoted when needed."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(**pairs: t.Any) -> str:
    return " ".join(f"{key}={conninfo_quote(str(value))}" for key, value in pairs.items()
                    if value is not None and value != "")


def passfile_field(value: str) -> str:
    """A .pgpass field: ':' and '\\' escaped."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile_line(host: str, port: int, user: str, password: str) -> str:
    return ":".join((passfile_field(host), str(port), "*", passfile_field(user), passfile_field(password)))


def merge_passfile(existing: str, host: str, port: int, user: str, password: str) -> str:
    """existing passfile text with the one line for host:port:*:user (replaced, or added first so it wins)."""
    prefix = ":".join((passfile_field(host), str(port), "*", passfile_field(user))) + ":"
    line = passfile_line(host, port, user, password)
    kept = [raw for raw in (existing or "").splitlines() if not raw.startswith(prefix)]
    return "\n".join([line] + kept) + "\n"


def conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def with_standby_settings(auto_conf: str, settings: dict[str, str | None]) -> str:
    """postgresql.auto.conf text with the standby settings replaced (a None value removes the line)."""
    names = tuple(settings)
    kept = [line for line in (auto_conf or "").splitlines()
            if not re.match(r"\s*(" + "|".join(names) + r")\s*=", line)]
    kept += [f"{name} = {conf_quote(value)}" for name, value in settings.items() if value]
    return "\n".join(kept) + "\n"
