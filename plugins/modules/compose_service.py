#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service
short_description: Start or restart (once per incident) the containers of docker-compose services
version_added: 0.1.0
description:
  - V(started) starts the named services' stopped containers (C(docker-compose start SERVICE)).
    Running containers are left alone; a container in Docker's restart back-off
    (V(restarting)) is left to its restart policy; a paused one is refused (someone froze it).
  - V(restarted) restarts the named services' containers (C(docker-compose restart SERVICE)) -
    with O(restarted_after), only those not restarted through the API since then, so a re-run
    during the same incident does not restart twice (the same idea as
    C(sre.runbooks.k8s_rollout)'s O(restarted_after)). The evidence is Docker's own event log,
    where an API restart is a C(restart) event and a restart policy's is not.
  - Never creates, recreates or removes a container and never reads a compose file - the
    containers keep the configuration they were created with. A service with no container
    fails (creating one is C(docker-compose up)'s job, after a human looked).
  - Guardrails - only the services named in O(services) are touched; an unknown project or
    service fails before anything changes; at most O(max_containers) containers per run.
  - C(community.docker.docker_container) can start and restart a container, but it is a
    desired-state module that recreates a container whose configuration differs from its
    parameters, and it knows nothing of compose services or of what was done earlier in an
    incident; C(community.docker.docker_compose_v2) needs the compose v2 CLI plugin and
    converges a whole project. Neither does this job, so this module calls the Engine API.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.docker
attributes:
  check_mode:
    support: full
    description: Returns the containers it would start or restart, and changes nothing.
  diff_mode:
    support: full
    description: Each touched container's state before and after.
  idempotent:
    support: full
    description: V(started) by state; V(restarted) with O(restarted_after).
options:
  project:
    description: The compose project (C(docker-compose -p NAME)).
    type: str
    required: true
  services:
    description: The services whose containers to start or restart; no other service is touched.
    type: list
    elements: str
    required: true
  state:
    description: V(started) - every container running; V(restarted) - restarted once (see O(restarted_after)).
    type: str
    choices: [started, restarted]
    required: true
  containers:
    description:
      - Only these containers of O(services) (for example a verdict's C(to_restart)), so a
        healthy replica of a scaled service is not restarted with a failing one. Each must
        belong to one of O(services), or the module fails before changing anything.
      - Default every container of O(services).
    type: list
    elements: str
  restarted_after:
    description:
      - For V(restarted) - restart only containers with no API restart since this moment, an
        ISO 8601 timestamp or a duration such as V(30m) (use the incident's start).
      - Without it every run restarts, like C(docker-compose restart).
    type: str
  stop_timeout:
    description: Seconds Docker waits after SIGTERM before SIGKILL when restarting.
    type: int
    default: 10
  wait:
    description: Wait until the containers run (and, with a healthcheck, are no longer V(starting)).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for that.
    type: float
    default: 60
  max_containers:
    description: Guardrail - fail without changing anything when more containers than this would be touched.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Bring back the stopped API (docker-compose start api)
  sre.runbooks.compose_service:
    project: shop
    services: [api]
    state: started

- name: Restart the crash-looping worker once for this incident
  sre.runbooks.compose_service:
    project: shop
    services: [worker]
    state: restarted
    restarted_after: "{{ incident_started_at }}"
  register: restarted
"""

RETURN = r"""
containers:
  description: The named services' containers after the run (in check mode, as found).
  returned: always
  type: list
  elements: dict
  sample: [{name: shop_api_1, service: api, state: running, health: healthy, restart_count: 0}]
started:
  description: Containers started (in check mode, that would be).
  returned: always
  type: list
  elements: str
restarted:
  description: Containers restarted (in check mode, that would be).
  returned: always
  type: list
  elements: str
left_alone:
  description:
    - Container name -> why it was left alone.
    - Not named C(skipped) - ansible-core reads a result key C(skipped) as "the task was skipped" and
      then never evaluates C(failed_when) or C(changed_when).
  returned: always
  type: dict
  sample: {shop_worker_1: already restarted at or after 2026-05-01T03:10:00Z}
actions:
  description: What was done, to which container, when (for the incident timeline).
  returned: always
  type: list
  elements: dict
not_ready:
  description: Touched containers not running (or unhealthy) when the wait ended.
  returned: always
  type: list
  elements: str
diff:
  description: Each touched container's state before and after (in diff mode).
  returned: when diff mode is on
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record, parse_moment, utc_iso, utc_now
from ansible_collections.sre.runbooks.plugins.module_utils._docker import (
    DockerAPI,
    DockerError,
    acted_containers,
    container_record,
    docker_argument_spec,
    parallel,
    plan_service_action,
)


def summary(c: dict) -> dict:
    return {k: c[k] for k in ("name", "service", "state", "health", "restart_count", "exit_code", "oom_killed", "started_at")}


def main() -> None:
    spec = docker_argument_spec()
    spec.update(
        project={"type": "str", "required": True},
        services={"type": "list", "elements": "str", "required": True},
        state={"type": "str", "choices": ["started", "restarted"], "required": True},
        containers={"type": "list", "elements": "str"},
        restarted_after={"type": "str"},
        stop_timeout={"type": "int", "default": 10},
        wait={"type": "bool", "default": True},
        wait_timeout={"type": "float", "default": 60.0},
        max_containers={"type": "int", "default": 5},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    result = {"changed": False, "containers": [], "started": [], "restarted": [], "left_alone": {}, "actions": [], "not_ready": []}
    if not p["services"]:
        module.fail_json(msg="services is empty: name the services to act on (nothing else is ever touched)", **result)
    try:
        since = parse_moment(p["restarted_after"], "restarted_after") if p["restarted_after"] else None
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)
    api = None
    try:
        api = DockerAPI(p["docker_host"], p["timeout"])
        listed = api.containers(p["project"])
        if not listed:
            module.fail_json(msg=f"no container of compose project {p['project']!r} on {p['docker_host']}; "
                                 "is the project name right (docker-compose -p NAME, default the directory name)?", **result)
        ids = [c["Id"] for c in listed if (c.get("Labels") or {}).get("com.docker.compose.service") in p["services"]]
        records = [container_record(i) for i in parallel(api.inspect, ids) if isinstance(i, dict)]
        acted = {"restart": [], "start": []}
        if since is not None and p["state"] == "restarted":
            acted = acted_containers(api.events(since.timestamp(), utc_now().timestamp(), p["project"], ("restart",)))
        found = {(c.get("Labels") or {}).get("com.docker.compose.service") for c in listed}
        plan = plan_service_action(records, p["services"], sorted(s for s in found if s), p["state"], acted,
                                   p["max_containers"], utc_iso(since) if since else None, p["containers"])
    except DockerError as exc:
        module.fail_json(msg=str(exc), **result)
    if plan["problem"]:
        result["containers"] = [summary(c) for c in records]
        module.fail_json(msg=plan["problem"], **result)
    result["left_alone"] = plan["skipped"]
    id_of = {c["name"]: c["id"] for c in records}
    before = {c["name"]: summary(c) for c in records}
    todo = plan["act"]
    verb = "start" if p["state"] == "started" else "restart"
    done: list[str] = []
    error = None
    if module.check_mode:
        done = list(todo)
        result["actions"] = [action_record(verb, {"container": n, "service": before[n]["service"]}, "would " + verb) for n in todo]
    else:
        for name in todo:
            try:
                if verb == "start":
                    api.post(f"/containers/{id_of[name]}/start")
                else:
                    api.post(f"/containers/{id_of[name]}/restart", timeout=p["timeout"] + p["stop_timeout"], t=str(p["stop_timeout"]))
            except DockerError as exc:
                result["actions"].append(action_record(verb, {"container": name, "service": before[name]["service"]}, "failed", error=str(exc)))
                error = f"{verb} of {name} failed: {exc}"
                break
            done.append(name)
            result["actions"].append(action_record(verb, {"container": name, "service": before[name]["service"]}, verb + "ed"))
    result["changed"] = bool(done)
    result["started" if verb == "start" else "restarted"] = done
    after = dict(before)
    if done and not module.check_mode:
        deadline = time.monotonic() + (p["wait_timeout"] if p["wait"] else 0)
        while True:
            try:
                inspected = [container_record(c) for c in parallel(api.inspect, [id_of[n] for n in done]) if isinstance(c, dict)]
                fresh = {c["name"]: summary(c) for c in inspected}
            except DockerError:
                fresh = {}
            after.update(fresh)
            not_ready = [n for n in done if after[n]["state"] != "running" or after[n]["health"] in ("starting", "unhealthy")]
            if not not_ready or time.monotonic() >= deadline:
                break
            time.sleep(1)
        result["not_ready"] = not_ready
    result["containers"] = [after[c["name"]] for c in records]
    if module._diff:
        result["diff"] = {"before": {n: before[n] for n in done}, "after": {n: after[n] for n in done}}
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
