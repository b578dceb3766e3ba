# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident timeline: what the callback writes (one JSON object per line) and what the
postmortem is computed from.

Controller-side only (plugin_utils): the incident_timeline callback and the incident_report
action plugin import it; modules never do. Pure logic, except `append_line` and
`read_timeline`, which touch one file.

Line types (key `type`), every line carries `v`, `incident_id` and `run_id`:

- `run_start`: `timestamp`, `playbook`, `check_mode`, `tags`, `limit`, `controller_pid`;
- `task`: `start`, `end`, `host`, `status` (ok/changed/failed/skipped/unreachable), `task`,
  `role`, `play`, `phase` (assess/decide/act/verify/record or null), `check_mode`, `actions`
  (the module's own, each stamped when it happened), `signal` (what the result says about
  health), `msg`; a `no_log` task has `censored: true` and nothing from its result;
- `run_end`: `timestamp`, `outcome` (ok/failed/unreachable), `stats` per host.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import typing as t
import uuid

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_mapping, mask_text

FORMAT_VERSION = 1
PHASES = ("assess", "decide", "act", "verify", "record")
STATUSES = ("ok", "changed", "failed", "skipped", "unreachable")
MAX_TEXT = 500
# An action whose result starts with one of these did not change anything.
_NOT_DONE = ("check", "fail", "error", "already", "skip", "refus", "would", "not ", "no ", "nothing",
             "unchanged", "noop", "none", "dry")
_PREFIX = re.compile(r"^\s*([A-Za-z]+)\s*\|")
_ROLE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*:\s+(.*)$", re.S)
_SIGNAL_TEXT = ("summary", "severity", "component", "scenario", "playbook")


# ---------------------------------------------------------------- time
def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment: datetime.datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z: the format of every timestamp in the collection."""
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: t.Any) -> datetime.datetime | None:
    """An ISO 8601 timestamp (Z or offset; none means UTC), or None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def generated_incident_id(now: datetime.datetime | None = None) -> str:
    """An id for a run that named no incident: `run-20260131t031200z-1a2b3c`."""
    stamp = (now or utc_now()).strftime("%Y%m%dt%H%M%Sz")
    return f"run-{stamp}-{uuid.uuid4().hex[:6]}"


def timeline_path(state_dir: str, incident_id: str) -> str:
    """The JSONL file beside the incident record (`<state_dir>/<incident_id>.json`)."""
    return os.path.join(state_dir, incident_id + ".jsonl")


# ---------------------------------------------------------------- building lines
def text(value: t.Any, limit: int = MAX_TEXT) -> str | None:
    """Masked, one-line-safe, truncated text."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value, default=str, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    value = mask_text(value)
    return value if len(value) <= limit else value[: limit - 3] + "..."


def split_role(name: str) -> tuple[str | None, str]:
    """`db_exhaustion : Assess | x` -> ('db_exhaustion', 'Assess | x'); Ansible prefixes role tasks."""
    name = str(name or "")
    match = _ROLE.match(name)
    if match and "|" not in match.group(1):
        return match.group(1), match.group(2).strip()
    return None, name.strip()


def phase_of(task_name: str, tags: t.Iterable[str] | None = None) -> str | None:
    """The runbook phase: the task name's prefix (`Assess | ...`), else a phase tag, else None."""
    _role, name = split_role(task_name)
    match = _PREFIX.match(name)
    if match and match.group(1).lower() in PHASES:
        return match.group(1).lower()
    for tag in tags or ():
        if str(tag).lower() in PHASES:
            return str(tag).lower()
    return None


def _item_results(result: t.Mapping[str, t.Any]) -> list[t.Mapping[str, t.Any]]:
    items = result.get("results")
    if isinstance(items, list):
        return [item for item in items if isinstance(item, dict) and not item.get("_ansible_no_log")
                and "censored" not in item]
    return []


def actions_of(result: t.Mapping[str, t.Any]) -> list[dict[str, t.Any]]:
    """The `actions` our modules return (a loop's items too), masked, in the order they happened."""
    found: list[t.Any] = []
    for source in [result] + _item_results(result):
        entries = source.get("actions")
        if isinstance(entries, list):
            found.extend(entry for entry in entries if isinstance(entry, dict))
    actions = [mask_mapping(dict(entry)) for entry in found]
    for entry in actions:
        for key in ("action", "target", "result"):
            if key in entry and not isinstance(entry[key], (str, int, float, bool, type(None))):
                entry[key] = text(entry[key])
    return sorted(actions, key=lambda a: parse_time(a.get("timestamp")) or datetime.datetime.max.replace(
        tzinfo=datetime.timezone.utc))


def signal_of(result: t.Mapping[str, t.Any], phase: str | None) -> dict[str, t.Any]:
    """What a result says about health, read from the shapes our modules return:
    `healthy` (bool), `verdict` {healthy, act, problem, summary, severity, component}, and in the
    decide phase the facts `<role>_act` (bool) and `<role>_verdict` (a verdict) set by set_fact."""
    signal: dict[str, t.Any] = {}
    sources = [result] + _item_results(result)
    facts = result.get("ansible_facts")
    if phase == "decide" and isinstance(facts, dict):
        # A role's decide step publishes its verdict as a fact: <role>_verdict or incident_verdict.
        sources += [{"verdict": value} for key, value in facts.items()
                    if str(key).endswith("_verdict") and isinstance(value, dict)]
    for source in sources:
        if isinstance(source.get("healthy"), bool):
            signal["healthy"] = signal.get("healthy", True) and source["healthy"]
        verdict = source.get("verdict")
        if isinstance(verdict, dict):
            if isinstance(verdict.get("healthy"), bool):
                signal["healthy"] = signal.get("healthy", True) and verdict["healthy"]
            if isinstance(verdict.get("act"), bool):
                signal["act"] = signal.get("act", False) or verdict["act"]
            if verdict.get("problem"):
                signal["problem"] = text(verdict["problem"], 300)
            for key in _SIGNAL_TEXT:
                if isinstance(verdict.get(key), (str, int)) and key not in signal:
                    signal[key] = text(verdict[key], 300)
        if isinstance(source.get("severity"), str) and "severity" not in signal:
            signal["severity"] = text(source["severity"], 40)
    if phase == "decide" and isinstance(facts, dict):
        acts = [value for key, value in facts.items() if str(key).endswith("_act") and isinstance(value, bool)]
        if acts and "act" not in signal:
            signal["act"] = any(acts)
    return signal


def unhealthy(signal: t.Mapping[str, t.Any] | None) -> bool:
    signal = signal or {}
    return signal.get("healthy") is False or signal.get("act") is True or bool(signal.get("problem"))


def healthy(signal: t.Mapping[str, t.Any] | None) -> bool:
    """Explicitly healthy: `healthy: true`, or a verdict with nothing to do and no problem."""
    signal = signal or {}
    if unhealthy(signal):
        return False
    return signal.get("healthy") is True or signal.get("act") is False


def task_event(*, incident_id: str, run_id: str, play: str | None, task_name: str, tags: t.Iterable[str],
               host: str, status: str, start: datetime.datetime, end: datetime.datetime,
               result: t.Mapping[str, t.Any] | None, no_log: bool, check_mode: bool,
               action: str | None = None) -> dict[str, t.Any]:
    """One `task` line. A no_log task keeps only that it ran: nothing of its result is read."""
    role, name = split_role(task_name)
    phase = phase_of(task_name, tags)
    event: dict[str, t.Any] = {
        "v": FORMAT_VERSION, "type": "task", "incident_id": incident_id, "run_id": run_id,
        "start": iso(start), "end": iso(max(start, end)),
        "duration_seconds": round(max(0.0, (end - start).total_seconds()), 3),
        "host": text(host, 200), "status": status if status in STATUSES else "failed",
        "task": text(name, 300), "role": role, "play": text(play, 200), "phase": phase,
        "check_mode": bool(check_mode),
    }
    if action:
        event["module"] = action
    result = result or {}
    if no_log or "censored" in result or result.get("_ansible_no_log"):
        event["censored"] = True
        return event
    actions = actions_of(result)
    if actions:
        event["actions"] = actions
    signal = signal_of(result, phase)
    if signal:
        event["signal"] = signal
    if isinstance(result.get("incident_id"), str) and isinstance(result.get("started_at"), str):
        event["incident"] = {key: result.get(key) for key in ("incident_id", "started_at", "source", "runs")}
    msg = result.get("msg")
    if msg and status != "skipped":
        event["msg"] = text(msg)
    if result.get("rc") not in (None, 0) and status == "failed":
        event["rc"] = result.get("rc")
    if status == "skipped" and result.get("skip_reason"):
        event["skip_reason"] = text(result.get("skip_reason"), 200)
    return event


def run_start_event(*, incident_id: str, run_id: str, timestamp: datetime.datetime, playbook: str | None,
                    check_mode: bool, tags: t.Iterable[str] | None = None, limit: str | None = None,
                    pid: int | None = None) -> dict[str, t.Any]:
    return {"v": FORMAT_VERSION, "type": "run_start", "incident_id": incident_id, "run_id": run_id,
            "timestamp": iso(timestamp), "playbook": text(playbook, 300), "check_mode": bool(check_mode),
            "tags": [text(tag, 60) for tag in (tags or []) if tag != "all"], "limit": text(limit, 200),
            "controller_pid": pid}


def run_outcome(stats: t.Mapping[str, t.Mapping[str, int]]) -> str:
    """`unreachable` beats `failed` beats `ok`; rescued failures are not failures."""
    if any(counts.get("unreachable") for counts in stats.values()):
        return "unreachable"
    if any(counts.get("failures") for counts in stats.values()):
        return "failed"
    return "ok"


def run_end_event(*, incident_id: str, run_id: str, timestamp: datetime.datetime, started: datetime.datetime,
                  playbook: str | None, check_mode: bool, stats: t.Mapping[str, t.Mapping[str, int]]) -> dict[str, t.Any]:
    return {"v": FORMAT_VERSION, "type": "run_end", "incident_id": incident_id, "run_id": run_id,
            "timestamp": iso(timestamp), "duration_seconds": round((timestamp - started).total_seconds(), 3),
            "playbook": text(playbook, 300), "check_mode": bool(check_mode), "outcome": run_outcome(stats),
            "stats": {text(host, 200): dict(counts) for host, counts in stats.items()}}


def encode(event: t.Mapping[str, t.Any]) -> bytes:
    """One line: compact JSON, masked once more, newline-terminated, no raw newline inside."""
    return (json.dumps(mask_mapping(dict(event)), default=str, ensure_ascii=False, separators=(",", ":"))
            + "\n").encode("utf-8")


def append_lines(path: str, lines: t.Sequence[bytes], fsync: bool = False) -> None:
    """Append whole lines under an exclusive lock: one write per line, so concurrent runs never
    interleave inside a line, and each line is in the file (the kernel's) as soon as it is written,
    so a killed run leaves every line it finished. A torn last line left by a crash is closed first."""
    if not lines:
        return
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as reader:
                    reader.seek(size - 1)
                    if reader.read(1) != b"\n":
                        os.write(fd, b"\n")
            for line in lines:
                os.write(fd, line)
            if fsync:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- reading and the postmortem
def parse_lines(raw: str) -> tuple[list[dict[str, t.Any]], int]:
    """The events of a timeline and how many lines were unreadable (a torn line after a crash)."""
    events, bad = [], 0
    for number, line in enumerate(raw.splitlines()):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(event, dict) or event.get("type") not in ("run_start", "task", "run_end"):
            bad += 1
            continue
        event["_line"] = number
        events.append(event)
    return events, bad


def read_timeline(path: str) -> tuple[list[dict[str, t.Any]], int]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_lines(fh.read())


def event_time(event: t.Mapping[str, t.Any]) -> datetime.datetime:
    moment = parse_time(event.get("start") or event.get("timestamp"))
    return moment or datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)


def event_end(event: t.Mapping[str, t.Any]) -> datetime.datetime:
    return parse_time(event.get("end")) or event_time(event)


def action_done(action: t.Mapping[str, t.Any]) -> bool:
    """A real change: not a check-mode preview, a failure, or 'already done'."""
    result = str(action.get("result") or "").strip().lower()
    return bool(result) and not result.startswith(_NOT_DONE)


def _runs(events: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    runs: dict[str, dict[str, t.Any]] = {}
    for event in events:
        run = runs.setdefault(event.get("run_id") or "?", {
            "run_id": event.get("run_id") or "?", "playbook": None, "started": None, "ended": None,
            "check_mode": False, "outcome": None, "hosts": set(), "first": event_time(event), "last": event_end(event),
            "tasks": 0, "failed": 0})
        run["first"] = min(run["first"], event_time(event))
        run["last"] = max(run["last"], event_end(event))
        if event["type"] == "run_start":
            run.update(playbook=event.get("playbook"), started=event_time(event), check_mode=bool(event.get("check_mode")))
        elif event["type"] == "run_end":
            run.update(ended=event_time(event), outcome=event.get("outcome"))
            run["playbook"] = run["playbook"] or event.get("playbook")
            run["check_mode"] = run["check_mode"] or bool(event.get("check_mode"))
        else:
            run["tasks"] += 1
            run["hosts"].add(event.get("host"))
            run["failed"] += event.get("status") in ("failed", "unreachable")
            run["check_mode"] = run["check_mode"] or (bool(event.get("check_mode")) and run["started"] is None)
    ordered = sorted(runs.values(), key=lambda r: r["started"] or r["first"])
    for number, run in enumerate(ordered, 1):
        run["number"] = number
        run["started"] = run["started"] or run["first"]
        if run["outcome"] is None:
            run["outcome"] = "interrupted"  # no run_end line: killed, crashed or interrupted
        run["hosts"] = sorted(h for h in run["hosts"] if h)
    return ordered


def incident_start(events: t.Sequence[t.Mapping[str, t.Any]], runs: t.Sequence[t.Mapping[str, t.Any]]
                   ) -> tuple[datetime.datetime | None, str]:
    """When the incident started: a start the user gave (incident_started_at) wins, then the
    earliest start incident_start reported, then the first run's start."""
    given, recorded = [], []
    for event in events:
        incident = event.get("incident")
        if isinstance(incident, dict) and parse_time(incident.get("started_at")):
            (given if incident.get("source") == "variable" else recorded).append(parse_time(incident["started_at"]))
    if given:
        return given[0], "given (incident_started_at)"
    if recorded:
        return min(recorded), "first run (incident_start)"
    if runs:
        return min(run["started"] for run in runs), "first run of the timeline"
    return None, "empty timeline"


def _groups(events: t.Iterable[dict[str, t.Any]]) -> dict[tuple[str, str], list[dict[str, t.Any]]]:
    groups: dict[tuple[str, str], list[dict[str, t.Any]]] = {}
    for event in events:
        groups.setdefault((event.get("run_id"), event.get("host")), []).append(event)
    return groups


def milestones(events: t.Sequence[dict[str, t.Any]], runs: t.Sequence[t.Mapping[str, t.Any]]) -> dict[str, t.Any]:
    """Detect, mitigate and resolve (see docs/incident.md):

    - detected: the end of the first assess or decide task that failed, was unreachable, or whose
      result says unhealthy (healthy false, verdict act true, or a verdict problem); any run,
      check mode included (an assessment is read-only);
    - mitigated: the first action a module reports as done (its own timestamp) in an act task of a
      run not in check mode, or the end of such a task that changed something and reports no actions;
    - resolved: the first healthy check after the mitigation (after the detection when nothing
      was mitigated by the runbooks): the end of one run's verify tasks on one host when none
      failed and none says unhealthy, or of one run's assessment of a host when every result
      that speaks of health says healthy.
    """
    check_runs = {run["run_id"] for run in runs if run.get("check_mode")}
    tasks = [e for e in events if e.get("type") == "task"]
    detected = None
    for event in tasks:
        if event.get("phase") in ("assess", "decide") and (
                event.get("status") in ("failed", "unreachable") or unhealthy(event.get("signal"))):
            if detected is None or event_end(event) < detected[0]:
                detected = (event_end(event), event)
    mitigated = None
    for event in tasks:
        if event.get("phase") != "act" or event.get("check_mode") or event.get("run_id") in check_runs:
            continue
        done = [a for a in event.get("actions") or [] if action_done(a) and parse_time(a.get("timestamp"))]
        moments = [parse_time(a["timestamp"]) for a in done]
        if not event.get("actions") and event.get("status") == "changed":
            moments.append(event_end(event))
        for moment in moments:
            if mitigated is None or moment < mitigated[0]:
                mitigated = (moment, event)
    after = mitigated[0] if mitigated else (detected[0] if detected else None)
    resolved = None
    if after is not None:
        candidates = []
        for phases, need_signal in ((("verify",), False), (("assess", "decide"), True)):
            chosen = [e for e in tasks if e.get("phase") in phases and e.get("status") != "skipped"]
            for group in _groups(chosen).values():
                if min(event_time(e) for e in group) < after:
                    continue
                if any(e.get("status") in ("failed", "unreachable") or unhealthy(e.get("signal")) for e in group):
                    continue
                if need_signal and not any(healthy(e.get("signal")) for e in group):
                    continue
                candidates.append((max(event_end(e) for e in group), group[-1]))
        if candidates:
            resolved = min(candidates, key=lambda c: c[0])
    return {"detected": detected, "mitigated": mitigated, "resolved": resolved}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{int(round(seconds * 1000))} ms"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{seconds:.1f}s"


def _describe_task(event: t.Mapping[str, t.Any]) -> str:
    status = event.get("status")
    what = f"{event.get('task') or '(unnamed task)'}: {status}"
    if event.get("censored"):
        return what + " (no_log: result not recorded)"
    incident = event.get("incident")
    if isinstance(incident, dict) and status == "ok":
        return (f"Incident {incident.get('incident_id')}: run {incident.get('runs')}, incident started "
                f"{incident.get('started_at')} ({incident.get('source')})")
    signal = event.get("signal") or {}
    detail = signal.get("problem") or signal.get("summary") or event.get("msg")
    if detail:
        what += f" - {detail}"
    return what


def _describe_action(action: t.Mapping[str, t.Any], check_mode: bool) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in action.items()
                      if k not in ("timestamp", "action", "target", "result") and isinstance(v, (str, int, float))
                      and v != "")
    text_ = f"{action.get('action')} {action.get('target')}: {action.get('result')}"
    if extra:
        text_ += f" ({extra})"
    return ("(check mode) " if check_mode else "") + text_


def action_groups(actions: t.Sequence[t.Mapping[str, t.Any]], check_mode: bool, only_done: bool = False
                  ) -> list[tuple[datetime.datetime | None, str]]:
    """Consecutive actions of one kind (same action, target, result) as one line: 40 terminated
    sessions are one row `terminate db1: done x40 (pid=1, 2, ...)`, at the first one's time."""
    groups: list[list[t.Mapping[str, t.Any]]] = []
    for action in actions:
        if only_done and not action_done(action):
            continue
        key = (action.get("action"), action.get("target"), action.get("result"))
        if groups and (groups[-1][0].get("action"), groups[-1][0].get("target"), groups[-1][0].get("result")) == key:
            groups[-1].append(action)
        else:
            groups.append([action])
    out = []
    for group in groups:
        first = group[0]
        if len(group) == 1:
            out.append((parse_time(first.get("timestamp")), _describe_action(first, check_mode)))
            continue
        details: dict[str, list[str]] = {}
        for action in group:
            for key, value in action.items():
                if key not in ("timestamp", "action", "target", "result") and isinstance(value, (str, int, float)) \
                        and value != "" and str(value) not in details.setdefault(key, []):
                    details[key].append(str(value))
        extra = "; ".join(f"{k}={', '.join(v[:10])}{', ...' if len(v) > 10 else ''}" for k, v in details.items())
        last = parse_time(group[-1].get("timestamp"))
        text_ = f"{first.get('action')} {first.get('target')}: {first.get('result')} x{len(group)}"
        if extra:
            text_ += f" ({extra})"
        if last and parse_time(first.get("timestamp")) and last > parse_time(first.get("timestamp")):
            text_ += f", the last at {iso(last)}"
        out.append((parse_time(first.get("timestamp")), ("(check mode) " if check_mode else "") + text_))
    return out


def timeline_rows(events: t.Sequence[dict[str, t.Any]], runs: t.Sequence[t.Mapping[str, t.Any]],
                  marks: t.Mapping[str, t.Any], detail: str = "notable") -> list[dict[str, t.Any]]:
    """The rows of the postmortem's timeline table, in time order.

    `notable`: run starts and ends, failures, every action (at its own timestamp), act tasks that
    changed something, verify results, results that speak of health, and the three milestones.
    `all`: every task line too."""
    numbers = {run["run_id"]: run for run in runs}
    rows: list[dict[str, t.Any]] = []

    def add(moment, event, phase, host, what, order=0):
        run = numbers.get(event.get("run_id")) if event else None
        rows.append({"time": moment, "run": run["number"] if run else None, "phase": phase, "host": host,
                     "event": what, "order": order, "line": (event or {}).get("_line", 0)})

    for event in events:
        kind = event.get("type")
        run = numbers.get(event.get("run_id"), {})
        if kind == "run_start":
            mode = " (check mode)" if event.get("check_mode") else ""
            add(event_time(event), event, None, None, f"Run {run.get('number')} started: {event.get('playbook')}{mode}")
            continue
        if kind == "run_end":
            add(event_time(event), event, None, None,
                f"Run {run.get('number')} ended: {event.get('outcome')} after {duration(event.get('duration_seconds'))}",
                order=3)
            continue
        check = bool(event.get("check_mode") or run.get("check_mode"))
        for moment, what in action_groups(event.get("actions") or [], check):
            add(moment or event_end(event), event, event.get("phase"), event.get("host"), what, order=1)
        notable = (event.get("status") in ("failed", "unreachable")
                   or (event.get("phase") == "act" and event.get("status") == "changed" and not event.get("actions"))
                   or (event.get("phase") == "verify" and event.get("status") != "skipped")
                   or bool(event.get("signal")) or bool(event.get("incident")))
        if detail == "all" or notable:
            add(event_end(event), event, event.get("phase"), event.get("host"), _describe_task(event), order=1)
    labels = {"detected": "**Detected**", "mitigated": "**Mitigated**", "resolved": "**Resolved**"}
    for key, label in labels.items():
        mark = marks.get(key)
        if mark:
            moment, event = mark
            add(moment, event, event.get("phase"), event.get("host"), f"{label}: {event.get('task')}", order=2)
    rows.sort(key=lambda r: (r["time"], r["order"], r["line"]))
    return rows


def _cell(value: t.Any) -> str:
    if value is None or value == "":
        return ""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _clock(moment: datetime.datetime, multi_day: bool) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S" if multi_day else "%H:%M:%S") + f".{moment.microsecond // 1000:03d}"


_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,()/+-]+")


def _mermaid_label(value: t.Any) -> str:
    label = _MERMAID_UNSAFE.sub(" ", str(value or "")).strip()
    return re.sub(r"\s+", " ", label)[:60] or "task"


def _mermaid_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def mermaid_gantt(incident_id: str, events: t.Sequence[dict[str, t.Any]], runs: t.Sequence[t.Mapping[str, t.Any]],
                  marks: t.Mapping[str, t.Any]) -> str:
    """A Mermaid gantt chart: one section per run, one bar per phase (its first start to its last
    end), `crit` where a task failed, `active` for check-mode runs; the milestones as milestones.
    Times are UTC written without a zone, so the chart shows UTC clock times wherever it renders."""
    lines = ["gantt", f"    title Incident {_mermaid_label(incident_id)} (UTC)",
             "    dateFormat YYYY-MM-DDTHH:mm:ss.SSS", "    axisFormat %H:%M:%S"]
    counter = 0
    for run in runs:
        tasks = [e for e in events if e.get("type") == "task" and e.get("run_id") == run["run_id"]
                 and e.get("status") != "skipped"]
        if not tasks:
            continue
        playbook = os.path.basename(str(run.get("playbook") or "playbook"))
        mode = " check" if run.get("check_mode") else ""
        lines.append(f"    section Run {run['number']} {_mermaid_label(playbook)}{mode}")
        spans: dict[str, list[t.Any]] = {}
        for event in tasks:
            match = _PREFIX.match(split_role(event.get("task") or "")[1])
            phase = event.get("phase") or (match.group(1).lower() if match else "other")
            span = spans.setdefault(phase, [event_time(event), event_end(event), False])
            span[0] = min(span[0], event_time(event))
            span[1] = max(span[1], event_end(event))
            span[2] = span[2] or event.get("status") in ("failed", "unreachable")
        for phase, (start, end, failed) in sorted(spans.items(), key=lambda kv: kv[1][0]):
            counter += 1
            end = max(end, start + datetime.timedelta(milliseconds=1))
            flag = "crit" if failed else ("active" if run.get("check_mode") else "done")
            lines.append(f"    {phase.capitalize()} :{flag}, p{counter}, {_mermaid_time(start)}, {_mermaid_time(end)}")
    present = [(key, marks[key]) for key in ("detected", "mitigated", "resolved") if marks.get(key)]
    if present:
        lines.append("    section Milestones")
        for key, (moment, _event) in present:
            counter += 1
            end = moment + datetime.timedelta(milliseconds=1)
            lines.append(f"    {key.capitalize()} :milestone, m{counter}, {_mermaid_time(moment)}, {_mermaid_time(end)}")
    return "\n".join(lines) + "\n"


_SEVERITY_ORDER = {"p0": 0, "p1": 1, "p2": 2, "p3": 3, "critical": 0, "warning": 2, "info": 3}


def analyse(events: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    events = sorted(events, key=lambda e: (event_time(e), e.get("_line", 0)))
    runs = _runs(events)
    start, start_source = incident_start(events, runs)
    marks = milestones(events, runs)

    def since(key):
        mark = marks.get(key)
        return round((mark[0] - start).total_seconds(), 3) if mark and start else None

    tasks = [e for e in events if e.get("type") == "task"]
    affected: dict[str, list[str]] = {}
    severities = []
    for event in tasks:
        signal = event.get("signal") or {}
        if event.get("phase") in ("assess", "decide") and (unhealthy(signal) or event.get("status") in ("failed", "unreachable")):
            reason = signal.get("problem") or signal.get("summary") or signal.get("component") or event.get("msg") or event.get("task")
            affected.setdefault(event.get("host") or "?", [])
            if reason and reason not in affected[event.get("host") or "?"]:
                affected[event.get("host") or "?"].append(str(reason))
        if signal.get("severity"):
            severities.append(str(signal["severity"]))
    severity = min(severities, key=lambda s: _SEVERITY_ORDER.get(s.lower(), 9)) if severities else None
    return {"events": events, "runs": runs, "start": start, "start_source": start_source, "marks": marks,
            "time_to_detect": since("detected"), "time_to_mitigate": since("mitigated"),
            "time_to_resolve": since("resolved"), "affected": affected, "severity": severity,
            "last": max((event_end(e) for e in events), default=None)}


def _when(moment: datetime.datetime | None) -> str:
    return iso(moment) if moment else "not recorded"


def render_markdown(incident_id: str, analysis: t.Mapping[str, t.Any], *, record: t.Mapping[str, t.Any] | None = None,
                    source: str | None = None, unreadable: int = 0, detail: str = "notable",
                    generated: datetime.datetime | None = None) -> str:
    """The postmortem (runbook 002's Post-Mortem Template, 004's Incident Report Template)."""
    record = record or {}
    runs, marks, start = analysis["runs"], analysis["marks"], analysis["start"]
    events = analysis["events"]
    title = record.get("scenario") or incident_id
    target = record.get("target")
    resolved = marks.get("resolved")
    end = resolved[0] if resolved else analysis.get("last")
    multi_day = bool(start and end and start.date() != end.date())
    out: list[str] = [f"# Incident Post-Mortem: {title}{' on ' + target if target else ''}", ""]
    out += ["## Summary", "",
            f"- **Incident**: `{incident_id}`",
            f"- **Date**: {start.strftime('%Y-%m-%d') if start else 'unknown'}"]
    if start:
        state = f"{duration((end - start).total_seconds())}" if resolved else "ongoing: no healthy check recorded yet"
        out.append(f"- **Duration**: {iso(start)} - {iso(end) if resolved else 'now'} ({state})")
    out.append(f"- **Severity**: {analysis.get('severity') or '[to fill: P0-P3]'}")
    affected = analysis.get("affected") or {}
    out.append(f"- **Impact**: {', '.join(sorted(affected)) if affected else '[to fill]'}")
    playbooks = sorted({os.path.basename(str(r.get('playbook'))) for r in runs if r.get("playbook")})
    checks = sum(1 for r in runs if r.get("check_mode"))
    out.append(f"- **Runs**: {len(runs)} ({checks} in check mode): {', '.join(playbooks) or 'none'}")
    out += ["", "### Time to detect, mitigate, resolve", "",
            "| Milestone | When (UTC) | Since the incident's start | Evidence |", "|---|---|---|---|",
            f"| Incident start | {_when(start)} | 0s | {analysis['start_source']} |"]
    for key, label in (("detected", "Detected"), ("mitigated", "Mitigated"), ("resolved", "Resolved")):
        mark = marks.get(key)
        since = analysis[{"detected": "time_to_detect", "mitigated": "time_to_mitigate",
                          "resolved": "time_to_resolve"}[key]]
        evidence = f"{mark[1].get('task')} on {mark[1].get('host')}" if mark else "none in the timeline"
        out.append(f"| {label} | {_when(mark[0] if mark else None)} | {duration(since)} | {_cell(evidence)} |")
    out += ["", "Detected: the first assessment (task `Assess |` or `Decide |`) that failed or found the "
            "system unhealthy. Mitigated: the first action a module reports as done in an `Act |` task "
            "of a run not in check mode. Resolved: the first healthy verification after the mitigation "
            "(every `Verify |` task of one run on one host passed, or a later assessment found it healthy). "
            "All are measured from the incident's start.", ""]

    out += ["## Timeline", ""]
    rows = timeline_rows(events, runs, marks, detail)
    if rows:
        out += ["| Time (UTC) | Run | Host | Phase | Event |", "|---|---|---|---|---|"]
        for row in rows:
            out.append(f"| {_clock(row['time'], multi_day)} | {row['run'] or ''} | {_cell(row['host'])} | "
                       f"{row['phase'] or ''} | {_cell(row['event'])} |")
    else:
        out.append("The timeline is empty.")
    out += ["", "```mermaid", mermaid_gantt(incident_id, events, runs, marks).rstrip("\n"), "```", ""]
    out += ["### Runs", "", "| Run | Playbook | Started (UTC) | Ended (UTC) | Mode | Outcome | Hosts |",
            "|---|---|---|---|---|---|---|"]
    for run in runs:
        ended = iso(run["ended"]) if run.get("ended") else f"no end line (last event {iso(run['last'])})"
        out.append(f"| {run['number']} | {_cell(run.get('playbook'))} | {iso(run['started'])} | {ended} | "
                   f"{'check' if run.get('check_mode') else 'live'} | {run['outcome']} | {_cell(', '.join(run['hosts']))} |")
    out += ["", "## Root Cause", "", "[to fill: what caused the incident; the assessment found:]", ""]
    if affected:
        for host, reasons in sorted(affected.items()):
            out.append(f"- {_cell(host)}: {'; '.join(reasons)}")
    else:
        out.append("- no assessment in the timeline found the system unhealthy")
    out += ["", "## Impact", "",
            f"- **Duration**: {duration((end - start).total_seconds()) if resolved and start else 'ongoing'}",
            f"- **Services affected**: {', '.join(sorted(affected)) if affected else '[to fill]'}",
            "- **Users affected**: [to fill]", "- **Business impact**: [to fill]", ""]
    out += ["## Resolution", ""]
    done = []
    for event in events:
        if event.get("type") != "task" or event.get("phase") != "act":
            continue
        run = next((r for r in runs if r["run_id"] == event.get("run_id")), {})
        if run.get("check_mode") or event.get("check_mode"):
            continue
        for moment, what in action_groups(event.get("actions") or [], False, only_done=True):
            done.append((moment or event_end(event), f"{what} on {event.get('host')}"))
        if not event.get("actions") and event.get("status") == "changed":
            done.append((event_end(event), f"{event.get('task')} on {event.get('host')}"))
    if done:
        for moment, what in sorted(done, key=lambda d: d[0]):
            out.append(f"1. {_clock(moment, multi_day)} {what}")
    else:
        out.append("No remediation action is recorded in the timeline.")
    out.append("")
    out.append(f"Verified healthy at {iso(resolved[0])} ({resolved[1].get('task')} on {resolved[1].get('host')})."
               if resolved else "No healthy verification is recorded yet.")
    out += ["", "## Action Items", "", "1. [ ] Permanent fix for the root cause",
            f"1. [ ] Improve monitoring (detected {duration(analysis['time_to_detect'])} after the start)",
            "1. [ ] Update the runbook"]
    for event in events:
        if event.get("type") == "task" and event.get("status") in ("failed", "unreachable"):
            out.append(f"1. [ ] Follow up: {_cell(event.get('task'))} {event.get('status')} on "
                       f"{_cell(event.get('host'))} at {iso(event_end(event))}")
    for run in runs:
        if run["outcome"] == "interrupted":
            out.append(f"1. [ ] Run {run['number']} ({_cell(run.get('playbook'))}) has no end: it was killed or "
                       "interrupted; check what it left half done")
    if not resolved:
        out.append("1. [ ] Confirm recovery: no healthy verification is in the timeline")
    out += ["", "## Lessons Learned", "", "[to fill: what went well, what went wrong, where we got lucky]", "",
            "---", f"Generated {iso(generated or utc_now())} from `{source or incident_id + '.jsonl'}` "
            f"({len(events)} lines{f', {unreadable} unreadable line(s) skipped' if unreadable else ''})."]
    return "\n".join(out) + "\n"
