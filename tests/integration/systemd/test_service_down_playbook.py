"""playbooks/outage/service_down.yml against a real systemd lab host: read-only modes,
healing, idempotence, and stopping (with the journal) when a restart will not help."""

from __future__ import annotations

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "service_down.yml"


def run(lab_host, **kwargs):
    extra_vars = {"target": lab_host.name, **kwargs.pop("extra_vars", {})}
    return sre_testlib.run_playbook(PLAYBOOK, extra_vars=extra_vars, **kwargs)


RECORD_TASK = "sre.runbooks.service_down : Record | structured result for the incident timeline"


def record(report, host):
    return sre_testlib.task_results(report, RECORD_TASK)[host]["ansible_facts"]["service_down_result"]


def changed_tasks(report, host):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(host, {}).get("changed")]


def kill(lab_host, *units):
    for unit in units:
        lab_host.sh(f"systemctl kill --signal=SIGKILL {unit}")
        assert lab_host.wait_unit(unit, ("failed",)) == "failed"


def test_assess_tag_and_check_mode_change_nothing(lab_host, lab_services_restored):
    kill(lab_host, "nginx.service", "pgbouncer.service")
    for kwargs in ({"tags": "assess"}, {"check": True}):
        rc, report, stderr = run(lab_host, **kwargs)
        assert rc == 0, stderr
        result = record(report, lab_host.name)
        assert result["down"] == ["pgbouncer.service", "nginx.service"]
        assert lab_host.unit("nginx.service", "ActiveState") == "failed"
        assert lab_host.unit("pgbouncer.service", "ActiveState") == "failed"
    assert result["outcome"] == "check mode: would restart"
    assert [a["target"] for a in result["actions"]] == ["systemd unit pgbouncer.service", "systemd unit nginx.service"]


def test_down_units_are_restarted_then_a_second_run_changes_nothing(lab_host, lab_services_restored):
    kill(lab_host, "postgresql@15-main.service", "nginx.service")
    rc, report, stderr = run(lab_host)
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert result["outcome"] == "healed"
    assert result["restarted"] == ["postgresql@15-main.service", "nginx.service"]
    assert result["before"]["nginx.service"]["probe"]["ok"] is False
    assert result["after"]["nginx.service"]["probe"]["ok"] is True
    assert lab_host.unit("nginx.service", "ActiveState") == "active"
    assert lab_host.sh("curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1/").stdout == "200"
    assert lab_host.sh("runuser -u postgres -- psql -XtAc 'select 1'").stdout.strip() == "1"

    rc, report, stderr = run(lab_host)
    assert rc == 0, stderr
    assert changed_tasks(report, lab_host.name) == []
    assert record(report, lab_host.name)["outcome"] == "no action needed"


def test_a_hung_service_with_an_active_unit_is_found_by_its_probe(lab_host, lab_services_restored):
    # SIGSTOP: systemd still says active/running, but nothing answers. Only the HTTP probe can tell.
    lab_host.sh("systemctl kill --signal=SIGSTOP nginx.service")
    rc, report, stderr = run(lab_host, extra_vars={"service_down_probe_timeout": 10})
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert result["before"]["nginx.service"]["active_state"] == "active"
    assert result["before"]["nginx.service"]["probe"]["ok"] is False
    assert result["restarted"] == ["nginx.service"]
    assert lab_host.sh("curl -fsS -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1/").stdout == "200"


def test_a_unit_that_fails_to_restart_stops_the_run_with_its_journal(lab_host, lab_services_restored):
    lab_host.sh("echo 'this is not nginx syntax' > /etc/nginx/conf.d/sre-it-broken.conf")
    kill(lab_host, "nginx.service")
    rc, report, stderr = run(lab_host)
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["outcome"] == "failed"
    assert "nginx.service" in result["still_down"]
    assert "[emerg]" in result["error"]  # nginx's own complaint, from the journal
    assert lab_host.unit("nginx.service", "ActiveState") == "failed"


def test_a_crash_looping_unit_is_reported_not_restarted(lab_host, transient_units):
    unit = transient_units("echo 'fatal: license expired' >&2; exit 1",
                           "Restart=always", "RestartSec=300ms", "StartLimitBurst=1000")
    lab_host.sh("sleep 2")
    rc, report, stderr = run(lab_host, extra_vars={"service_down_units": [unit], "service_down_journal_priority": "info"})
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["crash_looping"] == [unit]
    assert result["restarted"] == []
    assert "license expired" in result["error"]
    assert "crash-looping" in result["error"]


def test_the_restart_guardrail_names_its_override(lab_host, lab_services_restored):
    kill(lab_host, "nginx.service", "pgbouncer.service")
    rc, report, stderr = run(lab_host, extra_vars={"service_down_max_restarts": 1})
    assert rc != 0
    result = record(report, lab_host.name)
    assert "guardrail 'service_down_max_restarts' tripped" in result["error"]
    assert "-e service_down_max_restarts=2" in result["error"]
    assert result["restarted"] == []
    assert lab_host.unit("nginx.service", "ActiveState") == "failed"
