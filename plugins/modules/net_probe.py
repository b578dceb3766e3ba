#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: net_probe
short_description: Probe many dependencies at once from where it runs - DNS, TCP connect, HTTP, with latencies and precise errors
version_added: 0.1.0
description:
  - Probes every dependency of O(dependencies) in one task, O(concurrency) at a time, from the
    machine the module runs on (a systemd host over SSH, or the controller with
    C(delegate_to=localhost)), and returns for each one whether it is reachable and, when it is
    not, the step that failed (C(dns), C(tcp), C(http)) and a precise category - C(nxdomain),
    C(dns_timeout), C(dns_error), C(refused), C(timeout), C(no_route), C(filtered), C(reset),
    C(connection), or an HTTP category of M(sre.runbooks.http_health).
  - The steps, each with its latency - resolve the host name (skipped for an IP address), connect
    over TCP to O(dependencies[].port) (the first resolved addresses in turn), then, when
    O(dependencies[].http_url) is set, send an HTTP request and check its status.
  - When a name does not resolve and O(dependencies[].address) is set, TCP is tried on that
    address anyway; a path that works by address while the name fails points at the resolver,
    not at the network. Also returns the resolver configuration (C(/etc/resolv.conf)) and the
    state of the resolver units of O(resolver_units).
  - The whole batch takes at most O(total_timeout) seconds. A probe still running then (a name
    lookup stuck in a broken resolver cannot be interrupted) is reported as a timeout.
  - An unreachable dependency is a result, not a task failure; decide what it means with the
    filter M(sre.runbooks.network_partition_verdict), which compares the views of several hosts
    and of the controller.
  - Standard library only.
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The probes only read, so check mode runs them too and returns the same results.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
    description: Never changes anything (RV(ignore:changed) is always false).
options:
  dependencies:
    description:
      - The dependencies to probe. Results come back in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - A name, unique in the task; RV(failing) lists these names. Defaults to C(host:port).
        type: str
      host:
        description:
          - Host name or IP address. Defaults to the host of O(dependencies[].http_url).
        type: str
      port:
        description:
          - TCP port to connect to. Without it, only the name is resolved (and the HTTP probe
            made, when O(dependencies[].http_url) is set).
        type: int
      address:
        description:
          - An IP address the name is known to have. Tried over TCP when the name does not
            resolve, to tell a broken resolver from a cut path. Never used when the name resolves.
        type: str
      http_url:
        description:
          - C(http://) or C(https://) URL requested after the TCP connect succeeded. Credentials
            in it are masked in the results.
        type: str
      http_status:
        description:
          - Expected HTTP statuses - codes (V(200)), classes (V(2xx)) or ranges (V(200-399)).
            Default any C(2xx).
        type: list
        elements: raw
      timeout:
        description: Seconds for each step of this dependency, instead of O(timeout).
        type: float
  timeout:
    description:
      - Seconds each step (name lookup aside, which the resolver configuration bounds) may take.
    type: float
    default: 3.0
  total_timeout:
    description:
      - Seconds the whole batch may take. Probes still running then are reported as timeouts.
    type: float
    default: 15.0
  concurrency:
    description: How many dependencies are probed at the same time.
    type: int
    default: 32
  validate_certs:
    description: Verify TLS certificates of the HTTP probes.
    type: bool
    default: true
  resolver_units:
    description:
      - systemd units that resolve names on this machine, whose state is returned in
        RV(resolver) (its C(units)) (V([]) to skip). A unit that does not exist is reported as such.
    type: list
    elements: str
    default: [systemd-resolved.service]
notes:
  - Name lookups go through the machine's own resolver (C(getaddrinfo)), so C(/etc/hosts) and
    C(nsswitch.conf) apply, as they do for the applications on that machine.
  - HTTP probes ignore proxy environment variables; they test the direct path.
seealso:
  - module: sre.runbooks.http_health
    description: Health of many HTTP endpoints, with body checks; usually run from the controller.
"""

EXAMPLES = r"""
- name: What this host reaches
  sre.runbooks.net_probe:
    dependencies:
      - {name: db, host: db.internal, port: 5432, address: 10.0.3.12}
      - {name: cache, host: 10.0.4.7, port: 6379}
      - {name: payments, host: payments.internal, port: 443, http_url: "https://payments.internal/healthz"}
      - {name: registry, host: registry.example.com}
    timeout: 2
  register: net

- name: The same from the controller, to compare
  sre.runbooks.net_probe:
    dependencies: "{{ deps }}"
    resolver_units: []
  delegate_to: localhost
  run_once: true
  register: net_from_controller
"""

RETURN = r"""
dependencies:
  description: One result per dependency, in the order of O(dependencies).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The dependency's name.
      type: str
      sample: db
    host:
      description: The host probed.
      type: str
      sample: db.internal
    port:
      description: The TCP port, or null.
      type: int
      sample: 5432
    ok:
      description: Every step succeeded.
      type: bool
      sample: false
    failed_step:
      description: Null when ok, else V(dns), V(tcp) or V(http).
      type: str
      sample: tcp
    error_category:
      description: Null when ok, else the category of the failing step.
      type: str
      sample: no_route
    error:
      description: Null when ok, else the category, the address and a short message.
      type: str
      sample: "no_route: 10.0.3.12:5432: no route to the address: No route to host"
    latency_ms:
      description: Milliseconds for all the steps.
      type: float
      sample: 3.2
    dns:
      description:
        - The name lookup - C(ok), C(skipped) (an IP address), C(addresses), C(latency_ms),
          C(error_category), C(error). Null when the probe did not finish.
      type: dict
    tcp:
      description:
        - The TCP connect - C(ok), C(address), C(port), C(latency_ms), C(error_category),
          C(error), C(via_fallback) (the connect used O(dependencies[].address) because the
          name did not resolve). Null when not attempted.
      type: dict
    http:
      description:
        - The HTTP probe - C(ok), C(url) (masked), C(status), C(latency_ms), C(error_category),
          C(error). Null when not attempted.
      type: dict
failing:
  description: Names of the unreachable dependencies.
  returned: always
  type: list
  elements: str
  sample: [db]
all_ok:
  description: Every dependency is reachable.
  returned: always
  type: bool
  sample: false
summary:
  description:
    - Totals (C(total), C(ok), C(failed)), C(errors_by_category), and the slowest successful
      name lookup and connect (C(dns_latency_ms_max), C(tcp_latency_ms_max)).
  returned: always
  type: dict
  sample: {"total": 4, "ok": 3, "failed": 1, "errors_by_category": {"no_route": 1},
           "dns_latency_ms_max": 1.2, "tcp_latency_ms_max": 0.4}
resolver:
  description:
    - C(nameservers) and C(search) of C(/etc/resolv.conf), and C(units) - per unit of
      O(resolver_units), C(exists), C(load_state), C(active_state), C(sub_state).
  returned: always
  type: dict
  sample: {"nameservers": ["127.0.0.53"], "search": [], "units": {"systemd-resolved.service":
           {"exists": true, "load_state": "loaded", "active_state": "active", "sub_state": "running"}}}
probed_from:
  description: Host name of the machine the probes ran on.
  returned: always
  type: str
  sample: web1
checked_at:
  description: When the probes started (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-12-02T23:01:02.345Z"
duration_ms:
  description: Wall time of the whole batch, in milliseconds.
  returned: always
  type: float
  sample: 12.7
"""

import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _net
from ansible_collections.sre.runbooks.plugins.module_utils._common import utc_iso

DEPENDENCY_OPTIONS = dict(
    name=dict(type="str"),
    host=dict(type="str"),
    port=dict(type="int"),
    address=dict(type="str"),
    http_url=dict(type="str"),
    http_status=dict(type="list", elements="raw"),
    timeout=dict(type="float"),
)


def resolver_state(module: AnsibleModule, units: list[str]) -> dict:
    state: dict = {"nameservers": [], "search": [], "units": {}}
    try:
        with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as fh:
            state.update(_net.parse_resolv_conf(fh.read()))
    except OSError:
        pass
    systemctl = module.get_bin_path("systemctl") if units else None
    for unit in units:
        if not systemctl:
            state["units"][unit] = {"exists": False, "load_state": None, "active_state": None, "sub_state": None}
            continue
        rc, out, dummy = module.run_command([systemctl, "show", "-p", "LoadState,ActiveState,SubState", "--", unit])
        state["units"][unit] = _net.parse_unit_show(out if rc == 0 else "")
    return state


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dependencies=dict(type="list", elements="dict", required=True, options=DEPENDENCY_OPTIONS),
            timeout=dict(type="float", default=3.0),
            total_timeout=dict(type="float", default=15.0),
            concurrency=dict(type="int", default=32),
            validate_certs=dict(type="bool", default=True),
            resolver_units=dict(type="list", elements="str", default=["systemd-resolved.service"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["concurrency"] < 1:
        module.fail_json(msg=f"concurrency must be 1 or more, got {params['concurrency']}")
    if params["timeout"] <= 0 or params["total_timeout"] <= 0:
        module.fail_json(msg=f"timeout and total_timeout must be more than 0 seconds, "
                             f"got {params['timeout']} and {params['total_timeout']}")
    try:
        deps = _net.normalize_dependencies(params["dependencies"], params)
    except _net.ProbeInputError as exc:
        module.fail_json(msg=str(exc))
    for dep in deps:
        if dep["http"]:
            module.no_log_values.update(dep["http"]["secrets"])

    checked_at = utc_iso()
    started = time.monotonic()
    results = _net.probe_all(deps, params["concurrency"], params["total_timeout"])
    duration_ms = round((time.monotonic() - started) * 1000.0, 1)
    module.exit_json(
        changed=False,
        dependencies=results,
        failing=[r["name"] for r in results if not r["ok"]],
        all_ok=all(r["ok"] for r in results),
        summary=_net.summarize(results),
        resolver=resolver_state(module, params["resolver_units"]),
        probed_from=socket.gethostname(),
        checked_at=checked_at,
        duration_ms=duration_ms,
    )


if __name__ == "__main__":
    main()
