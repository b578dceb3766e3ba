# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: incident_timeline
type: notification
short_description: Append every task of a run to its incident's timeline (one JSON object per line)
version_added: 0.1.0
description:
  - For every task of every play, writes one line per host with the UTC start and end, the host,
    the status (V(ok), V(changed), V(failed), V(skipped), V(unreachable)), the task name, the
    runbook phase (V(assess), V(decide), V(act), V(verify), V(record), from the task name's prefix
    such as C(Assess |), else from a tag of that name) and the C(actions) our modules return,
    each stamped when it happened. A run-start and a run-end line carry the playbook, check mode
    and the outcome.
  - One file per incident, C(STATE_DIR/INCIDENT_ID.jsonl), beside the record that
    M(sre.runbooks.incident_start) keeps; every run of the incident (assessment, remediation,
    verification, re-runs) appends to it, so they build one timeline.
    C(playbooks/incident/report.yml) turns it into the postmortem.
  - The incident id comes from the extra variable C(incident_id), else from the result of the
    M(sre.runbooks.incident_start) task (every outage playbook runs it first; its state dir is used
    too). A run with neither (its first task, facts aside, is not M(sre.runbooks.incident_start))
    gets a generated id, printed on standard error. Lines wait in memory until the id is known.
  - A task with C(no_log) is written as having run (name, host, status, times) with
    C(censored=true); nothing from its result is read. Every string written also passes through
    the collection's secret masking.
  - Each line is appended with one write under an exclusive lock on the file, so concurrent runs
    of one incident never interleave inside a line, and a run killed mid-way leaves every line it
    finished. A torn last line (a crash inside a write) is closed before the next line is appended.
  - A play that sets the variable C(incident_timeline_enabled=false) is not recorded (the report
    playbook does, so writing the postmortem is not part of the incident).
  - The callback never fails a run; if it cannot write, it warns once and stops recording.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
requirements:
  - Enable it, for example in C(ansible.cfg) C([defaults] callbacks_enabled = sre.runbooks.incident_timeline)
    or with E(ANSIBLE_CALLBACKS_ENABLED).
options:
  state_dir:
    description:
      - Folder of the incident records and timelines, the same as M(sre.runbooks.incident_start)'s
        O(sre.runbooks.incident_start#module:state_dir).
      - Defaults to C($XDG_STATE_HOME/sre-runbooks/incidents), else
        C(~/.local/state/sre-runbooks/incidents).
      - The record path that M(sre.runbooks.incident_start) returns wins, and so does the extra
        variable C(incident_state_dir), so the timeline always sits beside the record.
    type: path
    env:
      - name: SRE_RUNBOOKS_STATE_DIR
    ini:
      - section: callback_incident_timeline
        key: state_dir
  file:
    description:
      - Write the timeline to this file instead of C(STATE_DIR/INCIDENT_ID.jsonl).
    type: path
    env:
      - name: SRE_RUNBOOKS_TIMELINE_FILE
    ini:
      - section: callback_incident_timeline
        key: file
  fsync:
    description:
      - Also C(fsync) the file after each line, so a power loss of the controller keeps it too.
        Without it a line is in the file as soon as it is written (a killed run loses nothing
        it finished), which is enough unless the controller itself goes down.
    type: bool
    default: false
    env:
      - name: SRE_RUNBOOKS_TIMELINE_FSYNC
    ini:
      - section: callback_incident_timeline
        key: fsync
"""

import datetime
import os
import typing as t

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident, _timeline

_START_ACTIONS = frozenset({"sre.runbooks.incident_start", "incident_start"})
_GATHER_ACTIONS = frozenset({"ansible.builtin.gather_facts", "gather_facts", "ansible.builtin.setup", "setup",
                             "ansible.legacy.setup", "ansible.legacy.gather_facts"})


def _parts(result: t.Any) -> tuple[t.Any, t.Any, dict[str, t.Any]]:
    """(task, host, result dict) on ansible-core 2.19+ (public names) and 2.17/2.18 (private)."""
    task = getattr(result, "task", None) or result._task
    host = getattr(result, "host", None) or result._host
    data = getattr(result, "result", None)
    if data is None:
        data = result._result
    return task, host, data if isinstance(data, dict) else {}


def _plain_id(value: t.Any) -> str | None:
    if not isinstance(value, str) or "{{" in value or "{%" in value:
        return None
    try:
        return _incident.validate_incident_id(value)
    except ValueError:
        return None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.runbooks.incident_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._run_id = _timeline.new_run_id()
        self._incident_id: str | None = None
        self._state_dir: str | None = None
        self._pending: list[dict[str, t.Any]] = []
        self._broken = False
        self._skip_play = False
        self._recording = False
        self._playbook: str | None = None
        self._run_started = _timeline.utc_now()
        self._play_name: str | None = None
        self._task_started: dict[str, datetime.datetime] = {}
        self._host_started: dict[tuple[str, str], datetime.datetime] = {}
        self._raw_names: dict[str, str] = {}

    # ------------------------------------------------------------ plumbing
    def _check_mode(self, task: t.Any = None) -> bool:
        cli = bool((context.CLIARGS or {}).get("check"))
        return cli or (task is not None and getattr(task, "check_mode", None) is True)

    def _path(self) -> str:
        explicit = self.get_option("file")
        if explicit:
            return explicit
        state_dir = self._state_dir or self.get_option("state_dir") or _incident.default_state_dir()
        return _timeline.timeline_path(state_dir, self._incident_id or "unknown")

    def _emit(self, event: dict[str, t.Any]) -> None:
        if self._broken or self._skip_play:
            return
        if self._incident_id is None:
            self._pending.append(event)
            return
        self._write([event])

    def _write(self, events: list[dict[str, t.Any]]) -> None:
        for event in events:
            event["incident_id"] = self._incident_id
        try:
            _timeline.append_lines(self._path(), [_timeline.encode(e) for e in events],
                                   fsync=bool(self.get_option("fsync")))
        except Exception as exc:  # the timeline must never break the run it records
            self._broken = True
            self._display.warning(f"incident_timeline: cannot write {self._path()}: {exc}; "
                                  "this run is not recorded from here on")

    def _adopt(self, incident_id: str, state_dir: str | None = None) -> None:
        """The incident is known: write what waited for it."""
        if self._incident_id is not None:
            return
        self._incident_id = incident_id
        if state_dir:
            self._state_dir = state_dir
        pending, self._pending = self._pending, []
        if pending and not self._broken:
            self._write(pending)

    def _guard(self, method: t.Callable[..., None], *args: t.Any) -> None:
        try:
            method(*args)
        except Exception as exc:  # pragma: no cover - a bug here must not fail the outage run
            if not self._broken:
                self._broken = True
                self._display.warning(f"incident_timeline: stopped recording after an internal error: {exc}")

    # ------------------------------------------------------------ run
    def v2_playbook_on_start(self, playbook: t.Any) -> None:
        self._guard(self._on_start, playbook)

    def _on_start(self, playbook: t.Any) -> None:
        self._run_started = _timeline.utc_now()
        self._playbook = getattr(playbook, "_file_name", None)
        cli = context.CLIARGS or {}
        self._emit(_timeline.run_start_event(
            incident_id="", run_id=self._run_id, timestamp=self._run_started, playbook=self._playbook,
            check_mode=self._check_mode(), tags=list(cli.get("tags") or []), limit=cli.get("subset"),
            pid=os.getpid()))

    def v2_playbook_on_play_start(self, play: t.Any) -> None:
        self._guard(self._on_play, play)

    def _on_play(self, play: t.Any) -> None:
        self._play_name = play.get_name()
        play_vars = getattr(play, "vars", None) or {}
        enabled = play_vars.get("incident_timeline_enabled", True)
        self._skip_play = str(enabled).strip().lower() in ("false", "no", "0", "off")
        if self._skip_play:
            return
        self._recording = True
        manager = play.get_variable_manager() if hasattr(play, "get_variable_manager") else None
        extra = getattr(manager, "extra_vars", None) or {}
        state_dir = extra.get("incident_state_dir")
        if isinstance(state_dir, str) and state_dir and "{{" not in state_dir and self._state_dir is None:
            self._state_dir = os.path.expanduser(state_dir)
        incident_id = _plain_id(extra.get("incident_id"))
        if incident_id:
            self._adopt(incident_id)

    def v2_playbook_on_task_start(self, task: t.Any, is_conditional: bool) -> None:
        self._guard(self._on_task_start, task)

    def v2_playbook_on_handler_task_start(self, task: t.Any) -> None:
        self._guard(self._on_task_start, task)

    def _on_task_start(self, task: t.Any) -> None:
        uid = str(task._uuid)
        self._task_started[uid] = _timeline.utc_now()
        raw = getattr(task, "_ds", None)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            self._raw_names[uid] = raw["name"]

    def v2_runner_on_start(self, host: t.Any, task: t.Any) -> None:
        self._host_started[(str(task._uuid), host.get_name())] = _timeline.utc_now()

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._guard(self._on_result, result, None)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._guard(self._on_result, result, "failed")

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._guard(self._on_result, result, "skipped")

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._guard(self._on_result, result, "unreachable")

    def _on_result(self, result: t.Any, status: str | None) -> None:
        if self._skip_play or self._broken:
            return
        task, host, data = _parts(result)
        end = _timeline.utc_now()
        uid = str(task._uuid)
        host_name = host.get_name()
        start = self._host_started.pop((uid, host_name), None) or self._task_started.get(uid) or end
        if status is None:
            status = "changed" if data.get("changed") else "ok"
        no_log = bool(getattr(task, "no_log", False)) or "censored" in data
        # a no_log task's templated name may hold what no_log hides: write its name as written
        name = self._raw_names.get(uid) if no_log and uid in self._raw_names else task.get_name()
        if task._role is not None and no_log and name and " : " not in name:
            name = f"{task._role.get_name()} : {name}"
        action = getattr(task, "action", None)
        event = _timeline.task_event(
            incident_id="", run_id=self._run_id, play=self._play_name, task_name=name,
            tags=list(getattr(task, "tags", None) or []), host=host_name, status=status, start=start, end=end,
            result=data, no_log=no_log, check_mode=self._check_mode(task), action=action)
        self._emit(event)
        if self._incident_id is not None:
            return
        if action in _START_ACTIONS and not no_log:
            incident_id = _plain_id(data.get("incident_id"))
            record_path = data.get("record_path")
            if incident_id:
                self._adopt(incident_id, os.path.dirname(record_path) if isinstance(record_path, str) else None)
                return
        if action not in _GATHER_ACTIONS:
            # a run that does not start with incident_start (as every outage playbook does) names
            # no incident: give it one now, so a crash later still leaves its lines on disk
            self._generate()

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        self._guard(self._on_stats, stats)

    def _on_stats(self, stats: t.Any) -> None:
        if not self._recording:
            return  # every play opted out: nothing of this run is recorded
        self._skip_play = False
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._emit(_timeline.run_end_event(
            incident_id="", run_id=self._run_id, timestamp=_timeline.utc_now(), started=self._run_started,
            playbook=self._playbook, check_mode=self._check_mode(), stats=summary))
        if self._incident_id is None:
            self._generate()

    def _generate(self) -> None:
        self._adopt(_timeline.generated_incident_id())
        self._display.display(
            f"incident_timeline: this run named no incident; its timeline is {self._path()} "
            f"(incident id {self._incident_id}; pass -e incident_id={self._incident_id} to add later runs)",
            stderr=True)
