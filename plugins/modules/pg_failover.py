#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_failover
short_description: Keep a PostgreSQL streaming group at "exactly one primary, the others streaming from it"
version_added: 0.1.0
description:
  - Target state, not a one-shot command. A group with one primary and every reachable standby streaming
    from it reports C(changed=false) and the state in RV(verdict); so does a second run after a promotion.
  - Evidence before promotion - "the controller cannot reach the primary" is not "the primary is down".
    A primary that answers C(too many clients) (busy), C(starting up) / C(shutting down) / crash
    recovery, or that a standby's WAL receiver still streams from (a message less than
    O(min_primary_down_seconds) ago, so the path from here is cut) is left alone, and RV(verdict) says why.
  - A primary whose host refuses the connection (the host is up, PostgreSQL is not running) is to be
    restarted, not replaced - RV(verdict) recommends V(restart) - unless the caller chose to fail over
    by giving O(fence_command) or O(fenced=true).
  - A promotion needs the primary unreachable from here and no standby streaming from it for at least
    O(min_primary_down_seconds) (the module watches the group that long, re-probing every second, also in
    check mode), or O(force=true); and it needs the old primary fenced - O(fence_command) is run first and
    the old primary must still not answer after it, or the caller confirms it is stopped with O(fenced=true).
    Without either the module refuses (guardrail C(fencing)) - fencing is never skipped silently.
  - The standby with the most WAL received (C(pg_last_wal_receive_lsn)) is promoted with C(pg_promote()),
    and the module waits until it accepts writes (C(pg_is_in_recovery()) false) on a new timeline.
  - Two primaries at once (split brain) - the module refuses (guardrail C(split_brain)), names both with their
    timelines and LSNs in RV(split_brain), and changes nothing.
  - With O(repoint_standbys=true), the other standbys are re-pointed to the new primary after a promotion,
    and so is a standby whose WAL receiver streams from nowhere while the group has one primary (state
    V(standbys_astray)) - C(ALTER SYSTEM SET primary_conninfo) (host and port replaced, the rest kept),
    C(pg_reload_conf()), the standby's C(primary_slot_name) created on the primary when missing, then the
    module waits until the standby streams from the primary. A standby that streams from another node (a
    cascade, or a primary this run cannot see) is never re-pointed; the state is reported. C(pg_rewind) is
    not run - a standby that cannot follow the new timeline fails the step and must be rebuilt, or stopped
    cleanly and rejoined with M(sre.runbooks.pg_rejoin) (which also rejoins the fenced old primary).
  - Without O(repoint_standbys), RV(standbys_to_repoint) lists the standbys to re-point. The pooler is
    re-pointed by M(sre.runbooks.pgbouncer_repoint).
author:
  - sre.runbooks maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.postgres_nodes
attributes:
  check_mode:
    support: full
    description: Observes as long as a real run would, returns the plan (which node it would fence and
      promote, and why) in RV(plan) and RV(actions) with result C(check mode), and changes nothing.
  diff_mode:
    support: full
    description: Each node's role before and after.
  idempotent:
    support: full
    description: A group in the target state reports C(changed=false).
options:
  primary:
    description:
      - The node that was the primary (one of O(nodes)). Needed only when no node answers as a primary and
        the standbys do not agree on the upstream they stream from.
    type: str
  fence_command:
    description:
      - A command (argv list, run on the host that runs the module, without a shell) that stops the old
        primary for good (for example C(ssh db1 systemctl disable --now postgresql), a hypervisor's power
        off). Run before the promotion; it must exit 0 and the old primary must not answer afterwards
        (within O(wait_timeout)), otherwise nothing is promoted.
      - Giving it (or O(fenced)) chooses failover over restart for a primary whose host is up.
    type: list
    elements: str
  fenced:
    description:
      - The caller confirms the old primary is stopped and cannot come back (its host is powered off, its
        unit is stopped and masked). The module still refuses when it answers.
    type: bool
    default: false
  force:
    description:
      - Promote without the evidence - although the primary looks busy, starting or partitioned, before
        O(min_primary_down_seconds), or beyond O(max_lag_bytes). Fencing and the split brain refusal still
        apply. Writes only the old primary holds are lost.
    type: bool
    default: false
  min_primary_down_seconds:
    description:
      - How long the primary must stay unreachable with no standby streaming from it before a promotion.
        The module observes the group for up to this long.
    type: float
    default: 10
  max_lag_bytes:
    description:
      - Refuse to promote a standby that has more than this many bytes of WAL received but not yet replayed
        (the promotion waits for it). V(-1) disables. (The dead primary's last LSN cannot be known; the
        standby with the most WAL received is chosen, and the C(candidates) of RV(verdict) evidence say how far behind
        it every other one is.)
    type: int
    default: 16777216
  repoint_standbys:
    description:
      - Re-point standbys that do not stream from the (new) primary - see the description. V(false) only
        reports them.
    type: bool
    default: false
  down_since:
    description:
      - Reuse an earlier observation - the C(verdict.evidence.down_since) of a check-mode run (epoch seconds)
        that saw the primary down with no standby streaming from it. The module still probes the group
        first and decides from that probe; only when it again shows the primary down with no standby
        streaming does the time since O(down_since) count towards O(min_primary_down_seconds), so the act
        run does not watch the window a second time. A moment in the future, or older than 10 minutes,
        is ignored.
    type: float
  wait_timeout:
    description:
      - Seconds to wait for the fenced primary to stop answering and for the promoted standby to accept writes.
    type: float
    default: 60
seealso:
  - module: sre.runbooks.pg_replication_info
  - module: sre.runbooks.pg_rejoin
  - name: pg_promote
    description: PostgreSQL recovery control functions.
    link: https://www.postgresql.org/docs/15/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
"""

EXAMPLES = r"""
- name: Assess - what would happen (which node, and why)
  sre.runbooks.pg_failover:
    nodes: [db1.example.com:5432, db2.example.com:5432]
    login_password: "{{ vault_pg_password }}"
  check_mode: true
  delegate_to: localhost
  run_once: true
  register: pg_plan

- name: The primary's host is gone and powered off - promote the best standby
  sre.runbooks.pg_failover:
    nodes: [db1.example.com:5432, db2.example.com:5432]
    login_password: "{{ vault_pg_password }}"
    fenced: true
  delegate_to: localhost
  run_once: true

- name: Fail over instead of restarting - stop and mask the old primary first
  sre.runbooks.pg_failover:
    nodes: [db1.example.com:5432, db2.example.com:5432]
    login_password: "{{ vault_pg_password }}"
    fence_command: [ssh, db1.example.com, sudo, systemctl, mask, --now, postgresql]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
verdict:
  description:
    - C(state) - V(healthy), V(nodes_unreachable), V(standbys_astray), V(primary_busy), V(primary_starting),
      V(primary_partitioned), V(primary_down_host_up), V(primary_down_unconfirmed), V(primary_down) (promote),
      V(split_brain) or a guardrail name; C(act); C(reason) (one sentence naming the nodes); C(recommend)
      (V(restart), V(promote), V(wait), V(db_exhaustion), V(check_network), V(repoint_standbys)); C(evidence).
  returned: always
  type: dict
  sample: {"state": "primary_down_host_up", "act": false, "recommend": "restart",
           "reason": "PostgreSQL on db1:5432 is not running but its host answers (connection refused): restart it"}
primary:
  description: The primary after the run (in check mode - the one the plan leads to).
  returned: when known
  type: str
  sample: db2:5432
previous_primary:
  description: The primary before the run.
  returned: when known
  type: str
  sample: db1:5432
plan:
  description: C(state), C(primary), C(previous_primary), C(candidate), ordered C(steps), C(reason).
  returned: when a decision was reached
  type: dict
  sample: {"state": "primary_down", "candidate": "db2:5432",
           "steps": [{"action": "fence", "target": "db1:5432"}, {"action": "promote", "target": "db2:5432"}]}
actions:
  description: What was done (or, in check mode, would be), each with C(timestamp), C(action), C(target), C(result).
  returned: always
  type: list
  elements: dict
  sample: [{"timestamp": "2026-01-01T03:00:00.000Z", "action": "promote", "target": "db2:5432", "result": "done",
            "timeline": 2}]
nodes:
  description: The probes of the last observation (see M(sre.runbooks.pg_replication_info)).
  returned: always
  type: list
  elements: dict
standbys_to_repoint:
  description: Reachable standbys that still follow the old primary after a promotion (re-pointed when
    O(repoint_standbys=true), see RV(actions)).
  returned: when a promotion was planned
  type: list
  elements: str
  sample: []
guardrail:
  description: The guardrail that tripped (V(split_brain), V(fencing), V(no_candidate), V(unknown_primary),
    V(max_lag_bytes), V(credentials)).
  returned: when a guardrail tripped
  type: str
  sample: split_brain
split_brain:
  description: Every primary of a split group with C(node), C(timeline), C(current_lsn), C(system_identifier),
    C(streaming_standbys).
  returned: when the split_brain guardrail tripped
  type: list
  elements: dict
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped, action_record
from ansible_collections.sre.runbooks.plugins.module_utils._pg_replication import (
    NodeError,
    SplitBrain,
    connect_node,
    ensure_physical_slot,
    node_name,
    nodes_argument_spec,
    observe_down,
    parse_node,
    parse_nodes,
    probe_all,
    probe_node,
    retarget_conninfo,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import PSYCOPG2_IMPORT_ERROR
from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_argv, mask_text


def roles(probes: list[dict]) -> dict[str, str]:
    return {p["node"]: (p["role"] if p.get("reachable") else "unreachable") for p in probes}


def roles_after(before: dict[str, str], steps: list[dict]) -> dict[str, str]:
    after = dict(before)
    for step in steps:
        after[step["target"]] = {"fence": "fenced", "promote": "primary"}.get(step["action"],
                                                                              f"standby of {step.get('to')}")
    return after


class Failed(Exception):
    """A step failed after the plan was made; the message says what and what was done so far."""


def fence(module: AnsibleModule, old: str, actions: list[dict]) -> None:
    params = module.params
    argv = params["fence_command"]
    shown = " ".join(mask_argv(argv))
    rc, out, err = module.run_command(argv)
    if rc != 0:
        actions.append(action_record("fence", old, "failed", command=shown, rc=rc,
                                     stderr=mask_text((err or out or "").strip()[-500:])))
        raise Failed(f"fence_command ({shown}) exited {rc}: {mask_text((err or out).strip()[-300:])}; "
                     f"{old} is not confirmed stopped, nothing was promoted")
    deadline = time.monotonic() + params["wait_timeout"]
    while True:
        probe = probe_node(params, old)
        if not probe.get("reachable") and probe.get("error_kind") in ("refused", "timeout", "unreachable", "dns"):
            actions.append(action_record("fence", old, "done", command=shown, rc=rc,
                                         after=probe.get("error_kind")))
            return
        if time.monotonic() > deadline:
            actions.append(action_record("fence", old, "failed", command=shown, rc=rc,
                                         after=probe.get("error_kind") or "answers"))
            raise Failed(f"fence_command ({shown}) exited 0 but {old} still answers "
                         f"({probe.get('error') or probe.get('role')}) after {params['wait_timeout']:g} s; "
                         "nothing was promoted")
        time.sleep(0.5)


def promote(module: AnsibleModule, target: str, actions: list[dict]) -> dict:
    params = module.params
    wait = max(int(params["wait_timeout"]), 1)
    conn = connect_node(params, target)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_promote(true, %s)", (wait,))
            promoted = cur.fetchone()[0]
    finally:
        conn.close()
    deadline = time.monotonic() + params["wait_timeout"]
    while True:
        probe = probe_node(params, target)
        if probe.get("reachable") and probe["role"] == "primary":
            actions.append(action_record("promote", target, "done", timeline=probe.get("timeline"),
                                         current_lsn=probe.get("current_lsn")))
            return probe
        if time.monotonic() > deadline:
            actions.append(action_record("promote", target, "failed", pg_promote=promoted))
            raise Failed(f"pg_promote() on {target} returned {promoted} but it is not a primary after "
                         f"{params['wait_timeout']:g} s; check its log")
        time.sleep(0.5)


def repoint(module: AnsibleModule, step: dict, actions: list[dict]) -> None:
    """primary_conninfo of the standby step['target'] -> step['to'], reload, wait until it streams from it."""
    params = module.params
    target, primary = step["target"], step["to"]
    conn = connect_node(params, target)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), current_setting('primary_conninfo'), "
                        "current_setting('primary_slot_name')")
            in_recovery, conninfo, slot = cur.fetchone()
            if not in_recovery:
                actions.append(action_record("repoint", target, "failed", to=primary))
                raise Failed(f"{target} is no longer a standby; it was not re-pointed")
            try:
                new = retarget_conninfo(conninfo, primary)
            except ValueError as exc:
                actions.append(action_record("repoint", target, "failed", to=primary))
                raise Failed(f"{target}: {exc}") from None
            if slot:
                ensure_physical_slot(params, primary, slot)
            cur.execute("ALTER SYSTEM SET primary_conninfo = %s", (new,))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()
    deadline = time.monotonic() + params["wait_timeout"]
    while True:
        probe = probe_node(params, target)
        receiver = probe.get("wal_receiver") or {}
        if probe.get("upstream") == primary and receiver.get("status") == "streaming":
            actions.append(action_record("repoint", target, "done", to=primary, previous=step.get("from"),
                                         slot=slot or None, receive_lsn=probe.get("receive_lsn")))
            return
        if time.monotonic() > deadline:
            actions.append(action_record("repoint", target, "failed", to=primary, previous=step.get("from")))
            raise Failed(f"{target} was re-pointed to {primary} (primary_conninfo, reload) but does not stream from "
                         f"it after {params['wait_timeout']:g} s (a diverged timeline needs pg_rewind or a rebuild); "
                         "check its log")
        time.sleep(0.5)


def main() -> None:
    spec = nodes_argument_spec()
    spec.update(
        primary=dict(type="str"),
        fence_command=dict(type="list", elements="str"),
        fenced=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        min_primary_down_seconds=dict(type="float", default=10),
        max_lag_bytes=dict(type="int", default=16777216),
        wait_timeout=dict(type="float", default=60),
        repoint_standbys=dict(type="bool", default=False),
        down_since=dict(type="float"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    if PSYCOPG2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    if params["connect_timeout"] < 1:
        module.fail_json(msg="connect_timeout must be at least 1 second")
    if params["wait_timeout"] <= 0 or params["min_primary_down_seconds"] < 0:
        module.fail_json(msg="wait_timeout must be positive and min_primary_down_seconds not negative")
    if params["fence_command"] is not None and not params["fence_command"]:
        module.fail_json(msg="fence_command is empty: give the argv of a command that stops the old primary")
    try:
        nodes = parse_nodes(params["nodes"])
        hint = node_name(*parse_node(params["primary"])) if params["primary"] else None
    except NodeError as exc:
        module.fail_json(msg=str(exc), changed=False, actions=[])
    if hint and hint not in nodes:
        module.fail_json(msg=f"primary {hint} is not one of nodes ({', '.join(nodes)})", changed=False, actions=[])
    plan_args = dict(primary_hint=hint, force=params["force"], fenced=params["fenced"],
                     fence_command=bool(params["fence_command"]),
                     max_lag_bytes=None if params["max_lag_bytes"] < 0 else params["max_lag_bytes"],
                     repoint_standbys=params["repoint_standbys"])
    probes: list[dict] = []
    try:
        probes, plan = observe_down(params, nodes, plan_args, params["min_primary_down_seconds"],
                                    down_since=params["down_since"])
    except GuardrailTripped as exc:
        extra = {"split_brain": exc.primaries} if isinstance(exc, SplitBrain) else {}
        probes = probes or probe_all(params, nodes)
        module.fail_json(msg=str(exc), guardrail=exc.guardrail, changed=False, actions=[], nodes=probes,
                         verdict={"state": exc.guardrail, "act": False, "reason": str(exc)}, **extra)

    result = dict(changed=False, verdict=plan.verdict, plan=plan.as_dict(), primary=plan.primary,
                  previous_primary=plan.previous_primary, nodes=probes)
    before = roles(probes)
    if plan.act and plan.candidate:
        others = [p["node"] for p in probes if p.get("reachable") and p["role"] == "standby"
                  and p["node"] != plan.candidate]
        result["standbys_to_repoint"] = others
    if not plan.act or module.check_mode:
        result["actions"] = [action_record(s["action"], s["target"], "check mode",
                                           **{k: v for k, v in s.items() if k not in ("action", "target")})
                             for s in plan.steps] if plan.act else []
        if module._diff:
            after = roles_after(before, plan.steps if plan.act else [])
            result["diff"] = dict(before=dict(primary=plan.previous_primary, nodes=before),
                                  after=dict(primary=plan.primary, nodes=after))
        module.exit_json(**result)

    actions: list[dict] = []
    try:
        for step in plan.steps:
            if step["action"] == "fence":
                if params["fence_command"]:
                    fence(module, step["target"], actions)
                else:
                    probe = probe_node(params, step["target"])
                    stopped = ("refused", "timeout", "unreachable", "dns")
                    if probe.get("reachable") or probe.get("error_kind") not in stopped:
                        actions.append(action_record("fence", step["target"], "failed", how=step["how"]))
                        raise Failed(f"fenced=true but {step['target']} answers ({probe.get('error_kind') or 'up'}); "
                                     "nothing was promoted")
                    actions.append(action_record("fence", step["target"], "confirmed", how=step["how"],
                                                 after=probe.get("error_kind")))
            elif step["action"] == "promote":
                final = promote(module, step["target"], actions)
                result["nodes"] = [final if p["node"] == final["node"] else p for p in probes]
            elif step["action"] == "repoint":
                repoint(module, step, actions)
    except Failed as exc:
        module.fail_json(msg=str(exc), changed=any(a["action"] in ("promote", "repoint") and a["result"] == "done"
                                                   for a in actions),
                         actions=actions, plan=plan.as_dict(), verdict=plan.verdict, nodes=probes)
    except Exception as exc:  # pylint: disable=broad-except
        done = ", ".join(f"{a['action']} {a['target']} ({a['result']})" for a in actions) or "nothing"
        module.fail_json(msg=f"unexpected error during the failover: {mask_text(str(exc))}; done so far: {done}. "
                             "Check the group with pg_replication_info before running again",
                         exception=traceback.format_exc(), changed=bool(actions), actions=actions,
                         plan=plan.as_dict(), verdict=plan.verdict, nodes=probes)
    result.update(changed=True, actions=actions)
    if module._diff:
        after = roles_after(before, plan.steps)
        result["diff"] = dict(before=dict(primary=plan.previous_primary, nodes=before),
                              after=dict(primary=plan.primary, nodes=after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
