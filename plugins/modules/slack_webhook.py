#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slack_webhook
short_description: Post an incident message to a Slack incoming webhook, never failing the run
version_added: 0.1.0
description:
  - Posts one message (the runbooks' C(#incidents) message) to a Slack incoming webhook.
  - Retries connection errors, HTTP 429 (honouring C(Retry-After)) and 5xx with exponential
    back-off; a message that still cannot be delivered is a warning and RV(delivered=false), never
    a task failure, because a notification must not fail the remediation around it.
  - The webhook URL is a secret (C(no_log)); results and messages name only its scheme and host.
  - M(community.general.slack) posts to a fixed C(https://hooks.slack.com) address and does not
    retry, so it cannot be pointed at a proxy, a Slack-compatible receiver or a test server.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.notify
options:
  webhook_url:
    description:
      - The incoming webhook URL, for example C(https://hooks.slack.com/services/T000/B000/XXXX).
        Keep it in a vault.
    type: str
    required: true
  text:
    description:
      - The message, Slack C(mrkdwn). Escape C(&), C(<) and C(>) that are not markup.
    type: str
    required: true
  blocks:
    description: Optional Block Kit blocks; O(text) is then the notification fallback.
    type: list
    elements: dict
  channel:
    description: Channel override (honoured by legacy webhooks only).
    type: str
  username:
    description: Sender name override (legacy webhooks only).
    type: str
  icon_emoji:
    description: Sender icon override (legacy webhooks only).
    type: str
attributes:
  check_mode:
    support: full
    description: Builds the payload and returns it in RV(payload); sends nothing.
  diff_mode:
    support: none
    description: A message has no before and after.
  idempotent:
    support: none
    description: Each run posts a new message.
notes:
  - Runs wherever the task runs; the incident role runs it once, on the controller.
seealso:
  - module: sre.runbooks.pagerduty_event
"""

EXAMPLES = r"""
- name: "Incident | post to #incidents"
  sre.runbooks.slack_webhook:
    webhook_url: "{{ vault_slack_incidents_webhook }}"
    text: ":rotating_light: *[P1] db_exhaustion--db1* postgresql down"
  register: slack
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
delivered:
  description: Whether Slack accepted the message (HTTP 2xx).
  returned: always
  type: bool
  sample: true
status:
  description: The last HTTP status; null when nothing answered or in check mode.
  returned: always
  type: int
  sample: 200
attempts:
  description: Each attempt with C(attempt), C(status), C(seconds), and for failures C(error) and C(retry_in_seconds).
  returned: always
  type: list
  elements: dict
  sample: [{"attempt": 1, "status": 503, "error": "HTTP 503: ...", "retry_in_seconds": 1.0}, {"attempt": 2, "status": 200}]
endpoint:
  description: Scheme and host of the webhook (never its secret path).
  returned: always
  type: str
  sample: https://hooks.slack.com
payload:
  description: The JSON body sent (or that would be sent in check mode).
  returned: always
  type: dict
error:
  description: Why the message was not delivered (also given as a warning).
  returned: when not delivered and not in check mode
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._notify import (
    NOTIFY_ARGUMENT_SPEC,
    post_json,
    safe_origin,
)


def build_payload(params: dict) -> dict:
    payload = {"text": params["text"]}
    for key in ("blocks", "channel", "username", "icon_emoji"):
        if params.get(key):
            payload[key] = params[key]
    return payload


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            webhook_url=dict(type="str", required=True, no_log=True),
            text=dict(type="str", required=True),
            blocks=dict(type="list", elements="dict"),
            channel=dict(type="str"),
            username=dict(type="str"),
            icon_emoji=dict(type="str"),
            **NOTIFY_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    url = module.params["webhook_url"]
    payload = build_payload(module.params)
    result = {"changed": False, "delivered": False, "status": None, "attempts": [],
              "endpoint": safe_origin(url), "payload": payload}
    if not url.lower().startswith(("http://", "https://")):
        result["error"] = f"webhook_url must be an http(s) URL (got scheme {safe_origin(url).split(':')[0]!r}); nothing sent"
        module.warn(result["error"])
        module.exit_json(**result)
    if module.check_mode:
        module.exit_json(**result)
    sent = post_json(module, url, payload, "Slack webhook")
    result.update(sent)
    result.pop("body", None)
    result["changed"] = sent["delivered"]
    if not sent["delivered"]:
        module.warn(sent["error"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
