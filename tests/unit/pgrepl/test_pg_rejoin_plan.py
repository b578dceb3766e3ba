"""pg_rejoin's decision (issue 15): rewind the fenced old primary only when it is stopped cleanly, rewindable,
of the same cluster and behind the new primary; never the primary, never a running node."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._pg_rejoin import (
    conninfo,
    control_facts,
    merge_passfile,
    parse_controldata,
    passfile_line,
    plan_rejoin,
    with_standby_settings,
)

OLD, NEW = "10.0.0.1:5432", "10.0.0.2:5432"
SYSID = "7300000000000000001"

CONTROLDATA = f"""pg_control version number:            1300
Database system identifier:           {SYSID}
Database cluster state:               shut down
Latest checkpoint location:           0/3000148
Latest checkpoint's TimeLineID:       1
wal_log_hints setting:                on
Data page checksum version:           0
"""


def primary(**extra):
    return {"node": NEW, "reachable": True, "role": "primary", "timeline": 2, "system_identifier": SYSID, **extra}


def down(kind="refused"):
    return {"node": OLD, "reachable": False, "role": "unknown", "error_kind": kind}


def control(**extra):
    return {**control_facts(parse_controldata(CONTROLDATA)), **extra}


def plan(**kwargs):
    args = dict(node=OLD, primary=NEW, primary_probe=primary(), node_probe=down(), running=False, control=control(),
                source_full_page_writes=True)
    args.update(kwargs)
    return plan_rejoin(**args)


def test_control_facts_parsed():
    facts = control()
    assert facts == {"state": "shut down", "system_identifier": SYSID, "timeline": 1, "checkpoint_lsn": "0/3000148",
                     "wal_log_hints": True, "data_checksums": False}
    assert control_facts({"Data page checksum version": "1"})["data_checksums"] is True
    assert control_facts({})["timeline"] is None


def test_clean_old_primary_is_rejoined():
    verdict = plan()
    assert (verdict.state, verdict.act, verdict.guardrail) == ("rejoin", True, None)
    assert OLD in verdict.reason and NEW in verdict.reason


def test_cleanly_stopped_standby_with_checksums_is_rejoined():
    verdict = plan(control=control(state="shut down in recovery", timeline=2, wal_log_hints=False,
                                   data_checksums=True))
    assert verdict.act and verdict.state == "rejoin"


def test_never_the_current_primary():
    verdict = plan(node=NEW)
    assert (verdict.act, verdict.guardrail) == (False, "target_is_primary")


@pytest.mark.parametrize("probe", [down("timeout"), {"node": NEW, "reachable": True, "role": "standby"}])
def test_no_primary_to_rewind_against(probe):
    verdict = plan(primary_probe=probe)
    assert (verdict.act, verdict.guardrail) == (False, "no_primary")


def test_running_old_primary_is_split_brain_refused():
    verdict = plan(node_probe={"node": OLD, "reachable": True, "role": "primary"})
    assert (verdict.act, verdict.guardrail) == (False, "target_running")
    assert "split brain" in verdict.reason


def test_streaming_standby_needs_nothing():
    verdict = plan(node_probe={"node": OLD, "reachable": True, "role": "standby", "upstream": NEW,
                               "wal_receiver": {"status": "streaming"}})
    assert (verdict.state, verdict.act, verdict.guardrail) == ("streaming", False, None)


def test_running_standby_elsewhere_is_refused():
    verdict = plan(node_probe={"node": OLD, "reachable": True, "role": "standby", "upstream": None,
                               "wal_receiver": None})
    assert (verdict.act, verdict.guardrail) == (False, "target_running")


def test_postmaster_running_but_not_answering_is_refused():
    verdict = plan(node_probe=down("too_many_clients"), running=True)
    assert (verdict.act, verdict.guardrail) == (False, "target_running")


def test_unreadable_data_directory():
    assert plan(control=None).guardrail == "data_directory"


def test_other_cluster_is_refused():
    assert plan(control=control(system_identifier="1")).guardrail == "other_cluster"


@pytest.mark.parametrize("state", ["in production", "in crash recovery", "in archive recovery", None])
def test_not_cleanly_stopped_is_refused(state):
    verdict = plan(control=control(state=state))
    assert (verdict.act, verdict.guardrail) == (False, "not_clean")
    assert "clean" in verdict.reason


def test_no_wal_log_hints_no_checksums_is_refused():
    verdict = plan(control=control(wal_log_hints=False, data_checksums=False))
    assert (verdict.act, verdict.guardrail) == (False, "wal_log_hints")
    assert "wal_log_hints=on" in verdict.reason


def test_source_without_full_page_writes_is_refused():
    assert plan(source_full_page_writes=False).guardrail == "full_page_writes"
    assert plan(source_full_page_writes=None).act  # unknown: pg_rewind checks it itself


def test_old_primary_not_behind_is_refused():
    assert plan(control=control(timeline=2)).guardrail == "timeline"
    assert plan(control=control(state="shut down in recovery", timeline=2)).act


def test_conninfo_quotes_and_skips_empty():
    assert conninfo(host="h", port=5432, user="o'k", passfile=None, application_name="") == "host=h port=5432 user='o\\'k'"
    assert conninfo(host="a b") == "host='a b'"


def test_passfile_line_escapes_and_merge_replaces():
    assert passfile_line("h", 5, "u", "p:w\\") == "h:5:*:u:p\\:w\\\\"
    merged = merge_passfile("h:5:*:u:old\nother:1:*:x:y\n", "h", 5, "u", "new")
    assert merged == "h:5:*:u:new\nother:1:*:x:y\n"
    assert merge_passfile("", "h", 5, "u", "pw") == "h:5:*:u:pw\n"


def test_standby_settings_replace_and_remove():
    text = "# Do not edit\nport = 5433\nprimary_conninfo = 'host=old'\nprimary_slot_name = 's'\n"
    out = with_standby_settings(text, {"primary_conninfo": "host=new user='a'", "primary_slot_name": None})
    assert out == "# Do not edit\nport = 5433\nprimary_conninfo = 'host=new user=''a'''\n"
