"""disk_full (runbook 003 "Disk space issues") on a real systemd lab host (issue 12).

The lab host's own 64 MiB filesystem at /srv/disk (lab/hosts/up) is filled to 100 % by the
drill's filler (molecule/disk_full/files/disk_filler.py): rotated logs, an old and a new backup,
a live log held open and a deleted log still held open. Assertions read df, find and /proc on
the host, not the modules under test."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "disk_full.yml"
DRILL = sre_testlib.REPO / "molecule" / "disk_full"
FILLER = DRILL / "files" / "disk_filler.py"
DRILL_VARS = yaml.safe_load((DRILL / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]["all"]
DISK = DRILL_VARS["drill_disk"]
UNIT = "sre-it-disk-filler"
READY = "/run/sre-it-disk-filler.json"
CANARY = "Canary-df-0b5e55ed"
RECORD = "sre.runbooks.disk_full : Record | structured result for the incident timeline"
FILLED = {"backups/db-new.sql.gz", "backups/db-old.sql.gz", "log/app.log", "log/app.log.1", "log/app.log.2",
          "log/app.log.3"}


def playbook_vars(**extra):
    return {"disk_full_mounts": DRILL_VARS["disk_full_mounts"], "disk_full_rules": DRILL_VARS["disk_full_rules"],
            **extra}


def run(lab_host, tags=None, check=False, **extra):
    return sre_testlib.run_playbook(PLAYBOOK, extra_vars={"target": lab_host.name, **playbook_vars(**extra)},
                                    tags=tags, check=check)


def record(report, host):
    return sre_testlib.task_results(report, RECORD)[host]["ansible_facts"]["disk_full_result"]


def changed_tasks(report, host):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(host, {}).get("changed")]


def used_percent(lab_host) -> int:
    return int(lab_host.sh(f"df --output=pcent {DISK} | tail -1").stdout.strip().rstrip("%"))


def files(lab_host) -> dict[str, int]:
    out = lab_host.sh(f"find {DISK} -type f -printf '%P %s\\n'").stdout
    return {name: int(size) for name, size in (line.rsplit(" ", 1) for line in out.splitlines())}


def deleted_open_size(lab_host) -> int:
    out = lab_host.sh(f"pid=$(systemctl show -P MainPID {UNIT}); for fd in /proc/$pid/fd/*; do "
                      "case \"$(readlink $fd)\" in *'debug.log (deleted)') stat -L -c %s $fd;; esac; done").stdout
    return int(out.strip())


def empty_disk(lab_host):
    lab_host.sh(f"systemctl stop {UNIT} 2>/dev/null; systemctl reset-failed {UNIT} 2>/dev/null; "
                f"mountpoint -q {DISK} && find {DISK} -mindepth 1 -delete; rm -f {READY}", check=False)


@pytest.fixture
def healthy_disk(lab_host):
    empty_disk(lab_host)
    yield
    empty_disk(lab_host)


@pytest.fixture
def full_disk(lab_host, healthy_disk):
    """/srv/disk at 100 %, held full by a transient unit; emptied afterwards, whatever the test did."""
    code = base64.b64encode(FILLER.read_bytes()).decode()
    lab_host.sh(f"echo {code} | base64 -d > /usr/local/bin/{UNIT} && chmod 0755 /usr/local/bin/{UNIT}")
    # The holder carries a secret on its command line and in its environment, as careless
    # services do: the runbook names holders of open files and must not print it.
    lab_host.sh(f"systemd-run --unit={UNIT} --collect --setenv=DB_PASSWORD={CANARY} "
                f"/usr/local/bin/{UNIT} {DISK} {READY} --password={CANARY}")
    lab_host.sh(f"for i in $(seq 600); do [ -f {READY} ] && break; sleep 0.2; done; test -f {READY}", timeout=180)
    ready = json.loads(lab_host.sh(f"cat {READY}").stdout)
    # The fault is really there.
    assert used_percent(lab_host) == 100
    assert set(files(lab_host)) == FILLED
    assert deleted_open_size(lab_host) == ready["deleted_open_bytes"] > 10 * 2**20
    yield ready


def test_assess_reports_the_full_mount_and_the_plan_and_changes_nothing(lab_host, full_disk):
    before = files(lab_host)
    rc, report, stderr = run(lab_host, tags="assess")
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert changed_tasks(report, lab_host.name) == []
    assert result["full"] == [DISK] and result["outcome"] == "assessed only" and result["actions"] == []
    assert result["verdict"].startswith(f"full: {DISK} 100.0% used")
    planned = {(p["path"].replace(DISK + "/", ""), p["action"], p["deleted"]) for p in result["planned"]}
    assert planned == {("log/debug.log", "truncate", True), ("backups/db-old.sql.gz", "delete", False),
                       ("log/app.log.1", "compress", False), ("log/app.log.2", "compress", False),
                       ("log/app.log.3", "compress", False)}
    assert all(p["bytes"] > 0 for p in result["planned"])
    assert [e["path"] for e in result["largest_dirs"][0]["entries"]] == [f"{DISK}/log", f"{DISK}/backups"]
    assert files(lab_host) == before and used_percent(lab_host) == 100
    assert deleted_open_size(lab_host) == full_disk["deleted_open_bytes"]


def test_check_mode_lists_what_would_go_with_sizes_and_changes_nothing(lab_host, full_disk):
    before = files(lab_host)
    rc, report, stderr = run(lab_host, check=True)
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert result["outcome"] == "check mode: would clean up" and result["bytes_freed"] == 0
    by_path = {p["path"]: p for p in result["planned"]}
    assert by_path[f"{DISK}/backups/db-old.sql.gz"]["bytes"] == 12 * 2**20
    assert by_path[f"{DISK}/log/debug.log"]["size"] == full_disk["deleted_open_bytes"]
    assert {a["result"] for a in result["actions"]} == {
        "would delete (check mode)", "would truncate (check mode)", "would compress (check mode)"}
    assert files(lab_host) == before and used_percent(lab_host) == 100
    assert deleted_open_size(lab_host) == full_disk["deleted_open_bytes"]


def test_the_playbook_frees_the_disk_and_a_second_run_changes_nothing(lab_host, full_disk):
    rc, report, stderr = run(lab_host)
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert result["outcome"] == "healed" and result["still_full"] == [] and result["error"] is None
    assert result["bytes_freed"] >= full_disk["deleted_open_bytes"] + 12 * 2**20
    assert result["files_changed"] == 5 and all(a["result"] == "done" for a in result["actions"])
    assert result["after"][0]["used_percent"] < 50
    # Seen on the host: what the rules allow is gone, nothing else.
    left = files(lab_host)
    assert set(left) == {"backups/db-new.sql.gz", "log/app.log", "log/app.log.1.gz", "log/app.log.2.gz",
                         "log/app.log.3.gz"}
    assert left["backups/db-new.sql.gz"] == 4 * 2**20 and left["log/app.log"] > 0
    assert used_percent(lab_host) < 50
    assert deleted_open_size(lab_host) == 0
    assert lab_host.unit(f"{UNIT}.service", "ActiveState") == "active"  # the process was not harmed
    lab_host.sh(f"zcat {DISK}/log/app.log.2.gz | head -1 | grep -q 'request handled'")

    rc, report, stderr = run(lab_host)
    assert rc == 0, stderr
    assert changed_tasks(report, lab_host.name) == []
    again = record(report, lab_host.name)
    assert again["outcome"] == "no action needed" and again["actions"] == []
    assert files(lab_host) == left


def test_no_fault_control_old_files_on_a_healthy_disk_are_left_alone(lab_host, healthy_disk):
    lab_host.sh(f"mkdir -p {DISK}/log {DISK}/backups && head -c 1048576 /dev/zero > {DISK}/backups/db-old.sql.gz "
                f"&& echo old > {DISK}/log/app.log.1 && touch -d '30 days ago' {DISK}/backups/db-old.sql.gz "
                f"{DISK}/log/app.log.1")
    before = files(lab_host)
    rc, report, stderr = run(lab_host)
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert changed_tasks(report, lab_host.name) == []
    assert result["outcome"] == "no action needed" and result["healthy"] is True
    assert result["verdict"].startswith("healthy, nothing to do") and result["actions"] == []
    assert result["planned"] == []
    assert files(lab_host) == before


def test_no_fault_control_whole_host_with_default_rules(lab_host, healthy_disk):
    """The playbook as a user runs it against the lab (no drill variables): nothing is full."""
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars={"target": lab_host.name})
    assert rc == 0, stderr
    assert changed_tasks(report, lab_host.name) == []
    assert record(report, lab_host.name)["outcome"] == "no action needed"


def test_a_full_disk_no_rule_can_free_fails_naming_what_fills_it(lab_host, full_disk):
    before = files(lab_host)
    rc, report, stderr = run(lab_host, disk_full_rules=[{"path": f"{DISK}/backups", "patterns": ["*.tar"]}],
                             disk_full_journal_vacuum_size="")
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["outcome"] == "failed" and result["actions"] == []
    assert "no cleanup rule matches anything there" in result["error"]
    assert f"{DISK}/log" in result["error"]
    assert files(lab_host) == before and used_percent(lab_host) == 100


def test_the_file_cap_trips_and_nothing_is_cleaned(lab_host, full_disk):
    before = files(lab_host)
    rc, report, stderr = run(lab_host, disk_full_max_files=2)
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["outcome"] == "failed" and "guardrail 'max_files' tripped" in result["error"]
    assert files(lab_host) == before and used_percent(lab_host) == 100


def test_cleanup_never_follows_a_symlink_out_of_its_directory(lab_host, healthy_disk):
    lab_host.sh(f"mkdir -p {DISK}/log /var/tmp/sre-it-precious && echo keep > /var/tmp/sre-it-precious/old.log "
                f"&& touch -d '30 days ago' /var/tmp/sre-it-precious/old.log "
                f"&& ln -s /var/tmp/sre-it-precious/old.log {DISK}/log/link.log "
                f"&& ln -s /var/tmp/sre-it-precious {DISK}/log/dir && ln -s {DISK}/log {DISK}/loglink")
    try:
        result = lab_host.module("disk_cleanup", {"rules": [{"path": f"{DISK}/log", "patterns": ["*"], "min_age": "1d",
                                                             "recurse": True}]})
        assert result.get("failed") is not True, result
        assert result["changed"] is False and result["planned"] == []
        lab_host.sh("test -f /var/tmp/sre-it-precious/old.log")
        refused = lab_host.module("disk_cleanup", {"rules": [{"path": f"{DISK}/loglink", "min_age": "1d"}]})
        assert refused["failed"] and "is a symlink" in refused["msg"]
    finally:
        lab_host.sh("rm -rf /var/tmp/sre-it-precious", check=False)


def test_disk_full_secret_canary(lab_host, full_disk):
    """At -vvv, in check mode and for real, the holder's secret appears in no output."""
    for check in (True, False):
        rc, report, err = sre_testlib.run_playbook(
            PLAYBOOK, check=check, diff=True, env={"ANSIBLE_VERBOSITY": "3"},
            extra_vars={"target": lab_host.name, **playbook_vars()})
        text = str(report) + err
        assert rc == 0, err[-3000:]
        assert "debug.log" in text and lab_host.name in text, text[-3000:]
        assert CANARY not in text, sre_testlib.leaks(text, CANARY)


def test_no_fault_control_another_scenarios_fault_is_left_alone(lab_host, healthy_disk, lab_services_restored):
    """nginx killed (service_down's fault): disk_full finds no full disk and touches nothing."""
    lab_host.sh("systemctl kill --signal=SIGKILL nginx.service")
    assert lab_host.wait_unit("nginx.service", ("failed", "inactive")) in ("failed", "inactive")
    rc, report, stderr = run(lab_host)
    assert rc == 0, stderr
    assert changed_tasks(report, lab_host.name) == []
    assert record(report, lab_host.name)["outcome"] == "no action needed"
    assert lab_host.unit("nginx.service", "ActiveState") in ("failed", "inactive")


def test_journal_vacuum_on_the_hosts_real_journal(lab_host):
    """journalctl --disk-usage and --vacuum-size on the host's journald: check mode lists the
    vacuum with the journal's size; a real run reports a change only for bytes really freed
    (journald keeps its active files, and may archive one between two runs: then, and only
    then, the second run frees something too)."""
    usage = lab_host.sh("journalctl --disk-usage").stdout
    assert "take up" in usage, usage
    preview = lab_host.module("disk_cleanup", {"journal_vacuum_size": "1K"}, check=True)
    assert preview.get("failed") is not True, preview
    [planned] = preview["planned"]
    assert planned["action"] == "journal_vacuum" and planned["size"] > 1024 and preview["changed"] is True
    assert planned["path"] in ("/var/log/journal", "/run/log/journal")
    first = lab_host.module("disk_cleanup", {"journal_vacuum_size": "1K"})
    assert first.get("failed") is not True, first
    assert all(a["result"] == "done" and a["bytes"] > 0 for a in first["actions"])
    second = lab_host.module("disk_cleanup", {"journal_vacuum_size": "1K"})
    assert second.get("failed") is not True, second
    assert second["changed"] is bool(second["actions"]) and all(a["bytes"] > 0 for a in second["actions"]), second
    # A journal under the limit is not touched at all.
    roomy = lab_host.module("disk_cleanup", {"journal_vacuum_size": "100G"}, check=True)
    assert roomy["planned"] == [] and roomy["changed"] is False
