# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by the compose_* modules (named as in community.docker).
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine to talk to - V(unix:///PATH) (its socket) or V(tcp://HOST:PORT)
        (plain HTTP; TLS is not supported).
      - Can also be set with the E(DOCKER_HOST) environment variable.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description: Seconds one Engine API call may take.
    type: float
    default: 60
requirements:
  - A Docker engine (API 1.25 or later) on the target. No Python library - the modules speak the
    Engine API over its socket with the standard library.
notes:
  - Compose services are found by the labels docker-compose v1 and v2 both set
    (C(com.docker.compose.project), C(com.docker.compose.service)); one-off containers
    (C(docker-compose run)) are ignored.
"""
