"""compose_prune against the lab's real Docker engine: each test makes its own litter (conftest's
`litter`: a stopped plain container with a 4 MiB writable layer and an anonymous volume, a
dangling image committed from it, a named volume, a never-started container with restart policy
unless-stopped) and stops a service container (the project's worker); all removed afterwards."""

from __future__ import annotations

from sre_testlib import run_module


def prune(lab, check=False, diff=False, **args):
    return run_module("compose_prune", {"docker_host": lab.host, **args}, check=check, diff=diff)


def inventory(lab):
    return {
        "containers": set(lab.docker("ps", "-aq", "--no-trunc").stdout.split()),
        "images": set(lab.docker("images", "-aq", "--no-trunc").stdout.split()),
        "volumes": set(lab.docker("volume", "ls", "-q").stdout.split()),
    }


def test_check_mode_lists_act_removes_only_those_and_a_second_run_changes_nothing(compose, litter):
    litter = litter()
    compose.docker("stop", "-t", "2", compose.name("worker"))
    young = prune(compose, check=True)
    assert not young.get("failed"), young
    # Default min_age 1h: everything the test made is too young to go.
    assert young["changed"] is False and not young["act"] and young["containers"] == [] and young["images"] == []
    assert "less than 3600 s" in young["kept"][litter.plain]
    assert young["data_root"] == str(compose.dir / "data") and young["data_root_mount"]
    assert young["disk_usage"]["volumes"]["count"] >= 2

    before = inventory(compose)
    check = prune(compose, check=True, min_age="0s")
    assert not check.get("failed"), check
    assert check["changed"] and check["act"]
    assert [c["name"] for c in check["containers"]] == [litter.plain]
    assert check["containers"][0]["size_bytes"] >= 4 << 20
    assert [i["id"] for i in check["images"]] == [litter.image_id.split(":")[1][:12]]
    assert check["images"][0]["size_bytes"] >= 4 << 20  # the base layers it shares do not count
    assert check["would_free_bytes"] == sum(c["size_bytes"] for c in check["containers"] + check["images"] + check["build_cache"])
    assert [a["result"] for a in check["actions"]] == ["would remove"] * 2 + ["would prune"] * len(check["build_cache"])
    assert "service_down's business" in check["kept"][compose.name("worker")]
    assert "restart policy unless-stopped" in check["kept"][litter.service_like]
    assert inventory(compose) == before  # check mode changed nothing

    done = prune(compose, diff=True, min_age="0s")
    assert not done.get("failed"), done
    assert done["changed"] and [c["name"] for c in done["containers"]] == [litter.plain]
    assert done["bytes_freed"] >= 8 << 20 and [a["result"] for a in done["actions"]][:2] == ["removed", "removed"]
    assert done["diff"]["before"]["containers"] == [litter.plain] and done["diff"]["after"]["containers"] == []
    after = inventory(compose)
    gone_containers = before["containers"] - after["containers"]
    assert len(gone_containers) == 1 and not litter.exists("container", litter.plain)
    assert before["images"] - after["images"] == {litter.image_id}
    # never volumes: the named one and the removed container's anonymous one stay
    assert before["volumes"] == after["volumes"] and {litter.volume, litter.anon_volume} <= after["volumes"]
    # the stopped service container and the container meant to run stay, with the worker's logs
    assert compose.inspect("worker")["State"]["Status"] == "exited"
    assert "worker: started" in compose.docker("logs", compose.name("worker")).stdout
    assert litter.exists("container", litter.service_like)

    again = prune(compose, min_age="0s")
    assert not again.get("failed"), again
    assert again["changed"] is False and not again["act"] and again["actions"] == []
    assert again["reason"] == "nothing to prune" and inventory(compose) == after


def test_not_full_filesystem_and_caps_remove_nothing(compose, litter):
    litter = litter()
    before = inventory(compose)
    calm = prune(compose, min_age="0s", only_on_mounts=["/no-such-full-mount"])
    assert not calm.get("failed"), calm
    assert calm["changed"] is False and not calm["act"] and calm["actions"] == []
    assert "is not among the full mounts" in calm["reason"] and "1 stopped container(s)" in calm["reason"]
    calm = prune(compose, min_age="0s", only_on_mounts=[], max_containers=0)  # caps trip only for a prune that runs
    assert not calm.get("failed") and not calm["act"], calm
    capped = prune(compose, min_age="0s", max_containers=0)
    assert capped["failed"] and "guardrail" in capped["msg"] and "cap 0" in capped["msg"]
    assert [c["name"] for c in capped["candidates"]["containers"]] == [litter.plain]
    capped = prune(compose, min_age="0s", max_bytes="1M")
    assert capped["failed"] and "max_bytes" in capped["msg"]
    assert inventory(compose) == before
    bad = prune(compose, min_age="soon")
    assert bad["failed"] and "min_age" in bad["msg"]
