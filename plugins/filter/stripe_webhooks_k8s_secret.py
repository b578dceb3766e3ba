# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assess step of the stripe_webhooks role when the signing secret lives in a Kubernetes Secret:
what k8s_config_check found, reduced to presence, length and source (never a value)."""

from __future__ import annotations

import typing as t

DOCUMENTATION = r"""
name: stripe_webhooks_k8s_secret
short_description: Whether the app's Kubernetes workload gets a Stripe webhook signing secret, without its value
version_added: 0.2.0
description:
  - Assess step of the stripe_webhooks role when the signing secret lives in a Kubernetes Secret.
  - Reads the registered result of C(sre.runbooks.k8s_config_check) on the app's workload and finds
    the Secret behind the environment variable O(env) - a C(secretKeyRef), or a Secret loaded whole
    with C(envFrom) that has a key of that name.
  - The secret is present when every such reference resolves to an existing, non-empty key. Only
    presence, length (for C(secretKeyRef); unknown for C(envFrom)) and source are returned, never a value.
author:
  - sre.runbooks maintainers (@sre-runbooks)
options:
  _input:
    description: The registered result of C(sre.runbooks.k8s_config_check) on the workload.
    type: dict
    required: true
  env:
    description: The environment variable the app reads the secret from.
    type: str
    default: STRIPE_WEBHOOK_SECRET
  container:
    description: Only this container of the workload (default every container).
    type: str
"""

EXAMPLES = r"""
- name: The signing secret in the app's Kubernetes configuration
  ansible.builtin.set_fact:
    secret: "{{ config_check | sre.runbooks.stripe_webhooks_k8s_secret(env='STRIPE_WEBHOOK_SECRET') }}"
"""

RETURN = r"""
_value:
  description: >-
    C(present), C(length) (null when unknown), C(source) (the Secret, key and workload, or why none
    was found), C(format_ok) and C(sha256_prefix) (always null - the value is never read),
    C(references) (the resolved references, one line each).
  type: dict
"""


def stripe_webhooks_k8s_secret(config: dict[str, t.Any], env: str = "STRIPE_WEBHOOK_SECRET",
                               container: t.Optional[str] = None) -> dict[str, t.Any]:
    """The signing secret as the app's Kubernetes workload gets it, from the registered result of
    C(sre.runbooks.k8s_config_check) on that workload: the Secret key behind the environment
    variable ``env`` (C(secretKeyRef)), or a Secret the container loads whole (C(envFrom)) that
    has a key of that name. Presence, length (when known) and source only: the module never
    returns a value, and neither does this."""
    config = config or {}
    info: dict[str, t.Any] = {"present": False, "length": 0, "source": "", "format_ok": None,
                              "sha256_prefix": None, "references": []}
    workloads = ", ".join(config.get("workloads") or []) or "the workload"
    if config.get("skipped"):
        info["source"] = "Kubernetes (not checked)"
        return info
    if config.get("failed"):
        info["source"] = f"Kubernetes: {config.get('msg') or 'the configuration check failed'}"
        return info
    refs = [r for r in config.get("references") or []
            if r.get("kind") == "Secret" and (container is None or r.get("container") == container)]
    direct = [r for r in refs if r.get("via") == f"env {env}"]
    whole = [r for r in refs if r.get("via") == "envFrom" and env in (r.get("keys") or [])]
    found = direct or whole
    if not found:
        missing_whole = [r for r in refs if r.get("via") == "envFrom" and not r.get("exists")]
        info["source"] = (f"Kubernetes: {workloads} has no Secret behind env {env}"
                          + (f" (envFrom Secret {', '.join(r['name'] for r in missing_whole)} does not exist)"
                             if missing_whole else ""))
        return info
    info["references"] = [r.get("description") or f"Secret {r.get('name')}" for r in found]
    first = found[0]
    where = f"env {env} of {first.get('workload') or workloads}" + (
        f" container {first['container']}" if first.get("container") else "")
    key = first.get("key") or env
    info["source"] = f"Kubernetes Secret {first.get('name')} key {key} ({where})"
    # Every container that takes the variable must get a value: one without it fails to verify.
    info["present"] = all(r.get("exists") and r.get("key_exists") is not False and not r.get("empty")
                          for r in direct) and all(r.get("exists") for r in whole)
    lengths = [r.get("length") for r in direct if r.get("length") is not None]
    info["length"] = min(lengths) if lengths and info["present"] else (None if info["present"] else 0)
    return info


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"stripe_webhooks_k8s_secret": stripe_webhooks_k8s_secret}
