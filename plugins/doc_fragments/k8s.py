# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every sre.runbooks k8s_* module (named as in kubernetes.core).
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file. Without it, and without O(host), the C(KUBECONFIG)
        environment variable or C(~/.kube/config) is used, and inside a pod the in-cluster
        service account.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: path
  context:
    description:
      - The kubeconfig context to use; default is the kubeconfig's current context.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://10.0.0.1:6443). When set, the
        kubeconfig is not read; authenticate with O(api_key).
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token for the API server. Never logged or returned.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Default is what the kubeconfig
        says (verify unless it sets C(insecure-skip-tls-verify)).
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - CA certificate file to verify the API server with, overriding the kubeconfig's.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  request_timeout:
    description:
      - Seconds one API request may take before the module fails.
    type: float
    default: 20
requirements:
  - kubernetes (the Python client) on the host that runs the module
notes:
  - These modules talk to the API server directly; run them on the controller
    (C(delegate_to=localhost) or a play on C(localhost)).
  - They use only APIs that are stable from Kubernetes 1.20 to current releases (core/v1,
    apps/v1, core/v1 events and endpoints).
"""
