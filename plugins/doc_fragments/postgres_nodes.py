# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the modules that talk to a group of PostgreSQL nodes (pg_replication_info, pg_failover).
    DOCUMENTATION = r"""
options:
  nodes:
    description:
      - The replication group, as C(host:port) (C(host) alone means port 5432, C([v6addr]:port) for
        IPv6, C(/socket/dir:port) for a unix socket directory).
      - Every node is probed at once, in one round trip each.
    type: list
    elements: str
    required: true
  login_user:
    description:
      - The role to connect to every node as. Reading C(pg_stat_replication) in full, the WAL directory
        size and the data directory needs C(pg_monitor) or superuser; C(pg_promote()) needs superuser
        (or an explicit C(GRANT EXECUTE)).
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user). Never logged or returned.
    type: str
    aliases: [password]
  login_db:
    description:
      - Database to connect to on every node.
    type: str
    default: postgres
    aliases: [db]
  ssl_mode:
    description:
      - libpq C(sslmode) for TCP connections.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file to verify the servers with (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for each connection. A node that does not answer in time is reported with
        C(error_kind=timeout) (its host is down or the path to it is cut).
    type: int
    default: 5
requirements:
  - psycopg2 (or psycopg2-binary) on the host that runs the module
notes:
  - Run it where the applications are (usually C(delegate_to=localhost) on a controller in the same
    network) - "cannot reach" from a place the users are not is weak evidence.
"""
