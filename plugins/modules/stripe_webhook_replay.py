#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stripe_webhook_replay
short_description: Find Stripe events whose webhook delivery failed and replay them
version_added: 0.1.0
description:
  - Runbook 000 Scenario E / 003 Scenario 1 (Stripe webhook failures) as one task.
  - Checks that the webhook signing secret is configured - from O(webhook_secret) or from a
    systemd C(EnvironmentFile) (O(webhook_secret_file)) - and returns only its presence, length,
    source, shape and a short hash prefix, never its value.
  - Lists the events whose delivery failed (C(GET /v1/events?delivery_success=false&created[gte]=...)),
    following C(has_more)/C(starting_after) over every page, optionally only some O(types).
  - Replays each event of the last 30 days, oldest first. O(mode=retry) asks Stripe to resend it
    to O(webhook_endpoint) (C(POST /v1/events/{id}/retry), what C(stripe events resend) calls).
    O(mode=direct) posts the event body to O(processor_url) signed as Stripe signs
    (a C(Stripe-Signature) header C(t=...,v1=HMAC-SHA256(secret, "t.payload"))). Older events are reported in
    RV(too_old), not replayed.
  - Then verifies the processor acknowledged each event - O(mode=retry) lists the failed events
    again until the replayed ones are no longer among them (up to O(verify_timeout)); O(mode=direct)
    takes a 2xx answer as the acknowledgement.
  - Idempotent by target state ("no event of the window is still undelivered") - a re-run finds no
    failed event and changes nothing. In O(mode=direct), Stripe still lists the events it did not
    deliver itself; pass the ids already acknowledged in O(skip_event_ids) (the role does).
  - Refuses (fails, replays nothing) when the secret is missing, when the listing was cut by
    O(max_pages), or when more than O(max_events) events would be replayed. The message names the
    guardrail and its override.
  - Paced to O(rate_limit) requests per second; a C(429) answer is retried after its C(Retry-After)
    (or an exponential back-off), capped at O(backoff_cap) seconds, at most O(max_retries) times.
  - Standard library only (no C(stripe) SDK).
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Checks the secret and lists the failed events; returns in RV(would_replay) the events it would
      replay and replays none.
  diff_mode:
    support: none
    description: Replaying sends events; there is no state to diff.
  idempotent:
    support: full
    description: A second run finds no failed event and returns RV(ignore:changed=false).
options:
  api_key:
    description:
      - Stripe secret (or restricted) API key. Never returned; masked in every message.
      - Defaults to the E(STRIPE_API_KEY) environment variable.
    type: str
    required: false
  api_base:
    description: Base URL of the Stripe API. Point it at a test stand-in in a lab.
    type: str
    default: https://api.stripe.com
  mode:
    description:
      - V(retry) asks Stripe to resend each event to O(webhook_endpoint).
      - V(direct) posts each event to O(processor_url), signed with the webhook secret.
    type: str
    choices: [retry, direct]
    default: retry
  webhook_endpoint:
    description: The Stripe webhook endpoint id (C(we_...)) to resend to. Required for O(mode=retry).
    type: str
  processor_url:
    description: The processor's webhook URL (http or https). Required for O(mode=direct).
    type: str
  webhook_secret:
    description:
      - The webhook signing secret (C(whsec_...)) the processor verifies with. Never returned.
      - Give this or O(webhook_secret_file). Required for O(mode=direct).
    type: str
  webhook_secret_file:
    description:
      - A systemd C(EnvironmentFile) (C(KEY=VALUE) lines) holding the secret as the app reads it, on
        the host the module runs on. The check reads what the app reads.
    type: path
  webhook_secret_var:
    description: The variable in O(webhook_secret_file) that holds the secret.
    type: str
    default: STRIPE_WEBHOOK_SECRET
  webhook_secret_source:
    description: Where O(webhook_secret) comes from, for the report (for example C(vault payments/stripe)).
    type: str
  require_webhook_secret:
    description: Refuse to replay when the secret is not configured (the processor would reject the replays).
    type: bool
    default: true
  since:
    description:
      - Look back this far for failed events (seconds or a duration such as V(3d)). Events older than 30
        days are listed in RV(too_old) and never replayed.
    type: str
    default: 3d
  types:
    description: Only these event types (for example V(invoice.paid)). All types when empty.
    type: list
    elements: str
    default: []
  skip_event_ids:
    description: Event ids not to replay (already acknowledged by the processor).
    type: list
    elements: str
    default: []
  max_events:
    description: Guardrail - refuse when more events than this would be replayed.
    type: int
    default: 100
  max_pages:
    description: Guardrail - list at most this many pages of O(page_size); refuse when the listing is longer.
    type: int
    default: 20
  page_size:
    description: Events per page (Stripe allows 1 to 100).
    type: int
    default: 100
  rate_limit:
    description: Requests per second at most (Stripe allows 25 in test mode and 100 in live mode).
    type: float
    default: 20
  max_retries:
    description: Retries of a request answered C(429).
    type: int
    default: 5
  backoff_cap:
    description: The longest wait, in seconds, before retrying a C(429) (whatever C(Retry-After) says).
    type: float
    default: 30
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 10
  verify_timeout:
    description: O(mode=retry) - seconds to wait for the replayed events to leave the failed list. V(0) skips the check.
    type: float
    default: 30
notes:
  - Run it where the Stripe API (and, in O(mode=direct), the processor) is reachable, usually
    with C(delegate_to) localhost; O(webhook_secret_file) is read on that host.
"""

EXAMPLES = r"""
- name: What failed in the last day, and would be replayed (changes nothing)
  sre.runbooks.stripe_webhook_replay:
    api_key: "{{ vault_stripe_api_key }}"
    webhook_endpoint: we_1PaymentsProcessor
    webhook_secret_file: /etc/payments/env
    since: 1d
  check_mode: true
  delegate_to: localhost
  register: stripe_failed

- name: Resend the failed invoice events through Stripe
  sre.runbooks.stripe_webhook_replay:
    api_key: "{{ vault_stripe_api_key }}"
    webhook_endpoint: we_1PaymentsProcessor
    webhook_secret: "{{ vault_stripe_webhook_secret }}"
    webhook_secret_source: vault payments/stripe
    types: [invoice.paid, invoice.payment_failed]
    max_events: 500
  delegate_to: localhost
  register: stripe_replay

- name: Post them straight to the processor, signed (Stripe's endpoint is disabled)
  sre.runbooks.stripe_webhook_replay:
    api_key: "{{ vault_stripe_api_key }}"
    mode: direct
    processor_url: https://payments.internal/stripe/webhook
    webhook_secret: "{{ vault_stripe_webhook_secret }}"
  delegate_to: localhost
"""

RETURN = r"""
webhook_secret:
  description: What can be said about the signing secret without showing it.
  returned: always
  type: dict
  contains:
    present:
      description: Whether a non-empty secret is configured.
      type: bool
    length:
      description: Its length in characters.
      type: int
    source:
      description: Where it was read from.
      type: str
      sample: EnvironmentFile /etc/payments/env (STRIPE_WEBHOOK_SECRET)
    format_ok:
      description: Whether it has Stripe's C(whsec_) shape.
      type: bool
    sha256_prefix:
      description: First 8 hex digits of its SHA-256, to compare two configurations.
      type: str
failed_events:
  description: The events listed as failed delivery (id, type, created, age_seconds, pending_webhooks), oldest first.
  returned: always
  type: list
  elements: dict
would_replay:
  description: Ids of the events to replay (in check mode, the ones it would replay).
  returned: always
  type: list
  elements: str
replayed:
  description: Ids of the events sent again (empty in check mode).
  returned: always
  type: list
  elements: str
acknowledged:
  description: Ids of the replayed events the processor acknowledged.
  returned: always
  type: list
  elements: str
unacknowledged:
  description: Ids of the replayed (or attempted) events not acknowledged.
  returned: always
  type: list
  elements: str
too_old:
  description: Failed events older than 30 days - reported, not replayed.
  returned: always
  type: list
  elements: dict
skipped_events:
  description:
    - Listed events not replayed, with the reason (already delivered, in O(skip_event_ids), type not selected).
    - Named so, not C(skipped), because Ansible reads a result key C(skipped) as a skipped task and
      then evaluates neither C(failed_when) nor C(changed_when) on it.
  returned: always
  type: list
  elements: dict
errors:
  description: One entry per event whose replay failed (id, error), secrets masked.
  returned: always
  type: list
  elements: dict
verdict:
  description: The decision - act, healthy, problem (why it refused), guardrail, warnings, summary, replay_count.
  returned: always
  type: dict
actions:
  description: One record per replay (timestamp, action, target, result).
  returned: always
  type: list
  elements: dict
requests:
  description: API calls made (count), answers 429 (throttled) and seconds waited for them.
  returned: always
  type: dict
created_gte:
  description: The lower bound used for C(created[gte]) (unix time).
  returned: always
  type: int
"""

import os
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _stripe
from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record, parse_duration


def read_secret(module: AnsibleModule) -> tuple:
    params = module.params
    if params["webhook_secret"]:
        return params["webhook_secret"], params["webhook_secret_source"] or "option webhook_secret"
    path = params["webhook_secret_file"]
    if path:
        source = f"EnvironmentFile {path} ({params['webhook_secret_var']})"
        try:
            with open(path, encoding="utf-8") as handle:
                values = _stripe.parse_env_file(handle.read())
        except FileNotFoundError:
            return None, source + ": file not found"
        except OSError as exc:
            module.fail_json(msg=f"webhook_secret_file {path}: cannot read it ({exc.strerror}); "
                                 "run with become, or check the path")
        return values.get(params["webhook_secret_var"]) or None, source
    return None, "not given (webhook_secret or webhook_secret_file)"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            api_key=dict(type="str", no_log=True),
            api_base=dict(type="str", default="https://api.stripe.com"),
            mode=dict(type="str", choices=["retry", "direct"], default="retry"),
            webhook_endpoint=dict(type="str"),
            processor_url=dict(type="str"),
            webhook_secret=dict(type="str", no_log=True),
            webhook_secret_file=dict(type="path"),
            webhook_secret_var=dict(type="str", default=_stripe.DEFAULT_SECRET_VAR, no_log=False),
            webhook_secret_source=dict(type="str", no_log=False),
            require_webhook_secret=dict(type="bool", default=True),
            since=dict(type="str", default="3d"),
            types=dict(type="list", elements="str", default=[]),
            skip_event_ids=dict(type="list", elements="str", default=[]),
            max_events=dict(type="int", default=100),
            max_pages=dict(type="int", default=20),
            page_size=dict(type="int", default=100),
            rate_limit=dict(type="float", default=20.0),
            max_retries=dict(type="int", default=5),
            backoff_cap=dict(type="float", default=30.0),
            timeout=dict(type="float", default=10.0),
            verify_timeout=dict(type="float", default=30.0),
        ),
        mutually_exclusive=[("webhook_secret", "webhook_secret_file")],
        required_if=[("mode", "retry", ["webhook_endpoint"]), ("mode", "direct", ["processor_url"])],
        supports_check_mode=True,
    )
    params = module.params
    api_key = params["api_key"] or os.environ.get("STRIPE_API_KEY")
    if not api_key:
        module.fail_json(msg="api_key is required (or the STRIPE_API_KEY environment variable)")
    module.no_log_values.add(api_key)
    for url_option in ("api_base", "processor_url"):
        value = params[url_option]
        if value and urllib.parse.urlsplit(value).scheme not in ("http", "https"):
            module.fail_json(msg=f"{url_option} must be an http or https URL")
    if not 1 <= params["page_size"] <= 100:
        module.fail_json(msg=f"page_size must be between 1 and 100, got {params['page_size']}")
    for option in ("max_events", "max_pages"):
        if params[option] < 1:
            module.fail_json(msg=f"{option} must be 1 or more, got {params[option]}")
    try:
        since = parse_duration(params["since"], "since")
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    secret, source = read_secret(module)
    if secret:
        module.no_log_values.add(secret)
    secrets = [s for s in (api_key, secret) if s]
    info = _stripe.secret_info(secret, source)
    if params["mode"] == "direct" and not secret:
        module.fail_json(msg=f"mode=direct signs each event with the webhook secret, which is not configured ({source})",
                         webhook_secret=info)

    client = _stripe.StripeClient(params["api_base"], api_key, timeout=params["timeout"],
                                  rate_limit=params["rate_limit"], max_retries=params["max_retries"],
                                  backoff_cap=params["backoff_cap"], secrets=secrets)
    now = time.time()
    created_gte = int(now - since)
    result = dict(changed=False, webhook_secret=info, created_gte=created_gte, mode=params["mode"],
                  failed_events=[], would_replay=[], replayed=[], acknowledged=[], unacknowledged=[],
                  too_old=[], skipped_events=[], errors=[], actions=[], verdict={})

    def requests() -> dict:
        return {"count": client.requests, "throttled": client.throttled,
                "waited_seconds": round(client.waited_seconds, 3)}

    try:
        events, complete = client.failed_events(created_gte, params["types"], params["page_size"], params["max_pages"])
    except _stripe.StripeError as exc:
        module.fail_json(msg=f"cannot list the failed events: {exc}", requests=requests(),
                         **{k: v for k, v in result.items() if k != "changed"})
    plan = _stripe.plan_replay(events, now, types=params["types"], skip_ids=params["skip_event_ids"])
    verdict = _stripe.replay_verdict(info, plan, complete, params["max_events"], params["require_webhook_secret"])
    for warning in verdict["warnings"]:
        module.warn(warning)
    result.update(failed_events=[_stripe.event_summary(e, now) for e in
                                 sorted(events, key=lambda e: (int(e.get("created") or 0), str(e.get("id"))))],
                  would_replay=[e["id"] for e in plan["replay"]], too_old=plan["too_old"],
                  skipped_events=plan["skipped"], verdict=verdict)
    if verdict["problem"]:
        module.fail_json(msg=verdict["problem"], requests=requests(), **{k: v for k, v in result.items() if k != "changed"})
    if not verdict["act"] or module.check_mode:
        module.exit_json(requests=requests(), **result)

    bodies = {e.get("id"): e for e in events}
    stopped = None
    for index, summary in enumerate(plan["replay"]):
        event_id = summary["id"]
        if params["mode"] == "retry":
            target = f"event {event_id} -> webhook endpoint {params['webhook_endpoint']}"
            try:
                client.retry_event(event_id, params["webhook_endpoint"])
            except _stripe.StripeError as exc:
                result["errors"].append({"id": event_id, "error": str(exc)})
                result["actions"].append(action_record("stripe_event_retry", target, "failed", error=str(exc)))
                if exc.status is None or exc.status in (401, 429):
                    stopped = f"stopped after {exc}"
                    result["unacknowledged"].extend(e["id"] for e in plan["replay"][index:])
                    break
                result["unacknowledged"].append(event_id)
                continue
            result["replayed"].append(event_id)
            result["actions"].append(action_record("stripe_event_retry", target, "resent"))
        else:
            target = f"event {event_id} -> {_stripe.mask_secrets(params['processor_url'], secrets)}"
            client._pace()
            status, error = _stripe.post_signed(params["processor_url"], bodies[event_id], secret, params["timeout"])
            result["replayed"].append(event_id)
            if status is not None and 200 <= status < 300:
                result["acknowledged"].append(event_id)
                result["actions"].append(action_record("stripe_event_post", target, "acknowledged", status=status))
            else:
                result["unacknowledged"].append(event_id)
                result["errors"].append({"id": event_id, "error": error})
                result["actions"].append(action_record("stripe_event_post", target, "failed", status=status, error=error))
    result["changed"] = bool(result["replayed"])

    if params["mode"] == "retry" and result["replayed"]:
        pending = set(result["replayed"])
        deadline = time.monotonic() + max(0.0, params["verify_timeout"])
        while pending and params["verify_timeout"] > 0:
            try:
                still, _complete = client.failed_events(created_gte, params["types"], params["page_size"], params["max_pages"])
            except _stripe.StripeError as exc:
                result["errors"].append({"id": None, "error": f"verify: {exc}"})
                break
            still_failing = {e.get("id") for e in still if e.get("pending_webhooks") != 0}
            pending &= still_failing
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        if params["verify_timeout"] > 0:
            result["acknowledged"] = [i for i in result["replayed"] if i not in pending]
            result["unacknowledged"] = [i for i in result["replayed"] if i in pending] + result["unacknowledged"]
        else:
            result["acknowledged"] = []
    result["requests"] = requests()
    if stopped:
        result["verdict"] = dict(verdict, stopped=stopped)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
