#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_activity_info
short_description: Report PostgreSQL connection usage, long queries, lock waits and sizes
version_added: 0.1.0
description:
  - Read-only health assessment of a PostgreSQL server for the connection exhaustion, lock
    contention and slow query runbooks, in two round trips at most.
  - Reports C(max_connections) and the reserved slots, client connections by state, database,
    user and application, utilisation, the oldest idle and idle-in-transaction sessions,
    active queries running longer than O(long_query_threshold), blocked sessions with the
    PIDs, lock modes and relations that block them, the blocking tree (root blockers, their
    waiters, lock modes, relations, transaction and wait ages), database sizes, and the slowest
    statements from C(pg_stat_statements) when that extension is installed.
  - Every query text it returns (long-running queries, waiters, blockers, the lock tree, the top
    statements) has its string and number literals replaced by C(?) and secret-looking values
    masked, then is cut to O(query_text_limit). The statement's shape stays; customer data
    (e-mail addresses, tokens, ids) and passwords do not.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.postgres
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
  long_query_threshold:
    description:
      - Active queries running longer than this are listed in RV(long_running).
      - Seconds, or a duration such as V(30s), V(5m), V(1h).
    type: str
    default: 60s
  top_statements:
    description:
      - How many statements to report from C(pg_stat_statements), slowest mean time first.
      - V(0) skips the query.
    type: int
    default: 10
  query_text_limit:
    description:
      - Query texts are cut to this many characters (literals are redacted first).
    type: int
    default: 200
"""

EXAMPLES = r"""
- name: Assess connection usage over the local socket as the postgres OS user
  sre.runbooks.pg_activity_info:
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: pg

- name: Assess from the controller over TCP
  sre.runbooks.pg_activity_info:
    login_host: db1.example.com
    login_port: 5432
    login_user: monitor
    login_password: "{{ vault_pg_monitor_password }}"
    long_query_threshold: 30s
  delegate_to: localhost
  register: pg

- name: Page when utilisation is high
  ansible.builtin.debug:
    msg: "{{ pg.utilisation_percent }}% of {{ pg.usable_connections }} slots used"
  when: pg.utilisation_percent > 80
"""

RETURN = r"""
server_version:
  description: Server version string.
  returned: success
  type: str
  sample: "15.18 (Debian 15.18-0+deb12u1)"
max_connections:
  description: The C(max_connections) setting.
  returned: success
  type: int
  sample: 100
superuser_reserved_connections:
  description: Slots only superusers may use.
  returned: success
  type: int
  sample: 3
usable_connections:
  description: C(max_connections) minus the superuser reserved slots.
  returned: success
  type: int
  sample: 97
client_backends:
  description: Client sessions, this module's own included.
  returned: success
  type: int
  sample: 88
total_backends:
  description: All server processes shown in C(pg_stat_activity), background workers included.
  returned: success
  type: int
  sample: 94
utilisation_percent:
  description: RV(client_backends) as a percentage of RV(usable_connections).
  returned: success
  type: float
  sample: 90.7
is_superuser:
  description: Whether the login role is a superuser (others may see less of other sessions).
  returned: success
  type: bool
by_state:
  description: Client sessions per state.
  returned: success
  type: dict
  sample: {"active": 3, "idle": 80, "idle in transaction": 5}
by_database:
  description: Client sessions per database.
  returned: success
  type: dict
by_user:
  description: Client sessions per role.
  returned: success
  type: dict
by_application:
  description: Client sessions per C(application_name).
  returned: success
  type: dict
by_backend_type:
  description: All server processes per backend type.
  returned: success
  type: dict
oldest_idle_seconds:
  description: Age in seconds of the longest-idle session, or null.
  returned: success
  type: float
oldest_idle_in_transaction_seconds:
  description: Age in seconds of the oldest idle-in-transaction session, or null.
  returned: success
  type: float
long_running:
  description: Active queries older than O(long_query_threshold), longest first (at most 50).
  returned: success
  type: list
  elements: dict
  contains:
    pid: {description: Backend PID., type: int}
    user: {description: Role., type: str}
    database: {description: Database., type: str}
    application: {description: C(application_name)., type: str}
    client_addr: {description: "Client address, null for the unix socket.", type: str}
    duration_seconds: {description: Time since the query started., type: float}
    wait_event_type: {description: "What it waits on, if anything.", type: str}
    wait_event: {description: Wait event name., type: str}
    query: {description: "Query text, literals redacted, secrets masked, truncated.", type: str}
blocked:
  description: Sessions waiting for a lock, longest wait first (at most 50).
  returned: success
  type: list
  elements: dict
  contains:
    pid: {description: The waiting backend., type: int}
    blocking_pids: {description: Backends holding the lock it needs (C(pg_blocking_pids))., type: list, elements: int}
    wait_seconds: {description: Time since its state last changed., type: float}
    waiting_for:
      description:
        - "Lock requests not granted: C(mode), C(locktype), C(relation) (its name, resolved in the
          lock's own database), C(relation_oid) and C(database)."
      type: list
      elements: dict
    query: {description: "Query text, literals redacted, secrets masked, truncated.", type: str}
blocking:
  description:
    - Sessions that block at least one other, with the relation locks they hold (C(holding)) and
      their last query (C(query), literals redacted).
  returned: success
  type: list
  elements: dict
blocking_pids:
  description: PIDs of every session that blocks another.
  returned: success
  type: list
  elements: int
lock_tree:
  description:
    - The blocking tree, from the same single read (C(pg_blocking_pids)) - one entry per root
      blocker (a session that blocks others and waits for nobody), most waiters first. Waiters
      behind a chain count for the root at its top.
  returned: success
  type: list
  elements: dict
  contains:
    pid: {description: "The root blocker; V(0) for a prepared transaction.", type: int}
    prepared_transaction: {description: "The lock is held by a prepared transaction (no session to signal).", type: bool}
    known: {description: Whether the blocker's session was read (false for a prepared transaction)., type: bool}
    user: {description: Role., type: str}
    database: {description: Database., type: str}
    application: {description: C(application_name)., type: str}
    state: {description: "Session state (V(active), V(idle in transaction), ...).", type: str}
    backend_type: {description: "V(client backend), V(walsender), V(autovacuum worker), ...", type: str}
    superuser: {description: Whether its role is a superuser., type: bool}
    transaction_age_seconds: {description: Age of its open transaction; null outside one., type: float}
    state_age_seconds: {description: Time in its current state., type: float}
    query: {description: "Its last query, literals redacted, secrets masked, truncated.", type: str}
    holding: {description: "Granted relation and advisory locks it holds (C(mode), C(locktype), C(relation), C(advisory)).", type: list, elements: dict}
    direct_waiters: {description: Sessions waiting for it directly., type: int}
    waiters: {description: "Sessions waiting behind it, directly or through a chain.", type: int}
    waiter_pids: {description: "Their PIDs (at most 1000).", type: list, elements: int}
    longest_wait_seconds: {description: Longest lock wait among them., type: float}
    waiting_modes: {description: Lock modes they wait for., type: list, elements: str}
    relations: {description: Relations involved (waited for or held)., type: list, elements: str}
    sample_waiters:
      description: "The five longest waiters: C(pid), C(user), C(application), C(wait_seconds), C(waiting_for), C(blocked_by), C(query)."
      type: list
      elements: dict
lock_summary:
  description: Counts of the lock waits.
  returned: success
  type: dict
  contains:
    blocked_sessions: {description: Sessions waiting for a lock., type: int}
    root_blockers: {description: Entries in RV(lock_tree)., type: int}
    longest_wait_seconds: {description: The longest current lock wait; null when none., type: float}
    blocked_pids: {description: Every waiting session's PID., type: list, elements: int}
    deadlocked_pids:
      description: "Sessions waiting in a cycle with no root (a deadlock the server breaks after C(deadlock_timeout))."
      type: list
      elements: int
    truncated: {description: More than 5000 sessions were involved and the tree is incomplete., type: bool}
  sample: {"blocked_sessions": 200, "root_blockers": 1, "longest_wait_seconds": 41.2, "blocked_pids": [4242], "deadlocked_pids": [], "truncated": false}
database_sizes:
  description: Size in bytes of every database the login role may connect to.
  returned: success
  type: dict
  sample: {"postgres": 7631663, "app": 8025891}
statements:
  description: Slowest statements by mean execution time from C(pg_stat_statements).
  returned: success
  type: dict
  contains:
    available: {description: Whether C(pg_stat_statements) could be read., type: bool}
    reason: {description: Why it is unavailable., type: str, returned: when not available}
    top_by_mean_time:
      description: Statements with C(query) (literals redacted), C(calls), C(mean_ms), C(total_ms), C(rows).
      type: list
      elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    activity_overview,
    connect,
    postgres_argument_spec,
    finish_lock_tree,
    resolve_other_database_relations,
)
from ansible_collections.sre.runbooks.plugins.module_utils._pg_statements import redact_activity


def main() -> None:
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        long_query_threshold=dict(type="str", default="60s"),
        top_statements=dict(type="int", default=10),
        query_text_limit=dict(type="int", default=200),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        long_query_seconds = parse_duration(module.params["long_query_threshold"], "long_query_threshold")
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if module.params["top_statements"] < 0:
        module.fail_json(msg="top_statements must be 0 or more")
    if module.params["query_text_limit"] < 1:
        module.fail_json(msg="query_text_limit must be at least 1")

    conn = connect(module)
    try:
        overview = activity_overview(conn, long_query_seconds, module.params["top_statements"],
                                     query_limit=module.params["query_text_limit"])
        resolve_other_database_relations(overview, lambda dbname: connect(module, dbname=dbname, fatal=False))
        redact_activity(overview, module.params["query_text_limit"])
        finish_lock_tree(overview)
    finally:
        conn.close()
    module.exit_json(changed=False, **overview)


if __name__ == "__main__":
    main()
