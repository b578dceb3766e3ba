#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_consumer_lag_info
short_description: Kafka brokers, consumer group lag and topic health, read-only
version_added: 0.1.0
description:
  - Answers the first questions of a Kafka consumer-lag incident (runbook 004 Scenario 5) - does
    each broker answer and which API versions does it speak, how far behind is each consumer group
    on each partition (committed offset, end offset, lag), in which state is the group and who are
    its members, and is any topic without a leader or under-replicated.
  - Batched - one ApiVersions probe per bootstrap server, one metadata call, one committed-offsets
    call per group, one end-offsets call for every partition together, one describe call for
    every group.
  - An unreachable broker is reported (RV(brokers[].reachable=false)), not a failure; when no
    broker answers the module returns RV(reachable=false) and no groups. A group whose offsets
    cannot be read carries its RV(groups[].error); the other groups are still reported.
  - Partitions without a committed offset are not listed (the group never committed there).
  - Read-only; never joins a group, never commits.
author:
  - sre.runbooks maintainers (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: Read-only; reads the same data in check mode.
  diff_mode:
    support: none
    description: Read-only; nothing to diff.
  idempotent:
    support: full
    description: Never changes the cluster.
requirements:
  - confluent-kafka >= 2.16
extends_documentation_fragment:
  - sre.runbooks.kafka
options:
  bootstrap_servers:
    description: Brokers to reach, C(host:port) or C([ipv6]:port). Each one is probed.
    type: list
    elements: str
    required: true
  groups:
    description:
      - Consumer groups to report. Default - every group the cluster lists.
    type: list
    elements: str
seealso:
  - module: sre.runbooks.systemd_unit_info
"""

EXAMPLES = r"""
- name: Lag of every consumer group
  sre.runbooks.kafka_consumer_lag_info:
    bootstrap_servers: [kafka1:9092, kafka2:9092]
  register: kafka

- name: Lag of the orders consumers, over SASL_SSL
  sre.runbooks.kafka_consumer_lag_info:
    bootstrap_servers: [kafka1:9093]
    groups: [orders-consumer]
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: sre
    sasl_password: "{{ vault_kafka_password }}"
    ssl_cafile: /etc/ssl/certs/kafka-ca.pem

- name: Groups more than 1000 messages behind
  ansible.builtin.debug:
    msg: "{{ kafka.groups | selectattr('total_lag', 'gt', 1000) | map(attribute='group') }}"
"""

RETURN = r"""
reachable:
  description: Whether at least one broker answered.
  returned: always
  type: bool
brokers:
  description: One probe per bootstrap server, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    address: {description: C(host:port) probed., type: str, returned: always}
    reachable: {description: Whether it answered an ApiVersions request., type: bool, returned: always}
    rtt_ms: {description: Round trip of the probe in milliseconds., type: float, returned: when reachable}
    api_versions:
      description: Supported versions per API, a two-item list (min, max) per API name.
      type: dict
      returned: when reachable
      sample: {"Metadata": [0, 12], "OffsetFetch": [0, 9]}
    api_error_code: {description: Error code of the ApiVersions answer (0 is fine)., type: int, returned: when reachable}
    error: {description: Why it was not reachable., type: str, returned: when not reachable}
cluster_brokers:
  description: Brokers the cluster metadata lists, C(host:port).
  returned: when reachable
  type: list
  elements: str
topics:
  description: Partitions of every topic (internal C(__*) topics left out) with leader, replicas and in-sync replicas.
  returned: always
  type: dict
  sample: {"orders": [{"partition": 0, "leader": 1, "replicas": [1], "isrs": [1]}]}
topic_health:
  description: Topics with a partition without a leader, or with fewer in-sync replicas than replicas.
  returned: when reachable
  type: dict
  sample: {"without_leader": [], "under_replicated": []}
groups:
  description: One entry per consumer group.
  returned: always
  type: list
  elements: dict
  contains:
    group: {description: Group id., type: str, returned: always}
    state:
      description: Group state as the broker reports it, lower case (stable, empty, preparing_rebalance, unknown).
      type: str
      returned: always
    members:
      description: Members with client id, host and assigned partitions (as the broker reports them).
      type: list
      elements: dict
      returned: always
    member_count: {description: Number of members., type: int, returned: always}
    partitions:
      description: Per partition with a committed offset - topic, partition, committed_offset, end_offset, lag.
      type: list
      elements: dict
      returned: always
      sample: [{"topic": "orders", "partition": 0, "committed_offset": 10, "end_offset": 250, "lag": 240}]
    total_lag: {description: Sum of the known partition lags., type: int, returned: always}
    max_lag: {description: Largest partition lag., type: int, returned: always}
    unknown_lag_partitions: {description: Partitions whose end offset could not be read., type: int, returned: always}
    error:
      description: What could not be read for this group; null when everything was read.
      type: str
      returned: always
errors:
  description: Reads that failed (end offsets of some partitions); the rest is still reported.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._kafka import (
    KAFKA_ARGUMENT_SPEC,
    check_library,
    client_config,
    collect,
)


def main() -> None:
    argument_spec = dict(KAFKA_ARGUMENT_SPEC)
    argument_spec["groups"] = {"type": "list", "elements": "str"}
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    check_library(module)
    servers = ", ".join(module.params["bootstrap_servers"])
    try:
        client_config(module.params)
    except ValueError as exc:
        module.fail_json(msg=f"bad Kafka connection options for {servers}: {exc}")
    try:
        result = collect(module.params, module.params["groups"])
    except Exception as exc:  # a broker that answers the probe but not the admin calls
        module.fail_json(msg=f"cannot read Kafka metadata from {servers}: {type(exc).__name__}: {exc}; "
                             "are the brokers healthy and the credentials right?")
    if not result["reachable"]:
        result["msg"] = f"no Kafka broker reachable at {servers}"
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
