"""systemd_unit_info and host_resources_info, run on a real systemd lab host."""

from __future__ import annotations

import time

LAB_UNITS = ["postgresql@15-main.service", "pgbouncer.service", "redis-server.service", "nginx.service"]


def test_healthy_lab_units_are_reported_running_in_one_call(lab_host):
    result = lab_host.module("systemd_unit_info", {"units": ["postgresql@15-main", "pgbouncer", "redis-server", "nginx"],
                                                   "journal_lines": 5})
    assert result["changed"] is False
    assert result["failed_units"] == [] and result["missing_units"] == []
    for unit in LAB_UNITS:
        state = result["units"][unit]
        assert state["healthy"] and state["active_state"] == "active" and state["sub_state"] == "running"
        assert state["main_pid"] and int(lab_host.unit(unit, "MainPID")) == state["main_pid"]
        assert state["active_since"].endswith("Z")
        assert state["memory_current_bytes"] > 0
    assert sorted(result["restart_order"]) == sorted(LAB_UNITS)


def test_a_killed_unit_is_failed_with_the_signal_and_restart_is_not_its_business(lab_host, lab_services_restored):
    lab_host.sh("systemctl kill --signal=SIGKILL nginx.service")
    assert lab_host.wait_unit("nginx.service", ("failed",)) == "failed"
    result = lab_host.module("systemd_unit_info", {"units": ["nginx.service"], "journal_priority": "warning"})
    state = result["units"]["nginx.service"]
    assert result["failed_units"] == ["nginx.service"]
    assert (state["active_state"], state["result"], state["exec_main_code"], state["exec_main_status"]) == \
        ("failed", "signal", "killed", 9)
    assert state["main_pid"] is None and state["inactive_since"]
    assert any("Failed with result 'signal'" in e["message"] for e in state["journal"])
    # Read-only: the unit is still failed after the module ran.
    assert lab_host.unit("nginx.service", "ActiveState") == "failed"


def test_a_crash_looping_unit_shows_climbing_restarts_and_its_errors(lab_host, transient_units):
    unit = transient_units("echo 'fatal: cannot open /etc/app.conf' >&2; exit 3",
                           "Restart=always", "RestartSec=300ms", "StartLimitBurst=1000")

    def between_crashes() -> dict:
        state: dict = {}
        # Each read is a snapshot: one can land in the moment the crashing process runs
        # (active/running, no exit status yet). The loop spends most of its time waiting to
        # restart; read until the snapshot shows that, as an on-call engineer would look twice.
        for _attempt in range(20):
            state = lab_host.module("systemd_unit_info", {"units": [unit], "journal_priority": "info"})["units"][unit]
            if state["restart_looping"]:
                return state
            time.sleep(0.1)
        raise AssertionError(f"{unit} never seen waiting to restart: {state}")

    time.sleep(2)
    first = between_crashes()
    time.sleep(1.5)
    second = between_crashes()
    assert first["n_restarts"] >= 2
    assert second["n_restarts"] > first["n_restarts"]
    assert second["healthy"] is False and second["sub_state"] == "auto-restart"
    assert second["exec_main_code"] == "exited" and second["exec_main_status"] == 3
    assert any("cannot open /etc/app.conf" in e["message"] for e in second["journal"])


def test_journal_excerpt_honours_priority_lines_and_since(lab_host, transient_units):
    unit = transient_units('for i in 1 2 3 4 5; do echo "<3>err line $i"; echo "<6>info line $i"; done; sleep 60',
                           "SyslogLevelPrefix=yes")
    time.sleep(1)
    result = lab_host.module("systemd_unit_info", {"units": [unit], "journal_lines": 3, "journal_priority": "err",
                                                   "journal_since": "5m"})
    messages = [e["message"] for e in result["units"][unit]["journal"]]
    assert messages == ["err line 3", "err line 4", "err line 5"]
    assert {e["priority"] for e in result["units"][unit]["journal"]} == {"err"}
    none_yet = lab_host.module("systemd_unit_info", {"units": [unit], "journal_since": "2030-01-01 00:00:00"})
    assert none_yet["units"][unit]["journal"] == []


def test_unknown_units_are_missing_not_an_error_and_check_mode_reads_the_same(lab_host):
    normal = lab_host.module("systemd_unit_info", {"units": ["nginx", "no-such-unit-sre"], "journal_lines": 0})
    checked = lab_host.module("systemd_unit_info", {"units": ["nginx", "no-such-unit-sre"], "journal_lines": 0},
                              check=True)
    for result in (normal, checked):
        assert result["missing_units"] == ["no-such-unit-sre.service"]
        assert result["failed_units"] == []
        assert result["changed"] is False
    assert checked["units"]["nginx.service"]["main_pid"] == normal["units"]["nginx.service"]["main_pid"]


def test_host_resources_reads_memory_disks_processes_and_oom_state(lab_host):
    result = lab_host.module("host_resources_info", {"largest_dirs_under": ["/var/lib"], "top_processes": 5})
    assert result["changed"] is False
    assert result["memory"]["total_bytes"] > result["memory"]["available_bytes"] > 0
    root = [d for d in result["disks"] if d["mount"] == "/"]
    assert root and root[0]["size_bytes"] >= root[0]["used_bytes"] > 0
    entries = result["largest_dirs"][0]["entries"]
    assert [e["bytes"] for e in entries] == sorted((e["bytes"] for e in entries), reverse=True)
    postgres = [e for e in entries if e["path"] == "/var/lib/postgresql"]
    assert postgres and postgres[0]["bytes"] > 10 * 1024 * 1024
    assert any(p["name"] == "postgres" for p in result["processes"]["by_rss"])
    assert result["processes"]["process_count"] > 10
    assert isinstance(result["oom"]["kernel_log_readable"], bool)
    assert result["oom"]["kills_since_boot"] is not None
    assert result["load"]["cpus"] >= 1


def test_host_resources_rejects_an_unknown_mount_with_the_mounts_it_has(lab_host):
    result = lab_host.module("host_resources_info", {"mounts": ["/nope"], "top_processes": 0})
    assert result["failed"] is True
    assert "/nope is not a mount point" in result["msg"] and "mounted: /" in result["msg"]


def test_a_full_disk_shows_in_df_terms_with_its_biggest_directory(lab_host):
    try:
        lab_host.sh("mkdir -p /srv/disk/spool/big /srv/disk/spool/small && "
                    "head -c 60M /dev/zero > /srv/disk/spool/big/blob; head -c 1M /dev/zero > /srv/disk/spool/small/blob",
                    check=False)
        result = lab_host.module("host_resources_info", {"mounts": ["/srv/disk"], "largest_dirs_under": ["/srv/disk/spool"],
                                                         "top_processes": 0})
        [disk] = result["disks"]
        assert disk["mount"] == "/srv/disk" and disk["size_bytes"] == 64 * 1024 * 1024
        assert disk["used_percent"] >= 90
        df = lab_host.sh("df --output=pcent /srv/disk | tail -1").stdout.strip().rstrip("%")
        assert abs(disk["used_percent"] - int(df)) <= 1
        assert result["largest_dirs"][0]["entries"][0]["path"] == "/srv/disk/spool/big"
    finally:
        lab_host.sh("rm -rf /srv/disk/spool", check=False)
