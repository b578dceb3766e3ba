#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: http_health
short_description: Check many HTTP health endpoints at once - status, JSON body, latency, error per endpoint
version_added: 0.1.0
description:
  - Checks every endpoint of O(endpoints) in one task, O(concurrency) at a time, and returns for
    each one whether it is healthy, its status, its latency and, when it is not healthy, the
    category of the error (C(refused), C(timeout), C(dns), C(tls), C(connection),
    C(http_status), C(invalid_json), C(body_mismatch)) and a short message.
  - An endpoint is healthy when it answers within its timeout, with an expected status (by
    default any C(2xx), after following redirects), and - when asked - with a JSON body whose
    O(endpoints[].body_path) holds O(endpoints[].body_equals), or with a body containing
    O(endpoints[].body_contains).
  - Also returns aggregates for the whole set - total, healthy, failed, error rate, latency
    p50/p95/max - and the names of the failing endpoints, which is what the first steps of an
    outage runbook ask ("assess impact, identify the failing component").
  - A failing endpoint is a result, not a task failure, so an assessment of a broken system
    completes; fail the task yourself with C(failed_when) if you want (see the examples). The
    task fails only for bad input (duplicate names, a URL that is not http/https, an unreadable
    JSON path or status).
  - Standard library only (no Python package to install), so it runs on any controller and in
    any execution environment.
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - The checks only read, so check mode runs them too and returns the same results. A
        O(endpoints[].method=POST) probe is sent in check mode as well; point it only at
        endpoints that do not change state.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
    description: Never changes anything (RV(ignore:changed) is always false). The requests it sends are
      the ones configured; a O(endpoints[].method=POST) to an endpoint that changes state is the
      caller's choice.
options:
  endpoints:
    description:
      - The endpoints to check. Results come back in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - A name for the endpoint, unique in the task; RV(failing) lists these names.
          - Defaults to the URL (with credentials masked).
        type: str
      url:
        description:
          - C(http://) or C(https://) URL. Credentials in it (C(https://user:password@host/))
            are sent as HTTP basic authentication and never returned.
        type: str
        required: true
      method:
        description:
          - HTTP method, for example V(GET), V(HEAD) or V(POST).
        type: str
        default: GET
      status:
        description:
          - Expected statuses - codes (V(200)), classes (V(2xx)) or ranges (V(200-399)).
          - Defaults to O(status).
        type: list
        elements: raw
      body_path:
        description:
          - Dotted path to a value in the JSON body, for example V(status), V(checks.db.status),
            V(checks[0].status), V(items.0.name) or V($.status). V([-1]) is the last item of a list.
          - Without O(endpoints[].body_equals), the path must exist in the body.
        type: str
      body_equals:
        description:
          - The value at O(endpoints[].body_path) must equal this. Scalars compare by their text, so
            V(1) equals V("1"); V(true) equals only C(true); a list or a dict must be equal as a whole.
        type: raw
      body_contains:
        description:
          - The body (as text) must contain this string. For endpoints that do not answer JSON.
        type: str
      headers:
        description:
          - Request headers for this endpoint, merged over O(headers) (names compare case-insensitively).
          - Values are secrets (tokens, API keys); only the names are returned.
        type: dict
      body:
        description:
          - Request body, for example for a V(POST). A dict or a list is sent as JSON (with
            C(Content-Type application/json) unless a header says otherwise), anything else as text.
        type: raw
      timeout:
        description:
          - Seconds for this endpoint, instead of O(timeout).
        type: float
      validate_certs:
        description:
          - Verify the TLS certificate for this endpoint, instead of O(validate_certs).
        type: bool
      ca_path:
        description:
          - CA bundle (file) or directory for this endpoint, instead of O(ca_path).
        type: path
      follow_redirects:
        description:
          - Follow redirects for this endpoint, instead of O(follow_redirects).
        type: bool
  concurrency:
    description:
      - How many endpoints are checked at the same time.
    type: int
    default: 32
  timeout:
    description:
      - Seconds an endpoint has to connect and answer. The body must also be read within this
        time. Past it, the endpoint fails with C(timeout).
    type: float
    default: 5.0
  status:
    description:
      - Expected statuses for every endpoint without its own O(endpoints[].status) - codes
        (V(200)), classes (V(2xx)) or ranges (V(200-399)).
      - The default, any C(2xx), is what health endpoints answer (V(200), V(204)). Redirects are
        followed first (O(follow_redirects)), so a final C(3xx) is not healthy.
    type: list
    elements: raw
    default: ["2xx"]
  headers:
    description:
      - Request headers for every endpoint, for example an C(Authorization) token.
      - Values are secrets; only the names are returned.
    type: dict
    default: {}
  validate_certs:
    description:
      - Verify TLS certificates (chain and host name). Set to V(false) only for endpoints with
        self-signed certificates you cannot give a O(ca_path) for.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle (a PEM file) or a directory of CA certificates to verify the servers with,
        instead of the system's.
    type: path
  follow_redirects:
    description:
      - Follow redirects (C(GET) and C(HEAD); a C(POST) redirected with C(301)-C(303) becomes a C(GET)).
      - With V(false), a C(3xx) answer is the final status.
    type: bool
    default: true
  use_proxy:
    description:
      - Use the proxy of the C(http_proxy)/C(https_proxy)/C(no_proxy) environment variables.
    type: bool
    default: true
  max_body_bytes:
    description:
      - Read at most this many bytes of a body. A JSON body check on a larger body fails with
        C(invalid_json).
    type: int
    default: 1048576
  user_agent:
    description:
      - The C(User-Agent) header, unless O(headers) sets one.
    type: str
    default: sre.runbooks-http_health
notes:
  - Run it where the users are, usually the controller (C(delegate_to=localhost), C(run_once=true)),
    because failing to reach an endpoint from a host behind a partition does not mean it is down.
  - Latency is the time until the answer has been read. Aggregate latencies count the endpoints
    that answered (with any status); the time a refused or timed-out check took says nothing
    about the service.
  - Header values are marked C(no_log), so Ansible also masks them wherever they would appear
    in the output; do not reuse a header value as a plain value elsewhere.
seealso:
  - module: ansible.builtin.uri
    description: One request per task, with the full response; use it to call an API, this module to assess many endpoints.
"""

EXAMPLES = r"""
- name: Assess the public endpoints from the controller
  sre.runbooks.http_health:
    endpoints:
      - name: api
        url: https://api.example.com/health
        body_path: status
        body_equals: ok
      - name: payments
        url: https://payments.example.com/healthz
        headers:
          Authorization: "Bearer {{ payments_health_token }}"
      - name: auth
        url: https://auth.example.com/health
        body_path: checks.database.status
        body_equals: up
      - name: web
        url: https://www.example.com/
        method: HEAD
        status: [200, 301]
        follow_redirects: false
    timeout: 3
  delegate_to: localhost
  run_once: true
  register: http

- name: Internal services with a private CA and a tighter timeout, checked 64 at a time
  sre.runbooks.http_health:
    endpoints: "{{ internal_endpoints }}"
    ca_path: /etc/pki/internal-ca.pem
    timeout: 1
    concurrency: 64
  delegate_to: localhost
  run_once: true
  register: ready
  vars:
    internal_endpoints:
      - {name: orders, url: "https://orders.internal:8443/ready"}
      - {name: search, url: "https://search.internal:8443/ready", timeout: 3}

- name: Fail the play when any endpoint is unhealthy
  ansible.builtin.assert:
    that: http.failing | length == 0
    fail_msg: "unhealthy: {{ http.failing | join(', ') }} (error rate {{ http.summary.error_rate }})"

- name: Or fail the check task itself
  sre.runbooks.http_health:
    endpoints:
      - name: api
        url: https://api.example.com/health
  register: api_health
  failed_when: api_health.failing | length > 0
"""

RETURN = r"""
endpoints:
  description: One result per endpoint, in the order of O(endpoints).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The endpoint's name.
      type: str
      sample: api
    url:
      description: The URL, with credentials and secret-looking query parameters masked.
      type: str
      sample: "https://monitor:********@api.example.com/health?token=********"
    method:
      description: The HTTP method used.
      type: str
      sample: GET
    ok:
      description: Whether the endpoint is healthy.
      type: bool
      sample: false
    status:
      description: The HTTP status of the answer; null when there was none.
      type: int
      sample: 503
    latency_ms:
      description: Milliseconds until the answer was read (or the check gave up).
      type: float
      sample: 12.4
    error_category:
      description:
        - Null when healthy, else one of V(refused), V(timeout), V(dns), V(tls), V(connection),
          V(http_status), V(invalid_json), V(body_mismatch).
      type: str
      sample: http_status
    error:
      description: Null when healthy, else the category and a short message.
      type: str
      sample: "http_status: status 503, expected 200-299"
    header_names:
      description: Names of the request headers sent (never their values).
      type: list
      elements: str
      sample: [Authorization]
    body_path:
      description: The O(endpoints[].body_path) checked.
      type: str
      returned: when O(endpoints[].body_path) is set
      sample: status
    body_value:
      description: The value found at O(endpoints[].body_path) (strings masked and truncated).
      type: raw
      returned: when O(endpoints[].body_path) is set and found
      sample: degraded
    body_excerpt:
      description: The first 200 characters of the body (secrets masked), when the endpoint is unhealthy.
      type: str
      returned: when an answer with a body was unhealthy
      sample: '{"status": "degraded", "database": "down"}'
summary:
  description: Aggregates over every endpoint.
  returned: always
  type: dict
  contains:
    total:
      description: Number of endpoints checked.
      type: int
      sample: 7
    ok:
      description: Number of healthy endpoints.
      type: int
      sample: 5
    failed:
      description: Number of unhealthy endpoints.
      type: int
      sample: 2
    error_rate:
      description: RV(summary.failed) / RV(summary.total), from 0 to 1.
      type: float
      sample: 0.2857
    errors_by_category:
      description: Number of unhealthy endpoints per error category.
      type: dict
      sample: {"refused": 1, "http_status": 1}
    latency_ms:
      description:
        - Latency of the endpoints that answered (any status) - C(p50), C(p95) and C(max) in
          milliseconds (nearest-rank percentiles; null when none answered), and C(count).
      type: dict
      sample: {"p50": 11.2, "p95": 240.5, "max": 251.0, "count": 6}
failing:
  description: Names of the unhealthy endpoints, in the order of O(endpoints).
  returned: always
  type: list
  elements: str
  sample: [payments, auth]
all_ok:
  description: Whether every endpoint is healthy.
  returned: always
  type: bool
  sample: false
checked_at:
  description: When the checks started (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-12-02T20:01:02.345Z"
duration_ms:
  description: Wall time of all the checks, in milliseconds.
  returned: always
  type: float
  sample: 1012.7
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _http
from ansible_collections.sre.runbooks.plugins.module_utils._common import utc_iso

ENDPOINT_OPTIONS = dict(
    name=dict(type="str"),
    url=dict(type="str", required=True),
    method=dict(type="str", default="GET"),
    status=dict(type="list", elements="raw"),
    body_path=dict(type="str"),
    body_equals=dict(type="raw"),
    body_contains=dict(type="str"),
    headers=dict(type="dict", no_log=True),
    body=dict(type="raw"),
    timeout=dict(type="float"),
    validate_certs=dict(type="bool"),
    ca_path=dict(type="path"),
    follow_redirects=dict(type="bool"),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type="list", elements="dict", required=True, options=ENDPOINT_OPTIONS),
            concurrency=dict(type="int", default=32),
            timeout=dict(type="float", default=5.0),
            status=dict(type="list", elements="raw", default=["2xx"]),
            headers=dict(type="dict", default={}, no_log=True),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            follow_redirects=dict(type="bool", default=True),
            use_proxy=dict(type="bool", default=True),
            max_body_bytes=dict(type="int", default=1048576),
            user_agent=dict(type="str", default="sre.runbooks-http_health"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["concurrency"] < 1:
        module.fail_json(msg=f"concurrency must be 1 or more, got {params['concurrency']}")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be more than 0 seconds, got {params['timeout']}")
    if params["max_body_bytes"] < 1:
        module.fail_json(msg=f"max_body_bytes must be 1 or more, got {params['max_body_bytes']}")
    try:
        endpoints = _http.normalize_endpoints(params["endpoints"], params)
    except _http.HealthCheckError as exc:
        module.fail_json(msg=str(exc))
    for endpoint in endpoints:
        # URL credentials are not a no_log option of their own: register them so Ansible masks
        # them everywhere it returns or logs the arguments (invocation included).
        module.no_log_values.update(endpoint["secrets"])
    for ca_path in {e["ca_path"] for e in endpoints if e["ca_path"]}:
        try:
            _http.ssl_context(True, ca_path)
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"ca_path {ca_path}: cannot load CA certificates ({exc}); "
                                 "give a PEM file or a directory of them")

    checked_at = utc_iso()
    started = time.monotonic()
    results = _http.check_all(endpoints, params["concurrency"])
    duration_ms = round((time.monotonic() - started) * 1000.0, 1)
    module.exit_json(
        changed=False,
        endpoints=results,
        summary=_http.summarize(results),
        failing=[r["name"] for r in results if not r["ok"]],
        all_ok=all(r["ok"] for r in results),
        checked_at=checked_at,
        duration_ms=duration_ms,
    )


if __name__ == "__main__":
    main()
