#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_topic_recreate
short_description: Delete and recreate a corrupt Kafka topic identically, behind typed confirmation (LOSES ITS DATA)
version_added: 0.3.0
description:
  - Runbook 004 Scenario 5, "if topic is corrupt, recreate" (C(kafka-topics --delete) then
    C(--create)). For each topic it captures the partition count, the replication factor and the
    configs set on the topic, deletes it, creates it again with the same layout and configs, and
    verifies (every partition has a leader, same partition count and replication factor, configs
    in place).
  - B(Data loss.) Every message in a recreated topic is gone, and so is every consumer group's
    committed offset on it (the consumers restart from their C(auto.offset.reset) position). The
    offsets are read and returned (RV(plan[].committed_offsets)) before anything is deleted, so
    they can be committed again by hand if wanted.
  - Guardrails, each a refusal that fails the task, recreates nothing (not even the other topics of
    the run), names the topic and says how to override -
    the topic must be in O(topics) B(and) O(confirm) must hold the exact phrase C(RECREATE <topic>);
    a topic that looks healthy (every partition has a leader and readable offsets) is refused
    unless O(force); a topic that does not exist or whose replication factor is ambiguous is
    refused; when O(incident_memory=false) (the caller cannot tell what this incident did
    already) it is refused.
  - Once per incident - a topic listed in O(already_recreated) (the kafka_lag role reads it from
    the incident timeline) is not recreated again; that is not an error (RV(already_recreated)).
  - Batched - one metadata call, one end-offset call per offset kind, one describe_configs call,
    one committed-offsets call per consumer group, one delete and one create call for every topic.
  - A failure after the delete (the create refused) fails with RV(actions) saying exactly what was
    deleted, and RV(plan) holding the layout and configs to create it by hand.
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Reads everything, decides, and returns the topics it would delete and create with their layout and configs; changes nothing.
  diff_mode:
    support: none
    description: The plan is the preview.
  idempotent:
    support: partial
    description: >-
      Deleting data is not idempotent by nature; with O(already_recreated) from the incident
      timeline a second run of the same incident changes nothing.
requirements:
  - confluent-kafka >= 2.16
extends_documentation_fragment:
  - sre.runbooks.kafka
options:
  bootstrap_servers:
    description: Brokers to reach, C(host:port).
    type: list
    elements: str
    required: true
  topics:
    description:
      - The topics to recreate (the explicit flag). Empty - nothing is recreated.
    type: list
    elements: str
    required: true
  confirm:
    description:
      - Typed confirmations; a topic is recreated only when this holds exactly C(RECREATE <topic>)
        (case-sensitive). A confirmation for a topic missing from O(topics) is refused too.
    type: list
    elements: str
    default: []
  force:
    description: Recreate even a topic that looks healthy.
    type: bool
    default: false
  already_recreated:
    description:
      - Topic name to the time it was recreated in this incident; these are not recreated again.
    type: dict
    default: {}
  incident_memory:
    description:
      - Whether O(already_recreated) is known. False (the incident timeline could not be read)
        refuses every recreation, to keep it to once per incident.
    type: bool
    default: true
  copy_configs:
    description:
      - Which reported topic configs the new topic gets. V(overrides) - those Kafka reports as set
        on the topic (source C(DYNAMIC_TOPIC_CONFIG)); broker defaults are not pinned on the topic.
        V(all) - every config the broker reports, for brokers that report only the configs set on
        the topic and label them defaults (Tansu). Sensitive configs are never copied.
    type: str
    default: overrides
    choices: [overrides, all]
  settle_timeout:
    description: Seconds to wait for the delete to finish and the new partitions to get leaders.
    type: float
    default: 60
seealso:
  - module: sre.runbooks.kafka_consumer_lag_info
"""

EXAMPLES = r"""
- name: What recreating the notifications topic would do (changes nothing)
  sre.runbooks.kafka_topic_recreate:
    bootstrap_servers: [kafka1:9092]
    topics: [notifications]
    confirm: ["RECREATE notifications"]
  check_mode: true
  register: preview

- name: Recreate it (its messages and the groups' offsets on it are lost)
  sre.runbooks.kafka_topic_recreate:
    bootstrap_servers: [kafka1:9092]
    topics: [notifications]
    confirm: ["RECREATE notifications"]
  register: recreated

- name: Offsets the consumer groups had committed on it
  ansible.builtin.debug:
    msg: "{{ recreated.plan | items2dict(key_name='topic', value_name='committed_offsets') }}"
"""

RETURN = r"""
plan:
  description: One entry per topic named in O(topics) or O(confirm), with the decision and what was read before acting.
  returned: when the brokers answered
  type: list
  elements: dict
  contains:
    topic: {description: Topic name., type: str, returned: always}
    status:
      description: >-
        V(recreate), V(already) (recreated in this incident), V(refused), or V(held) (fine on its
        own, but another topic of the run was refused, so nothing is recreated).
      type: str
      returned: always
    recreate: {description: Whether it is (or in check mode would be) recreated., type: bool, returned: always}
    reason: {description: "Why; for a refusal, what to type or set to override.", type: str, returned: always}
    layout:
      description: Partition count and replication factor captured (null when the topic does not exist).
      type: dict
      returned: always
      sample: {"partitions": 3, "replication_factor": 1}
    health:
      description: healthy (bool) and problems (partitions without leader, unreadable offsets).
      type: dict
      returned: always
    configs: {description: The configs the new topic gets., type: dict, returned: always, sample: {"retention.ms": "86400000"}}
    reported_configs: {description: "Every config the broker reported (value, source, default; sensitive values null).", type: dict, returned: always}
    committed_offsets:
      description: Group to partition to committed offset on this topic, read before the delete; lost by recreating.
      type: dict
      returned: always
      sample: {"notification-service": {"0": 1200, "1": 1187}}
    messages: {description: Messages held per partition (latest minus earliest offset); lost by recreating., type: dict, returned: always}
recreated: {description: Topics deleted and created again., type: list, elements: str, returned: always}
refused: {description: Topics refused by a guardrail (the task fails)., type: list, elements: str, returned: always}
already_recreated: {description: Topics skipped because they were recreated in this incident already., type: list, elements: str, returned: always}
data_loss:
  description: Topics whose messages and committed offsets are (or in check mode would be) lost.
  type: list
  elements: str
  returned: always
verification:
  description: Per recreated topic - ok, problems, partitions, replication_factor, leaders.
  type: list
  elements: dict
  returned: always
actions:
  description: What was done (delete topic, recreate topic), each stamped when it happened; in check mode what would be.
  type: list
  elements: dict
  returned: always
summary: {description: One sentence for the operator., type: str, returned: always}
errors: {description: Reads that failed (committed offsets of a group); the rest is still reported., type: list, elements: str, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._kafka import (
    KAFKA_ARGUMENT_SPEC,
    check_library,
    client_config,
)
from ansible_collections.sre.runbooks.plugins.module_utils import _kafka_recreate


def main() -> None:
    argument_spec = dict(KAFKA_ARGUMENT_SPEC)
    argument_spec.update(
        topics={"type": "list", "elements": "str", "required": True},
        confirm={"type": "list", "elements": "str", "default": []},
        force={"type": "bool", "default": False},
        already_recreated={"type": "dict", "default": {}},
        incident_memory={"type": "bool", "default": True},
        copy_configs={"type": "str", "default": "overrides", "choices": ["overrides", "all"]},
        settle_timeout={"type": "float", "default": 60.0},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    check_library(module)
    servers = ", ".join(module.params["bootstrap_servers"])
    empty = {"plan": [], "recreated": [], "refused": [], "already_recreated": [], "data_loss": [],
             "verification": [], "actions": [], "errors": []}
    if not module.params["topics"] and not module.params["confirm"]:
        module.exit_json(changed=False, summary="no topic listed: nothing is recreated", **empty)
    try:
        conf = client_config(module.params)
    except ValueError as exc:
        module.fail_json(msg=f"bad Kafka connection options for {servers}: {exc}", **empty)
    try:
        result = _kafka_recreate.run(module.params, conf, module.check_mode)
    except Exception as exc:  # nothing was deleted yet: every write happens after the reads succeed
        module.fail_json(msg=f"cannot read topics from Kafka at {servers}: {type(exc).__name__}: {exc}; "
                             "nothing was deleted. Are the brokers healthy and the credentials right?", **empty)
    changed = bool(result["recreated"]) or (module.check_mode and bool(result["data_loss"]))
    error = result.pop("error", None)
    if error:
        module.fail_json(msg=f"topic recreation at {servers}: {error}", changed=changed, **result)
    if result["refused"]:
        reasons = "; ".join(p["reason"] for p in result["plan"] if p["status"] == "refused")
        module.fail_json(msg=f"refused to recreate {', '.join(result['refused'])}: {reasons}. Nothing was deleted.",
                         changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
