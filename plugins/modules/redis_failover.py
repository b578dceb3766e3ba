#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_failover
short_description: Bring a Redis replication group to "one master, every other node replicating it"
version_added: 0.1.0
description:
  - Target state, not a one-shot command - one reachable master, and every other reachable node a
    replica of it with its link up. A group already in that state reports C(changed=false).
  - The group is given as O(nodes) (C(host:port) list) or, for a Sentinel-managed group, as
    O(sentinels) + O(master_name) (the nodes are then the master and replicas the sentinels know,
    unless O(nodes) is also given).
  - Without O(target), a healthy master stays master. The module changes the master only when the
    evidence says the master is down or no longer a master, or when O(target) names another node.
    The new master is then O(target) or the best replica (largest replication offset).
  - Evidence before promotion - "this host cannot reach the master" is not "the master is down". A
    master that answers C(max number of clients reached) (busy) or C(LOADING), or that only this host
    cannot reach while a replica still reports C(master_link_status:up) (partitioned), is left alone -
    RV(verdict) names the state and the evidence and nothing changes. A master is replaced only when
    every reachable replica reports its link down for at least O(min_master_down_seconds) and, with
    O(sentinels), the sentinels agree it is down (C(o_down), or C(s_down) on at least quorum
    sentinels); or with O(force=true).
  - Split brain - two or more masters in one group have diverged histories that no offset can rank.
    Without O(target) or O(force) the module refuses (guardrail C(split_brain)), names every master
    with its keys, offset and followers in RV(split_brain), and changes nothing.
  - How the master changes (O(mode=auto)) -
    master reachable - C(FAILOVER TO) the new master, which pauses writes until the new master has
    every byte, so no acknowledged write is lost; the other replicas are re-pointed.
    Master unreachable - C(REPLICAOF NO ONE) on the new master, C(REPLICAOF) on the others.
    Sentinel-managed - C(SENTINEL FAILOVER) (with C(replica-priority) pinned so the sentinels pick
    the chosen replica), then wait until every reachable sentinel reports the new master.
  - Guardrails - the new master must not lag more than O(max_lag_bytes) / O(max_lag_seconds); in
    O(mode=promote) the old master must not answer any more (split brain) unless O(force=true).
    A tripped guardrail fails, names itself and its override, and changes nothing.
  - Unreachable nodes are reported in RV(unreachable_nodes), not fatal, once a healthy master is in place.
    Wrong credentials, an unknown O(target), a node that replicates a master outside the group, or
    an empty group fail before anything is changed.
author:
  - sre.runbooks maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.redis
  - sre.runbooks.redis.sentinel
attributes:
  check_mode:
    support: full
    description: Returns the plan (RV(plan), RV(actions) with result C(check mode)) and changes nothing.
  diff_mode:
    support: full
    description: The master and each node's role before and after.
  idempotent:
    support: full
    description: A group already in the target state reports C(changed=false).
options:
  nodes:
    description:
      - The replication group as C(host:port) addresses (C(host) alone means port 6379).
      - Required unless O(sentinels) is given.
    type: list
    elements: str
    default: []
  target:
    description:
      - The node that must be master (C(host:port), one of the group's nodes).
      - Unset - keep a healthy master; otherwise promote the best replica.
    type: str
  mode:
    description:
      - V(auto) picks V(sentinel) when O(sentinels) is given, otherwise V(failover) when the master
        answers and V(promote) when it does not.
      - V(failover) - only a coordinated C(FAILOVER TO); fails when the master does not answer.
      - V(promote) - C(REPLICAOF NO ONE) on the new master even if the old one answers (needs O(force)).
      - V(sentinel) - only C(SENTINEL FAILOVER).
    type: str
    choices: [auto, failover, promote, sentinel]
    default: auto
  force:
    description:
      - Promote although the old master still answers (O(mode=promote)), although the evidence does
        not say the master is down (see O(min_master_down_seconds)), or keep the master with the most
        followers in a split brain. Writes only the replaced master holds are lost.
    type: bool
    default: false
  min_master_down_seconds:
    description:
      - A master that does not answer is replaced only when every reachable replica of it reports
        its link down (C(master_link_down_since_seconds) in C(INFO replication)) for at least this
        many seconds. Shorter outages (a restart, a network blip) are reported, not acted on.
    type: float
    default: 10
  max_lag_bytes:
    description:
      - Refuse to make a replica master when it is more than this many bytes of replication stream
        behind (the master, or the most advanced replica when the master is gone). V(-1) disables.
    type: int
    default: 1048576
  max_lag_seconds:
    description:
      - Refuse to make a replica master when it is more than this many seconds behind (the master's
        last acknowledgement from it, or how much longer its link has been down than the freshest
        replica's when the master is gone). V(-1) disables.
    type: float
    default: 10
  wait_timeout:
    description:
      - Seconds to wait for C(FAILOVER) to complete, for the sentinels to agree, and for every
        replica to report C(master_link_status:up) to the new master.
    type: float
    default: 30
  persist:
    description:
      - Run C(CONFIG REWRITE) on every node whose role changed, so a restart keeps the new role.
        A node without a writable config file is reported in RV(actions), not fatal.
    type: bool
    default: true
seealso:
  - module: sre.runbooks.redis_health_info
  - name: Redis FAILOVER command
    description: Coordinated failover between a master and one of its replicas.
    link: https://redis.io/commands/failover/
"""

EXAMPLES = r"""
- name: Keep the group healthy (no change while the master is fine; fail over when it is not)
  sre.runbooks.redis_failover:
    nodes: [10.0.0.11:6379, 10.0.0.12:6379, 10.0.0.13:6379]
    login_password: "{{ redis_login_password }}"
  delegate_to: localhost
  run_once: true
  register: redis_failover

- name: Planned switchover to a named replica, no acknowledged write lost
  sre.runbooks.redis_failover:
    nodes: [10.0.0.11:6379, 10.0.0.12:6379, 10.0.0.13:6379]
    target: 10.0.0.12:6379
    login_password: "{{ redis_login_password }}"
  delegate_to: localhost

- name: Sentinel-managed group - let the sentinels fail over and wait until they agree
  sre.runbooks.redis_failover:
    sentinels: [10.0.0.11:26379, 10.0.0.12:26379, 10.0.0.13:26379]
    master_name: cache
    login_password: "{{ redis_login_password }}"
  delegate_to: localhost

- name: Master gone, best replica 3 MB behind - accept the loss explicitly
  sre.runbooks.redis_failover:
    nodes: [10.0.0.11:6379, 10.0.0.12:6379, 10.0.0.13:6379]
    mode: promote
    max_lag_bytes: 4194304
    login_password: "{{ redis_login_password }}"
  delegate_to: localhost
"""

RETURN = r"""
master:
  description: The master after the run (in check mode - the master the plan leads to).
  returned: success
  type: str
  sample: 10.0.0.12:6379
previous_master:
  description: The master before the run (the address the replicas or sentinels pointed to when it is gone).
  returned: success
  type: str
  sample: 10.0.0.11:6379
method:
  description: V(none), V(repoint) (master kept, replicas re-pointed), V(failover), V(promote) or V(sentinel).
  returned: always
  type: str
  sample: failover
replicas:
  description: Every other reachable node after the run, with C(address), C(role), C(master), C(master_link_status), C(offset).
  returned: success
  type: list
  elements: dict
  sample: [{"address": "10.0.0.11:6379", "role": "replica", "master": "10.0.0.12:6379", "master_link_status": "up", "offset": 9120}]
unreachable_nodes:
  description: Nodes of the group that did not answer (not C(unreachable), which Ansible reserves for the host).
  returned: always
  type: list
  elements: str
  sample: [10.0.0.11:6379]
plan:
  description: The decision - C(method), C(master), C(previous_master), ordered C(steps) (C(action), C(target), ...) and C(reasons).
  returned: always
  type: dict
  sample: {"method": "promote", "steps": [{"action": "promote", "target": "10.0.0.12:6379"}], "reasons": ["no master answers"]}
actions:
  description: What was done, in order, each with C(timestamp) (UTC), C(action), C(target), C(result).
  returned: always
  type: list
  elements: dict
  sample: [{"timestamp": "2026-01-01T03:00:00.000Z", "action": "failover", "target": "10.0.0.12:6379", "result": "done"}]
guardrail:
  description: The guardrail that tripped (V(max_lag_bytes), V(max_lag_seconds), V(split_brain)).
  returned: when a guardrail tripped
  type: str
  sample: split_brain
verdict:
  description:
    - What is wrong and whether the module acts - C(state) (V(healthy), V(nodes_unreachable),
      V(replicas_astray), V(switchover), V(master_down), V(split_brain), V(master_busy),
      V(master_loading), V(master_partitioned), V(master_unconfirmed)), C(act), C(reason), and for
      a master that does not answer the C(evidence) (each replica's link state, the sentinels' flags).
  returned: success
  type: dict
  sample: {"state": "master_busy", "act": false, "reason": "10.0.0.11:6379 is busy, not down: ..."}
split_brain:
  description: Every master of a split group with C(address), C(keys), C(keyspace), C(offset), C(connected_followers).
  returned: when the split_brain guardrail tripped on several masters
  type: list
  elements: dict
  sample: [{"address": "10.0.0.11:6379", "keys": 120, "offset": 9120, "connected_followers": 1}]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped, action_record
from ansible_collections.sre.runbooks.plugins.module_utils._redis import (
    Address,
    ConnParams,
    Executor,
    RedisError,
    RedisModuleError,
    SplitBrain,
    each_at_once,
    plan_failover,
    probe_node,
    redis_argument_spec,
    require_redis,
    sentinel_master,
    sentinel_view,
)


def group_nodes(conn: ConnParams, params: dict) -> tuple[list[Address], list[dict], str | None]:
    """The group's node addresses, the sentinels' views and their agreed master (canonical)."""
    nodes = [Address.parse(n) for n in params["nodes"]]
    views: list[dict] = []
    agreed = None
    if params["sentinels"]:
        sentinels = [Address.parse(s, "sentinel") for s in params["sentinels"]]
        views = each_at_once(lambda s: sentinel_view(conn, s, params["master_name"]), sentinels)
        agreed = sentinel_master(views)
        if agreed is None:
            raise RedisModuleError("no sentinel answers: " + "; ".join(v["error"] for v in views))
        if not nodes:
            seen: dict[str, Address] = {}
            for view in (v for v in views if v.get("reachable")):
                if view["master_canonical"] == agreed:
                    seen.setdefault(agreed, Address.parse(view["master"]))
                for replica in view["replicas"]:
                    seen.setdefault(replica["canonical"], Address.parse(replica["address"]))
            nodes = list(seen.values())
    if len({n.canonical for n in nodes}) != len(nodes):
        raise RedisModuleError("nodes lists the same node twice: " + ", ".join(str(n) for n in nodes))
    return nodes, views, agreed


def topology(probes: list[dict]) -> dict:
    return {p["address"]: (p.get("role") if p.get("role") != "replica" else f"replica of {p.get('master')}")
            if p.get("reachable") else "unreachable" for p in probes}


def run_plan(module: AnsibleModule, conn: ConnParams, plan, probes: list[dict]) -> tuple[list[dict], list[dict]]:
    params = module.params
    ex = Executor(conn, probes, params["wait_timeout"], params["persist"])
    try:
        for step in plan.steps:
            if step["action"] == "failover":
                ex.failover(step["on"], step["target"])
            elif step["action"] == "promote":
                ex.promote(step["target"])
            elif step["action"] in ("replicaof", "demote"):
                ex.replicaof(step["target"], step["master"], step["action"])
            elif step["action"] == "sentinel_failover":
                ex.sentinel_failover([Address.parse(s, "sentinel") for s in params["sentinels"]],
                                     params["master_name"], step["target"], probes, params["wait_timeout"])
        others = [p["address"] for p in probes if p.get("reachable") and p["address"] != plan.master]
        final = ex.wait_converged(plan.master, others)
    except RedisModuleError as exc:
        module.fail_json(msg=str(exc), changed=bool(ex.actions), actions=ex.actions, plan=plan.as_dict(),
                         method=plan.method, unreachable_nodes=plan.unreachable)
    except RedisError as exc:
        done = ", ".join(f"{a['action']} {a['target']}" for a in ex.actions) or "nothing"
        module.fail_json(msg=f"Redis refused a step of the {plan.method} plan: {exc}; done so far: {done}. "
                             "Check the node's logs and ACL permissions (REPLICAOF, FAILOVER, CONFIG), then run again",
                         changed=bool(ex.actions), actions=ex.actions, plan=plan.as_dict(), method=plan.method,
                         unreachable_nodes=plan.unreachable)
    except Exception as exc:  # pylint: disable=broad-except
        # Whatever broke after the first action, the caller must learn what was already done.
        done = ", ".join(f"{a['action']} {a['target']}" for a in ex.actions) or "nothing"
        module.fail_json(msg=f"unexpected error during the {plan.method} plan: {exc!r}; done so far: {done}. "
                             "Check the group with redis_health_info before running again",
                         exception=traceback.format_exc(), changed=bool(ex.actions), actions=ex.actions,
                         plan=plan.as_dict(), method=plan.method, unreachable_nodes=plan.unreachable)
    return ex.actions, final


def main() -> None:
    argument_spec = redis_argument_spec(sentinel=True)
    argument_spec.update(
        nodes=dict(type="list", elements="str", default=[]),
        target=dict(type="str"),
        mode=dict(type="str", default="auto", choices=["auto", "failover", "promote", "sentinel"]),
        force=dict(type="bool", default=False),
        min_master_down_seconds=dict(type="float", default=10),
        max_lag_bytes=dict(type="int", default=1048576),
        max_lag_seconds=dict(type="float", default=10),
        wait_timeout=dict(type="float", default=30),
        persist=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_redis(module)
    params = module.params
    if not params["nodes"] and not params["sentinels"]:
        module.fail_json(msg="the replication group is empty: give nodes (host:port list) or sentinels + master_name")
    if params["sentinels"] and not params["master_name"]:
        module.fail_json(msg="sentinels needs master_name: the name the sentinels monitor the master under")
    if params["mode"] == "sentinel" and not params["sentinels"]:
        module.fail_json(msg="mode sentinel needs sentinels and master_name")
    if params["wait_timeout"] <= 0:
        module.fail_json(msg="wait_timeout must be positive")
    conn = ConnParams(params)
    probes: list[dict] = []
    try:
        nodes, views, agreed = group_nodes(conn, params)
        target = Address.parse(params["target"], "target").canonical if params["target"] else None
        probes = each_at_once(lambda n: probe_node(conn, n), nodes)
        plan = plan_failover(
            probes, target=target, mode=params["mode"], force=params["force"],
            max_lag_bytes=None if params["max_lag_bytes"] < 0 else params["max_lag_bytes"],
            max_lag_seconds=None if params["max_lag_seconds"] < 0 else params["max_lag_seconds"],
            sentinel_master_canonical=agreed, min_master_down_seconds=params["min_master_down_seconds"],
            sentinel_views=views)
    except GuardrailTripped as exc:
        extra = {"split_brain": exc.masters} if isinstance(exc, SplitBrain) else {}
        module.fail_json(msg=str(exc), guardrail=exc.guardrail, changed=False, actions=[], method="none",
                         verdict={"state": exc.guardrail if isinstance(exc, SplitBrain) else "guardrail",
                                  "act": False, "reason": str(exc)},
                         unreachable_nodes=[p["address"] for p in probes if not p.get("reachable")], **extra)
    except RedisModuleError as exc:
        module.fail_json(msg=str(exc), changed=False, actions=[], method="none", unreachable_nodes=[])

    result = dict(changed=plan.changes, method=plan.method, master=plan.master,
                  previous_master=plan.previous_master, unreachable_nodes=plan.unreachable, plan=plan.as_dict(),
                  verdict=plan.verdict)
    if module.check_mode or not plan.changes:
        result["actions"] = [action_record(s["action"], s["target"], "check mode",
                                           **{k: v for k, v in s.items() if k not in ("action", "target")})
                             for s in plan.steps]
        final = probes
    else:
        result["actions"], final = run_plan(module, conn, plan, probes)
    result["replicas"] = [{"address": p["address"], "role": p.get("role"), "master": p.get("master"),
                           "master_link_status": p.get("master_link_status"), "offset": p.get("offset")}
                          for p in final if p.get("reachable") and p["address"] != plan.master]
    if module._diff:
        before = topology(probes)
        if module.check_mode or not plan.changes:
            after = {a: ("master" if a == plan.master else
                         ("unreachable" if r == "unreachable" else f"replica of {plan.master}"))
                     for a, r in before.items()} if plan.changes else before
        else:
            after = dict(before, **topology(final))
        result["diff"] = dict(before=dict(master=plan.previous_master, nodes=before),
                              after=dict(master=plan.master, nodes=after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
