#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_config_check
short_description: Check that every Secret and ConfigMap key a workload references exists, without revealing secrets
version_added: 0.1.0
description:
  - Walks the pod template of each selected Deployment, StatefulSet and DaemonSet - C(env)
    (C(secretKeyRef), C(configMapKeyRef)), C(envFrom), C(secret), C(configMap) and C(projected)
    volumes - and checks that each referenced Secret or ConfigMap, and each referenced key,
    exists in the namespace.
  - Proves a secret is set without showing it - for each referenced secret key it returns the
    value's length and, with O(hash_secrets=true), a keyed hash (HMAC-SHA256) of it. The key is
    O(hash_key), or a random key made for this run only, so the hash compares values within one
    run (or across runs that share O(hash_key)) but cannot confirm a guessed value offline.
    No secret value, encoded or not, and no unkeyed hash of one is ever returned or logged. This replaces the runbook step
    C(kubectl get secret -o yaml | base64 -d).
  - Read-only. One list call for Secrets and one for ConfigMaps, whatever the number of workloads.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.k8s
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Read-only; there is nothing to diff.
  idempotent:
    support: full
    description: Changes nothing, ever.
options:
  namespace:
    description: The namespace of the workloads, Secrets and ConfigMaps.
    type: str
    default: default
  kind:
    description: Only workloads of this kind. Default is all three kinds.
    type: str
    choices: [Deployment, StatefulSet, DaemonSet]
  name:
    description: Only the workload with this name (set O(kind) too, or every kind is searched).
    type: str
  label_selectors:
    description: Only workloads with these labels, for example V(app=webhook-worker).
    type: list
    elements: str
    default: []
  hash_secrets:
    description:
      - Return an HMAC-SHA256 of each referenced secret value, keyed with O(hash_key) or, without
        it, with a random key made for this run. With V(false) (the default) only the length is returned.
      - To compare two environments or two points in time, pass the same O(hash_key) to both runs.
    type: bool
    default: false
  hash_key:
    description:
      - The HMAC key for O(hash_secrets). Keep it secret (a vault variable); whoever holds it can
        test guesses against the returned hashes.
      - Implies O(hash_secrets=true).
    type: str
  fail_on_missing:
    description: Fail when a required (non-optional) reference is missing, listing every one.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Is the Stripe webhook secret there and set? (without printing it)
  sre.runbooks.k8s_config_check:
    kubeconfig: "{{ k8s_kubeconfig }}"
    namespace: payments
    kind: Deployment
    name: webhook-worker
  register: config

- name: Show what is missing
  ansible.builtin.debug:
    msg: "{{ config.missing | map(attribute='description') | list }}"
  when: not config.ok

- name: Fail the play on any missing key in the namespace
  sre.runbooks.k8s_config_check:
    namespace: payments
    fail_on_missing: true
"""

RETURN = r"""
ok:
  description: True when every required reference resolves.
  returned: always
  type: bool
workloads:
  description: The workloads checked, as Kind/name.
  returned: always
  type: list
  elements: str
  sample: ["Deployment/webhook-worker"]
references:
  description: Every reference found, resolved.
  returned: always
  type: list
  elements: dict
  contains:
    workload: {description: Kind/name of the workload., type: str}
    container: {description: Container name (null for volumes)., type: str}
    kind: {description: Secret or ConfigMap., type: str}
    name: {description: Name of the Secret or ConfigMap., type: str}
    key: {description: "The key referenced; null when the whole object is used (envFrom, volume without items).", type: str}
    via: {description: "How it is used: V(env NAME), V(envFrom) or V(volume NAME).", type: str}
    optional: {description: Whether the reference is marked optional., type: bool}
    exists: {description: Whether the Secret or ConfigMap exists., type: bool}
    key_exists: {description: Whether the key exists (null when no key is referenced)., type: bool}
    length: {description: Length in bytes of the referenced value (secrets and config maps)., type: int}
    empty: {description: Whether the referenced value is empty., type: bool}
    hmac_sha256:
      description: >-
        With O(hash_secrets), HMAC-SHA256 of the secret value keyed with O(hash_key) or a per-run
        random key (never the value, never an unkeyed hash).
      type: str
    keys: {description: "For whole-object references, the key names present (never values).", type: list, elements: str}
    description: {description: "The reference in one line, for messages.", type: str}
missing:
  description: The required references that do not resolve (same fields as RV(references)).
  returned: always
  type: list
  elements: dict
"""

import base64
import secrets

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._k8s import (
    WORKLOAD_KINDS,
    K8sError,
    config_references,
    connect,
    k8s_argument_spec,
    q,
    secret_fingerprint,
)


def resolve(ref, objects, hmac_key):
    """Fill exists/key_exists/length for one reference; never copies a value into the result."""
    obj = objects.get((ref["kind"], ref["name"]))
    ref["exists"] = obj is not None
    ref["key_exists"] = None
    if obj is None:
        return
    if ref["kind"] == "Secret":
        data = obj.get("data") or {}
        if ref["key"] is None:
            ref["keys"] = sorted(data)
            return
        ref["key_exists"] = ref["key"] in data
        if ref["key_exists"]:
            ref.update(secret_fingerprint(data[ref["key"]], hmac_key))
    else:
        data = obj.get("data") or {}
        binary = obj.get("binaryData") or {}
        if ref["key"] is None:
            ref["keys"] = sorted(set(data) | set(binary))
            return
        ref["key_exists"] = ref["key"] in data or ref["key"] in binary
        if ref["key"] in data:
            ref["length"] = len(data[ref["key"]].encode())
            ref["empty"] = ref["length"] == 0
        elif ref["key"] in binary:
            ref["length"] = len(base64.b64decode(binary[ref["key"]]))
            ref["empty"] = ref["length"] == 0


def describe(ref):
    what = f"{ref['kind']} {ref['name']}" + (f" key {ref['key']}" if ref["key"] else "")
    user = ref["workload"] + (f" container {ref['container']}" if ref["container"] else "")
    if not ref["exists"]:
        state = "does not exist"
    elif ref["key_exists"] is False:
        state = "exists but has no such key"
    elif ref.get("empty"):
        state = "is empty"
    else:
        state = "is set"
    return f"{what} ({ref['via']} of {user}) {state}"


def main():
    argument_spec = k8s_argument_spec()
    argument_spec.update(
        namespace=dict(type="str", default="default"),
        kind=dict(type="str", choices=list(WORKLOAD_KINDS)),
        name=dict(type="str"),
        label_selectors=dict(type="list", elements="str", default=[]),
        hash_secrets=dict(type="bool", default=False),
        hash_key=dict(type="str", no_log=True),
        fail_on_missing=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    namespace = p["namespace"]
    selector = ",".join(s for s in p["label_selectors"] if s) or None
    api = connect(module)
    kinds = [p["kind"]] if p["kind"] else list(WORKLOAD_KINDS)
    workloads = []
    try:
        for kind in kinds:
            base = f"/apis/apps/v1/namespaces/{q(namespace)}/{WORKLOAD_KINDS[kind]}"
            if p["name"]:
                obj = api.get_or_none(f"{base}/{q(p['name'])}")
                found = [obj] if obj else []
            else:
                found = api.items(base, labelSelector=selector)
            workloads.extend((kind, obj) for obj in found)
        if p["name"] and not workloads:
            module.fail_json(msg=f"no {p['kind'] or 'Deployment, StatefulSet or DaemonSet'} named {p['name']} "
                                 f"in namespace {namespace}; check name, kind and namespace")
        references = []
        for kind, obj in workloads:
            for ref in config_references((obj.get("spec") or {}).get("template") or {}):
                ref["workload"] = f"{kind}/{obj['metadata']['name']}"
                references.append(ref)
        objects = {}
        if any(r["kind"] == "Secret" for r in references):
            for secret in api.items(f"/api/v1/namespaces/{q(namespace)}/secrets"):
                objects[("Secret", secret["metadata"]["name"])] = secret
        if any(r["kind"] == "ConfigMap" for r in references):
            for cm in api.items(f"/api/v1/namespaces/{q(namespace)}/configmaps"):
                objects[("ConfigMap", cm["metadata"]["name"])] = cm
    except K8sError as exc:
        hint = "; listing Secrets needs the 'list secrets' permission in the namespace" if exc.status == 403 else ""
        module.fail_json(msg=f"cannot check the configuration in namespace {namespace}: {exc}{hint}")

    hmac_key = None
    if p["hash_key"]:
        hmac_key = p["hash_key"].encode()
    elif p["hash_secrets"]:
        hmac_key = secrets.token_bytes(32)  # this run only: compares values within the result, nothing else
    for ref in references:
        resolve(ref, objects, hmac_key)
        ref["description"] = describe(ref)
    objects.clear()  # secret payloads go out of scope here; nothing below may read them
    missing = [r for r in references if not r["optional"] and (not r["exists"] or r["key_exists"] is False)]
    result = dict(changed=False, ok=not missing, references=references, missing=missing,
                  workloads=[f"{kind}/{obj['metadata']['name']}" for kind, obj in workloads])
    if missing and p["fail_on_missing"]:
        module.fail_json(msg=f"{len(missing)} required configuration references are missing in namespace "
                             f"{namespace}: " + "; ".join(r["description"] for r in missing), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
