#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pgbouncer_repoint
short_description: Point pgbouncer's [databases] entries at a PostgreSQL server (after a failover) and RELOAD
version_added: 0.2.0
description:
  - Target state - the selected entries of the C([databases]) section of O(config) point at O(host):O(port),
    and the running pgbouncer serves them from there. Runs on the pooler's host (it edits the file).
  - Only C(host=) and C(port=) of each entry's connection string change; C(dbname), C(user), a
    password and pool settings stay as written. The file is replaced atomically, owner and mode kept.
  - After a change it sends C(RELOAD) on the admin console and reads C(SHOW DATABASES) back. pgbouncer
    closes the server connections of a re-pointed database as they are released (transaction pooling -
    at the end of the current transaction), so new transactions reach the new server.
  - A file already right but a pgbouncer still serving from the old server (a RELOAD that failed
    earlier) is reloaded again. A file and a pgbouncer already right - C(changed=false).
  - Never returns a password - entries are described by name, host and port.
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Says which entries it would re-point (from, to) and whether it would RELOAD; changes nothing.
  diff_mode:
    support: full
    description: Each re-pointed entry's host:port before and after.
  idempotent:
    support: full
    description: A second run reports C(changed=false).
options:
  config:
    description: Path of pgbouncer.ini on the host that runs the module.
    type: path
    required: true
  host:
    description: The server the entries must point at (the new primary), as pgbouncer reaches it.
    type: str
    required: true
  port:
    description: Its port.
    type: int
    default: 5432
  databases:
    description:
      - Names of the C([databases]) entries to re-point (C(*) is the fallback entry). Default - every
        entry. A name the file does not have fails the module (nothing is written).
    type: list
    elements: str
  admin_host:
    description: Where pgbouncer's admin console listens (an address, or its C(unix_socket_dir)).
    type: str
    default: 127.0.0.1
  admin_port:
    description: pgbouncer's C(listen_port).
    type: int
    default: 6432
  admin_user:
    description: A user listed in C(admin_users) of O(config).
    type: str
    default: pgbouncer
  admin_password:
    description: Its password. Never logged or returned.
    type: str
  connect_timeout:
    description: Seconds to wait for the admin console.
    type: int
    default: 5
  reload:
    description: Send C(RELOAD) after a change (and when the running pgbouncer still serves from elsewhere).
      V(false) only edits the file (pgbouncer picks it up at its next reload or restart).
    type: bool
    default: true
requirements:
  - psycopg2 (or psycopg2-binary) on the host that runs the module (for the admin console)
seealso:
  - module: sre.runbooks.pg_failover
  - name: pgbouncer admin console
    description: SHOW DATABASES, RELOAD.
    link: https://www.pgbouncer.org/usage.html#admin-console
"""

EXAMPLES = r"""
- name: Point the pooler at the new primary
  sre.runbooks.pgbouncer_repoint:
    config: /etc/pgbouncer/pgbouncer.ini
    host: "{{ (failover.primary | split(':'))[0] }}"
    port: "{{ (failover.primary | split(':'))[-1] | int }}"
    admin_user: postgres
    admin_password: "{{ vault_pgbouncer_admin_password }}"
  delegate_to: "{{ groups['poolers'] }}"
"""

RETURN = r"""
changes:
  description: The entries re-pointed (or, in check mode, that would be), with C(name), C(before), C(after) (host:port).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "app", "before": "db1:5432", "after": "db2:5432"}]
reloaded:
  description: Whether C(RELOAD) was sent (in check mode - whether it would be).
  returned: always
  type: bool
live:
  description: C(SHOW DATABASES) after the run, C(name), C(host), C(port) of each database (admin database excluded).
  returned: when the admin console answered
  type: list
  elements: dict
stale:
  description: Databases the running pgbouncer still serves from elsewhere (after the run; empty when healed).
  returned: when the admin console answered
  type: list
  elements: dict
actions:
  description: What was done (or would be), each with C(timestamp), C(action), C(target), C(result).
  returned: always
  type: list
  elements: dict
"""

import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record
from ansible_collections.sre.runbooks.plugins.module_utils._pgbouncer import (
    ConfigError,
    databases,
    plan_repoint,
    stale_live,
    target_name,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import PSYCOPG2_IMPORT_ERROR, psycopg2
from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_text


def admin(params: dict, statement: str) -> list[dict]:
    kwargs = dict(host=params["admin_host"], port=params["admin_port"], user=params["admin_user"],
                  dbname="pgbouncer", connect_timeout=params["connect_timeout"])
    if params.get("admin_password"):
        kwargs["password"] = params["admin_password"]
    conn = psycopg2.connect(**kwargs)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            if cur.description is None:
                return []
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        conn.close()


def show_databases(params: dict) -> list[dict]:
    return [{"name": r.get("name"), "host": r.get("host"), "port": r.get("port")}
            for r in admin(params, "SHOW DATABASES") if r.get("name") != "pgbouncer"]


def write_atomic(module: AnsibleModule, path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".pgbouncer_repoint.", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    module.atomic_move(tmp, path)  # keeps the owner, group and mode of the file it replaces


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="path", required=True),
            host=dict(type="str", required=True),
            port=dict(type="int", default=5432),
            databases=dict(type="list", elements="str"),
            admin_host=dict(type="str", default="127.0.0.1"),
            admin_port=dict(type="int", default=6432),
            admin_user=dict(type="str", default="pgbouncer"),
            admin_password=dict(type="str", no_log=True),
            connect_timeout=dict(type="int", default=5),
            reload=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if PSYCOPG2_IMPORT_ERROR is not None and params["reload"]:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    if not params["host"].strip() or not 0 < params["port"] < 65536:
        module.fail_json(msg="host must not be empty and port must be 1-65535")
    path, host, port, names = params["config"], params["host"], params["port"], params["databases"]
    target = target_name(host, port)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        new_text, changes = plan_repoint(text, host, port, names)
    except (OSError, ConfigError) as exc:
        module.fail_json(msg=f"cannot re-point {path}: {exc}", changed=False, actions=[], changes=[])

    result: dict = dict(changed=False, changes=changes, reloaded=False, actions=[])
    if module._diff and changes:
        result["diff"] = dict(before_header=path, after_header=path,
                              before={c["name"]: c["before"] for c in changes},
                              after={c["name"]: c["after"] for c in changes})

    def console_error(exc: Exception) -> str:
        return (f"pgbouncer's admin console at {params['admin_host']}:{params['admin_port']} as "
                f"{params['admin_user']}: {mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}")

    stale: list[dict] = []
    if params["reload"]:
        try:
            stale = stale_live(show_databases(params), databases(new_text), host, port, names)
        except Exception as exc:  # pylint: disable=broad-except
            if not changes or not module.check_mode:
                module.fail_json(msg=f"cannot read {console_error(exc)}; is pgbouncer running, is the user in "
                                     "admin_users?", changed=False, actions=[], changes=changes)
            stale = []
    must_reload = params["reload"] and bool(changes or stale)

    if module.check_mode:
        result["actions"] = ([action_record("rewrite", path, "check mode", entries=changes, to=target)]
                             if changes else [])
        if must_reload:
            result["actions"].append(action_record("reload", "pgbouncer", "check mode", stale=stale))
        result.update(changed=bool(changes or must_reload), reloaded=must_reload, stale=stale)
        module.exit_json(**result)

    actions: list[dict] = []
    try:
        if changes:
            write_atomic(module, path, new_text)
            actions.append(action_record("rewrite", path, "done", entries=changes, to=target))
        if must_reload:
            admin(params, "RELOAD")
            actions.append(action_record("reload", "pgbouncer", "done", stale_before=stale))
            result["reloaded"] = True
        if params["reload"]:
            live = show_databases(params)
            result["live"] = live
            result["stale"] = stale_live(live, databases(new_text), host, port, names)
    except Exception as exc:  # pylint: disable=broad-except
        done = ", ".join(f"{a['action']} {a['target']}" for a in actions) or "nothing"
        module.fail_json(msg=f"re-pointing pgbouncer to {target} failed: {console_error(exc)}; done so far: {done}",
                         exception=traceback.format_exc(), changed=bool(actions), actions=actions, changes=changes)
    result.update(changed=bool(actions), actions=actions)
    if result.get("stale"):
        module.fail_json(msg=f"after RELOAD pgbouncer still serves {', '.join(s['name'] for s in result['stale'])} "
                             f"from elsewhere ({', '.join(s['live'] for s in result['stale'])}), not {target}",
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
