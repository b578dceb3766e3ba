"""Unit tests for the guarded `docker system prune` plan (_docker.prune_plan): every branch."""

from __future__ import annotations

from ansible_collections.sre.runbooks.plugins.module_utils._docker import prune_plan

NOW = 1_800_000_000.0
OLD = NOW - 86400


def ctr(name, state="exited", project=None, created=OLD, image="sha256:" + "a" * 64, size=1000):
    labels = {"com.docker.compose.project": project} if project else {}
    return {"Id": name * 8, "Names": ["/" + name], "State": state, "Labels": labels, "Created": created,
            "ImageID": image, "Image": "x", "SizeRw": size}


def img(digit, tags=None, size=5000):
    return {"Id": "sha256:" + digit * 64, "RepoTags": tags, "Size": size, "Created": OLD}


def test_only_old_stopped_containers_of_no_project_and_unused_dangling_images_go():
    containers = [ctr("old", image="sha256:" + "b" * 64), ctr("svc", project="shop"), ctr("fresh", created=NOW - 10),
                  ctr("live", state="running", image="sha256:" + "c" * 64), ctr("dead", state="dead")]
    images = [img("b"), img("c"), img("d"), img("e", tags=["sre-lab/base:1"]), img("f", tags=["<none>:<none>"])]
    plan = prune_plan(containers, images, NOW)
    assert [c["name"] for c in plan["containers"]] == ["old", "dead"]
    # b's only user goes with this prune; c runs; e is tagged; f's tag is Docker's "none"
    assert [i["id"] for i in plan["images"]] == ["b" * 12, "d" * 12, "f" * 12]
    assert plan["images"][0]["used_by_removed_container"] is True
    assert plan["kept"]["svc"].startswith("stopped container of compose project shop")
    assert "less than" in plan["kept"]["fresh"] and "used by a container" in plan["kept"]["c" * 12]
    assert plan["would_free_bytes"] == 2 * 1000 + 3 * 5000 and plan["act"] and plan["problem"] is None


def test_nothing_to_prune():
    plan = prune_plan([ctr("live", state="running")], [img("a", tags=["x:1"])], NOW)
    assert not plan["act"] and plan["containers"] == [] and plan["images"] == [] and plan["would_free_bytes"] == 0


def test_caps_remove_nothing():
    plan = prune_plan([ctr(f"c{i}") for i in range(3)], [img("b")], NOW, max_containers=2)
    assert not plan["act"] and plan["containers"] == [] and plan["images"] == [] and "cap 2" in plan["problem"]
    plan = prune_plan([], [img("b"), img("d")], NOW, max_images=1)
    assert not plan["act"] and "cap 1" in plan["problem"]
