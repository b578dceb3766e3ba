"""Unit tests for the guarded `docker system prune` plan (_docker.prune_plan): every branch."""

from __future__ import annotations

import datetime

from ansible_collections.sre.runbooks.plugins.module_utils._docker import prune_plan

NOW = 1_800_000_000.0
OLD = NOW - 86400


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def ctr(name, state="exited", project=None, service="svc", oneoff=False, created=OLD, image="a", size=1000):
    labels = {}
    if project:
        labels = {"com.docker.compose.project": project, "com.docker.compose.service": service,
                  "com.docker.compose.oneoff": "True" if oneoff else "False"}
    return {"Id": name * 8, "Names": ["/" + name], "State": state, "Labels": labels, "Created": created,
            "ImageID": "sha256:" + image * 64, "Image": "x", "SizeRw": size}


def insp(c, policy="no", exit_code=0, finished=OLD):
    return {c["Id"]: {"HostConfig": {"RestartPolicy": {"Name": policy}},
                      "State": {"ExitCode": exit_code, "FinishedAt": iso(finished) if finished else "0001-01-01T00:00:00Z"}}}


def inspect_all(containers, **kwargs):
    out = {}
    for c in containers:
        if c["State"] != "running":
            out.update(insp(c, **kwargs))
    return out


def img(digit, tags=None, digests=None, size=5000, shared=-1, created=OLD):
    return {"Id": "sha256:" + digit * 64, "RepoTags": tags, "RepoDigests": digests, "Size": size,
            "SharedSize": shared, "Created": created}


def cache(rid, in_use=False, shared=False, kind="regular", last_used=OLD, size=700):
    return {"ID": rid, "Type": kind, "InUse": in_use, "Shared": shared, "Size": size,
            "CreatedAt": iso(OLD - 10), "LastUsedAt": iso(last_used) if last_used else None, "Description": "mount / from exec"}


def names(plan, kind="containers"):
    return [c.get("name") or c["id"] for c in plan[kind]]


def test_old_stopped_plain_containers_unused_dangling_images_and_idle_cache_go():
    containers = [ctr("old", image="b"), ctr("live", state="running", image="c"), ctr("dead", state="dead")]
    images = [img("b"), img("c"), img("d", shared=1000), img("e", tags=["sre-lab/base:1"]),
              img("f", tags=["<none>:<none>"], digests=["<none>@<none>"]), img("g", digests=["repo@sha256:" + "1" * 64])]
    caches = [cache("r1"), cache("r2", in_use=True), cache("r3", shared=True), cache("r4", kind="internal")]
    plan = prune_plan(containers, images, NOW, inspect_all(containers), caches)
    assert names(plan) == ["dead", "old"]  # oldest stop first, then by name
    # b's only user goes with this prune; c runs; e is tagged; f's tag is Docker's "none"; g is pinned by digest
    assert names(plan, "images") == ["b" * 12, "d" * 12, "f" * 12]
    assert plan["images"][0]["used_by_removed_container"] is True
    assert plan["images"][1]["size_bytes"] == 4000  # what is shared with other images is not freed
    assert names(plan, "build_cache") == ["r1"] and plan["kept"]["build cache r2"] == "in use by a build"
    assert "used by a container" in plan["kept"]["c" * 12]
    assert plan["would_free_bytes"] == 2 * 1000 + 5000 + 4000 + 5000 + 700 and plan["act"] and plan["problem"] is None
    assert plan["ids"]["containers"] == ["dead" * 8, "old" * 8] and plan["ids"]["build_cache"] == ["r1"]
    assert "full_id" not in plan["containers"][0] and plan["containers"][1]["restart_policy"] == "no"
    assert plan["candidates"]["containers"] == plan["containers"]


def test_containers_meant_to_run_stay_unless_allowed():
    up = ctr("shop_api_1", state="running", project="shop", service="api")
    svc = ctr("shop_worker_1", project="shop", service="worker")
    oneoff = ctr("shop_worker_run_1", project="shop", service="worker", oneoff=True)
    down_project = ctr("old_web_1", project="old", service="web")
    always, unless, failed, done = ctr("always"), ctr("unless"), ctr("failed"), ctr("done")
    containers = [up, svc, oneoff, down_project, always, unless, failed, done]
    inspected = {**inspect_all([svc, oneoff, down_project, done]), **insp(always, "always"), **insp(unless, "unless-stopped"),
                 **insp(failed, "on-failure", exit_code=2), **insp(done, "on-failure", exit_code=0)}
    plan = prune_plan(containers, [], NOW, inspected)
    assert names(plan) == ["done", "old_web_1", "shop_worker_run_1"]
    assert "compose project shop, which is up" in plan["kept"]["shop_worker_1"]
    assert "service_down's business" in plan["kept"]["shop_worker_1"]
    assert "restart policy always" in plan["kept"]["always"] and "unless-stopped" in plan["kept"]["unless"]
    assert "on-failure, exited 2" in plan["kept"]["failed"]
    allowed = prune_plan(containers, [], NOW, inspected, allow_stopped_services=True)
    assert names(allowed) == ["always", "done", "failed", "old_web_1", "shop_worker_1", "shop_worker_run_1", "unless"]


def test_minimum_age_counts_from_the_stop_and_applies_to_images_and_cache():
    crashed_now = ctr("crashed", created=OLD)  # created long ago, stopped a minute ago: fresh evidence
    never_started = ctr("created", state="created", created=OLD)
    fresh_created = ctr("newborn", state="created", created=NOW - 5)
    containers = [crashed_now, never_started, fresh_created]
    inspected = {**insp(crashed_now, finished=NOW - 60), **insp(never_started, finished=None), **insp(fresh_created, finished=None)}
    plan = prune_plan(containers, [img("b", created=NOW - 10)], NOW, inspected, [cache("r1", last_used=NOW - 5)])
    assert names(plan) == ["created"]
    assert "less than 3600 s" in plan["kept"]["crashed"] and "less than" in plan["kept"]["newborn"]
    assert "created less than" in plan["kept"]["b" * 12] and "used less than" in plan["kept"]["build cache r1"]
    assert names(prune_plan(containers, [], NOW, inspected, min_age_seconds=30)) == ["created", "crashed"]


def test_a_stopped_container_that_could_not_be_inspected_stays_and_keeps_its_image():
    plan = prune_plan([ctr("gone", image="b")], [img("b")], NOW, {})
    assert plan["containers"] == [] and plan["images"] == [] and not plan["act"]
    assert "could not be inspected" in plan["kept"]["gone"] and "container that stays" in plan["kept"]["b" * 12]


def test_nothing_to_prune():
    containers = [ctr("live", state="running")]
    plan = prune_plan(containers, [img("a", tags=["x:1"])], NOW, {}, [])
    assert not plan["act"] and plan["containers"] == [] and plan["images"] == [] and plan["build_cache"] == []
    assert plan["would_free_bytes"] == 0 and plan["summary"] == "nothing to prune" and plan["problem"] is None


def test_caps_in_fail_mode_remove_nothing_but_list_the_candidates():
    containers = [ctr(f"c{i}") for i in range(3)]
    plan = prune_plan(containers, [img("b")], NOW, inspect_all(containers), max_containers=2)
    assert not plan["act"] and plan["containers"] == [] and plan["images"] == [] and "cap 2" in plan["problem"]
    assert len(plan["candidates"]["containers"]) == 3 and plan["would_free_bytes"] == 0
    plan = prune_plan([], [img("b"), img("d")], NOW, {}, max_images=1)
    assert not plan["act"] and "2 images (cap 1)" in plan["problem"]
    plan = prune_plan([], [], NOW, {}, [cache("r1"), cache("r2")], max_build_cache=1)
    assert not plan["act"] and "build cache (cap 1)" in plan["problem"]
    plan = prune_plan([], [img("b"), img("d")], NOW, {}, max_bytes=9999)
    assert not plan["act"] and "10000 bytes (cap max_bytes 9999)" in plan["problem"] and plan["summary"] == plan["problem"]


def test_caps_in_partial_mode_take_the_oldest_within_them():
    c0, c1, c2 = ctr("c0", image="b"), ctr("c1", image="d"), ctr("c2")
    containers = [c2, c1, c0]
    images = [img("b"), img("d"), img("e")]
    inspected = {**insp(c0, finished=OLD - 30), **insp(c1, finished=OLD - 20), **insp(c2, finished=OLD - 10)}
    plan = prune_plan(containers, images, NOW, inspected, max_containers=1, cap_mode="partial")
    assert plan["problem"] is None and plan["act"]
    assert names(plan) == ["c0"]
    # d's user stays (over the cap), so d stays too; b goes with c0
    assert names(plan, "images") == ["b" * 12, "e" * 12]
    assert "container that stays" in plan["kept"]["d" * 12] and "over a cap" in plan["kept"]["c1"]
    plan = prune_plan([], images, NOW, {}, max_bytes=10000, cap_mode="partial")
    assert names(plan, "images") == ["b" * 12, "d" * 12] and plan["would_free_bytes"] == 10000
    assert "over a cap" in plan["kept"]["e" * 12]


def test_containers_left_out_keep_their_images():
    containers = [ctr("old", image="b")]
    plan = prune_plan(containers, [img("b"), img("d")], NOW, inspect_all(containers), prune_containers=False)
    assert plan["containers"] == [] and names(plan, "images") == ["d" * 12]
