# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the sre.runbooks Redis modules."""

from __future__ import annotations


class ModuleDocFragment:
    # Authentication, TLS and timeouts: every Redis module.
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - ACL user name (Redis 6+). Leave unset to authenticate as the C(default) user with
        O(login_password) alone (C(requirepass)).
    type: str
  login_password:
    description:
      - Password for the Redis nodes (C(requirepass) or the ACL user's password).
      - Never returned or logged; results only say whether authentication succeeded.
    type: str
  tls:
    description:
      - Connect with TLS.
    type: bool
    default: false
  ca_path:
    description:
      - CA bundle that signed the nodes' certificates, when O(tls=true).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for a connection or a reply before a node counts as unreachable.
    type: float
    default: 3.0
requirements:
  - redis (Python library) >= 4.0 on the host that runs the module
notes:
  - The module connects from the host it runs on to each Redis node over the network; run it
    on the controller with C(delegate_to=localhost) unless the nodes are only reachable locally.
"""

    # One node: modules that look at a single node.
    NODE = r"""
options:
  login_host:
    description:
      - Host name or address of the Redis node.
    type: str
    default: localhost
  login_port:
    description:
      - TCP port of the Redis node.
    type: int
    default: 6379
"""

    # Sentinel topology.
    SENTINEL = r"""
options:
  sentinels:
    description:
      - Redis Sentinel addresses as C(host:port) (C(host) alone means port 6379).
      - Requires O(master_name).
    type: list
    elements: str
    default: []
  master_name:
    description:
      - The name the sentinels monitor the master under (C(sentinel monitor NAME ...)).
    type: str
  sentinel_password:
    description:
      - Password of the sentinels themselves (C(requirepass) in C(sentinel.conf)), if they have one.
        The data nodes use O(login_password).
    type: str
"""
