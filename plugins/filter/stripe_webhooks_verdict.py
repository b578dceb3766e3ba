# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decide step of the stripe_webhooks role, in Python so every branch is unit-tested: the
role only wires (call, register, `when: stripe_webhooks_verdict.act`)."""

from __future__ import annotations

import typing as t

DOCUMENTATION = r"""
name: stripe_webhooks_verdict
short_description: Decide whether the stripe_webhooks runbook replays failed events
version_added: 0.2.0
description:
  - Reads the registered result of C(sre.runbooks.stripe_webhook_replay) run in check mode and of
    C(sre.runbooks.http_health) on the processor's health endpoint, and returns what the role does.
  - Refuses (O(ignore:act) false, C(problem) set) when the replay module refused (secret missing, a
    guardrail), or when the processor is unhealthy - a replay into a failing processor fails again
    and the runbook cannot heal the processor itself.
  - Acts when events failed delivery and the processor is healthy; does nothing when nothing failed.
author:
  - sre.runbooks maintainers (@sre-runbooks)
options:
  _input:
    description: The registered result of C(sre.runbooks.stripe_webhook_replay) in check mode.
    type: dict
    required: true
  health:
    description: The registered result of C(sre.runbooks.http_health) on the processor (empty when not checked).
    type: dict
    default: {}
  secret:
    description:
      - What C(sre.runbooks.stripe_webhooks_k8s_secret) found about the signing secret in the app's
        Kubernetes configuration (empty when the secret is not checked there).
      - When given, a secret that is not set there refuses, and it is the C(webhook_secret) reported.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    verdict: "{{ stripe_check | sre.runbooks.stripe_webhooks_verdict(health=processor_health) }}"
"""

RETURN = r"""
_value:
  description: >-
    C(act), C(healthy), C(problem), C(summary), C(would_replay) (event ids), C(processor_ok),
    C(webhook_secret) (presence, length and source of the signing secret; never its value).
  type: dict
"""


def stripe_webhooks_verdict(check: dict[str, t.Any], health: t.Optional[dict[str, t.Any]] = None,
                            secret: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
    check = check or {}
    health = health or {}
    verdict = check.get("verdict") or {}
    would = list(check.get("would_replay") or [])
    processor_ok = None if not health or health.get("skipped") else bool(health.get("all_ok"))
    findings = {"act": False, "healthy": False, "problem": None, "summary": "", "would_replay": would,
                "processor_ok": processor_ok, "too_old": [e.get("id") for e in check.get("too_old") or []],
                "webhook_secret": secret or check.get("webhook_secret") or {}}
    if secret and not secret.get("present"):
        findings["problem"] = (f"the webhook signing secret is not set in the app's configuration ({secret.get('source')}): "
                               "the processor cannot verify Stripe's signatures, so a replay would fail again. "
                               "Create the Secret (or its key), restart the app, then re-run")
        findings["summary"] = "refused: webhook secret missing in Kubernetes"
        return findings
    if check.get("skipped") is True:  # Ansible's own marker of a skipped task
        findings["problem"] = "the failed events were not listed (the assessment was skipped)"
        findings["summary"] = "not assessed"
        return findings
    if check.get("failed") or verdict.get("problem") or (not verdict and check.get("msg")):
        # failed_when: false in the role clears `failed`; the module's own verdict still says why,
        # and a module that stopped before deciding (the events could not be listed, bad input)
        # returned no verdict at all: its msg says why. Not listed is not "nothing to replay".
        findings["problem"] = verdict.get("problem") or check.get("msg") or "listing the failed events failed"
        findings["summary"] = "refused: " + (verdict.get("summary") or "the replay check failed")
        return findings
    if processor_ok is False:
        failing = ", ".join(health.get("failing") or []) or "the processor"
        first = next((e for e in health.get("endpoints") or [] if not e.get("ok")), {})
        findings["problem"] = (f"the payment processor is unhealthy ({failing}: {first.get('error') or 'failing'}); "
                               "a replay would fail again. Heal the processor first, then re-run")
        findings["summary"] = f"refused: processor unhealthy, {len(would)} event(s) waiting"
        return findings
    findings["act"] = bool(verdict.get("act")) and bool(would)
    findings["healthy"] = not findings["act"]
    findings["summary"] = verdict.get("summary") or ("nothing to replay" if not would else f"{len(would)} to replay")
    return findings


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"stripe_webhooks_verdict": stripe_webhooks_verdict}
