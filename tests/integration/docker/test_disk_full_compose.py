"""playbooks/outage/disk_full.yml on the lab's compose host (outage_platform: compose): a guarded
docker system prune, only when the filesystem holding the Docker data root is full. The lab's
data root shares the machine's big filesystem, so "full" is set by the threshold: free space
below avail + MARGIN before the prune, above it after (the litter holds about 2 x LITTER_MIB)."""

from __future__ import annotations

import os

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "disk_full.yml"
RECORD = "sre.runbooks.disk_full : Record | structured result for the incident timeline"
HOST = "lab-compose"
LITTER_MIB = 96
MARGIN = 64 << 20


def run(check=False, **extra):
    return sre_testlib.run_playbook(PLAYBOOK, check=check, extra_vars={
        "target": "compose_hosts", "disk_full_compose_min_age": "0s", **extra})


def record(report):
    return sre_testlib.task_results(report, RECORD)[HOST]["ansible_facts"]["disk_full_result"]


def changed_tasks(report):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(HOST, {}).get("changed")]


def available(lab):
    st = os.statvfs(lab.dir / "data")
    return st.f_bavail * st.f_frsize


def test_not_full_filesystem_is_left_alone_litter_and_all(compose, litter):
    """No-fault control: something to prune, but the data root's filesystem is not full."""
    made = litter()
    rc, report, err = run()
    assert rc == 0, err[-3000:]
    assert changed_tasks(report) == []
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["actions"] == [] and rec["full"] == []
    assert rec["data_root"] == str(compose.dir / "data") and rec["healthy"]
    assert made.exists("container", made.plain) and made.exists("image", made.image_id)


def test_full_data_root_check_lists_act_prunes_within_the_rules_second_run_changes_nothing(compose, litter):
    made = litter(LITTER_MIB)
    compose.docker("stop", "-t", "2", compose.name("worker"))
    threshold = {"disk_full_min_free": str(available(compose) + MARGIN)}

    rc, report, err = run(check=True, **threshold)
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert rec["outcome"] == "check mode: would prune" and rec["full"] == [rec["data_root_mount"]], rec
    assert [c["name"] for c in rec["planned"]["containers"]] == [made.plain]
    assert [i["id"] for i in rec["planned"]["images"]] == [made.image_id.split(":")[1][:12]]
    assert rec["planned_bytes"] >= 2 * LITTER_MIB << 20
    assert "service_down's business" in rec["kept"][compose.name("worker")]
    assert made.exists("container", made.plain) and made.exists("image", made.image_id)

    rc, report, err = run(**threshold)
    assert rc == 0, err[-3000:]
    rec = record(report)
    assert rec["outcome"] == "healed" and rec["still_full"] == [], rec
    assert [a["target"] for a in rec["actions"]] == [made.plain, made.image_id.split(":")[1][:12]]
    assert rec["bytes_freed"] >= 2 * LITTER_MIB << 20
    assert not made.exists("container", made.plain) and not made.exists("image", made.image_id)
    # never volumes, never a stopped service container, never one meant to run
    assert made.exists("volume", made.volume) and made.exists("volume", made.anon_volume)
    assert compose.inspect("worker")["State"]["Status"] == "exited"
    assert made.exists("container", made.service_like)

    rc, report, err = run(**threshold)
    assert rc == 0, err[-3000:]
    assert changed_tasks(report) == []
    rec = record(report)
    assert rec["outcome"] == "no action needed" and rec["actions"] == []


def test_full_with_nothing_to_prune_fails_and_names_what_fills_it(compose):
    rc, report, err = run(disk_full_min_free="1000T")
    assert rc != 0
    assert changed_tasks(report) == []
    rec = record(report)
    assert rec["outcome"] == "failed" and rec["actions"] == []
    assert "still full" in rec["error"] and "volumes" in rec["error"] and "nothing may be pruned" in rec["error"]
