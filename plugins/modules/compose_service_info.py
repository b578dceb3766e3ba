#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service_info
short_description: Containers of docker-compose services - state, health, restarts, OOM kills, usage, logs
version_added: 0.1.0
description:
  - Reads, for one compose project (or every project) on a Docker host, what the runbooks read
    with C(docker-compose ps), C(docker stats) and C(docker-compose logs) - for each service's
    containers the state, healthcheck status, restart count, exit code, whether the kernel
    OOM-killed it, when it started, CPU and memory use against its memory limit, and the last
    O(log_lines) log lines of every failing container, secrets masked.
  - One list call finds the containers; inspect, stats and logs (which the Engine API has no
    batch form of) run concurrently, one call per container.
  - Returns a RV(verdict) - what is stopped, crash-looping or unhealthy, what to start and
    what to restart once for this incident (O(restarted_after)), what to report to a human -
    that roles act on with C(sre.runbooks.compose_service).
  - Read-only; never changes a container.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.docker
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Reads only.
options:
  project:
    description:
      - The compose project (C(docker-compose -p NAME), by default the directory name). Without
        it, every compose project on the host is read.
    type: str
  services:
    description:
      - The services to read and judge; default every service of the project.
      - A service named here with no container fails the verdict (RV(verdict.problem)).
    type: list
    elements: str
  stats:
    description:
      - Read CPU and memory use (C(docker stats)) of running containers. Each takes about a
        second, concurrently.
    type: bool
    default: true
  log_lines:
    description: Log lines returned for each failing container (0 for none).
    type: int
    default: 30
  restarted_after:
    description:
      - The incident's start - an ISO 8601 timestamp or a duration such as V(30m). Containers
        restarted or started through the API since then (C(docker restart),
        C(docker-compose restart), C(sre.runbooks.compose_service)) are not to be restarted
        or started again; the verdict reports them instead.
      - Without it, every failing container may be acted on.
      - With it, the OOM kills since then are counted from Docker's events (C(oom_kills)).
    type: str
  restart_loop_threshold:
    description: A running container restarted this many times by Docker and up for less than O(stable_seconds) is crash-looping.
    type: int
    default: 3
  stable_seconds:
    description: See O(restart_loop_threshold).
    type: float
    default: 60
  max_actions:
    description:
      - Guardrail - when more containers than this need a start or a restart, the verdict acts
        on none and says why (many services failing at once points at the host).
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: What runs in the shop project, and what fails
  sre.runbooks.compose_service_info:
    project: shop
    restarted_after: "{{ incident_started_at }}"
  register: shop

- name: Say what is wrong
  ansible.builtin.debug:
    msg: "{{ shop.verdict.summary }}"

- name: Only the API, without docker stats, against a daemon on another socket
  sre.runbooks.compose_service_info:
    project: shop
    services: [api]
    stats: false
    docker_host: unix:///run/user/1000/docker.sock
"""

RETURN = r"""
projects:
  description: The compose projects found (one when O(project) is set and it exists).
  returned: always
  type: list
  elements: str
  sample: [shop]
services:
  description:
    - Per service, its containers (oldest number first) - state and, for running ones, usage.
    - C(oom_killed) is true when the last exit was an OOM kill or, with O(restarted_after), when an OOM kill
      happened since then (C(oom_kills) counts them; a restart policy may already have started the
      container again). C(oom_kills) is null without O(restarted_after) and O(project).
  returned: always
  type: dict
  sample:
    worker:
      - name: shop_worker_1
        id: 3f2a9c1b7d10
        project: shop
        service: worker
        number: 1
        state: running
        running: true
        health: null
        restart_count: 4
        restart_policy: unless-stopped
        exit_code: 137
        oom_killed: true
        oom_kills: 2
        started_at: "2026-05-01T03:12:00.123456789Z"
        finished_at: null
        memory_limit_bytes: 67108864
        cpu_percent: 0.4
        memory_usage_bytes: 9437184
        memory_percent: 14.1
        problem: looping
        logs: ["worker: loading the whole backlog into memory"]
acted:
  description: Containers restarted or started through the API since O(restarted_after) (Docker events).
  returned: always
  type: dict
  sample: {restart: [shop_api_1], start: []}
verdict:
  description: What is wrong and what to do about it (see the keys).
  returned: always
  type: dict
  contains:
    healthy:
      description: Every container in scope runs and is healthy.
      type: bool
    problems:
      description: Container name -> V(stopped), V(restarting), V(looping), V(unhealthy) or V(paused).
      type: dict
    down:
      description: The containers with a problem.
      type: list
      elements: str
    oom_killed:
      description: Containers whose last exit was an OOM kill, or OOM-killed since O(restarted_after).
      type: list
      elements: str
    to_start:
      description: Stopped containers to start.
      type: list
      elements: str
    to_restart:
      description: Crash-looping or unhealthy containers to restart once.
      type: list
      elements: str
    services_to_start:
      description: The services of RV(verdict.to_start).
      type: list
      elements: str
    services_to_restart:
      description: The services of RV(verdict.to_restart).
      type: list
      elements: str
    report:
      description: Failing containers a human must look at (already acted on this incident, or paused).
      type: list
      elements: str
    act:
      description: Something to start or restart, and no guardrail tripped.
      type: bool
    problem:
      description: Why the runbook must stop (unknown service, guardrail), or null.
      type: str
    summary:
      description: One line for the incident channel.
      type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_moment, utc_now
from ansible_collections.sre.runbooks.plugins.module_utils._docker import (
    DockerAPI,
    DockerError,
    acted_containers,
    container_record,
    docker_argument_spec,
    log_tail,
    oom_kills,
    parallel,
    problem_of,
    service_verdict,
    usage_record,
)


def main() -> None:
    spec = docker_argument_spec()
    spec.update(
        project={"type": "str"},
        services={"type": "list", "elements": "str"},
        stats={"type": "bool", "default": True},
        log_lines={"type": "int", "default": 30},
        restarted_after={"type": "str"},
        restart_loop_threshold={"type": "int", "default": 3},
        stable_seconds={"type": "float", "default": 60.0},
        max_actions={"type": "int", "default": 5},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        since = parse_moment(p["restarted_after"], "restarted_after") if p["restarted_after"] else None
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        api = DockerAPI(p["docker_host"], p["timeout"])
        listed = api.containers(p["project"])
        ids = [c["Id"] for c in listed
               if p["services"] is None or (c.get("Labels") or {}).get("com.docker.compose.service") in p["services"]]
        inspected = parallel(api.inspect, ids)
        now = utc_now()
        records = []
        for cid, item in zip(ids, inspected):
            if isinstance(item, DockerError) and item.status == 404:
                continue  # removed between the list and the inspect
            if isinstance(item, Exception):
                raise item
            records.append(container_record(item))
        acted, ooms = {"restart": [], "start": []}, {}
        if since is not None and p["project"]:
            events = api.events(since.timestamp(), now.timestamp(), p["project"], ("restart", "start", "oom"))
            acted, ooms = acted_containers(events), oom_kills(events)
        for r in records:
            # the OOM kills since the incident started, even when a restart policy has already
            # started the container again (State.OOMKilled then describes the new run only)
            r["oom_kills"] = ooms.get(r["name"], 0) if since is not None and p["project"] else None
            r["oom_killed"] = r["oom_killed"] or bool(r["oom_kills"])
        verdict = service_verdict(records, p["services"], acted, now, p["restart_loop_threshold"],
                                  p["stable_seconds"], p["max_actions"])
        ids_of = {r["name"]: cid for cid, r in zip(ids, records)}
        running = [r for r in records if r["running"]] if p["stats"] else []
        usages = parallel(lambda r: usage_record(api.stats(ids_of[r["name"]])), running)
        usage_by_name = {r["name"]: u for r, u in zip(running, usages) if isinstance(u, dict)}
        failing = [r for r in records if verdict["problems"].get(r["name"]) or r["oom_killed"]] if p["log_lines"] > 0 else []
        logs = parallel(lambda r: log_tail(api, ids_of[r["name"]], p["log_lines"]), failing)
        logs_by_name = {r["name"]: lg for r, lg in zip(failing, logs) if isinstance(lg, list)}
    except DockerError as exc:
        module.fail_json(msg=str(exc))
    services: dict[str, list] = {}
    for r in sorted(records, key=lambda r: (r["service"] or "", r["number"])):
        r.update(usage_by_name.get(r["name"], {}))
        r["problem"] = problem_of(r, now, p["restart_loop_threshold"], p["stable_seconds"])
        if r["name"] in logs_by_name:
            r["logs"] = logs_by_name[r["name"]]
        services.setdefault(r["service"], []).append(r)
    module.exit_json(changed=False, projects=sorted({r["project"] for r in records if r["project"]}),
                     services=services, acted=acted, verdict=verdict)


if __name__ == "__main__":
    main()
