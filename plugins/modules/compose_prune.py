#!/usr/bin/python
# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_prune
short_description: Guarded C(docker system prune) on a docker-compose host - stopped containers, dangling images, build cache
version_added: 0.1.0
description:
  - Runbook 003 "Disk space issues" on a Docker host (C(docker system prune -f)), with the
    guardrails a 3 a.m. prune needs. Only three kinds of things ever go, selected by O(prune) -
    stopped containers, dangling images and idle build cache. Never volumes, never networks,
    never a tagged image.
  - A stopped container goes only when it stopped at least O(min_age) ago and is not meant to
    run - restart policy V(always) or V(unless-stopped), V(on-failure) with a failed exit, or a
    service container of a compose project that has a running container. A stopped service is
    C(sre.runbooks.compose_service)'s business (runbook service_down), and removing it loses its
    logs - O(allow_stopped_services) lifts that rule. Containers are removed without their
    anonymous volumes and never forced, so one started meanwhile stays.
  - A dangling image (no tag and no digest) goes when at least O(min_age) old and no container
    that stays uses it; its untagged parent images stay (C(noprune)), so exactly the listed images go.
  - A build-cache record goes when not in use, not shared with an image, not of a type
    C(docker builder prune) keeps (internal, frontend) and unused for O(min_age); each is pruned
    by its id, so exactly the listed records go.
  - Caps - O(max_containers), O(max_images), O(max_build_cache) and O(max_bytes). Over a cap,
    with O(cap_mode=fail), nothing goes and the module fails naming the cap; with
    O(cap_mode=partial) the oldest go, within the caps.
  - O(only_on_mounts) (the full mounts of C(sre.runbooks.host_resources_info)) makes the prune
    conditional - nothing goes unless the filesystem holding the Docker data root is one of them.
  - One C(GET /system/df) (the sizes C(docker system df -v) shows), one C(GET /info) (the data root)
    and one inspect per stopped container (restart policy, exit code, stop time - the list lacks them).
  - C(community.docker.docker_prune) was not enough - in check mode it reports nothing of what
    would go (only that something may change), it has no caps, and its container filter cannot
    tell a stopped service container (restart policy, compose project up) from litter, nor
    measure age from the stop rather than from the creation.
author:
  - SRE Runbooks Maintainers (@sre-runbooks)
extends_documentation_fragment:
  - sre.runbooks.docker
attributes:
  check_mode:
    support: full
    description: Lists exactly what would go, with sizes, and removes nothing.
  diff_mode:
    support: full
    description: What was there before (the listed items) and what is left after.
  idempotent:
    support: full
    description: What went is gone; a second run finds nothing to prune.
options:
  prune:
    description: What may go. Volumes and networks are not a choice.
    type: list
    elements: str
    choices: [containers, images, build_cache]
    default: [containers, images, build_cache]
  min_age:
    description:
      - Leave alone what stopped, was created (images) or was last used (build cache) less than
        this long ago (V(1h), V(30m), V(2d)). A container counts from when it stopped.
    type: str
    default: 1h
  allow_stopped_services:
    description:
      - Also remove stopped containers meant to run (restart policy, or a service of a compose
        project that is up). They are a stopped service, not litter; their logs go with them.
    type: bool
    default: false
  only_on_mounts:
    description:
      - Prune only when the filesystem holding the Docker data root is one of these mount points
        (for example RV(sre.runbooks.host_resources_info#module:disk_verdict.full_mounts)); otherwise
        list, and remove nothing. An empty list removes nothing. Default (omitted) - no such condition.
      - Needs the data root on this host (a V(unix://) O(docker_host)).
    type: list
    elements: path
  max_containers:
    description: Guardrail - the most stopped containers one run removes.
    type: int
    default: 20
  max_images:
    description: Guardrail - the most dangling images one run removes.
    type: int
    default: 20
  max_build_cache:
    description: Guardrail - the most build-cache records one run removes.
    type: int
    default: 100
  max_bytes:
    description: Guardrail - the most bytes one run frees (V(20G)). Default no limit.
    type: str
  cap_mode:
    description: V(fail) - over a cap, remove nothing and fail naming it. V(partial) - remove the oldest within the caps.
    type: str
    choices: [fail, partial]
    default: fail
seealso:
  - module: sre.runbooks.host_resources_info
  - module: sre.runbooks.compose_service
  - module: community.docker.docker_prune
"""

EXAMPLES = r"""
- name: What a prune would remove, with sizes (changes nothing)
  sre.runbooks.compose_prune:
  check_mode: true
  register: prune_plan

- name: Prune when the data root's filesystem is full, within the caps
  sre.runbooks.compose_prune:
    only_on_mounts: "{{ disk.disk_verdict.full_mounts }}"
    min_age: 1h
    max_bytes: 50G
  register: pruned
"""

RETURN = r"""
containers:
  description: Stopped containers removed (in check mode, that would be), oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{name: build_helper, id: 3f2a9c1d0b7e, state: exited, project: null, service: null, restart_policy: "no",
            exit_code: 0, finished_at: "2026-05-01T02:00:00Z", size_bytes: 104857600, image: "sre-lab/base:1"}]
images:
  description: Dangling images removed (in check mode, that would be), with the bytes only they hold.
  returned: always
  type: list
  elements: dict
  sample: [{id: 9c1d0b7e3f2a, size_bytes: 52428800, created: 1777600000, used_by_removed_container: false}]
build_cache:
  description: Build-cache records removed (in check mode, that would be).
  returned: always
  type: list
  elements: dict
candidates:
  description: Everything that may go by the rules before the caps (what a raised cap would add).
  returned: always
  type: dict
kept:
  description: Item -> why it stays (a stopped service, too young, in use, over a cap).
  returned: always
  type: dict
  sample: {shop_worker_1: "stopped, service worker of compose project shop, which is up (service_down's business; its logs are the evidence)"}
would_free_bytes:
  description: Bytes the listed items hold (the Engine's sizes).
  returned: always
  type: int
bytes_freed:
  description: Bytes the Engine reports freed (0 in check mode).
  returned: always
  type: int
act:
  description: Whether anything goes in this run (after O(only_on_mounts) and the caps).
  returned: always
  type: bool
reason:
  description: Why nothing goes, or what goes, in one sentence.
  returned: always
  type: str
data_root:
  description: The Docker data root (C(docker info) DockerRootDir).
  returned: always
  type: str
  sample: /var/lib/docker
data_root_mount:
  description: The mount point of the filesystem holding it, when the data root is on this host.
  returned: always
  type: str
  sample: /
full_mount:
  description:
    - With O(only_on_mounts) - the one of them that is the filesystem holding the data root (by mount
      point, or by device for a bind mount of it), or V(null) when none is (then nothing goes).
  returned: always
  type: str
  sample: /
disk_usage:
  description: C(docker system df) - per kind, count, bytes and what a full prune of that kind could reclaim.
  returned: always
  type: dict
  sample: {images: {count: 3, bytes: 700000000}, containers: {count: 4, bytes: 1200}, volumes: {count: 1, bytes: 0}}
actions:
  description: What was removed (or would be), when, with sizes (for the incident timeline).
  returned: always
  type: list
  elements: dict
diff:
  description: The listed items before, and those left after.
  returned: when diff mode is on
  type: dict
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record, parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._disk import parse_size
from ansible_collections.sre.runbooks.plugins.module_utils._docker import (
    STOPPED_STATES,
    DockerAPI,
    DockerError,
    docker_argument_spec,
    parallel,
    prune_plan,
)
from ansible_collections.sre.runbooks.plugins.module_utils._host import mount_of


def disk_usage(df: dict) -> dict:
    def kind(items: list, size: str) -> dict:
        return {"count": len(items or []), "bytes": sum(max(i.get(size) or 0, 0) for i in items or [])}
    volumes = df.get("Volumes") or []
    return {"images": kind(df.get("Images"), "Size"), "containers": kind(df.get("Containers"), "SizeRw"),
            "volumes": {"count": len(volumes), "bytes": sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in volumes)},
            "build_cache": kind(df.get("BuildCache"), "Size"), "layers_bytes": df.get("LayersSize")}


def main() -> None:
    spec = docker_argument_spec()
    spec.update(
        prune={"type": "list", "elements": "str", "choices": ["containers", "images", "build_cache"],
               "default": ["containers", "images", "build_cache"]},
        min_age={"type": "str", "default": "1h"},
        allow_stopped_services={"type": "bool", "default": False},
        only_on_mounts={"type": "list", "elements": "path"},
        max_containers={"type": "int", "default": 20},
        max_images={"type": "int", "default": 20},
        max_build_cache={"type": "int", "default": 100},
        max_bytes={"type": "str"},
        cap_mode={"type": "str", "choices": ["fail", "partial"], "default": "fail"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    result = {"changed": False, "containers": [], "images": [], "build_cache": [], "candidates": {}, "kept": {},
              "would_free_bytes": 0, "bytes_freed": 0, "act": False, "reason": "", "data_root": None,
              "data_root_mount": None, "full_mount": None, "disk_usage": {}, "actions": []}
    try:
        min_age = parse_duration(p["min_age"], "min_age")
        max_bytes = parse_size(p["max_bytes"], "max_bytes") if p["max_bytes"] else None
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)
    for cap in ("max_containers", "max_images", "max_build_cache"):
        if p[cap] < 0:
            module.fail_json(msg=f"{cap} must be 0 or more, not {p[cap]}", **result)
    try:
        api = DockerAPI(p["docker_host"], p["timeout"])
        info = api.get_json("/info")
        df = api.get_json("/system/df") or {}
        stopped_ids = [c["Id"] for c in df.get("Containers") or [] if c.get("State") in STOPPED_STATES]
        inspected = {cid: i for cid, i in zip(stopped_ids, parallel(api.inspect, stopped_ids)) if isinstance(i, dict)}
    except DockerError as exc:
        module.fail_json(msg=str(exc), **result)
    data_root = info.get("DockerRootDir")
    result["data_root"] = data_root
    if api.host.startswith("unix:") and data_root and os.path.isdir(data_root):
        result["data_root_mount"] = (mount_of(data_root) or {}).get("mount")
    result["disk_usage"] = disk_usage(df)
    kinds = p["prune"]
    plan = prune_plan(df.get("Containers") or [], df.get("Images") or [] if "images" in kinds else [], time.time(),
                      inspected, df.get("BuildCache") or [] if "build_cache" in kinds else [], min_age,
                      p["max_containers"], p["max_images"], p["max_build_cache"], max_bytes, p["cap_mode"],
                      p["allow_stopped_services"], prune_containers="containers" in kinds)
    result.update(candidates=plan["candidates"], kept=plan["kept"])
    if p["only_on_mounts"] is not None:
        result["full_mount"] = holding_mount(data_root, p["only_on_mounts"]) if result["data_root_mount"] else None
        if result["full_mount"] is None:
            mount = result["data_root_mount"]
            where = f"the filesystem holding the Docker data root {data_root} ({mount})" if mount else \
                f"the filesystem of the Docker data root {data_root} (not on this host, or unknown)"
            result["reason"] = f"{where} is not among the full mounts; nothing pruned (by the rules: {plan['summary']})"
            module.exit_json(**result)
    # A cap trips only for a prune that would run: a healthy filesystem is left alone, caps or not.
    if plan["problem"]:
        result["reason"] = plan["problem"]
        module.fail_json(msg=f"{p['docker_host']}: {plan['problem']}", **result)
    result.update(containers=plan["containers"], images=plan["images"], build_cache=plan["build_cache"],
                  would_free_bytes=plan["would_free_bytes"], act=plan["act"], reason=plan["summary"])
    if not plan["act"]:
        module.exit_json(**result)
    todo = ([("remove container", c["name"], c, f"/containers/{fid}") for c, fid in zip(plan["containers"], plan["ids"]["containers"])]
            + [("remove image", i["id"], i, f"/images/{fid}") for i, fid in zip(plan["images"], plan["ids"]["images"])]
            + [("prune build cache", b["id"][:12], b, None) for b in plan["build_cache"]])
    if module.check_mode:
        result["actions"] = [action_record(verb, target, "would " + verb.split()[0], size_bytes=item["size_bytes"])
                             for verb, target, item, _path in todo]
        result["changed"] = True
        module.exit_json(**result)
    error = None
    removed: dict[str, list] = {"containers": [], "images": [], "build_cache": []}
    for verb, target, item, path in todo:
        try:
            if verb == "remove container":
                # v=0: anonymous volumes stay; force=0: a container started since the listing is refused.
                api.call("DELETE", path, {"v": "0", "force": "0"})
                freed, kind = item["size_bytes"], "containers"
            elif verb == "remove image":
                api.call("DELETE", path, {"force": "0", "noprune": "1"})
                freed, kind = item["size_bytes"], "images"
            else:
                # One record per call: the Engine takes one id filter value (a pattern match).
                body = api.call("POST", "/build/prune", {"filters": json.dumps({"id": [item["id"]]})})[1]
                freed, kind = parse_reclaimed(body), "build_cache"
        except DockerError as exc:
            result["actions"].append(action_record(verb, target, "failed", error=str(exc)))
            if exc.status in (404, 409):
                # Gone already, or in use / started since the listing: it stays, the rest goes on.
                continue
            error = f"{verb} {target} failed: {exc}; stopped there"
            break
        removed[kind].append(item)
        result["bytes_freed"] += freed
        result["actions"].append(action_record(verb, target, verb.split()[0] + "d", size_bytes=freed))
    result.update(containers=removed["containers"], images=removed["images"], build_cache=removed["build_cache"])
    result["changed"] = any(removed.values())
    if module._diff:
        result["diff"] = {"before": {k: [i.get("name") or i["id"] for i in plan[k]] for k in removed},
                          "after": {k: [i.get("name") or i["id"] for i in plan[k] if i not in removed[k]] for k in removed}}
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


def holding_mount(path: str, mounts: list[str]) -> str | None:
    """Which of these mount points is the filesystem holding path: by mount point, else by device
    (Docker may bind-mount its data root onto itself; / and that bind mount are one filesystem)."""
    own = (mount_of(path) or {}).get("mount")
    wanted = [m.rstrip("/") or "/" for m in mounts]
    if own in wanted:
        return own
    try:
        device = os.stat(path).st_dev
    except OSError:
        return None
    for mount in wanted:
        try:
            if os.stat(mount).st_dev == device:
                return mount
        except OSError:
            continue
    return None


def parse_reclaimed(body: bytes) -> int:
    try:
        return int((json.loads(body or b"{}") or {}).get("SpaceReclaimed") or 0)
    except (ValueError, TypeError, AttributeError):
        return 0


if __name__ == "__main__":
    main()
