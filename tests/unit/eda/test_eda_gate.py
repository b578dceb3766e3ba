"""Decisions for alert-driven runs (plugin_utils/_eda): target, remediate or check, rate limit,
the ledger; and the rulebooks are generated from one table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from ansible_collections.sre.runbooks.plugins.plugin_utils import _eda
from sre_testlib import REPO

HOSTS = {"db1": {"ansible_host": "10.0.0.5"}, "db2": {"ansible_host": "10.0.0.6"},
         "web1": {"ansible_host": "10.0.0.9"}, "web2": {"ansible_host": "10.0.0.9"}, "k8s": {}}
GROUPS = {"postgresql": ["db1", "db2"], "systemd_hosts": ["web1", "web2"], "kubernetes": ["k8s"]}
NOW = 1_800_000_000.0


def target(labels, scenario="db_exhaustion"):
    return _eda.target_for(labels, scenario, HOSTS, GROUPS)


def test_inventory_host_label_names_the_host():
    assert target({"inventory_host": "db1"})[0] == "db1"


def test_instance_with_port_names_the_host():
    host, why = target({"instance": "db2:9187"})
    assert host == "db2" and "instance" in why


def test_instance_address_is_matched_through_ansible_host():
    assert target({"instance": "10.0.0.5:9187"})[0] == "db1"


def test_an_address_of_two_hosts_is_ambiguous():
    host, why = target({"instance": "10.0.0.9:80"}, "service_down")
    assert host is None and "ambiguous" in why


@pytest.mark.parametrize("value", ["all", "postgresql", "db*", "db1,db2", "!db2", "localhost", "db[0:1]"])
def test_patterns_groups_and_all_never_widen_the_run(value):
    host, why = target({"inventory_host": value})
    assert host is None and "running nothing" in why


def test_unknown_host_runs_nothing_and_says_so():
    host, why = target({"inventory_host": "db9"})
    assert host is None and "no inventory host matches inventory_host=db9" in why


def test_no_target_label_runs_nothing():
    host, why = target({"alertname": "X"})
    assert host is None and "none of the labels" in why


def test_a_host_outside_the_scenarios_group_is_refused():
    host, why = target({"inventory_host": "web1"})
    assert host is None and "not in group postgresql" in why


def test_inventory_without_the_group_accepts_any_host():
    assert _eda.target_for({"inventory_host": "db1"}, "db_exhaustion", HOSTS, {})[0] == "db1"


def test_the_first_usable_label_wins_and_a_miss_falls_through():
    assert target({"inventory_host": "nope", "instance": "db2:1"})[0] == "db2"


def test_label_vars_sets_kubernetes_names_only():
    assert _eda.label_vars({"namespace": "shop", "deployment": "api-gateway"}, "api_gateway_down") == {
        "api_gateway_down_namespace": "shop", "api_gateway_down_deployment": "api-gateway"}
    assert _eda.label_vars({"node": "node-1"}, "node_failure") == {"node_failure_nodes": ["node-1"]}
    assert _eda.label_vars({"namespace": "Bad Name"}, "crashloop") == {}
    assert _eda.label_vars({"namespace": "x"}, "db_exhaustion") == {}


def run(ts, scenario="db_exhaustion", check_mode=False, kind="remediate", run_=True):
    return {"ts": ts, "scenario": scenario, "check_mode": check_mode, "kind": kind, "run": run_}


def test_auto_remediate_off_by_default_means_check_mode():
    verdict = _eda.decide("db_exhaustion", None, 3, [], NOW)
    assert verdict["check_mode"] and "auto_remediate is off" in verdict["reason"]


@pytest.mark.parametrize("setting", [True, {"db_exhaustion": True}, {"default": True}, "yes"])
def test_auto_remediate_on(setting):
    assert _eda.decide("db_exhaustion", setting, 3, [], NOW)["check_mode"] is False


@pytest.mark.parametrize("setting", [False, {"redis_unavailable": True}, {"db_exhaustion": "maybe"}, 2])
def test_auto_remediate_anything_but_true_is_off(setting):
    assert _eda.decide("db_exhaustion", setting, 3, [], NOW)["check_mode"] is True


def test_rate_limit_counts_real_runs_of_the_scenario_in_the_last_hour():
    ledger = [run(NOW - 10), run(NOW - 3000), run(NOW - 4000), run(NOW - 5, check_mode=True),
              run(NOW - 5, scenario="service_down"), run(NOW - 5, kind="resolve"), run(NOW - 5, run_=False)]
    assert _eda.remediations_within(ledger, "db_exhaustion", NOW) == 2
    verdict = _eda.decide("db_exhaustion", True, 2, ledger, NOW)
    assert verdict["check_mode"] and "rate limit: 2 remediation(s)" in verdict["reason"]
    assert _eda.decide("db_exhaustion", True, {"db_exhaustion": 3}, ledger, NOW)["check_mode"] is False


@pytest.mark.parametrize("limit", [0, "x", None])
def test_a_bad_or_zero_limit_allows_no_real_run(limit):
    assert _eda.decide("db_exhaustion", True, {"db_exhaustion": limit}, [], NOW)["check_mode"] is True


def test_alert_started_at_trims_nanoseconds_and_ignores_zero_time():
    assert _eda.alert_started_at({"startsAt": "2026-12-03T03:40:01.123456789Z"}) == "2026-12-03T03:40:01.123456Z"
    assert _eda.alert_started_at({"startsAt": "2026-12-03T03:40:01+01:00"}) == "2026-12-03T03:40:01+01:00"
    assert _eda.alert_started_at({"startsAt": "0001-01-01T00:00:00Z"}) is None
    assert _eda.alert_started_at({}) is None


def test_alert_summary_keeps_labels_times_and_arrival():
    summary = _eda.alert_summary({"status": "firing", "labels": {"alertname": "A"}, "fingerprint": "f",
                                  "startsAt": "s", "meta": {"received_at": "r"}, "annotations": {"x": "y"}})
    assert summary == {"alertname": "A", "status": "firing", "fingerprint": "f", "labels": {"alertname": "A"},
                       "starts_at": "s", "ends_at": None, "received_at": "r"}


def test_ledger_records_decisions_and_the_limit_holds_across_calls(tmp_path):
    state = str(tmp_path / "s")
    for i in range(3):
        verdict = _eda.decide_and_record(state, {"run": True, "kind": "remediate", "target": "db1"},
                                         "db_exhaustion", True, 2, now=NOW + i)
        assert verdict["check_mode"] is (i == 2)
    nothing = _eda.decide_and_record(state, {"run": False, "reason": "no host"}, "db_exhaustion", True, 2, now=NOW)
    assert nothing["check_mode"] and nothing["record"]["reason"] == "no host"
    ledger = _eda.read_ledger(state)
    assert [e["check_mode"] for e in ledger] == [False, False, True, True]
    assert (tmp_path / "s" / _eda.LEDGER_FILE).stat().st_mode & 0o077 == 0


def test_check_mode_reads_the_ledger_and_writes_nothing(tmp_path):
    _eda.decide_and_record(str(tmp_path), {"run": True}, "db_exhaustion", True, 1, now=NOW)
    verdict = _eda.decide_and_record(str(tmp_path), {"run": True}, "db_exhaustion", True, 1, now=NOW, write=False)
    assert verdict["check_mode"] and len(_eda.read_ledger(str(tmp_path))) == 1


def test_old_entries_are_pruned_and_garbage_lines_ignored(tmp_path):
    path = tmp_path / _eda.LEDGER_FILE
    path.write_text(json.dumps(run(NOW - 2 * 86400)) + "\nnot json\n[1]\n")
    _eda.decide_and_record(str(tmp_path), {"run": True}, "db_exhaustion", True, 3, now=NOW)
    assert [e["ts"] for e in _eda.read_ledger(str(tmp_path))] == [NOW]


def test_resolved_alerts_are_recorded_but_never_count():
    state_ledger = [run(NOW - 1, kind="resolve")]
    assert _eda.remediations_within(state_ledger, "db_exhaustion", NOW) == 0


def test_rulebooks_are_generated_from_the_table_and_current(tmp_path):
    rulebooks = REPO / "extensions" / "eda" / "rulebooks"
    before = {p.name: p.read_text() for p in rulebooks.glob("outage*.yml")}
    subprocess.run([sys.executable, str(rulebooks / "generate.py")], check=True)
    assert {p.name: p.read_text() for p in rulebooks.glob("outage*.yml")} == before, "run generate.py"


def test_every_rule_names_an_existing_scenario_with_both_flavours():
    rulebooks = REPO / "extensions" / "eda" / "rulebooks"
    scenarios = {}
    for name, action in (("outage.yml", "run_playbook"), ("outage_awx.yml", "run_job_template")):
        ruleset = yaml.safe_load((rulebooks / name).read_text())[0]
        source = ruleset["sources"][0]
        assert source["eda.builtin.webhook"]["host"].startswith("{{ webhook_host | default('127.0.0.1')")
        assert source["filters"][0] == {"eda.builtin.event_splitter": {"splitter_key": "payload.alerts"}}
        found = set()
        for rule in ruleset["rules"]:
            if action in rule["action"]:
                args = rule["action"][action]
                extra = args["extra_vars"] if action == "run_playbook" else args["job_args"]["extra_vars"]
                assert (REPO / "playbooks" / "outage" / f"{extra['eda_scenario']}.yml").is_file()
                assert extra["eda_scenario"] in _eda.SCENARIO_GROUPS
                assert rule["throttle"]["once_within"] and "event.fingerprint" in rule["throttle"]["group_by_attributes"]
                found.add((rule["condition"].split('"')[3], rule["condition"].split('"')[1], extra["eda_scenario"]))
        scenarios[name] = found
    assert scenarios["outage.yml"] == scenarios["outage_awx.yml"]
    drilled = {(a, s) for a, st, s in scenarios["outage.yml"] if st == "firing"}
    assert {("HighDatabaseConnections", "db_exhaustion"), ("RedisDown", "redis_unavailable"),
            ("ServiceDown", "service_down"), ("KubePodCrashLooping", "crashloop"),
            ("KubeNodeNotReady", "node_failure")} <= drilled
    outage = {p.stem for p in (REPO / "playbooks" / "outage").glob("*.yml")} - {"assess"}
    assert outage == set(_eda.SCENARIO_GROUPS) == {s for _a, s in drilled}


def test_prometheus_example_rules_cover_every_rulebook_alert():
    rules = yaml.safe_load((REPO / "extensions" / "eda" / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    text = (REPO / "extensions" / "eda" / "rulebooks" / "outage.yml").read_text()
    for alert in alerts:
        assert f'"{alert}"' in text, alert
