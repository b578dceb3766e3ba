"""Unit tests for plugins/module_utils/_systemd.py: parsing systemctl/journalctl output,
unit health, restart order. The systemd programs are replaced by recorded output here; the
real thing is exercised by tests/integration/systemd against a lab host."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _systemd

SHOW_TWO_UNITS = """\
Id=nginx.service
LoadState=loaded
ActiveState=failed
SubState=failed
Result=signal
NRestarts=0
ExecMainCode=2
ExecMainStatus=9
MainPID=0
ActiveEnterTimestamp=@1795504012
InactiveEnterTimestamp=@1795504081
MemoryCurrent=[not set]
After=network.target basic.target
Requires=sysinit.target

Id=ghost.service
LoadState=not-found
ActiveState=inactive
SubState=dead
Result=success
NRestarts=0
ExecMainCode=0
MainPID=0
ActiveEnterTimestamp=
MemoryCurrent=[not set]
"""


def fake_run(outputs):
    """A run_command stand-in that returns the recorded (rc, out, err) in order and keeps the calls."""
    calls = []

    def run(cmd):
        calls.append(cmd)
        return outputs.pop(0)

    run.calls = calls
    return run


def test_show_output_splits_into_one_block_per_unit_in_order():
    blocks = _systemd.parse_show_output(SHOW_TWO_UNITS)
    assert [b["Id"] for b in blocks] == ["nginx.service", "ghost.service"]
    assert blocks[0]["After"] == "network.target basic.target"


def test_a_killed_unit_is_unhealthy_with_signal_and_timestamps():
    state = _systemd.unit_state(_systemd.parse_show_output(SHOW_TWO_UNITS)[0])
    assert state["healthy"] is False
    assert state["exists"] is True
    assert state["exec_main_code"] == "killed"
    assert state["exec_main_status"] == 9
    assert state["main_pid"] is None
    assert state["active_since"] == "2026-11-24T07:06:52Z"
    assert state["inactive_since"] == "2026-11-24T07:08:01Z"
    assert state["oom_killed"] is False


def test_an_unknown_unit_is_reported_missing_not_raised():
    state = _systemd.unit_state(_systemd.parse_show_output(SHOW_TWO_UNITS)[1])
    assert state["exists"] is False
    assert state["active_since"] is None


@pytest.mark.parametrize("props, healthy, looping", [
    ({"ActiveState": "active", "SubState": "running"}, True, False),
    ({"ActiveState": "activating", "SubState": "auto-restart"}, False, True),
    ({"ActiveState": "failed", "SubState": "failed"}, False, False),
    ({"ActiveState": "active", "SubState": "exited"}, True, False),
])
def test_health_and_crash_loop_follow_active_and_sub_state(props, healthy, looping):
    state = _systemd.unit_state({"Id": "x.service", "LoadState": "loaded", **props})
    assert state["healthy"] is healthy
    assert state["restart_looping"] is looping


def test_oom_kill_result_is_flagged():
    state = _systemd.unit_state({"Id": "x.service", "LoadState": "loaded", "ActiveState": "failed",
                                 "SubState": "failed", "Result": "oom-kill"})
    assert state["oom_killed"] is True


def test_systemctl_show_asks_for_all_units_in_one_call():
    run = fake_run([(0, SHOW_TWO_UNITS, "")])
    blocks = _systemd.systemctl_show(run, "/bin/systemctl", ["nginx.service", "ghost.service"])
    assert len(run.calls) == 1
    assert run.calls[0][-2:] == ["nginx.service", "ghost.service"]
    assert "--timestamp=unix" in run.calls[0]
    assert len(blocks) == 2


def test_old_systemctl_without_unix_timestamps_is_retried_plainly():
    run = fake_run([(1, "", "Unknown value for --timestamp="), (0, SHOW_TWO_UNITS, "")])
    _systemd.systemctl_show(run, "systemctl", ["nginx.service", "ghost.service"])
    assert "--timestamp=unix" not in run.calls[1]


def test_systemctl_failure_names_the_command():
    run = fake_run([(1, "", "Failed to connect to bus: No such file or directory")])
    with pytest.raises(_systemd.SystemdError, match="Failed to connect to bus"):
        _systemd.systemctl_show(run, "systemctl", ["nginx.service"])


def test_restart_order_follows_after_and_requires_among_the_given_units():
    states = {
        "app.service": {"after": ["pgbouncer.service", "network.target"], "requires": []},
        "pgbouncer.service": {"after": [], "requires": ["postgresql.service"]},
        "postgresql.service": {"after": ["network.target"], "requires": []},
        "nginx.service": {"after": [], "requires": []},
    }
    order = _systemd.restart_order(["app.service", "nginx.service", "pgbouncer.service", "postgresql.service"], states)
    assert order.index("postgresql.service") < order.index("pgbouncer.service") < order.index("app.service")
    # No dependency between nginx and the others: it keeps its place relative to the caller's order.
    assert order[0] == "nginx.service"


def test_restart_order_survives_a_dependency_cycle():
    states = {"a.service": {"after": ["b.service"], "requires": []},
              "b.service": {"after": ["a.service"], "requires": []}}
    assert sorted(_systemd.restart_order(["a.service", "b.service"], states)) == ["a.service", "b.service"]


def journal_line(message, priority=3, micros=1795504081000000, **extra):
    return json.dumps({"MESSAGE": message, "PRIORITY": str(priority), "__REALTIME_TIMESTAMP": str(micros),
                       "SYSLOG_IDENTIFIER": "nginx", "_PID": "47", **extra})


def test_journal_json_is_parsed_and_limited_to_the_last_entries():
    text = "\n".join(journal_line(f"line {n}") for n in range(5))
    entries = _systemd.parse_journal_json(text, 3)
    assert [e["message"] for e in entries] == ["line 2", "line 3", "line 4"]
    assert entries[0]["priority"] == "err"
    assert entries[0]["pid"] == 47
    assert entries[0]["timestamp"] == "2026-11-24T07:08:01.000Z"


def test_binary_journal_messages_are_decoded_not_dropped():
    raw = json.dumps({"MESSAGE": list(b"caf\xc3\xa9 \xff"), "PRIORITY": "3"})
    [entry] = _systemd.parse_journal_json(raw, 10)
    assert entry["message"].startswith("café")


def test_journal_excerpt_returns_oldest_first_from_a_newest_first_query():
    run = fake_run([(0, "\n".join([journal_line("third"), journal_line("second")]), "")])
    entries = _systemd.journal_excerpt(run, "journalctl", "nginx.service", "err", None, 2)
    assert [e["message"] for e in entries] == ["second", "third"]


def test_journal_excerpt_builds_one_filtered_query_per_unit():
    run = fake_run([(0, journal_line("boom"), "")])
    entries = _systemd.journal_excerpt(run, "journalctl", "nginx.service", "err", "-3600s", 20)
    cmd = run.calls[0]
    assert cmd[cmd.index("-u") + 1] == "nginx.service"
    assert cmd[cmd.index("-p") + 1] == "err"
    assert "-r" in cmd  # newest first, so -n keeps the latest entries even with --since
    assert "--since=-3600s" in cmd
    assert entries[0]["message"] == "boom"


def test_zero_journal_lines_reads_nothing():
    run = fake_run([])
    assert _systemd.journal_excerpt(run, "journalctl", "nginx.service", "err", None, 0) == []
    assert run.calls == []


def test_oom_message_in_journal_is_recognised():
    entries = [{"message": "nginx.service: A process of this unit has been killed by the OOM killer."}]
    assert _systemd.oom_in_journal(entries)
    assert not _systemd.oom_in_journal([{"message": "Failed with result 'exit-code'."}])


def test_memory_from_systemd_when_it_accounts():
    mem = _systemd.unit_memory({"MemoryCurrent": "1048576", "MemoryPeak": "2097152"})
    assert mem == {"memory_current_bytes": 1048576, "memory_peak_bytes": 2097152, "memory_source": "systemd"}


def test_memory_from_the_cgroup_v2_files(tmp_path):
    unit = tmp_path / "system.slice" / "nginx.service"
    unit.mkdir(parents=True)
    (unit / "cgroup.procs").write_text("")
    (unit / "memory.current").write_text("4096\n")
    (unit / "memory.peak").write_text("8192\n")
    mem = _systemd.unit_memory({"MemoryCurrent": "[not set]", "ControlGroup": "/system.slice/nginx.service"},
                               cgroup_root=str(tmp_path))
    assert mem == {"memory_current_bytes": 4096, "memory_peak_bytes": 8192, "memory_source": "cgroup"}


def test_memory_falls_back_to_process_rss_on_a_hybrid_layout(tmp_path):
    import os
    unit = tmp_path / "unified" / "system.slice" / "me.service"
    unit.mkdir(parents=True)
    (unit / "cgroup.procs").write_text(f"{os.getpid()}\n")
    mem = _systemd.unit_memory({"MemoryCurrent": "18446744073709551615", "ControlGroup": "/system.slice/me.service"},
                               cgroup_root=str(tmp_path))
    assert mem["memory_source"] == "process_rss"
    assert mem["memory_current_bytes"] > 1024 * 1024  # this Python process
    assert mem["memory_peak_bytes"] is None


def test_a_stopped_unit_has_no_memory():
    assert _systemd.unit_memory({"MemoryCurrent": "[not set]", "ControlGroup": ""})["memory_current_bytes"] is None


def test_active_for_seconds_counts_from_active_enter_and_is_null_when_down():
    props = {"Id": "x.service", "LoadState": "loaded", "ActiveState": "active", "SubState": "running",
             "ActiveEnterTimestamp": "@1000"}
    assert _systemd.unit_state(props, now=1042.5)["active_for_seconds"] == 42
    assert _systemd.unit_state(dict(props, ActiveState="failed"), now=1042.5)["active_for_seconds"] is None
