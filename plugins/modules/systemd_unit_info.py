#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: systemd_unit_info
short_description: State, restarts, memory and recent errors of systemd units
version_added: 0.1.0
description:
  - Reads, for each unit asked about, what an on-call engineer looks at first when a service is
    down (runbook steps C(systemctl status UNIT) and C(journalctl -u UNIT -n 100)) -
    active state and sub-state, result of the last run, number of automatic restarts, exit
    status of the main process, main PID, when it last became active, current and peak memory,
    whether the last stop was an OOM kill, and the last journal lines at priority C(err) or worse.
  - All units are read with one C(systemctl show) call; the journal is read once per unit.
  - Optionally probes each unit from the host itself - a TCP connect or an HTTP GET - so one
    call says both what systemd thinks and whether the service answers. Probes run in parallel.
  - Also returns the units in dependency order (O(units) ordered by their C(After=) and
    C(Requires=) among each other), the order in which to restart them.
  - Read-only; never changes a unit.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Reads only.
options:
  units:
    description:
      - The units. Each is a name, or a mapping with C(name) and the keys of one probe
        (C(tcp_port), C(tcp_host), C(http_url), C(http_status), as in O(probes)), so an
        inventory list such as C(service_down_units) can be passed as it is.
      - A name without a unit-type suffix (C(.service), C(.socket), C(.device) ...) means C(.service).
      - A unit that does not exist is reported with RV(units.exists=false), not as an error.
    type: list
    elements: raw
    required: true
  restart_loop_threshold:
    description:
      - A unit restarted automatically at least this many times that has not stayed up for
        O(stable_seconds) since is crash-looping (RV(verdict.looping)) - restarting it again will
        not help, so the verdict says to report it, not to restart it. A unit that systemd is
        about to restart again (C(auto-restart)) is crash-looping whatever the count.
    type: int
    default: 3
  stable_seconds:
    description:
      - A unit restarted O(restart_loop_threshold) times or more that has been active this long
        recovered (RV(verdict.stable)).
    type: int
    default: 60
  max_restarts:
    description:
      - Guardrail for the verdict - when more units than this are down, RV(verdict.act) is false
        and RV(verdict.problem) says so and how to override it; so many units down at once points
        at the host (disk, memory, network), not at the units. Unset means no cap.
    type: int
  restarted:
    description:
      - Units the caller restarted in this run. The verdict then also judges them as a verify
        step - RV(verdict.still_down) and RV(verdict.settled).
    type: list
    elements: str
  journal_lines:
    description:
      - How many of the most recent journal entries to return per unit. V(0) skips the journal.
    type: int
    default: 20
  journal_priority:
    description:
      - Return journal entries at this priority or more severe.
    type: str
    default: err
    choices: [emerg, alert, crit, err, warning, notice, info, debug]
  journal_units:
    description:
      - Read the journal of V(all) units asked about, or only of the V(unhealthy) ones (not
        active, crash-looping by O(restart_loop_threshold) and O(stable_seconds) even when
        caught in a brief running phase, or with a failing probe) - the ones whose logs say why.
    type: str
    default: all
    choices: [all, unhealthy]
  journal_since:
    description:
      - Only journal entries newer than this. A duration (V(90s), V(15m), V(1h)) counts back from
        now; anything else is passed to C(journalctl --since) as it is (V(today),
        V(2024-05-01 10:00:00)).
    type: str
    default: 1h
  probes:
    description:
      - Health probes, run on the target host, at most one per unit. Units named here are read
        even when missing from O(units).
      - A TCP probe only proves that the port accepts connections (the kernel accepts them even
        for a hung process); an HTTP probe proves the service answers.
    type: list
    elements: dict
    default: []
    suboptions:
      unit:
        description: The unit the probe belongs to.
        type: str
        required: true
      tcp_port:
        description: Connect to this port. Mutually exclusive with O(probes[].http_url).
        type: int
      tcp_host:
        description: Address to connect to for O(probes[].tcp_port).
        type: str
        default: 127.0.0.1
      http_url:
        description: GET this URL (no proxy) and compare the status with O(probes[].http_status).
        type: str
      http_status:
        description: The HTTP status that means healthy.
        type: int
        default: 200
  probe_timeout:
    description: Seconds each probe may take.
    type: float
    default: 2
notes:
  - On a host with the hybrid or legacy cgroup layout (and in many containers) systemd does not
    account memory per unit. RV(units.memory_current_bytes) is then the summed resident memory of
    the unit's processes and RV(units.memory_peak_bytes) is null; RV(units.memory_source) says
    which source was used.
seealso:
  - module: sre.runbooks.host_resources_info
  - module: ansible.builtin.systemd_service
requirements:
  - systemd with C(systemctl) and C(journalctl) on the target
"""

EXAMPLES = r"""
- name: Assess the application units
  sre.runbooks.systemd_unit_info:
    units: [postgresql@15-main, pgbouncer, nginx]
    journal_lines: 50
    journal_since: 30m
    probes:
      - {unit: postgresql@15-main, tcp_port: 5432}
      - {unit: nginx, http_url: "http://127.0.0.1/healthz"}
  register: service_units

- name: Show the units that are not running
  ansible.builtin.debug:
    msg: "{{ service_units.failed_units }}"

- name: Stop when nginx crash-loops
  ansible.builtin.assert:
    that: not service_units.units['nginx.service'].restart_looping
    fail_msg: "{{ service_units.units['nginx.service'].journal | map(attribute='message') | join('\n') }}"
"""

RETURN = r"""
units:
  description: One entry per unit asked about, keyed by the full unit name.
  returned: always
  type: dict
  contains:
    name:
      description: Full unit name.
      type: str
      sample: nginx.service
    exists:
      description: Whether systemd knows the unit (C(LoadState) is not C(not-found)).
      type: bool
    load_state:
      description: C(LoadState), for example C(loaded), C(not-found), C(masked).
      type: str
    active_state:
      description: C(ActiveState) - C(active), C(inactive), C(failed), C(activating), C(deactivating).
      type: str
      sample: failed
    sub_state:
      description: C(SubState), for example C(running), C(dead), C(failed), C(auto-restart).
      type: str
    result:
      description: Result of the last run - C(success), C(exit-code), C(signal), C(core-dump),
        C(timeout), C(oom-kill), C(start-limit-hit) ...
      type: str
      sample: exit-code
    healthy:
      description: Active and not waiting for an automatic restart.
      type: bool
    restart_looping:
      description: The unit crashed and systemd is waiting to start it again (C(auto-restart)).
      type: bool
    n_restarts:
      description: Automatic restarts since the unit was last started by hand (C(NRestarts)).
      type: int
    restart_policy:
      description: The unit's C(Restart=) setting.
      type: str
    main_pid:
      description: PID of the main process, null when none runs.
      type: int
    exec_main_code:
      description: How the main process last ended - C(exited), C(killed), C(dumped); null if it
        has not ended.
      type: str
    exec_main_status:
      description: Exit status, or the signal number when RV(units.exec_main_code) is C(killed).
      type: int
    active_since:
      description: When the unit last became active (ISO 8601 UTC), null if never.
      type: str
    active_for_seconds:
      description: Seconds since the unit became active, null when it is not active. A unit that
        restarts again and again is never active for long.
      type: int
    main_started_at:
      description: When the current or last main process started (ISO 8601 UTC).
      type: str
    inactive_since:
      description: When the unit last became inactive or failed (ISO 8601 UTC).
      type: str
    state_changed_at:
      description: Last change of the active state (ISO 8601 UTC).
      type: str
    memory_current_bytes:
      description: Memory used now; see RV(units.memory_source).
      type: int
    memory_peak_bytes:
      description: Highest memory use systemd or the cgroup recorded; null when not available.
      type: int
    memory_source:
      description: C(systemd), C(cgroup) or C(process_rss) (sum of the processes' resident memory).
      type: str
    oom_killed:
      description: The last stop was an OOM kill (C(Result=oom-kill), or the journal says so).
      type: bool
    after:
      description: Units this unit is ordered after (C(After=)).
      type: list
      elements: str
    requires:
      description: Units this unit requires (C(Requires=) and C(BindsTo=)).
      type: list
      elements: str
    probe:
      description: Result of the unit's probe from O(probes); null when it has none.
      type: dict
      contains:
        type:
          description: C(tcp) or C(http).
          type: str
        target:
          description: C(host:port) or the URL.
          type: str
        ok:
          description: The port accepted a connection, or the URL answered with the expected status.
          type: bool
        status:
          description: HTTP status received (null for TCP, or when nothing answered).
          type: int
        error:
          description: Why the probe failed; null when it passed.
          type: str
        seconds:
          description: How long the probe took.
          type: float
    journal:
      description: The last O(journal_lines) entries at O(journal_priority) or worse since
        O(journal_since); empty for a healthy unit when O(journal_units=unhealthy).
      type: list
      elements: dict
      contains:
        timestamp:
          description: ISO 8601 UTC.
          type: str
        priority:
          description: Syslog priority name.
          type: str
        identifier:
          description: Syslog identifier or command name.
          type: str
        pid:
          description: PID that logged the line.
          type: int
        message:
          description: The log message.
          type: str
  sample:
    nginx.service:
      name: nginx.service
      exists: true
      active_state: failed
      sub_state: failed
      result: exit-code
      healthy: false
      restart_looping: false
      n_restarts: 0
      exec_main_code: exited
      exec_main_status: 1
      oom_killed: false
      memory_current_bytes: 0
      memory_source: process_rss
      journal:
        - timestamp: "2026-11-24T07:10:02.120Z"
          priority: err
          identifier: nginx
          pid: 312
          message: "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)"
failed_units:
  description: Names of the units asked about that are not healthy (not active, or auto-restarting).
  returned: always
  type: list
  elements: str
  sample: [nginx.service]
probe_failed_units:
  description: Names of the units whose probe failed, whatever systemd says about them.
  returned: always
  type: list
  elements: str
  sample: [nginx.service]
missing_units:
  description: Names of the units asked about that systemd does not know.
  returned: always
  type: list
  elements: str
restart_order:
  description: The units asked about, ordered so that each comes after the listed units it
    depends on; ties keep the order given in O(units).
  returned: always
  type: list
  elements: str
  sample: [postgresql@15-main.service, pgbouncer.service, nginx.service]
checked_at:
  description: When the units were read (ISO 8601 UTC).
  returned: always
  type: str
verdict:
  description:
    - What the service-down runbook should do, decided from the readings above with
      O(restart_loop_threshold), O(stable_seconds) and O(max_restarts). A role acts on
      RV(verdict.act) and RV(verdict.to_restart) only.
  returned: always
  type: dict
  contains:
    units:
      description: Per unit - C(status) (C(stable), C(down), C(looping), C(missing)), C(action)
        (C(none), C(restart), C(report)) and C(reason).
      type: dict
    down:
      description: Units that are down or crash-looping, in restart order.
      type: list
      elements: str
    looping:
      description: Crash-looping units; reported with their journal, never restarted again.
      type: list
      elements: str
    to_restart:
      description: Down units a restart should heal, in dependency order; empty when RV(verdict.problem) is set.
      type: list
      elements: str
    stable:
      description: Units that are active (and whose probe passes), including ones that recovered from restarts.
      type: list
      elements: str
    missing:
      description: Units systemd does not know.
      type: list
      elements: str
    healthy:
      description: Nothing is down, looping or missing - nothing to do.
      type: bool
    act:
      description: Restart RV(verdict.to_restart).
      type: bool
    guardrail_tripped:
      description: More units to restart than O(max_restarts).
      type: bool
    problem:
      description: Why the runbook must stop without acting (missing units, guardrail), with the
        override; null when there is none.
      type: str
    still_down:
      description: Of O(restarted), the units not active, failing their probe, or restarted by
        systemd again since. Only with O(restarted).
      type: list
      elements: str
    settled:
      description: Every unit of O(restarted) is active and its probe passes. Only with O(restarted).
      type: bool
    report_units:
      description: Units a human must look at (still down after a restart, crash-looping).
      type: list
      elements: str
    evidence:
      description: For each of RV(verdict.report_units), one line with its state, result, restarts,
        OOM kill and last journal messages.
      type: dict
    summary:
      description: The verdict in one sentence.
      type: str
      sample: "healthy, nothing to do: every unit is active and its probe passes"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _systemd
from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration, utc_iso


_full_name = _systemd.full_unit_name
PROBE_KEYS = ("tcp_port", "tcp_host", "http_url", "http_status")


def split_units(items: list) -> tuple[list[str], list[dict]]:
    """`units` entries (names, or mappings with a name and one probe) -> names, probes.
    Raises ValueError on an entry that is neither."""
    names: list[str] = []
    probes: list[dict] = []
    for item in items or []:
        if isinstance(item, dict):
            name = str(item.get("name") or "").strip()
            if not name:
                raise ValueError(f"units: {item!r} has no name")
            unknown = set(item) - {"name", *PROBE_KEYS}
            if unknown:
                raise ValueError(f"units: {name} has unknown keys {', '.join(sorted(unknown))}; "
                                 f"a unit mapping takes name, {', '.join(PROBE_KEYS)}")
            names.append(name)
            if item.get("tcp_port") is not None or item.get("http_url"):
                if item.get("tcp_port") is not None and item.get("http_url"):
                    raise ValueError(f"units: {name} has both tcp_port and http_url; give one probe")
                probes.append({"unit": name, "tcp_port": int(item["tcp_port"]) if item.get("tcp_port") is not None else None,
                               "tcp_host": item.get("tcp_host") or "127.0.0.1", "http_url": item.get("http_url"),
                               "http_status": int(item.get("http_status") or 200)})
        elif isinstance(item, str):
            if item.strip():
                names.append(item)
        else:
            raise ValueError(f"units: {item!r} is neither a unit name nor a mapping with a name")
    return names, probes


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="raw", required=True),
            restart_loop_threshold=dict(type="int", default=3),
            stable_seconds=dict(type="int", default=60),
            max_restarts=dict(type="int"),
            restarted=dict(type="list", elements="str"),
            journal_lines=dict(type="int", default=20),
            journal_priority=dict(type="str", default="err", choices=_systemd.JOURNAL_PRIORITIES),
            journal_since=dict(type="str", default="1h"),
            journal_units=dict(type="str", default="all", choices=["all", "unhealthy"]),
            probes=dict(type="list", elements="dict", default=[], options=dict(
                unit=dict(type="str", required=True),
                tcp_port=dict(type="int"),
                tcp_host=dict(type="str", default="127.0.0.1"),
                http_url=dict(type="str"),
                http_status=dict(type="int", default=200),
            ), mutually_exclusive=[("tcp_port", "http_url")], required_one_of=[("tcp_port", "http_url")]),
            probe_timeout=dict(type="float", default=2.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        unit_names, unit_probes = split_units(params["units"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    probes = [dict(p, unit=_full_name(p["unit"])) for p in params["probes"] + unit_probes]
    units = list(dict.fromkeys([_full_name(u) for u in unit_names] + [p["unit"] for p in probes]))
    if params["restart_loop_threshold"] < 1 or params["stable_seconds"] < 0:
        module.fail_json(msg="restart_loop_threshold must be at least 1 and stable_seconds 0 or more")
    if params["max_restarts"] is not None and params["max_restarts"] < 0:
        module.fail_json(msg="max_restarts must be 0 or more")
    if len({p["unit"] for p in probes}) != len(probes):
        module.fail_json(msg="probes: at most one probe per unit")
    if params["probe_timeout"] <= 0:
        module.fail_json(msg="probe_timeout must be more than 0 seconds")
    if not units:
        module.fail_json(msg="units: give at least one unit name, for example [nginx, postgresql@15-main]")
    if params["journal_lines"] < 0:
        module.fail_json(msg="journal_lines must be 0 or more")
    try:
        since = _systemd.journal_since_arg(parse_duration(params["journal_since"], "journal_since"), None)
    except ValueError:
        since = _systemd.journal_since_arg(None, params["journal_since"])

    systemctl = module.get_bin_path("systemctl", required=True)
    journalctl = module.get_bin_path("journalctl", required=params["journal_lines"] > 0)
    checked_at = utc_iso()
    # Probes first and in parallel with nothing else: they are what a client sees right now.
    probe_results = _systemd.run_probes(probes, params["probe_timeout"])
    try:
        blocks = _systemd.systemctl_show(module.run_command, systemctl, units)
        states: dict[str, dict] = {}
        for name, props in zip(units, blocks):
            state = _systemd.unit_state(props)
            state["name"] = name
            state.update(_systemd.unit_memory(props))
            state["probe"] = probe_results.get(name)
            state["journal"] = []
            # Not stable by the verdict's rule (also a crash loop caught in its brief running phase).
            wants_journal = params["journal_units"] == "all" or _systemd.unit_verdict(
                state, params["restart_loop_threshold"], params["stable_seconds"])["status"] != "stable"
            if state["exists"] and journalctl and params["journal_lines"] > 0 and wants_journal:
                state["journal"] = _systemd.journal_excerpt(module.run_command, journalctl, name,
                                                            params["journal_priority"], since,
                                                            params["journal_lines"])
            if not state["oom_killed"] and not state["healthy"] and state["exec_main_code"] == "killed" and journalctl:
                # systemd reports an OOM kill at warning level, below the usual excerpt.
                recent = _systemd.journal_excerpt(module.run_command, journalctl, name, "warning", since, 50)
                state["oom_killed"] = _systemd.oom_in_journal(recent)
            states[name] = state
    except _systemd.SystemdError as exc:
        module.fail_json(msg=f"cannot read systemd units {', '.join(units)}: {exc}; is systemd running on this host?")

    order = _systemd.restart_order(units, states)
    restarted = None if params["restarted"] is None else [_full_name(u) for u in params["restarted"] if u.strip()]
    verdict = _systemd.service_verdict(states, order, params["restart_loop_threshold"], params["stable_seconds"],
                                       params["max_restarts"], restarted)
    module.exit_json(
        changed=False,
        units=states,
        verdict=verdict,
        failed_units=[n for n in units if states[n]["exists"] and not states[n]["healthy"]],
        missing_units=[n for n in units if not states[n]["exists"]],
        probe_failed_units=[n for n in units if states[n]["probe"] is not None and not states[n]["probe"]["ok"]],
        restart_order=order,
        checked_at=checked_at,
    )


if __name__ == "__main__":
    main()
