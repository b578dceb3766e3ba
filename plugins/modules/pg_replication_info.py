#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_replication_info
short_description: Report a PostgreSQL streaming replication group - who answers, who is primary, who streams, the lag
version_added: 0.1.0
description:
  - Read-only. Probes every node of O(nodes) at once, one connection and one query per node.
  - For each node - whether it answers and, when not, why (C(refused) - the host is up but PostgreSQL
    is not running; C(too_many_clients) - running and busy; C(starting_up), C(shutting_down),
    C(in_recovery) - running; C(auth); C(timeout) or C(unreachable) - the host is gone or the path is
    cut); its role (primary or standby), timeline, WAL positions (C(pg_current_wal_lsn),
    C(pg_last_wal_receive_lsn), C(pg_last_wal_replay_lsn)), the received-but-not-replayed bytes, the
    age of the last replayed transaction, its WAL receiver (status, upstream, age of the last message),
    C(pg_stat_replication) as a primary sees it (with replay lag in bytes and seconds), replication
    slots with the WAL each retains, the WAL directory size and the databases' size.
  - RV(summary) names the primaries, the standbys (with their upstream, whether they stream, their
    replay lag behind the one primary) and the nodes that do not answer.
author:
  - sre.runbooks maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.postgres_nodes
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Reads only.
options: {}
seealso:
  - module: sre.runbooks.pg_failover
"""

EXAMPLES = r"""
- name: Where is the primary, and does every standby stream from it?
  sre.runbooks.pg_replication_info:
    nodes: [db1.example.com:5432, db2.example.com:5432]
    login_user: monitor
    login_password: "{{ vault_pg_monitor_password }}"
  delegate_to: localhost
  run_once: true
  register: pg_repl

- name: Show the lag of every standby
  ansible.builtin.debug:
    msg: "{{ item.node }} streams from {{ item.upstream }}, {{ item.replay_lag_bytes }} bytes behind"
  loop: "{{ pg_repl.summary.standbys }}"
"""

RETURN = r"""
nodes:
  description:
    - One entry per node, in the order of O(nodes) - C(node), C(reachable), C(host_up), C(role)
      (V(primary), V(standby), V(unknown)), C(probe_seconds); when it does not answer C(error_kind),
      C(error), C(reason); when it does C(timeline), C(system_identifier), C(current_lsn),
      C(receive_lsn), C(replay_lsn), C(receive_replay_lag_bytes), C(last_replay_age_seconds),
      C(wal_receiver), C(upstream), C(replication), C(slots), C(wal_bytes), C(databases_bytes),
      C(data_directory), C(max_connections), C(client_backends), C(server_version).
  returned: always
  type: list
  elements: dict
  sample:
    - {"node": "db1:5432", "reachable": true, "role": "primary", "timeline": 1, "current_lsn": "0/3000148",
       "replication": [{"application_name": "db2", "state": "streaming", "replay_lag_bytes": 0}],
       "slots": [{"slot_name": "db2", "active": true, "retained_wal_bytes": 56}]}
    - {"node": "db2:5432", "reachable": false, "host_up": true, "error_kind": "refused", "role": "unknown"}
summary:
  description: C(primaries), C(primary) (the one primary, or null), C(standbys) (C(node), C(upstream),
    C(streaming), C(timeline), C(receive_lsn), C(replay_lsn), C(replay_lag_bytes), C(last_msg_age_seconds)),
    C(unreachable_nodes).
  returned: always
  type: dict
  sample: {"primaries": ["db1:5432"], "primary": "db1:5432", "unreachable_nodes": [],
           "standbys": [{"node": "db2:5432", "upstream": "db1:5432", "streaming": true, "replay_lag_bytes": 0}]}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._pg_replication import (
    NodeError,
    nodes_argument_spec,
    parse_nodes,
    probe_all,
    summarize,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import PSYCOPG2_IMPORT_ERROR


def main() -> None:
    module = AnsibleModule(argument_spec=nodes_argument_spec(), supports_check_mode=True)
    if PSYCOPG2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    if module.params["connect_timeout"] < 1:
        module.fail_json(msg="connect_timeout must be at least 1 second")
    try:
        nodes = parse_nodes(module.params["nodes"])
    except NodeError as exc:
        module.fail_json(msg=str(exc))
    probes = probe_all(module.params, nodes)
    module.exit_json(changed=False, nodes=probes, summary=summarize(probes))


if __name__ == "__main__":
    main()
