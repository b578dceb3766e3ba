#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pagerduty_event
short_description: Trigger, acknowledge or resolve a PagerDuty alert (Events API v2), never failing the run
version_added: 0.1.0
description:
  - Sends one event to the PagerDuty Events API v2 (C(POST /v2/enqueue)).
  - One incident is one alert - every event of it carries the same O(dedup_key), so the
    trigger, the acknowledgement and the resolution land on the same PagerDuty incident, and a
    repeated trigger does not open a second one.
  - Retries connection errors, HTTP 429 (honouring C(Retry-After)) and 5xx with exponential
    back-off. An event that still cannot be delivered is a warning and RV(delivered=false), never
    a task failure. HTTP 400 (an invalid event) is not retried.
  - The routing key is a secret (C(no_log)); RV(payload) shows it masked.
  - M(community.general.pagerduty_alert) posts to a fixed address and does not retry, so it
    cannot be pointed at a proxy or a test receiver.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.notify
options:
  routing_key:
    description: The integration (routing) key of an Events API v2 integration. Keep it in a vault.
    type: str
    required: true
  action:
    description: The event action.
    type: str
    choices: [trigger, acknowledge, resolve]
    required: true
  dedup_key:
    description: The alert's key; the same for every event of one incident (at most 255 characters).
    type: str
    required: true
  summary:
    description: One line shown in the alert (truncated to 1024 characters). Required to trigger.
    type: str
  source:
    description: Where the problem is (a host, a cluster, a service). Used to trigger.
    type: str
    default: sre.runbooks
  severity:
    description: PagerDuty severity. Used to trigger.
    type: str
    choices: [critical, error, warning, info]
    default: error
  component:
    description: The failing component.
    type: str
  group:
    description: A logical grouping (the scenario).
    type: str
  class:
    description: The class or type of the event (the finding's kind).
    type: str
  custom_details:
    description: Free-form details shown in the alert.
    type: dict
  links:
    description: Links with C(href) and C(text).
    type: list
    elements: dict
  url:
    description: The Events API v2 enqueue URL (a proxy, PagerDuty's EU service region, or a test receiver).
    type: str
    default: https://events.pagerduty.com/v2/enqueue
attributes:
  check_mode:
    support: full
    description: Builds the event and returns it in RV(payload); sends nothing.
  diff_mode:
    support: none
    description: A message has no before and after.
  idempotent:
    support: partial
    description: PagerDuty deduplicates by O(dedup_key); the module itself cannot tell whether an event was sent before.
seealso:
  - module: sre.runbooks.slack_webhook
"""

EXAMPLES = r"""
- name: Incident | page the on-call
  sre.runbooks.pagerduty_event:
    routing_key: "{{ vault_pagerduty_routing_key }}"
    action: trigger
    dedup_key: "sre-runbooks/{{ incident_id }}"
    summary: "[P1] postgresql down: connection slots exhausted"
    severity: error
    source: db1
    component: postgresql
  delegate_to: localhost
  run_once: true

- name: Incident | resolved
  sre.runbooks.pagerduty_event:
    routing_key: "{{ vault_pagerduty_routing_key }}"
    action: resolve
    dedup_key: "sre-runbooks/{{ incident_id }}"
"""

RETURN = r"""
delivered:
  description: Whether PagerDuty accepted the event (HTTP 2xx, normally 202).
  returned: always
  type: bool
  sample: true
status:
  description: The last HTTP status; null when nothing answered or in check mode.
  returned: always
  type: int
  sample: 202
dedup_key:
  description: The alert's key (PagerDuty's answer when it gives one).
  returned: always
  type: str
  sample: sre-runbooks/db_exhaustion--db1
response:
  description: PagerDuty's JSON answer (C(status), C(message), C(dedup_key)), when it was JSON.
  returned: when an answer was received
  type: dict
attempts:
  description: Each attempt with C(attempt), C(status), C(seconds), and for failures C(error) and C(retry_in_seconds).
  returned: always
  type: list
  elements: dict
endpoint:
  description: Scheme and host of the enqueue URL.
  returned: always
  type: str
  sample: https://events.pagerduty.com
payload:
  description: The event sent (or that would be sent in check mode), with the routing key masked.
  returned: always
  type: dict
error:
  description: Why the event was not delivered (also given as a warning).
  returned: when not delivered and not in check mode
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._notify import (
    NOTIFY_ARGUMENT_SPEC,
    post_json,
    safe_origin,
)

MASK = "********"


def build_event(params: dict) -> dict:
    event = {"routing_key": params["routing_key"], "event_action": params["action"],
             "dedup_key": params["dedup_key"]}
    if params["action"] == "trigger":
        body = {"summary": (params.get("summary") or "")[:1024], "source": params["source"],
                "severity": params["severity"]}
        for key in ("component", "group", "class", "custom_details"):
            if params.get(key):
                body[key] = params[key]
        event["payload"] = body
        event["client"] = "sre.runbooks"
        if params.get("links"):
            event["links"] = params["links"]
    return event


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            routing_key=dict(type="str", required=True, no_log=True),
            action=dict(type="str", required=True, choices=["trigger", "acknowledge", "resolve"]),
            dedup_key=dict(type="str", required=True, no_log=False),
            summary=dict(type="str"),
            source=dict(type="str", default="sre.runbooks"),
            severity=dict(type="str", default="error", choices=["critical", "error", "warning", "info"]),
            component=dict(type="str"),
            group=dict(type="str"),
            custom_details=dict(type="dict"),
            links=dict(type="list", elements="dict"),
            url=dict(type="str", default="https://events.pagerduty.com/v2/enqueue"),
            **{"class": dict(type="str")},
            **NOTIFY_ARGUMENT_SPEC,
        ),
        required_if=[("action", "trigger", ("summary",))],
        supports_check_mode=True,
    )
    params = module.params
    if len(params["dedup_key"]) > 255:
        module.fail_json(msg=f"dedup_key is {len(params['dedup_key'])} characters; PagerDuty allows 255")
    event = build_event(params)
    shown = dict(event, routing_key=MASK)
    result = {"changed": False, "delivered": False, "status": None, "attempts": [],
              "dedup_key": params["dedup_key"], "endpoint": safe_origin(params["url"]), "payload": shown}
    if module.check_mode:
        module.exit_json(**result)
    sent = post_json(module, params["url"], event, f"PagerDuty {params['action']} event")
    body = sent.pop("body", "")
    result.update(sent)
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        result["response"] = answer
        if sent["delivered"] and answer.get("dedup_key"):
            result["dedup_key"] = answer["dedup_key"]
    result["changed"] = sent["delivered"]
    if not sent["delivered"]:
        module.warn(sent["error"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
