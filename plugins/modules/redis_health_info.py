#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_health_info
short_description: Health of Redis nodes and the sentinels' view of their master
version_added: 0.1.0
description:
  - Answers the first questions of a Redis outage for a node, or for every node of a group in one
    call (O(nodes)) - does it answer and how
    fast (PING round trip), is it master or replica, how far behind are its replicas, is memory
    full and what is being evicted, are clients blocked or rejected, is the keyspace hit rate
    low, did the last save fail.
  - When O(sentinels) and O(master_name) are given, also returns each sentinel's view of the
    master - its address, whether the sentinel considers it subjectively or objectively down,
    and whether enough sentinels are reachable to authorise a failover (C(SENTINEL CKQUORUM)).
  - An unreachable node or sentinel is reported (RV(node.reachable=false), with the error), not a
    failure, so an assessment of a broken group completes. Wrong credentials and an unknown
    O(master_name) fail, because nothing later can work with them.
  - Read-only, except the optional O(write_check).
author:
  - sre.runbooks maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.redis
  - sre.runbooks.redis.node
  - sre.runbooks.redis.sentinel
attributes:
  check_mode:
    support: full
    description: Reads the same data; O(write_check) is skipped in check mode.
  diff_mode:
    support: none
    description: Read-only; nothing to diff.
  idempotent:
    support: full
    description: Never changes the node; the write check deletes its own key.
options:
  nodes:
    description:
      - Assess these nodes (C(host:port), C([ipv6]:port)) instead of O(login_host) and O(login_port),
        all at once, in one module run - what an assessment of a replication group wants.
      - Each node's health is returned in RV(nodes), in the order given; RV(node) is then the first.
      - Every node is reached with the same credentials and TLS settings.
    type: list
    elements: str
  write_check:
    description:
      - Also SET, GET and DEL a key of its own (C(sre-runbooks:write-check:*), 60 second expiry)
        to prove the node accepts writes now. Fails the check (not the module) on a replica.
      - Skipped in check mode.
    type: bool
    default: false
seealso:
  - module: sre.runbooks.redis_failover
"""

EXAMPLES = r"""
- name: Assess a Redis node from the controller
  sre.runbooks.redis_health_info:
    login_host: 10.0.0.11
    login_port: 6379
    login_password: "{{ redis_login_password }}"
  delegate_to: localhost
  register: redis_health

- name: Assess the master and ask three sentinels what they see
  sre.runbooks.redis_health_info:
    login_host: 10.0.0.11
    login_password: "{{ redis_login_password }}"
    sentinels: [10.0.0.11:26379, 10.0.0.12:26379, 10.0.0.13:26379]
    master_name: cache
  delegate_to: localhost
  register: redis_health

- name: Assess every node of a replication group and the sentinels, in one call
  sre.runbooks.redis_health_info:
    nodes: [10.0.0.11:6379, 10.0.0.12:6379, 10.0.0.13:6379]
    login_password: "{{ redis_login_password }}"
    sentinels: [10.0.0.11:26379, 10.0.0.12:26379, 10.0.0.13:26379]
    master_name: cache
  delegate_to: localhost
  register: redis_group

- name: Prove the node takes writes
  sre.runbooks.redis_health_info:
    login_host: 10.0.0.11
    login_password: "{{ redis_login_password }}"
    write_check: true
  delegate_to: localhost
  register: redis_write

- name: Fail when replication is broken
  ansible.builtin.assert:
    that: redis_health.node.replication.master_link_status | default('up') == 'up'
"""

RETURN = r"""
nodes:
  description:
    - The health of every node assessed, in the order of O(nodes) (or only the O(login_host) node),
      each with the keys of RV(node).
  returned: always
  type: list
  elements: dict
  sample: [{"address": "10.0.0.11:6379", "reachable": true, "role": "master"},
           {"address": "10.0.0.12:6379", "reachable": false, "error": "cannot connect ..."}]
node:
  description:
    - The node's health (with O(nodes), the first node's). Only RV(node.address) and RV(node.reachable)
      (plus RV(node.error)) when it does not answer.
  returned: always
  type: dict
  contains:
    address:
      description: The node, as C(host:port).
      type: str
      sample: 10.0.0.11:6379
    reachable:
      description: Whether the node answered PING.
      type: bool
      sample: true
    error:
      description: Why the node is not reachable.
      type: str
      returned: when not reachable
      sample: "cannot connect to Redis at 10.0.0.11:6379: Connection refused; is the process running?"
    error_kind:
      description:
        - V(unreachable) (refused, timed out), V(busy) (answers C(max number of clients reached)) or
          V(loading) (answers C(LOADING)) - a busy or loading node is alive, not down.
      type: str
      returned: when not reachable
      sample: busy
    ping_ms:
      description: PING round trip in milliseconds.
      type: float
      sample: 0.21
    role:
      description: V(master) or V(replica).
      type: str
      sample: master
    server:
      description: Version, uptime in seconds, mode (standalone/sentinel/cluster) and process id.
      type: dict
      sample: {"version": "7.0.15", "uptime_seconds": 3600, "mode": "standalone", "process_id": 4242}
    replication:
      description:
        - From C(INFO replication). On a master - C(offset), C(failover_state), C(connected_replicas)
          and C(replicas) (each with C(address), C(state), C(offset), C(lag_bytes), C(lag_seconds)).
        - On a replica - C(master), C(master_link_status), C(master_link_down_since_seconds),
          C(master_last_io_seconds_ago), C(sync_in_progress), C(offset).
      type: dict
      sample: {"role": "replica", "master": "10.0.0.11:6379", "master_link_status": "up", "offset": 5120}
    memory:
      description: >-
        C(used_bytes), C(used_human), C(peak_bytes), C(maxmemory_bytes) (0 means no limit),
        C(maxmemory_policy), C(used_ratio) (used/maxmemory, null without a limit),
        C(fragmentation_ratio), C(evicted_keys).
      type: dict
      sample: {"used_bytes": 1048576, "maxmemory_bytes": 0, "maxmemory_policy": "noeviction", "used_ratio": null}
    clients:
      description: C(connected), C(blocked), C(rejected_connections), C(maxclients).
      type: dict
      sample: {"connected": 12, "blocked": 0, "rejected_connections": 0, "maxclients": 10000}
    stats:
      description: >-
        C(ops_per_sec), C(keyspace_hits), C(keyspace_misses), C(hit_rate) (null before any lookup),
        C(expired_keys), C(total_commands_processed), C(keys) (all databases).
      type: dict
      sample: {"ops_per_sec": 1500, "hit_rate": 0.93, "keys": 10234}
    persistence:
      description: >-
        C(loading), C(rdb_last_save_status), C(rdb_last_save_time), C(rdb_changes_since_last_save),
        C(rdb_bgsave_in_progress), C(aof_enabled), C(aof_last_write_status), C(aof_rewrite_in_progress).
      type: dict
      sample: {"rdb_last_save_status": "ok", "aof_enabled": false}
    write_check:
      description: Result of O(write_check) - C(ok) and C(round_trip_ms), or C(ok=false) and C(error).
      type: dict
      returned: when O(write_check=true), not in check mode
      sample: {"ok": true, "round_trip_ms": 0.6}
sentinels:
  description: Each sentinel's view of O(master_name), in the order given. Empty without O(sentinels).
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: The sentinel.
      type: str
      sample: 10.0.0.11:26379
    reachable:
      description: Whether the sentinel answered.
      type: bool
    master:
      description: The master address this sentinel reports.
      type: str
      sample: 10.0.0.11:6379
    sdown:
      description: This sentinel considers the master subjectively down.
      type: bool
    odown:
      description: The sentinels agree the master is objectively down.
      type: bool
    failover_in_progress:
      description: A failover of this master is running.
      type: bool
    quorum:
      description: Configured quorum.
      type: int
    num_other_sentinels:
      description: Other sentinels this one knows.
      type: int
    quorum_reachable:
      description: C(SENTINEL CKQUORUM) succeeded - enough sentinels are reachable to fail over.
      type: bool
    quorum_message:
      description: The C(CKQUORUM) reply.
      type: str
    replicas:
      description: The replicas this sentinel knows, with C(address), C(flags), C(master_link_status), C(offset), C(priority).
      type: list
      elements: dict
sentinel_master:
  description: The master address most reachable sentinels agree on; null without sentinels.
  returned: always
  type: str
  sample: 10.0.0.11:6379
"""

import functools

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._redis import (
    Address,
    ConnParams,
    RedisModuleError,
    each_at_once,
    health,
    redis_argument_spec,
    require_redis,
    sentinel_master,
    sentinel_view,
)


def main() -> None:
    argument_spec = redis_argument_spec(node=True, sentinel=True)
    argument_spec.update(nodes=dict(type="list", elements="str"),
                         write_check=dict(type="bool", default=False))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_redis(module)
    params = module.params
    if params["sentinels"] and not params["master_name"]:
        module.fail_json(msg="sentinels needs master_name: the name the sentinels monitor the master under")
    if params["nodes"] is not None and not params["nodes"]:
        module.fail_json(msg="nodes is empty: list the nodes to assess as host:port, or leave it out "
                             "and give login_host and login_port")
    conn = ConnParams(params)
    write_check = params["write_check"] and not module.check_mode
    try:
        addresses = ([Address.parse(n) for n in params["nodes"]] if params["nodes"]
                     else [Address(params["login_host"], params["login_port"])])
        sentinels = [Address.parse(s, "sentinel") for s in params["sentinels"]]
        # Nodes and sentinels are asked together: the slowest one sets the pace.
        answers = each_at_once(lambda ask: ask(), [
            *(functools.partial(health, conn, a, write_check=write_check) for a in addresses),
            *(functools.partial(sentinel_view, conn, s, params["master_name"]) for s in sentinels)])
    except RedisModuleError as exc:
        module.fail_json(msg=str(exc))
    nodes, views = answers[:len(addresses)], answers[len(addresses):]
    agreed = sentinel_master(views)
    by_canon = {v.get("master_canonical"): v.get("master") for v in views}
    module.exit_json(changed=False, node=nodes[0], nodes=nodes, sentinels=views,
                     sentinel_master=by_canon.get(agreed) if agreed else None)


if __name__ == "__main__":
    main()
