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


# --- issue 9: the verdict (crash loop, recovered, down) and masked command lines ---------------


def test_the_verdict_tells_a_crash_loop_from_a_recovered_unit_and_a_down_one(lab_host, transient_units, lab_services_restored):
    looping = transient_units("echo 'fatal: license expired' >&2; exit 1",
                              "Restart=always", "RestartSec=300ms", "StartLimitBurst=1000")
    # Crashes three times, then stays up: restarted often, but it recovered.
    marker = f"/run/{looping}.count"
    flapper = transient_units(f"n=$(cat {marker}.2 2>/dev/null || echo 0); echo $((n+1)) > {marker}.2; "
                              "[ $n -ge 3 ] || exit 1; exec sleep 600",
                              "Restart=always", "RestartSec=200ms", "StartLimitBurst=1000")
    lab_host.sh("systemctl kill --signal=SIGKILL nginx.service")
    assert lab_host.wait_unit("nginx.service", ("failed",)) == "failed"
    lab_host.sh("sleep 2.5")
    units = [looping, flapper, {"name": "nginx", "http_url": "http://127.0.0.1/"}, "pgbouncer"]
    args = {"units": units, "restart_loop_threshold": 3, "journal_lines": 10, "journal_priority": "info",
            "journal_units": "unhealthy"}

    young = lab_host.module("systemd_unit_info", dict(args, stable_seconds=600))["verdict"]
    assert young["units"][looping]["status"] == "looping"
    assert young["units"][flapper]["status"] == "looping", young["units"][flapper]  # up, but not for long yet
    assert sorted(young["down"]) == sorted([looping, flapper, "nginx.service"])
    assert young["to_restart"] == ["nginx.service"]
    assert young["act"] is True and young["healthy"] is False
    assert "license expired" in young["evidence"][looping]

    settled = lab_host.module("systemd_unit_info", dict(args, stable_seconds=1))["verdict"]
    assert settled["units"][flapper]["status"] == "stable"
    assert "recovered" in settled["units"][flapper]["reason"]
    assert settled["looping"] == [looping]
    assert sorted(settled["stable"]) == sorted([flapper, "pgbouncer.service"])

    lab_host.sh("systemctl restart nginx.service")
    healthy = lab_host.module("systemd_unit_info", {"units": [{"name": "nginx", "http_url": "http://127.0.0.1/"},
                                                              "pgbouncer", "postgresql@15-main"]})["verdict"]
    assert healthy["healthy"] is True and healthy["act"] is False
    assert healthy["summary"].startswith("healthy, nothing to do")


def test_a_device_unit_is_not_taken_for_a_service(lab_host):
    # The role's own suffix list lacked .device: "x.device" became "x.device.service".
    result = lab_host.module("systemd_unit_info", {"units": ["sys-devices-virtual-net-lo.device"], "journal_lines": 0})
    assert list(result["units"]) == ["sys-devices-virtual-net-lo.device"]


def test_host_resources_masks_a_canary_password_on_a_command_line(lab_host, transient_units):
    canary = "c4nary-Pr0cess-pw"
    transient_units(f"exec python3 -c 'import time; time.sleep(120)' --password {canary} DB_PASSWORD={canary} "
                    f"postgresql://app:{canary}@db1/app")
    lab_host.sh("sleep 0.5")
    result = lab_host.module("host_resources_info", {"top_processes": 100000, "cpu_sample_seconds": 0})
    assert lab_host.sh(f"pgrep -f {canary}", check=False).returncode == 0, "the canary process is not running"
    rows = [p for p in result["processes"]["by_rss"] if "time.sleep(120)" in p["command"]]
    assert rows, "the canary process is missing from the result"
    assert "--password ******** DB_PASSWORD=******** postgresql://app:********@db1/app" in rows[0]["command"]
    assert canary not in str(result)
