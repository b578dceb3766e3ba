# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record on the controller: which incident a run belongs to and when it started.

"Once per incident" guards (restart a pooler once, raise a limit once) compare against the
incident's start. Taking the current run's start instead made every re-run a new incident, so a
second run restarted again. The first run of an incident writes its start to a small JSON file;
later runs of the same incident (same id, seen again within `window` of the last run) read it.

Controller-side only (plugin_utils): action plugins import it; modules never do.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import tempfile
import typing as t

DEFAULT_WINDOW_SECONDS = 2 * 3600
# Runs that belong to an incident without being its scenario.
GENERIC_SCENARIOS = frozenset({"assess", "incident"})
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def default_state_dir(environ: t.Mapping[str, str] | None = None) -> str:
    """$SRE_RUNBOOKS_STATE_DIR, else $XDG_STATE_HOME/sre-runbooks/incidents, else ~/.local/state/..."""
    env = os.environ if environ is None else environ
    if env.get("SRE_RUNBOOKS_STATE_DIR"):
        return env["SRE_RUNBOOKS_STATE_DIR"]
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "sre-runbooks", "incidents")


def incident_id_for(scenario: str, target: str | None) -> str:
    """A stable id for runs of one scenario against one target: `db_exhaustion--db1`."""
    parts = [scenario] + ([target] if target else [])
    slug = "--".join(_UNSAFE.sub("-", str(p).strip().lower()).strip("-.") for p in parts)
    if not slug or slug.strip("-") == "":
        raise ValueError("cannot derive an incident id: scenario is empty; set incident_id")
    return slug[:120]


def validate_incident_id(incident_id: str) -> str:
    text = str(incident_id).strip()
    if not text or _UNSAFE.sub("", text.lower()) != text.lower() or text.startswith("."):
        raise ValueError(f"incident_id {incident_id!r}: use letters, digits, '.', '_' and '-' only")
    return text


def parse_timestamp(value: t.Any, option: str = "started_at") -> datetime.datetime:
    """An ISO 8601 timestamp (a trailing Z, or no zone meaning UTC) or epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
    text = str(value or "").strip()
    if not text:
        raise ValueError(f"{option}: empty timestamp")
    try:
        return datetime.datetime.fromtimestamp(float(text), datetime.timezone.utc)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option}: cannot parse {value!r}; use ISO 8601 such as "
                         "2026-01-31T03:12:00Z, or epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decide_start(record: dict[str, t.Any] | None, now: datetime.datetime, window_seconds: float,
                 given: datetime.datetime | None) -> tuple[datetime.datetime, str]:
    """When did this incident start, and where does that come from?

    - `given` (the user's incident_started_at) always wins: "variable";
    - a record whose last run is within `window_seconds` of now: the same incident, "record";
    - otherwise (no record, or a stale one): a new incident starting now, "new".
    """
    if given is not None:
        return given, "variable"
    if record:
        try:
            last = parse_timestamp(record.get("last_run_at") or record.get("started_at"), "last_run_at")
            started = parse_timestamp(record["started_at"])
        except (KeyError, ValueError):
            return now, "new"  # an unreadable record is no evidence of an ongoing incident
        if 0 <= (now - last).total_seconds() <= window_seconds:
            return started, "record"
    return now, "new"


@contextlib.contextmanager
def _locked(path: str) -> t.Iterator[None]:
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: str) -> dict[str, t.Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomic(path: str, data: dict[str, t.Any]) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".incident.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def establish(state_dir: str, incident_id: str, scenario: str, target: str | None,
              window_seconds: float, given: datetime.datetime | None, write: bool,
              now: datetime.datetime | None = None) -> dict[str, t.Any]:
    """Read (and unless `write` is false, update) the incident record; return what a run needs."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    path = os.path.join(state_dir, incident_id + ".json")
    if write:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    lock = _locked(path) if write else contextlib.nullcontext()
    with lock:
        record = _read(path)
        started, source = decide_start(record, now, window_seconds, given)
        runs = (record or {}).get("runs", 0) if source != "new" else 0
        seen = list((record or {}).get("scenarios") or []) if source != "new" else []
        if scenario not in seen:
            seen.append(scenario)
        # What the incident is about: the scenario playbooks that ran, not the assessments and
        # notifications around them.
        remediations = [name for name in seen if name not in GENERIC_SCENARIOS]
        new_record = {
            "incident_id": incident_id,
            "scenario": remediations[-1] if remediations else scenario,
            "scenarios": seen,
            "target": target if scenario not in GENERIC_SCENARIOS or source == "new"
            else (record or {}).get("target", target),
            "started_at": iso(started),
            "last_run_at": iso(now),
            "runs": int(runs) + 1,
        }
        if write:
            _write_atomic(path, new_record)
    return {
        "incident_id": incident_id,
        "started_at": new_record["started_at"],
        "source": source,
        "runs": new_record["runs"],
        "record_path": path,
        "written": write,
    }
