# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: db_verdict
short_description: The decisions of the db_exhaustion runbook, from pg_activity_info and pg_backends results
version_added: 0.2.0
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
description:
  - Decides, from module results only, whether the connection-exhaustion runbook acts, whether
    terminating sessions was enough or the pooler needs a restart, whether there is a pooler unit
    (systemd) or pooler container (docker-compose) to restart, and whether the server healed. The role only wires its flags.
  - Each step adds to the same verdict; give what is known so far.
options:
  _input:
    description: The result of M(sre.runbooks.pg_activity_info) before any action.
    type: dict
    required: true
  threshold:
    description: Act when client sessions use at least this percent of the usable slots.
    type: float
    default: 80
  force:
    description: Act even under the threshold.
    type: bool
    default: false
  terminated:
    description: The result of M(sre.runbooks.pg_backends) that terminated sessions (its RV(server) is read).
    type: dict
  restart_pooler:
    description: Whether the operator allows a pooler restart at all.
    type: bool
    default: true
  pooler_unit:
    description:
      - The result of M(sre.runbooks.systemd_unit_info) for the pooler's unit. A unit that does
        not exist is skipped with a reason, never restarted.
    type: dict
  pooler_service:
    description:
      - On a docker-compose host, the result of M(sre.runbooks.compose_service_info) for the
        pooler's service (read with its C(restarted_after) set to the incident's start). A service
        with no container is skipped with a reason, never created; a pooler whose containers were
        all restarted during this incident is not restarted again.
    type: dict
  pooler_service_name:
    description: The pooler's compose service (the key of O(pooler_service)'s C(services)).
    type: str
    default: ''
  after:
    description: The result of M(sre.runbooks.pg_activity_info) after acting (a fresh connection).
    type: dict
  blocked_share:
    description:
      - The exhaustion is caused by blocked sessions piling up when at least this percent of the
        client sessions wait for a lock (C(lock_summary) of O(_input)) behind at least one root
        blocker (C(lock_tree)).
    type: float
    default: 50
  kill_blockers:
    description:
      - Whether the operator allows acting on the root blockers of such an exhaustion (the
        lock_contention runbook, with its own guards). Off - the verdict names the blockers and
        says how to act.
    type: bool
    default: false
  restart_app:
    description: Whether the operator allows restarting the application (runbook 001). Off by default.
    type: bool
    default: false
  app_name:
    description: The application's systemd unit or Kubernetes Deployment; empty means none is named.
    type: str
    default: ''
  app_applications:
    description: The C(application_name) values of the application's sessions (its evidence).
    type: list
    elements: str
  app_users:
    description: The roles of the application's sessions (its evidence when O(app_applications) is empty).
    type: list
    elements: str
  app_min_share:
    description: The application is restarted only when it holds at least this percent of the client sessions.
    type: float
    default: 50
  app_reading:
    description:
      - M(sre.runbooks.pg_activity_info) read just before restarting the application (after
        terminating, and after a pooler restart). Without it, O(_input) is the evidence.
    type: dict
  check_mode:
    description:
      - The run is in check mode - nothing was terminated, so the sessions O(terminated) would end
        (its RV(sre.runbooks.pg_backends#module:backends)) are taken off the evidence.
    type: bool
    default: false
  app_unit:
    description:
      - The result of M(sre.runbooks.systemd_unit_info) for the application's unit. A unit that
        does not exist is skipped; a unit that became active after O(incident_started) was
        already restarted during this incident and is not restarted again.
    type: dict
  incident_started:
    description: When the incident started (ISO 8601), the once-per-incident mark of the application restart.
    type: str
"""

EXAMPLES = r"""
- name: Decide | act when utilisation is at or over the threshold
  ansible.builtin.set_fact:
    db_verdict: "{{ pg_before | sre.runbooks.db_verdict(threshold=80) }}"

- name: Act | terminate idle sessions
  sre.runbooks.pg_backends:
    backend_states: [idle]
  register: pg_terminated
  when: db_verdict.act

- name: Decide | does the pooler need a restart
  ansible.builtin.set_fact:
    db_verdict: "{{ pg_before | sre.runbooks.db_verdict(threshold=80, terminated=pg_terminated) }}"
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    act:
      description: Utilisation is at or over the threshold (or O(force)) - terminate old idle sessions.
      type: bool
    healthy:
      description: Under the threshold and not forced - healthy, nothing to do.
      type: bool
    reason:
      description: Why it acts or not.
      type: str
    utilisation_percent:
      description: Utilisation before acting; null when unknown.
      type: float
    pooler:
      description:
        - C(needed) (utilisation still at or over the threshold after terminating), C(restart)
          (needed, allowed, and the unit or compose service exists or the platform has nothing to
          check), C(skipped) (why a needed restart is not done; null otherwise).
      type: dict
    healed:
      description: After acting, a fresh connection sees utilisation under the threshold. Null before.
      type: bool
    blockers:
      description:
        - C(cause) (at least O(blocked_share) percent of the client sessions wait for locks behind a
          root blocker), C(waiting), C(share_percent), C(root_blockers), C(root_pids), C(act) (the
          cause is recognised, the runbook acts and O(kill_blockers) - run the lock_contention
          runbook on the root blockers), C(skipped) (why not, with the override; null otherwise).
      type: dict
    app:
      description:
        - Null until O(terminated) is known. C(needed) (still at or over the threshold after
          terminating), C(sessions) and C(share_percent) (the application's client sessions),
          C(restart) (needed, allowed, the evidence says the application holds the connections,
          and it was not restarted during this incident yet), C(already_restarted_at) (when it
          was, else null), C(skipped) (why a needed restart is not done; null otherwise).
      type: dict
    verify_message:
      description: What the verify step says, healed or not. Null before.
      type: str
    summary:
      description: The verdict in one sentence.
      type: str
"""

import datetime
import typing as t

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def _percent(result: t.Any) -> float | None:
    if not isinstance(result, dict):
        return None
    value = result.get("utilisation_percent")
    if value is None and isinstance(result.get("server"), dict):
        value = result["server"].get("utilisation_percent")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _number(value: t.Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"db_verdict: {name} must be a number, got {value!r}") from None


def _moment(value: t.Any) -> datetime.datetime | None:
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise AnsibleFilterError(f"db_verdict: not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _blockers(before: t.Any, act: bool, share_wanted: float, kill: bool) -> dict[str, t.Any]:
    """Is the exhaustion made of sessions waiting for locks behind a few root blockers?"""
    summary = (before.get("lock_summary") or {}) if isinstance(before, dict) else {}
    tree = (before.get("lock_tree") or []) if isinstance(before, dict) else []
    clients = before.get("client_backends") if isinstance(before, dict) else None
    waiting = int(summary.get("blocked_sessions") or 0)
    share = round(100.0 * waiting / clients, 1) if clients else None
    roots = [r.get("pid") for r in tree]
    cause = bool(tree) and share is not None and share >= share_wanted
    found = {"cause": cause, "waiting": waiting, "share_percent": share, "root_blockers": len(tree),
             "root_pids": roots, "act": False, "skipped": None}
    if cause and act and kill:
        found["act"] = True
    elif cause and act:
        found["skipped"] = (f"blocked sessions: {waiting} of {clients} client sessions ({share}%) wait for locks "
                            f"behind {len(tree)} root blocker(s) {roots}; run lock_contention "
                            "(playbooks/outage/lock_contention.yml), or set db_exhaustion_kill_blockers: true")
    return found


def _pooler_service_problem(info: dict[str, t.Any], name: str) -> str | None:
    """Why the pooler's compose service cannot be restarted (no container, read failed, or every
    container already restarted during this incident), or None."""
    containers = [c for c in (info.get("services") or {}).get(name) or [] if isinstance(c, dict)]
    # The role registers the read with failed_when: false (Ansible then sets failed to false):
    # its message, with no container found, is the failure.
    if info.get("failed") or (not containers and info.get("msg")):
        return f"cannot read the pooler's compose service {name}: {info.get('msg') or 'compose_service_info failed'}"
    if not containers:
        projects = info.get("projects") or []
        where = f"compose project {projects[0]}" if projects else "the compose project (no container found)"
        return (f"pooler service {name or '(none named)'} has no container in {where}; skipped the pooler restart "
                "(set db_exhaustion_pooler_compose_service, or db_exhaustion_restart_pooler: false when there is no pooler)")
    restarted = set(((info.get("acted") or {}).get("restart")) or [])
    names = [c.get("name") for c in containers]
    if all(n in restarted for n in names):
        return (f"pooler container(s) {', '.join(map(str, names))} already restarted during this incident: "
                "not again (once per incident)")
    return None


def _app_sessions(reading: t.Any, applications: list[str], users: list[str],
                  gone: list[dict[str, t.Any]]) -> tuple[int, int]:
    """(the application's client sessions, all client sessions), minus the sessions `gone`."""
    reading = reading if isinstance(reading, dict) else {}
    key, names, field = (("by_application", applications, "application") if applications
                         else ("by_user", users, "user"))
    counts = reading.get(key) or {}
    mine = sum(int(counts.get(name) or 0) for name in names)
    mine -= sum(1 for b in gone if b.get(field) in names)
    total = int(reading.get("client_backends") or 0) - len(gone)
    return max(mine, 0), max(total, 0)


def _app(left: float | None, threshold: float, restart: bool, name: str,
         applications: list[str], users: list[str], min_share: float, reading: t.Any,
         gone: list[dict[str, t.Any]], unit: t.Any, incident_started: t.Any) -> dict[str, t.Any]:
    """Runbook 001's "restart the application to refresh connections", opt-in, once per incident."""
    needed = left is not None and left >= threshold
    app: dict[str, t.Any] = {"needed": needed, "restart": False, "skipped": None, "sessions": None,
                             "share_percent": None, "already_restarted_at": None}
    if not needed:
        return app
    if not restart:
        app["skipped"] = "an application restart is off (db_exhaustion_restart_app: false)"
        return app
    if not name:
        app["skipped"] = ("db_exhaustion_restart_app is on but no application is named: set db_exhaustion_app_unit "
                          "(systemd) or db_exhaustion_app_deployment (kubernetes)")
        return app
    if not applications and not users:
        app["skipped"] = (f"no evidence that {name} holds the connections: set db_exhaustion_app_applications "
                          "(its application_name) or db_exhaustion_app_users (its role)")
        return app
    mine, total = _app_sessions(reading, applications, users, gone)
    share = round(100.0 * mine / total, 1) if total else 0.0
    app.update(sessions=mine, share_percent=share)
    which = f"application_name {applications}" if applications else f"role {users}"
    if share < min_share:
        app["skipped"] = (f"{name} ({which}) holds {mine} of {total} client sessions ({share}%), under "
                          f"db_exhaustion_app_min_share {min_share:g}%: restarting it would not free the slots; "
                          "find who holds them (by_application, by_user)")
        return app
    if isinstance(unit, dict) and unit:
        if unit.get("missing_units"):
            app["skipped"] = (f"application unit {', '.join(unit['missing_units'])} not found on this host; "
                              "set db_exhaustion_app_unit")
            return app
        # systemd_unit_info's units: keyed by the full unit name; one unit asked.
        units = unit.get("units") or {}
        state = next(iter(units.values()), {}) if isinstance(units, dict) else (units[0] if units else {})
        if state.get("active_state") != "active":
            # Not running: a restart would not refresh its connections, and a unit that failed after
            # this runbook restarted it must not be restarted again (service_down's call).
            app["skipped"] = (f"{name} is {state.get('active_state') or 'in an unknown state'}, not active: "
                              "not restarted (a stopped unit holds no connections; see the service_down runbook)")
            return app
        try:
            since = _moment(state.get("active_since"))
        except AnsibleFilterError:
            # Ambiguity refuses: without its start time, once per incident cannot be kept.
            app["skipped"] = (f"cannot tell when {name} last started (active_since {state.get('active_since')!r}); "
                              "not restarted, to keep the restart to once per incident")
            return app
        started = _moment(incident_started)
        if since and started and since >= started.replace(microsecond=0):
            app["already_restarted_at"] = state["active_since"]
            return app
    app["restart"] = True
    return app


def db_verdict(before: t.Any, threshold: t.Any = 80, force: bool = False, terminated: t.Any = None,
               restart_pooler: bool = True, pooler_unit: t.Any = None, pooler_service: t.Any = None,
               pooler_service_name: t.Any = "", after: t.Any = None,
               blocked_share: t.Any = 50, kill_blockers: t.Any = False, restart_app: t.Any = False,
               app_name: t.Any = "", app_applications: t.Any = None, app_users: t.Any = None,
               app_min_share: t.Any = 50, app_reading: t.Any = None, check_mode: t.Any = False,
               app_unit: t.Any = None, incident_started: t.Any = None) -> dict[str, t.Any]:
    threshold = _number(threshold, "threshold")
    blocked_share, app_min_share = _number(blocked_share, "blocked_share"), _number(app_min_share, "app_min_share")
    force, restart_pooler = boolean(force, strict=False), boolean(restart_pooler, strict=False)
    kill_blockers, restart_app = boolean(kill_blockers, strict=False), boolean(restart_app, strict=False)
    check_mode = boolean(check_mode, strict=False)
    used = _percent(before)
    verdict: dict[str, t.Any] = {"utilisation_percent": used, "threshold_percent": threshold,
                                 "pooler": None, "app": None, "healed": None, "verify_message": None}
    if used is None:
        verdict.update(act=False, healthy=False,
                       reason="connection usage unknown (pg_activity_info returned no utilisation); nothing done")
    elif force:
        verdict.update(act=True, healthy=False, reason=f"forced at {used}% (threshold {threshold:g}%)")
    elif used >= threshold:
        verdict.update(act=True, healthy=False, reason=f"{used}% of usable slots used, at or over {threshold:g}%")
    else:
        verdict.update(act=False, healthy=True,
                       reason=f"healthy, nothing to do: {used}% of usable slots used, under {threshold:g}%")
    verdict["blockers"] = _blockers(before, verdict["act"], blocked_share, kill_blockers)
    if verdict["blockers"]["act"]:
        verdict["reason"] += (f"; {verdict['blockers']['waiting']} sessions ({verdict['blockers']['share_percent']}%) "
                              f"wait for locks behind root blocker(s) {verdict['blockers']['root_pids']}: "
                              "act on the root blockers (lock_contention's guards)")
    elif verdict["blockers"]["skipped"]:
        verdict["reason"] += "; " + verdict["blockers"]["skipped"]
    verdict["summary"] = verdict["reason"]

    if verdict["act"] and isinstance(terminated, dict) and terminated:
        left = _percent(terminated)
        needed = left is not None and left >= threshold
        pooler: dict[str, t.Any] = {"needed": needed, "restart": False, "skipped": None,
                                    "utilisation_after_terminating": left}
        if needed and not restart_pooler:
            pooler["skipped"] = "a pooler restart is needed but disabled (db_exhaustion_restart_pooler: false)"
        elif needed and isinstance(pooler_unit, dict) and pooler_unit.get("missing_units"):
            pooler["skipped"] = (f"pooler unit {', '.join(pooler_unit['missing_units'])} not found on this host; "
                                 "skipped the pooler restart (set db_exhaustion_pooler_unit, or "
                                 "db_exhaustion_restart_pooler: false when there is no pooler)")
        elif needed and isinstance(pooler_service, dict) and pooler_service \
                and _pooler_service_problem(pooler_service, str(pooler_service_name or "")):
            pooler["skipped"] = _pooler_service_problem(pooler_service, str(pooler_service_name or ""))
        elif needed:
            pooler["restart"] = True
        verdict["pooler"] = pooler
        if pooler["restart"]:
            verdict["summary"] += f"; still {left}% after terminating: restart the pooler"
        elif pooler["skipped"]:
            verdict["summary"] += f"; still {left}% after terminating: {pooler['skipped']}"

        gone = [b for b in terminated.get("backends") or [] if isinstance(b, dict)] if check_mode else []
        if isinstance(app_reading, dict) and app_reading and not app_reading.get("skipped"):
            evidence, app_left = app_reading, _percent(app_reading)
        else:
            evidence, app_left = before, left
        if check_mode and app_left is not None and isinstance(evidence, dict) and evidence.get("usable_connections"):
            # Nothing was terminated: judge by what would be left once the matched sessions went.
            app_left = round(100.0 * max(int(evidence.get("client_backends") or 0) - len(gone), 0)
                             / int(evidence["usable_connections"]), 1)
        names = [str(n) for n in app_applications or [] if n]
        roles = [str(n) for n in app_users or [] if n]
        app = _app(app_left, threshold, restart_app, str(app_name or ""), names, roles, app_min_share,
                   evidence, gone, app_unit, incident_started)
        verdict["app"] = app
        if app["restart"]:
            verdict["summary"] += (f"; {app_left}% without the idle sessions and {app_name} holds {app['share_percent']}% "
                                   f"of them: restart {app_name} (once per incident)")
        elif app["already_restarted_at"]:
            verdict["summary"] += (f"; {app_name} was already restarted during this incident "
                                   f"(active since {app['already_restarted_at']}): not again")
        elif app["skipped"] and restart_app:
            verdict["summary"] += f"; {app['skipped']}"

    if isinstance(after, dict) and after:
        left = _percent(after)
        verdict["healed"] = left is not None and left < threshold
        if verdict["healed"]:
            verdict["verify_message"] = f"{left}% used, a fresh connection works"
        else:
            by_app = after.get("by_application")
            verdict["verify_message"] = (
                f"still {left}% used after remediation (threshold {threshold:g}%); by application {by_app}. "
                "Escalate: find the leaking application."
                + (f" ({verdict['pooler']['skipped']})" if verdict["pooler"] and verdict["pooler"]["skipped"] else "")
                + (f" ({verdict['blockers']['skipped']})" if verdict["blockers"]["skipped"] else ""))
        verdict["summary"] += "; " + verdict["verify_message"]
    return verdict


class FilterModule:
    """The db_exhaustion runbook's decisions."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"db_verdict": db_verdict}
