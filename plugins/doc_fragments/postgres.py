# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every sre.runbooks pg_* module.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or address of the PostgreSQL server (or of pgbouncer).
      - When neither O(login_host) nor O(login_unix_socket) is set, libpq's default applies
        (the local unix socket).
    type: str
    aliases: [host]
  login_port:
    description:
      - TCP port, or the port number in the unix socket's file name.
    type: int
    default: 5432
    aliases: [port]
  login_unix_socket:
    description:
      - Directory of the server's unix socket, for example V(/var/run/postgresql).
      - Used when O(login_host) is not set. Over the socket, peer authentication lets the
        module connect as the OS user it runs as (for example with C(become_user=postgres)),
        even when every TCP connection slot is taken.
    type: str
    aliases: [unix_socket]
  login_user:
    description:
      - The role to connect as. Reading all sessions needs C(pg_monitor) or superuser;
        terminating other roles' backends needs C(pg_signal_backend) or superuser.
      - During connection exhaustion only superusers can still connect (the
        C(superuser_reserved_connections) slots).
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
      - Database to connect to.
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
      - CA certificate file to verify the server with (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 5
requirements:
  - psycopg2 (or psycopg2-binary) on the host that runs the module
notes:
  - The module runs where Ansible runs it. On the database host over SSH, use
    O(login_unix_socket) and C(become_user=postgres); on the controller, use
    O(login_host) and O(login_port) with C(delegate_to=localhost).
"""
