#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_rejoin
short_description: Rejoin a fenced old PostgreSQL primary as a standby of the new primary (pg_rewind)
version_added: 0.3.0
description:
  - Target state - O(node) is a standby streaming from O(primary). Run it on the host that holds the old
    primary's data directory (O(data_directory)), after a failover (M(sre.runbooks.pg_failover)) promoted
    O(primary).
  - A node already streaming from O(primary) reports C(changed=false). Otherwise the module refuses (fails
    with RV(guardrail), changes nothing) unless every one of these holds - O(node) is not O(primary);
    O(primary) answers as a primary; O(node) does not answer and its postmaster does not run (C(pg_ctl status));
    its control file says it was stopped cleanly (C(shut down) or C(shut down in recovery)); it has
    C(wal_log_hints=on) or data checksums; O(primary) runs with C(full_page_writes=on); both belong to the
    same cluster (system identifier); and an old primary's timeline is behind O(primary)'s.
  - Then C(pg_rewind --target-pgdata --source-server) runs (as the data directory's owner; as root through
    C(runuser)). The password goes into a passfile (mode 0600) in a private temporary directory, named by
    C(PGPASSFILE) and removed afterwards - never on a command line nor in the result. The target's own
    C(postgresql.conf), C(postgresql.auto.conf), C(pg_hba.conf) and C(pg_ident.conf), which pg_rewind would
    overwrite with the source's, are kept.
  - C(standby.signal) is created, C(primary_conninfo) (and O(primary_slot_name)) set in
    C(postgresql.auto.conf), the server started (O(start_command), or C(pg_ctl start)), and the module waits
    until it streams from O(primary).
  - Nothing runs unless the caller asks - the db_down role calls it only with C(db_down_rewind_old_primary=true).
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Decides from the same evidence and returns, in RV(actions) with result C(check mode), the
      exact commands it would run; changes nothing.
  diff_mode:
    support: full
    description: The node's state before and after.
  idempotent:
    support: full
    description: A node streaming from O(primary) reports C(changed=false).
options:
  node:
    description: The old primary to rejoin, as C(host:port) (how the group reaches it).
    type: str
    required: true
  primary:
    description: The current primary, as C(host:port) - the source of pg_rewind and the upstream of the standby.
    type: str
    required: true
  data_directory:
    description: The data directory of O(node) on the host that runs the module.
    type: path
    required: true
  login_user:
    description: The role to probe both nodes and to run pg_rewind as (superuser, or the grants pg_rewind documents).
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description: Password of O(login_user). Never logged, never on a command line, never returned.
    type: str
    aliases: [password]
  login_db:
    description: Database to connect to.
    type: str
    default: postgres
    aliases: [db]
  ssl_mode:
    description: libpq C(sslmode) for TCP connections.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: CA certificate file to verify the servers with (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description: Seconds to wait for each connection.
    type: int
    default: 5
  replication_user:
    description: The role the standby streams as (C(user) of C(primary_conninfo)). Default O(login_user).
    type: str
  replication_password:
    description: Its password, written only into O(standby_passfile). Default O(login_password) when
      O(replication_user) is O(login_user).
    type: str
  standby_passfile:
    description:
      - A passfile on this host that the standby's C(primary_conninfo) names (C(passfile=)). The module writes
        the line for O(primary) into it (mode 0600, owned by the data directory's owner), so no password is
        written into the configuration. Without it, C(primary_conninfo) has no password (the owner's
        C(~/.pgpass), a certificate or trust apply).
    type: path
  application_name:
    description: C(application_name) of the standby's connection (how O(primary) lists it in C(pg_stat_replication)).
    type: str
  primary_slot_name:
    description: A physical replication slot for the standby, created on O(primary) when missing.
    type: str
  start_command:
    description: The argv that starts PostgreSQL on this host (for example C([systemctl, start, postgresql@15-main])).
      Default - C(pg_ctl start -w) as the data directory's owner, logging to O(log_file).
    type: list
    elements: str
  log_file:
    description: The server log of the default C(pg_ctl start). Default C(DATA_DIRECTORY/pg_rejoin_start.log).
    type: path
  pg_bindir:
    description: Where C(pg_rewind), C(pg_ctl) and C(pg_controldata) are. Default - C(PATH), then
      C(/usr/lib/postgresql/MAJOR/bin) for the data directory's C(PG_VERSION).
    type: path
  wait_timeout:
    description: Seconds to wait for the start and for the standby to stream.
    type: float
    default: 120
seealso:
  - module: sre.runbooks.pg_failover
  - name: pg_rewind
    description: The PostgreSQL manual page of pg_rewind (requirements - wal_log_hints or checksums, a clean shutdown).
    link: https://www.postgresql.org/docs/15/app-pgrewind.html
"""

EXAMPLES = r"""
- name: Rejoin the old primary as a standby of the new one (what would run)
  sre.runbooks.pg_rejoin:
    node: db1.example.com:5432
    primary: db2.example.com:5432
    data_directory: /var/lib/postgresql/15/main
    login_password: "{{ vault_pg_password }}"
    standby_passfile: /var/lib/postgresql/.pgpass_replication
    start_command: [systemctl, start, postgresql@15-main]
  check_mode: true
  delegate_to: db1.example.com
"""

RETURN = r"""
verdict:
  description: C(state) (V(streaming) - nothing to do, V(rejoin), V(refused)), C(act), C(reason), C(guardrail).
  returned: always
  type: dict
  sample: {"state": "rejoin", "act": true, "guardrail": null,
           "reason": "db1:5432 is stopped cleanly on timeline 1; db2:5432 is the primary on timeline 2: rewind it"}
guardrail:
  description: The guardrail that refused (V(target_is_primary), V(no_primary), V(target_running), V(data_directory),
    V(other_cluster), V(not_clean), V(wal_log_hints), V(full_page_writes), V(timeline)).
  returned: when refused
  type: str
  sample: not_clean
control:
  description: The facts read from the target's control file (C(state), C(timeline), C(system_identifier),
    C(checkpoint_lsn), C(wal_log_hints), C(data_checksums)).
  returned: when the target was stopped
  type: dict
actions:
  description: Each step with C(timestamp), C(action) (V(pg_rewind), V(configure_standby), V(start), V(streaming)),
    C(target), C(result) (V(done), V(failed), V(check mode)), and C(command) where one runs.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "pg_rewind", "target": "db1:5432", "result": "check mode",
            "command": "runuser -u postgres -- env PGPASSFILE=TMPDIR/pgpass pg_rewind --target-pgdata=/d ..."}]
primary_conninfo:
  description: The standby's C(primary_conninfo) (it holds no password).
  returned: when a rejoin was planned
  type: str
"""

import os
import pwd
import shutil
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record
from ansible_collections.sre.runbooks.plugins.module_utils._pg_rejoin import (
    KEPT_CONFIG_FILES,
    conninfo,
    control_facts,
    merge_passfile,
    parse_controldata,
    passfile_line,
    plan_rejoin,
    with_standby_settings,
)
from ansible_collections.sre.runbooks.plugins.module_utils._pg_replication import (
    NodeError,
    connect_node,
    ensure_physical_slot,
    node_name,
    nodes_argument_spec,
    parse_node,
    probe_node,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import PSYCOPG2_IMPORT_ERROR
from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_text

TEMP_MARK = "TMPDIR"


class Failed(Exception):
    """A step failed; the message says what was done so far."""


class Rejoin:
    def __init__(self, module: AnsibleModule, node: str, primary: str) -> None:
        self.module = module
        self.params = module.params
        self.node, self.primary = node, primary
        self.data = self.params["data_directory"].rstrip("/") or "/"
        info = os.stat(self.data)
        self.uid, self.gid = info.st_uid, info.st_gid
        self.owner = pwd.getpwuid(self.uid).pw_name
        self.prefix = ["runuser", "-u", self.owner, "--"] if os.geteuid() == 0 and self.uid != 0 else []
        if os.geteuid() not in (0, self.uid):
            raise Failed(f"the module runs as uid {os.geteuid()} but {self.data} belongs to {self.owner}: "
                         f"run it as {self.owner} (become_user) or as root")
        self.bindir = self.find_bindir()

    def find_bindir(self) -> str:
        if self.params["pg_bindir"]:
            return self.params["pg_bindir"]
        found = shutil.which("pg_rewind")
        if found:
            return os.path.dirname(found)
        try:
            with open(os.path.join(self.data, "PG_VERSION")) as handle:
                major = handle.read().strip()
        except OSError:
            major = ""
        candidate = f"/usr/lib/postgresql/{major}/bin"
        if major and os.path.exists(os.path.join(candidate, "pg_rewind")):
            return candidate
        raise Failed(f"pg_rewind not found (PATH, /usr/lib/postgresql/{major or 'MAJOR'}/bin): set pg_bindir")

    def tool(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def run(self, argv: list[str], **kwargs) -> tuple[int, str, str]:
        return self.module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C"}, **kwargs)

    def running(self) -> bool:
        rc, _out, _err = self.run(self.prefix + [self.tool("pg_ctl"), "-D", self.data, "status"])
        return rc == 0

    def control(self) -> dict | None:
        rc, out, _err = self.run(self.prefix + [self.tool("pg_controldata"), "-D", self.data])
        return control_facts(parse_controldata(out)) if rc == 0 else None

    def source_conninfo(self) -> str:
        host, port = parse_node(self.primary)
        extra = {}
        if not host.startswith("/"):
            extra["sslmode"] = self.params["ssl_mode"]
            extra["sslrootcert"] = self.params["ca_cert"]
        return conninfo(host=host, port=port, user=self.params["login_user"], dbname=self.params["login_db"],
                        connect_timeout=self.params["connect_timeout"], application_name="pg_rejoin", **extra)

    def rewind_argv(self, tempdir: str) -> list[str]:
        env = ["env", f"PGPASSFILE={tempdir}/pgpass"] if self.params["login_password"] else []
        return self.prefix + env + [self.tool("pg_rewind"), f"--target-pgdata={self.data}",
                                    f"--source-server={self.source_conninfo()}"]

    def start_argv(self) -> list[str]:
        if self.params["start_command"]:
            return list(self.params["start_command"])
        log = self.params["log_file"] or os.path.join(self.data, "pg_rejoin_start.log")
        return self.prefix + [self.tool("pg_ctl"), "-D", self.data, "-l", log, "-w", "-t",
                              str(max(int(self.params["wait_timeout"]), 1)), "start"]

    def replication(self) -> tuple[str, str | None]:
        user = self.params["replication_user"] or self.params["login_user"]
        password = self.params["replication_password"]
        if password is None and user == self.params["login_user"]:
            password = self.params["login_password"]
        return user, password

    def primary_conninfo(self) -> str:
        host, port = parse_node(self.primary)
        return conninfo(host=host, port=port, user=self.replication()[0], passfile=self.params["standby_passfile"],
                        application_name=self.params["application_name"])

    # --- the steps --------------------------------------------------------------------------

    def write_owned(self, path: str, text: str | bytes, mode: int = 0o600) -> None:
        data = text.encode() if isinstance(text, str) else text
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def rewind(self, actions: list[dict]) -> None:
        kept = {}
        for name in KEPT_CONFIG_FILES:
            path = os.path.join(self.data, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    kept[name] = (handle.read(), os.stat(path).st_mode & 0o777)
        # pg_rewind runs as the owner: a TMPDIR private to the caller (root's) would hide the passfile.
        tempdir = tempfile.mkdtemp(prefix="pg_rejoin.", dir="/tmp" if self.prefix and os.path.isdir("/tmp") else None)
        try:
            os.chmod(tempdir, 0o700)
            if os.geteuid() == 0:
                os.chown(tempdir, self.uid, self.gid)
            if self.params["login_password"]:
                host, port = parse_node(self.primary)
                self.write_owned(os.path.join(tempdir, "pgpass"),
                                 passfile_line(host, port, self.params["login_user"], self.params["login_password"])
                                 + "\n")
            argv = self.rewind_argv(tempdir)
            shown = " ".join(argv).replace(tempdir, TEMP_MARK)
            rc, out, err = self.run(argv)
        finally:
            shutil.rmtree(tempdir, ignore_errors=True)
            for name, (content, mode) in kept.items():
                self.write_owned(os.path.join(self.data, name), content, mode)
        tail = mask_text("\n".join((out or "").strip().splitlines()[-3:] + (err or "").strip().splitlines()[-5:]))
        if rc != 0:
            actions.append(action_record("pg_rewind", self.node, "failed", command=shown, rc=rc, output=tail))
            raise Failed(f"pg_rewind of {self.node} from {self.primary} exited {rc}: {tail[-500:]}; its data "
                         "directory may be half rewound - do not start it as a primary; rebuild it")
        actions.append(action_record("pg_rewind", self.node, "done", command=shown, rc=rc, output=tail,
                                     config_kept=sorted(kept)))

    def configure(self, actions: list[dict]) -> None:
        settings = {"primary_conninfo": self.primary_conninfo(), "primary_slot_name": self.params["primary_slot_name"]}
        auto = os.path.join(self.data, "postgresql.auto.conf")
        try:
            with open(auto) as handle:
                current = handle.read()
        except FileNotFoundError:
            current = ""
        self.write_owned(auto, with_standby_settings(current, settings))
        self.write_owned(os.path.join(self.data, "standby.signal"), "")
        user, password = self.replication()
        passfile = self.params["standby_passfile"]
        if passfile and password:
            try:
                with open(passfile) as handle:
                    existing = handle.read()
            except FileNotFoundError:
                existing = ""
            host, port = parse_node(self.primary)
            self.write_owned(passfile, merge_passfile(existing, host, port, user, password))
        slot = self.params["primary_slot_name"]
        if slot:
            ensure_physical_slot(self.params, self.primary, slot)
        actions.append(action_record("configure_standby", self.node, "done", standby_signal=True,
                                     primary_conninfo=self.primary_conninfo(), slot=slot,
                                     passfile=bool(passfile and password)))

    def start(self, actions: list[dict]) -> None:
        argv = self.start_argv()
        rc, out, err = self.run(argv)
        shown = " ".join(argv)
        if rc != 0:
            actions.append(action_record("start", self.node, "failed", command=shown, rc=rc))
            raise Failed(f"{self.node} was rewound and configured as a standby, but its start ({shown}) exited "
                         f"{rc}: {mask_text((err or out or '').strip()[-300:])}; check its log")
        actions.append(action_record("start", self.node, "done", command=shown))

    def wait_streaming(self, actions: list[dict]) -> dict:
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            probe = probe_node(self.params, self.node)
            receiver = probe.get("wal_receiver") or {}
            if probe.get("role") == "standby" and probe.get("upstream") == self.primary \
                    and receiver.get("status") == "streaming":
                actions.append(action_record("streaming", self.node, "done", upstream=self.primary,
                                             timeline=probe.get("timeline"), receive_lsn=probe.get("receive_lsn")))
                return probe
            if time.monotonic() > deadline:
                actions.append(action_record("streaming", self.node, "failed", upstream=probe.get("upstream"),
                                             role=probe.get("role"), error_kind=probe.get("error_kind")))
                raise Failed(f"{self.node} was rewound and started as a standby but does not stream from "
                             f"{self.primary} after {self.params['wait_timeout']:g} s; check its log")
            time.sleep(0.5)


def main() -> None:
    spec = nodes_argument_spec()
    del spec["nodes"]
    spec.update(
        node=dict(type="str", required=True),
        primary=dict(type="str", required=True),
        data_directory=dict(type="path", required=True),
        replication_user=dict(type="str"),
        replication_password=dict(type="str", no_log=True),
        standby_passfile=dict(type="path"),
        application_name=dict(type="str"),
        primary_slot_name=dict(type="str"),
        start_command=dict(type="list", elements="str"),
        log_file=dict(type="path"),
        pg_bindir=dict(type="path"),
        wait_timeout=dict(type="float", default=120),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    if PSYCOPG2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    if params["wait_timeout"] <= 0 or params["connect_timeout"] < 1:
        module.fail_json(msg="wait_timeout must be positive and connect_timeout at least 1 second")
    if params["start_command"] is not None and not params["start_command"]:
        module.fail_json(msg="start_command is empty: give the argv that starts PostgreSQL, or leave it out")
    try:
        node = node_name(*parse_node(params["node"]))
        primary = node_name(*parse_node(params["primary"]))
    except NodeError as exc:
        module.fail_json(msg=str(exc), changed=False, actions=[])
    if not os.path.isdir(params["data_directory"]):
        module.fail_json(msg=f"data_directory {params['data_directory']} is not a directory on this host: run the "
                             f"module on the host of {node}", changed=False, actions=[])
    try:
        job = Rejoin(module, node, primary)
    except Failed as exc:
        module.fail_json(msg=str(exc), changed=False, actions=[])

    primary_probe = probe_node(params, primary)
    node_probe = probe_node(params, node)
    running = control = fpw = None
    if not node_probe.get("reachable"):
        running = job.running()
        control = None if running else job.control()
    if primary_probe.get("reachable") and primary_probe.get("role") == "primary":
        try:
            conn = connect_node(params, primary)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT current_setting('full_page_writes') = 'on'")
                    fpw = cur.fetchone()[0]
            finally:
                conn.close()
        except Exception:  # pylint: disable=broad-except
            fpw = None
    verdict = plan_rejoin(node=node, primary=primary, primary_probe=primary_probe, node_probe=node_probe,
                          running=bool(running), control=control, source_full_page_writes=fpw)
    result = dict(changed=False, verdict=verdict._asdict(), actions=[])
    if control:
        result["control"] = control
    if verdict.guardrail:
        module.fail_json(msg=f"pg_rejoin refused ({verdict.guardrail}): {verdict.reason}", guardrail=verdict.guardrail,
                         **result)
    if not verdict.act:
        module.exit_json(**result)

    result["primary_conninfo"] = job.primary_conninfo()
    if module._diff:
        result["diff"] = dict(before={"node": node, "state": f"stopped ({control['state']})"},
                              after={"node": node, "state": f"standby streaming from {primary}"})
    if module.check_mode:
        result["actions"] = [
            action_record("pg_rewind", node, "check mode", command=" ".join(job.rewind_argv(TEMP_MARK))),
            action_record("configure_standby", node, "check mode", standby_signal=True,
                          primary_conninfo=job.primary_conninfo(), slot=params["primary_slot_name"]),
            action_record("start", node, "check mode", command=" ".join(job.start_argv())),
            action_record("streaming", node, "check mode", upstream=primary),
        ]
        module.exit_json(**result)

    actions: list[dict] = []
    try:
        job.rewind(actions)
        job.configure(actions)
        job.start(actions)
        job.wait_streaming(actions)
    except Failed as exc:
        result.update(changed=any(a["result"] == "done" for a in actions), actions=actions)
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # pylint: disable=broad-except
        done = ", ".join(f"{a['action']} ({a['result']})" for a in actions) or "nothing"
        result.update(changed=any(a["result"] == "done" for a in actions), actions=actions)
        module.fail_json(msg=f"unexpected error while rejoining {node}: {mask_text(str(exc))}; done so far: {done}",
                         exception=traceback.format_exc(), **result)
    result.update(changed=True, actions=actions)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
