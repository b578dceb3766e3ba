"""The incident record: which incident a run belongs to and when it started (plugin_utils/_incident)."""

from __future__ import annotations

import datetime
import json
import multiprocessing

import pytest

from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident

T0 = datetime.datetime(2026, 1, 31, 3, 0, tzinfo=datetime.timezone.utc)
HOUR = 3600


def at(minutes: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes)


def test_given_start_always_wins():
    record = {"started_at": "2026-01-31T01:00:00Z", "last_run_at": "2026-01-31T02:59:00Z"}
    assert _incident.decide_start(record, at(0), 2 * HOUR, at(-5)) == (at(-5), "variable")


def test_no_record_starts_a_new_incident():
    assert _incident.decide_start(None, at(0), 2 * HOUR, None) == (at(0), "new")


def test_recent_record_is_the_same_incident():
    record = {"started_at": _incident.iso(at(-30)), "last_run_at": _incident.iso(at(-10))}
    assert _incident.decide_start(record, at(0), 2 * HOUR, None) == (at(-30), "record")


def test_stale_record_starts_a_new_incident():
    record = {"started_at": _incident.iso(at(-300)), "last_run_at": _incident.iso(at(-121))}
    assert _incident.decide_start(record, at(0), 2 * HOUR, None) == (at(0), "new")


def test_record_from_the_future_is_not_trusted():
    record = {"started_at": _incident.iso(at(10)), "last_run_at": _incident.iso(at(20))}
    assert _incident.decide_start(record, at(0), 2 * HOUR, None) == (at(0), "new")


@pytest.mark.parametrize("record", [{"started_at": "yesterday"}, {"last_run_at": "2026-01-31T02:59:00Z"}, {}])
def test_unreadable_record_is_no_evidence(record):
    assert _incident.decide_start(record, at(0), 2 * HOUR, None) == (at(0), "new")


def test_rerun_keeps_the_first_runs_start(tmp_path):
    first = _incident.establish(str(tmp_path), "db_exhaustion--db1", "db_exhaustion", "db1", 2 * HOUR, None,
                                write=True, now=at(0))
    second = _incident.establish(str(tmp_path), "db_exhaustion--db1", "db_exhaustion", "db1", 2 * HOUR, None,
                                 write=True, now=at(40))
    assert first["source"] == "new" and second["source"] == "record"
    assert second["started_at"] == first["started_at"] == "2026-01-31T03:00:00.000Z"
    assert second["runs"] == 2
    stored = json.loads((tmp_path / "db_exhaustion--db1.json").read_text())
    assert stored["last_run_at"] == "2026-01-31T03:40:00.000Z"


def test_check_mode_writes_nothing(tmp_path):
    info = _incident.establish(str(tmp_path / "state"), "x", "x", None, HOUR, None, write=False, now=at(0))
    assert info["source"] == "new" and info["written"] is False
    assert not (tmp_path / "state").exists()


def test_garbage_record_is_replaced(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    info = _incident.establish(str(tmp_path), "x", "x", None, HOUR, None, write=True, now=at(0))
    assert info["source"] == "new"
    assert json.loads((tmp_path / "x.json").read_text())["runs"] == 1


def _one_run(args):
    state_dir, minute = args
    return _incident.establish(state_dir, "inc", "s", None, 2 * HOUR, None, write=True, now=at(minute))["started_at"]


def test_concurrent_runs_agree_on_one_start(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        starts = pool.map(_one_run, [(str(tmp_path), 0)] * 12)
    assert len(set(starts)) == 1
    assert json.loads((tmp_path / "inc.json").read_text())["runs"] == 12


@pytest.mark.parametrize("scenario, target, expected", [
    ("db_exhaustion", "db1", "db_exhaustion--db1"),
    ("service_down", "web:&api", "service_down--web-api"),
    ("crashloop", None, "crashloop"),
    ("node_failure", "../etc", "node_failure--etc"),
])
def test_default_incident_id(scenario, target, expected):
    assert _incident.incident_id_for(scenario, target) == expected


@pytest.mark.parametrize("bad", ["../x", "a/b", "", " ", ".hidden", "x y"])
def test_bad_incident_id_is_rejected(bad):
    with pytest.raises(ValueError):
        _incident.validate_incident_id(bad)


@pytest.mark.parametrize("value, expected", [
    ("2026-01-31T03:00:00Z", T0), ("2026-01-31T03:00:00", T0), ("2026-01-31T04:00:00+01:00", T0),
    (T0.timestamp(), T0), (str(T0.timestamp()), T0),
])
def test_parse_timestamp(value, expected):
    assert _incident.parse_timestamp(value) == expected


def test_parse_timestamp_rejects_garbage():
    with pytest.raises(ValueError, match="ISO 8601"):
        _incident.parse_timestamp("last tuesday")


def test_default_state_dir():
    assert _incident.default_state_dir({"SRE_RUNBOOKS_STATE_DIR": "/x"}) == "/x"
    assert _incident.default_state_dir({"XDG_STATE_HOME": "/s"}) == "/s/sre-runbooks/incidents"


def test_record_names_the_scenario_not_the_assessments(tmp_path):
    state = str(tmp_path)
    _incident.establish(state, "inc", "assess", "all", HOUR, None, write=True, now=at(0))
    _incident.establish(state, "inc", "db_exhaustion", "db1", HOUR, None, write=True, now=at(1))
    _incident.establish(state, "inc", "assess", "all", HOUR, None, write=True, now=at(2))
    stored = json.loads((tmp_path / "inc.json").read_text())
    assert stored["scenario"] == "db_exhaustion" and stored["target"] == "db1"
    assert stored["scenarios"] == ["assess", "db_exhaustion"]
