# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the sre.runbooks Kafka modules (module_utils _kafka.KAFKA_ARGUMENT_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    # Security protocol, SASL, TLS and the request timeout: every Kafka module.
    DOCUMENTATION = r"""
options:
  security_protocol:
    description: How to reach the brokers.
    type: str
    default: PLAINTEXT
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
  sasl_mechanism:
    description: SASL mechanism when O(security_protocol) is C(SASL_*).
    type: str
    default: PLAIN
    choices: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
  sasl_username:
    description: SASL user; required with C(SASL_*).
    type: str
  sasl_password:
    description: SASL password; required with C(SASL_*). Never returned or logged.
    type: str
  ssl_cafile:
    description: CA bundle to verify the brokers with (C(SSL), C(SASL_SSL)).
    type: path
  ssl_certfile:
    description: Client certificate (mutual TLS).
    type: path
  ssl_keyfile:
    description: Private key of O(ssl_certfile).
    type: path
  ssl_keyfile_password:
    description: Password of O(ssl_keyfile). Never returned or logged.
    type: str
  timeout:
    description: Seconds to wait for each broker request.
    type: float
    default: 10.0
"""
