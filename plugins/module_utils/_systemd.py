# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd unit state and journal excerpts for sre.runbooks modules (private).

Everything here reads; nothing starts, stops or reloads a unit. Programs are run through a
``run`` callable with the signature of ``AnsibleModule.run_command`` so the parsing can be
unit-tested without a systemd.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import socket
import time
import typing as t
import urllib.error
import urllib.request

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_text

# One `systemctl show` call returns these for every unit asked about.
SHOW_PROPERTIES = (
    "Id", "Description", "LoadState", "ActiveState", "SubState", "Result", "UnitFileState",
    "NRestarts", "ExecMainStatus", "ExecMainCode", "ExecMainPID", "MainPID",
    "ActiveEnterTimestamp", "ExecMainStartTimestamp", "InactiveEnterTimestamp",
    "StateChangeTimestamp", "MemoryCurrent", "MemoryPeak", "ControlGroup",
    "After", "Requires", "BindsTo", "Restart",
)

# What systemd prints for an unset integer (UINT64_MAX) or in place of a value.
_UNSET = {"", "[not set]", "infinity", "18446744073709551615"}

# ExecMainCode is a CLD_* code from waitid(2).
_EXIT_CODES = {0: None, 1: "exited", 2: "killed", 3: "dumped", 4: "trapped", 5: "stopped", 6: "continued"}

JOURNAL_PRIORITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

# Messages by which systemd and the kernel tell that the OOM killer hit a unit.
_OOM_MARKERS = ("killed by the oom killer", "failed with result 'oom-kill'", "oom-kill")


class SystemdError(Exception):
    """A systemd program failed; the message says which command and what it printed."""


def _int(value: str | None) -> int | None:
    if value is None or value.strip() in _UNSET:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _timestamp(value: str | None) -> str | None:
    """`--timestamp=unix` prints '@1700000000'; return ISO 8601 UTC, None when never."""
    if not value or value in _UNSET or value == "n/a":
        return None
    if value.startswith("@"):
        try:
            seconds = int(value[1:])
        except ValueError:
            return value
        if seconds == 0:
            return None
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
        return moment.isoformat().replace("+00:00", "Z")
    return value


def parse_show_output(text: str) -> list[dict[str, str]]:
    """Split `systemctl show A B C` into one property dict per unit, in the order asked."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def _cgroup_dirs(control_group: str, cgroup_root: str) -> list[str]:
    """Where a unit's cgroup lives in this machine's layout: unified (v2) or hybrid/legacy."""
    if not control_group:
        return []
    rel = control_group.lstrip("/")
    candidates = [os.path.join(cgroup_root, rel), os.path.join(cgroup_root, "unified", rel),
                  os.path.join(cgroup_root, "systemd", rel)]
    return [c for c in candidates if os.path.isfile(os.path.join(c, "cgroup.procs"))]


def _read_int_file(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return _int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _cgroup_pids(directory: str) -> list[int]:
    pids: list[int] = []
    for root, _dirs, files in os.walk(directory):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(root, "cgroup.procs"), encoding="ascii") as fh:
                    pids.extend(int(p) for p in fh.read().split())
            except (OSError, ValueError):
                continue
    return pids


def _process_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def unit_memory(props: dict[str, str], cgroup_root: str = "/sys/fs/cgroup") -> dict[str, t.Any]:
    """Current and peak memory of a unit, and where the numbers came from.

    systemd's MemoryCurrent/MemoryPeak need the memory controller on the unified hierarchy. On a
    hybrid layout (and inside many containers) systemd cannot account memory; then the cgroup's
    own files are tried, and last the summed RSS of the unit's processes (no peak available).
    """
    current = _int(props.get("MemoryCurrent"))
    peak = _int(props.get("MemoryPeak"))
    if current is not None:
        return {"memory_current_bytes": current, "memory_peak_bytes": peak, "memory_source": "systemd"}
    dirs = _cgroup_dirs(props.get("ControlGroup", ""), cgroup_root)
    for directory in dirs:
        current = _read_int_file(os.path.join(directory, "memory.current"))
        if current is not None:
            return {"memory_current_bytes": current,
                    "memory_peak_bytes": _read_int_file(os.path.join(directory, "memory.peak")),
                    "memory_source": "cgroup"}
    if dirs:
        pids = _cgroup_pids(dirs[0])
        if pids:
            return {"memory_current_bytes": sum(_process_rss(p) for p in pids), "memory_peak_bytes": None,
                    "memory_source": "process_rss"}
        return {"memory_current_bytes": 0, "memory_peak_bytes": None, "memory_source": "process_rss"}
    return {"memory_current_bytes": None, "memory_peak_bytes": None, "memory_source": None}


def _words(value: str | None) -> list[str]:
    return value.split() if value else []


def _epoch(value: str | None) -> int | None:
    if value and value.startswith("@"):
        try:
            return int(value[1:]) or None
        except ValueError:
            return None
    return None


def unit_state(props: dict[str, str], now: float | None = None) -> dict[str, t.Any]:
    """The facts about one unit that the service-down runbook reads (no memory, no journal)."""
    code = _int(props.get("ExecMainCode")) or 0
    main_pid = _int(props.get("MainPID")) or 0
    result = props.get("Result") or None
    state = {
        "name": props.get("Id", ""),
        # systemd-run names a transient unit after its command line.
        "description": mask_text(props.get("Description")) or None,
        "exists": props.get("LoadState") not in ("not-found", None, ""),
        "load_state": props.get("LoadState") or None,
        "active_state": props.get("ActiveState") or None,
        "sub_state": props.get("SubState") or None,
        "result": result,
        "unit_file_state": props.get("UnitFileState") or None,
        "restart_policy": props.get("Restart") or None,
        "n_restarts": _int(props.get("NRestarts")) or 0,
        "main_pid": main_pid or None,
        "exec_main_pid": _int(props.get("ExecMainPID")) or None,
        "exec_main_code": _EXIT_CODES.get(code, str(code)),
        "exec_main_status": _int(props.get("ExecMainStatus")),
        "active_since": _timestamp(props.get("ActiveEnterTimestamp")),
        "main_started_at": _timestamp(props.get("ExecMainStartTimestamp")),
        "inactive_since": _timestamp(props.get("InactiveEnterTimestamp")),
        "state_changed_at": _timestamp(props.get("StateChangeTimestamp")),
        "after": _words(props.get("After")),
        "requires": sorted(set(_words(props.get("Requires")) + _words(props.get("BindsTo")))),
        "oom_killed": result == "oom-kill",
    }
    entered = _epoch(props.get("ActiveEnterTimestamp"))
    state["active_for_seconds"] = (
        max(int((now if now is not None else time.time()) - entered), 0)
        if entered and state["active_state"] == "active" else None)
    # "activating (auto-restart)": systemd is about to start the unit again after a crash.
    state["restart_looping"] = state["sub_state"] == "auto-restart"
    state["healthy"] = state["active_state"] == "active" and state["sub_state"] not in ("auto-restart",)
    return state


def restart_order(names: list[str], states: dict[str, dict[str, t.Any]]) -> list[str]:
    """The given units ordered so each comes after the given units it is ordered After= or
    Requires=; ties keep the caller's order. A dependency cycle keeps the caller's order for
    the units in it rather than failing: systemd itself would break such a cycle."""
    pending = list(names)
    wanted = set(names)
    deps = {n: {d for d in states.get(n, {}).get("after", []) + states.get(n, {}).get("requires", [])
                if d in wanted and d != n} for n in names}
    ordered: list[str] = []
    while pending:
        ready = [n for n in pending if not (deps[n] - set(ordered))]
        pick = ready[0] if ready else pending[0]
        ordered.append(pick)
        pending.remove(pick)
    return ordered


def systemctl_show(run: t.Callable[..., tuple[int, str, str]], systemctl: str,
                   units: list[str]) -> list[dict[str, str]]:
    """All properties of all units in one call."""
    cmd = [systemctl, "show", "--no-pager", "--timestamp=unix", "-p", ",".join(SHOW_PROPERTIES), "--", *units]
    rc, out, err = run(cmd)
    if rc != 0 and "timestamp" in err:
        # systemd older than 251 has no --timestamp=unix; timestamps then stay as printed.
        cmd.remove("--timestamp=unix")
        rc, out, err = run(cmd)
    if rc != 0:
        raise SystemdError(f"'{' '.join(cmd)}' failed (rc={rc}): {err.strip() or out.strip()}")
    blocks = parse_show_output(out)
    if len(blocks) != len(units):
        raise SystemdError(f"'systemctl show' returned {len(blocks)} unit(s) for {len(units)} asked")
    # An unknown unit comes back with Id set to the name asked; keep the caller's spelling.
    for name, block in zip(units, blocks):
        block.setdefault("Id", name)
    return blocks


def parse_journal_json(text: str, limit: int) -> list[dict[str, t.Any]]:
    """`journalctl -o json` lines -> [{timestamp, priority, identifier, pid, message}], last `limit`."""
    entries: list[dict[str, t.Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        message = raw.get("MESSAGE")
        if isinstance(message, list):  # journald stores non-UTF-8 messages as byte arrays
            message = bytes(b for b in message if isinstance(b, int)).decode("utf-8", "replace")
        micros = _int(str(raw.get("__REALTIME_TIMESTAMP", "")))
        timestamp = None
        if micros:
            timestamp = datetime.datetime.fromtimestamp(micros / 1e6, tz=datetime.timezone.utc)
            timestamp = timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        priority = _int(str(raw.get("PRIORITY", "")))
        entries.append({
            "timestamp": timestamp,
            "priority": JOURNAL_PRIORITIES[priority] if priority is not None and 0 <= priority < 8 else None,
            "identifier": raw.get("SYSLOG_IDENTIFIER") or raw.get("_COMM"),
            "pid": _int(str(raw.get("_PID", ""))),
            # Services log their own command lines and connection strings: mask what looks secret.
            "message": mask_text(message),
        })
    return entries[-limit:] if limit else []


def journal_since_arg(seconds: float | None, absolute: str | None) -> str | None:
    if absolute:
        return absolute
    if seconds is None:
        return None
    return f"-{int(seconds)}s"


def journal_excerpt(run: t.Callable[..., tuple[int, str, str]], journalctl: str, unit: str, priority: str,
                    since: str | None, lines: int) -> list[dict[str, t.Any]]:
    """The last `lines` journal entries of `unit` at `priority` or worse since `since`."""
    if lines <= 0:
        return []
    # Newest first (-r): with --since, -n would otherwise keep the oldest entries after it.
    cmd = [journalctl, "--no-pager", "--quiet", "-r", "-o", "json", "-u", unit, "-p", priority, "-n", str(lines)]
    if since:
        cmd.append(f"--since={since}")
    rc, out, err = run(cmd)
    if rc != 0:
        raise SystemdError(f"'{' '.join(cmd)}' failed (rc={rc}): {err.strip() or out.strip()}")
    return list(reversed(parse_journal_json(out, lines)))


def oom_in_journal(entries: list[dict[str, t.Any]]) -> bool:
    return any(any(marker in (e.get("message") or "").lower() for marker in _OOM_MARKERS) for e in entries)


# --- health probes: does the unit serve, seen from this host? ------------------------------

def probe_tcp(host: str, port: int, timeout: float) -> dict[str, t.Any]:
    """Connect and close. Proves the port accepts connections, which the kernel does even for
    a hung (stopped) process: an HTTP probe proves more."""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return {"ok": False, "status": None, "error": str(exc) or type(exc).__name__,
                "seconds": round(time.monotonic() - started, 3)}
    return {"ok": True, "status": None, "error": None, "seconds": round(time.monotonic() - started, 3)}


def probe_http(url: str, expected_status: int, timeout: float) -> dict[str, t.Any]:
    """GET the URL (no proxy: a local health check must not leave the host) and compare the status."""
    started = time.monotonic()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    status = None
    error = None
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "sre.runbooks-probe"}),
                         timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        error = str(reason) or type(exc).__name__
    ok = status == expected_status
    if status is not None and not ok:
        error = f"HTTP {status}, expected {expected_status}"
    return {"ok": ok, "status": status, "error": error, "seconds": round(time.monotonic() - started, 3)}


def run_probes(probes: list[dict[str, t.Any]], timeout: float) -> dict[str, dict[str, t.Any]]:
    """All probes at once (threads), so a run takes as long as the slowest probe, not the sum."""
    def one(probe: dict[str, t.Any]) -> dict[str, t.Any]:
        if probe.get("http_url"):
            result = probe_http(probe["http_url"], int(probe.get("http_status") or 200), timeout)
            return dict(result, type="http", target=probe["http_url"])
        host = probe.get("tcp_host") or "127.0.0.1"
        result = probe_tcp(host, int(probe["tcp_port"]), timeout)
        return dict(result, type="tcp", target=f"{host}:{probe['tcp_port']}")

    if not probes:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(probes), 16)) as pool:
        results = list(pool.map(one, probes))
    return {probe["unit"]: result for probe, result in zip(probes, results)}


# --- the service-down verdict: which units are down, crash-looping, stable; what to do -----

# Every unit type systemd knows; a name without one of these means NAME.service.
UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".mount", ".path", ".slice", ".scope",
                 ".device", ".swap", ".automount")


def full_unit_name(unit: str) -> str:
    unit = unit.strip()
    return unit if unit.endswith(UNIT_SUFFIXES) else f"{unit}.service"


def unit_verdict(state: dict[str, t.Any], restart_loop_threshold: int, stable_seconds: int) -> dict[str, t.Any]:
    """One unit: status (missing | looping | down | stable), the action it calls for
    (none | restart | report) and why.

    Crash-looping means systemd is waiting to restart it (auto-restart), or it has been restarted
    automatically at least `restart_loop_threshold` times and has not stayed up for
    `stable_seconds` since (a loop sampled in its brief running phase looks active). Restarting
    such a unit again does not help: it is reported for a human. A unit restarted that often that
    has stayed up long enough recovered: it is stable.
    """
    probe = state.get("probe")
    probe_failed = probe is not None and not probe.get("ok")
    n_restarts = state.get("n_restarts") or 0
    active_for = state.get("active_for_seconds")
    if not state.get("exists"):
        return {"status": "missing", "action": "report",
                "reason": f"systemd does not know {state.get('name')} (LoadState {state.get('load_state')})"}
    if state.get("restart_looping"):
        return {"status": "looping", "action": "report",
                "reason": f"crash-looping: systemd is waiting to restart it again ({n_restarts} automatic restarts)"}
    if n_restarts >= restart_loop_threshold and (active_for is None or active_for < stable_seconds):
        up = "not active" if active_for is None else f"up for only {active_for}s"
        return {"status": "looping", "action": "report",
                "reason": f"crash-looping: {n_restarts} automatic restarts (threshold {restart_loop_threshold}), "
                          f"{up} (stable after {stable_seconds}s)"}
    if not state.get("healthy"):
        return {"status": "down", "action": "restart",
                "reason": f"{state.get('active_state')}/{state.get('sub_state')}, result {state.get('result')}"}
    if probe_failed:
        return {"status": "down", "action": "restart",
                "reason": f"active, but its {probe.get('type')} probe of {probe.get('target')} failed: {probe.get('error')}"}
    if n_restarts >= restart_loop_threshold:
        return {"status": "stable", "action": "none",
                "reason": f"recovered: {n_restarts} automatic restarts, but up for {active_for}s"}
    return {"status": "stable", "action": "none", "reason": "active" + (", probe passed" if probe else "")}


def unit_evidence(state: dict[str, t.Any], journal_lines: int = 10) -> str:
    """One line a human reads first: state, result, restarts, OOM, the last journal messages."""
    journal = " | ".join(e.get("message") or "" for e in (state.get("journal") or [])[-journal_lines:])
    return (f"[{state.get('name')}: {state.get('active_state')}/{state.get('sub_state')}, result {state.get('result')}, "
            f"{state.get('n_restarts') or 0} automatic restarts, OOM-killed {bool(state.get('oom_killed'))}] {journal}").rstrip()


def service_verdict(states: dict[str, dict[str, t.Any]], order: list[str], restart_loop_threshold: int,
                    stable_seconds: int, max_restarts: int | None = None,
                    restarted: list[str] | None = None) -> dict[str, t.Any]:
    """The decision of the service-down runbook from the units' states.

    `order` is the restart order of all units. `max_restarts` is the guardrail: more units to
    restart than that points at the host, not the units, so nothing is restarted. `restarted`
    names the units the caller restarted in this run: they are judged as a verify step
    (still down when not active, the probe fails, or systemd restarted them again since).
    """
    units = {name: unit_verdict(states[name], restart_loop_threshold, stable_seconds) for name in order}
    down = [n for n in order if units[n]["status"] in ("down", "looping")]
    looping = [n for n in down if units[n]["status"] == "looping"]
    to_restart = [n for n in down if units[n]["status"] == "down"]
    missing = [n for n in order if units[n]["status"] == "missing"]
    stable = [n for n in order if units[n]["status"] == "stable"]
    problem = None
    guardrail_tripped = max_restarts is not None and len(to_restart) > max_restarts
    if missing:
        problem = (f"{', '.join(missing)} not found; fix the list of units "
                   "(systemctl list-units --all shows the names). Nothing was changed.")
    elif guardrail_tripped:
        problem = (f"guardrail 'service_down_max_restarts' tripped: {len(to_restart)} units are down "
                   f"({', '.join(to_restart)}), more than {max_restarts}; nothing was changed. Check the host "
                   f"first (disk, memory, network). To override: -e service_down_max_restarts={len(to_restart)}")
    verdict: dict[str, t.Any] = {
        "units": units,
        "down": down,
        "looping": looping,
        "to_restart": to_restart if problem is None else [],
        "stable": stable,
        "missing": missing,
        "healthy": not down and not missing,
        "act": bool(to_restart) and problem is None,
        "guardrail_tripped": guardrail_tripped,
        "problem": problem,
    }
    if restarted is not None:
        # NRestarts starts again from 0 on a manual restart: above 0 now means it crashed again.
        def not_up(name: str) -> bool:
            state = states.get(name, {})
            probe = state.get("probe")
            return not state.get("healthy") or (probe is not None and not probe.get("ok"))
        verdict["settled"] = not any(not_up(n) for n in restarted if n in states)
        verdict["still_down"] = [n for n in restarted if n in states
                                 and (not_up(n) or (states[n].get("n_restarts") or 0) > 0)]
    report = verdict.get("still_down", []) + looping
    verdict["report_units"] = list(dict.fromkeys(report))
    verdict["evidence"] = {n: unit_evidence(states[n]) for n in verdict["report_units"]}
    if problem:
        verdict["summary"] = problem
    elif verdict["healthy"]:
        verdict["summary"] = "healthy, nothing to do: every unit is active" + (
            " and its probe passes" if any(s.get("probe") for s in states.values()) else "")
    else:
        parts = []
        if to_restart:
            parts.append(f"down, to restart in this order: {', '.join(to_restart)}")
        if looping:
            parts.append(f"crash-looping, not restarted (restarting again will not help): {', '.join(looping)}")
        verdict["summary"] = "; ".join(parts)
    if restarted is not None and verdict["still_down"]:
        verdict["summary"] = f"still down after a restart: {', '.join(verdict['still_down'])}; " + verdict["summary"]
    return verdict
