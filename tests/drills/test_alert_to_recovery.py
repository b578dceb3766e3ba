"""Alert -> ansible-rulebook -> playbook -> verified recovery, on real Prometheus and Alertmanager
(lab/obs) against the real lab (tests/lib/eda_drill.py): a storm of identical alerts runs one
playbook; HighDatabaseConnections, RedisDown and ServiceDown each fire on a real fault, run their
scenario playbook once (not in check mode: the drill's rulebook vars allow it), heal the service
and resolve. One lab boot and one rulebook process for the module."""

from __future__ import annotations

import pytest

import eda_drill

pytestmark = pytest.mark.slow
# Generous on a loaded 2-core CI machine; benchmarks/alert_to_recovery.py reports against 30 s.
RECOVERY_BOUND_S = 90


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    with eda_drill.Drill(tmp_path_factory.mktemp("eda")).running() as running:
        yield running


@pytest.fixture(scope="module")
def results():
    found: list[dict] = []
    yield found
    if found:
        print("\n" + eda_drill.table(found))


def check(result, target):
    times = result["times"]
    order = [times["fault"]] + [times[s] for s in eda_drill.STAGES]
    # webhook and playbook start come from other clocks of this machine: same clock, ordered stages.
    assert order == sorted(order), f"stages out of order: {times}"
    assert result["runs"] == 1, f"{result['scenario']} ran {result['runs']} times"
    entry = result["entry"]
    assert entry["target"] == target and entry["run"] and entry["check_mode"] is False, entry
    assert result["resolve"]["target"] == target
    assert times["healed"] - times["fault"] <= RECOVERY_BOUND_S


def test_a_storm_of_identical_alerts_runs_the_playbook_once(drill):
    storm = drill.storm(50)
    print(f"\n50 identical alerts posted in {storm['seconds']:.2f} s")
    # ~1.2 s on the quiet 2-core machine: the webhook answers once the rule engine has taken each
    # event. Bounded loosely so a loaded CI machine does not fail a test about the run count.
    assert storm["seconds"] <= 5.0, f"posting took {storm['seconds']:.1f} s"
    assert len(storm["runs"]) == 1, storm["runs"]
    assert storm["runs"][0]["target"] == "lab-postgres" and storm["runs"][0]["run"]


def test_an_alert_naming_no_inventory_host_runs_nothing(drill):
    before = len(drill.ledger())
    drill.post({"alerts": [{"status": "firing", "fingerprint": "nohost", "startsAt": "2026-01-01T00:00:00Z",
                            "labels": {"alertname": "ServiceDown", "inventory_host": "all"}}]})
    entry = eda_drill.wait_for(lambda: drill.ledger()[before:], "the gate's verdict", 120)[0]
    eda_drill.wait_for(drill.idle, "the rulebook's run to finish", 120, 0.2)
    assert entry["run"] is False and entry["target"] is None
    assert "not one host name" in entry["reason"] and "running nothing" in entry["reason"]
    assert "running nothing" in drill.log_text()


def test_db_exhaustion_alert_heals_and_resolves(drill, results):
    result = drill.db_exhaustion()
    results.append(result)
    check(result, "lab-postgres")
    assert result["utilisation_after"] < eda_drill.PG_THRESHOLD


def test_redis_master_down_alert_heals_and_resolves(drill, results):
    result = drill.redis_unavailable()
    results.append(result)
    check(result, "lab-redis")
    assert result["new_master"] in drill.redis_ports[1:]


def test_service_down_alert_heals_and_resolves(drill, results):
    result = drill.service_down()
    results.append(result)
    check(result, "lab-host-1")
