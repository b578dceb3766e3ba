"""db_down on systemd hosts (plugins/filter/db_down_hosts.py): every branch of the host decisions."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.db_down_hosts import (
    FilterModule,
    db_down_host_gone,
    db_down_host_verdict,
    db_down_primary_host,
)
from ansible_collections.sre.runbooks.plugins.filter.db_down_verdict import db_down_verdict

OLD, NEW = "10.0.0.1:5432", "10.0.0.2:5432"
HOSTS = {OLD: "db1", NEW: "db2"}
INCIDENT = "2026-12-03T06:00:00.000Z"  # epoch 1796277600
BEFORE, AFTER = "@1796277000", "@1796277700"


def probes(kind="refused", upstream=OLD):
    return [{"node": OLD, "reachable": False, "error_kind": kind},
            {"node": NEW, "reachable": True, "role": "standby", "upstream": upstream}]


def plan(state, kind="refused", act=False, **extra):
    return dict({"verdict": {"state": state, "act": act, "reason": f"reason {state}"}, "previous_primary": OLD,
                 "primary": NEW if act else None, "plan": {"candidate": NEW if act else None},
                 "nodes": probes(kind)}, **extra)


def fencing_guardrail(kind="unreachable", failed=False):
    # pg_failover's fail_json: no previous_primary, only the probes. The role registers it with
    # failed_when: false, so "failed" is false there.
    return {"failed": failed, "guardrail": "fencing", "msg": "guardrail 'fencing' tripped",
            "verdict": {"state": "fencing", "act": False, "reason": "fencing"}, "nodes": probes(kind)}


PING = {"ping": "pong", "changed": False}
GONE = {"unreachable": True, "msg": "ssh: connect to host db1 port 22: No route to host"}


def show(state="failed", since=BEFORE):
    return {"stdout": f"ActiveState={state}\nSubState={state}\nActiveEnterTimestamp={since}", "rc": 0}


def decide(p, ssh=None, unit_show=None, data=None, fencing="", fence_command=None):
    ssh = PING if ssh is None else ssh
    target = db_down_primary_host(p, HOSTS)
    gone = db_down_host_gone(p, target, ssh, gone_fencing=fencing)
    return db_down_host_verdict(db_down_verdict(p), p, target=target, gone=gone, unit="postgresql@15-main.service",
                                unit_show=unit_show if unit_show is not None else show(),
                                data_present=data if data is not None else {"stat": {"exists": True}},
                                incident_started=INCIDENT, gone_fencing=fencing, fence_command=fence_command)


# --- which host -------------------------------------------------------------------------------

def test_primary_host_from_previous_primary():
    assert db_down_primary_host(plan("primary_down_host_up"), HOSTS) == {"node": OLD, "host": "db1", "probe": True}


@pytest.mark.parametrize("failed", [False, True])
def test_primary_host_from_the_standbys_upstream_of_a_guardrail_result(failed):
    assert db_down_primary_host(fencing_guardrail(failed=failed), HOSTS) == {"node": OLD, "host": "db1", "probe": True}


def test_healthy_group_needs_no_host_probe():
    assert db_down_primary_host(plan("healthy"), HOSTS)["probe"] is False


def test_host_not_in_the_map_is_not_probed():
    target = db_down_primary_host(plan("primary_down_host_up"), {NEW: "db2"})
    assert target == {"node": OLD, "host": None, "probe": False}


def test_standbys_naming_two_upstreams_name_no_primary():
    p = {"nodes": [{"node": "a:1", "reachable": True, "role": "standby", "upstream": "x:1"},
                   {"node": "b:1", "reachable": True, "role": "standby", "upstream": "y:1"}]}
    assert db_down_primary_host(p, HOSTS)["node"] is None


def test_bad_map_is_an_error():
    with pytest.raises(AnsibleFilterError):
        db_down_primary_host(plan("primary_down_host_up"), ["db1"])


# --- gone or not ------------------------------------------------------------------------------

@pytest.mark.parametrize("ssh, kind, fencing, gone, replan", [
    (GONE, "unreachable", "stonith", True, True),
    (GONE, "timeout", "", True, False),          # gone, but nothing says how it is fenced
    (GONE, "refused", "stonith", False, False),  # a kernel answered: the host is up
    (PING, "unreachable", "stonith", False, False),
    ({"skipped": True}, "unreachable", "stonith", False, False),
    ({"ping": "pong", "failed": True}, "timeout", "stonith", True, True),
])
def test_host_gone(ssh, kind, fencing, gone, replan):
    p = fencing_guardrail(kind)
    out = db_down_host_gone(p, db_down_primary_host(p, HOSTS), ssh, gone_fencing=fencing)
    assert (out["gone"], out["replan"]) == (gone, replan)


# --- restart the unit -------------------------------------------------------------------------

def test_down_on_an_up_host_restarts_the_unit():
    v = decide(plan("primary_down_host_up"))
    assert (v["act"], v["action"]) == (True, "restart_unit")
    assert v["host"]["name"] == "db1" and v["host"]["unit_state"] == "failed" and v["host"]["ssh"] == "reachable"


def test_restart_unit_also_with_a_restart_command_configured():
    p = plan("primary_down_host_up")
    target = db_down_primary_host(p, HOSTS)
    v = db_down_host_verdict(db_down_verdict(p, restart_command=["x"]), p, target=target,
                             gone=db_down_host_gone(p, target, PING), unit_show=show(), incident_started=INCIDENT)
    assert v["action"] == "restart_unit"


def test_ssh_does_not_reach_a_host_whose_kernel_answers():
    v = decide(plan("primary_down_host_up"), ssh=GONE)
    assert (v["act"], v["action"]) == (False, "report") and "SSH" in v["summary"]


def test_missing_data_directory_is_reported():
    v = decide(plan("primary_down_host_up"), data={"stat": {"exists": False}})
    assert (v["act"], v["action"]) == (False, "report") and "PG_VERSION" in v["summary"]


def test_unit_state_unreadable_is_reported():
    v = decide(plan("primary_down_host_up"), unit_show={"failed": True, "rc": 1})
    assert v["action"] == "report" and "could not be read" in v["summary"]


@pytest.mark.parametrize("state", ["active", "activating", "deactivating"])
def test_unit_running_or_changing_is_not_restarted(state):
    v = decide(plan("primary_down_host_up"), unit_show=show(state))
    assert v["action"] == "report" and state in v["summary"]


def test_once_per_incident():
    v = decide(plan("primary_down_host_up"), unit_show=show("failed", AFTER))
    assert v["action"] == "report" and "crash loop" in v["summary"]


@pytest.mark.parametrize("since", ["@0", "n/a", "", "2026-12-03T05:00:00Z", "garbage"])
def test_unit_never_or_earlier_active_is_restarted(since):
    assert decide(plan("primary_down_host_up"), unit_show=show("inactive", since))["action"] == "restart_unit"


def test_full_disk_stays_reported():
    full = {"disks": [{"mount": "/", "used_percent": 100, "available_bytes": 0}],
            "disk_verdict": {"full": [{"mount": "/", "reasons": ["100% used"]}]}}
    p = plan("primary_down_host_up")
    target = db_down_primary_host(p, HOSTS)
    base = db_down_verdict(p, storage=full, data_directory="/var/lib/postgresql/15/main")
    v = db_down_host_verdict(base, p, target=target, gone=db_down_host_gone(p, target, PING), unit_show=show(),
                             incident_started=INCIDENT)
    assert (v["state"], v["action"], v["act"]) == ("primary_disk_full", "report", False)


# --- promote when the host is gone ------------------------------------------------------------

def fenced_replan(kind="unreachable"):
    return plan("primary_down", kind=kind, act=True)


def test_gone_host_with_declared_fencing_is_promoted_and_says_it_must_not_come_back():
    first = fencing_guardrail()
    target = db_down_primary_host(first, HOSTS)
    gone = db_down_host_gone(first, target, GONE, gone_fencing="stonith via the PDU")
    assert gone["replan"]
    second = fenced_replan()
    v = db_down_host_verdict(db_down_verdict(second), second, target=target, gone=gone,
                             gone_fencing="stonith via the PDU")
    assert (v["act"], v["action"], v["fenced_by_inventory"]) == (True, "promote", True)
    assert v["fencing"]["how"] == "stonith via the PDU" and "must not come back as a primary" in v["summary"]
    assert v["host"]["gone"] is True


def test_gone_host_that_answers_again_at_the_replan_is_not_promoted():
    first = fencing_guardrail()
    target = db_down_primary_host(first, HOSTS)
    gone = db_down_host_gone(first, target, GONE, gone_fencing="stonith")
    second = fenced_replan(kind="refused")
    v = db_down_host_verdict(db_down_verdict(second), second, target=target, gone=gone, gone_fencing="stonith")
    assert (v["act"], v["action"]) == (False, "report") and "evidence changed" in v["summary"]


def test_gone_host_without_declared_fencing_is_reported():
    v = decide(fencing_guardrail(), ssh=GONE)
    assert (v["act"], v["action"]) == (False, "report")
    assert "db_down_host_gone_fencing" in v["summary"] and v["host"]["gone"] is True


def test_silent_postgresql_on_a_host_ssh_reaches_is_not_promoted():
    v = decide(fencing_guardrail(), ssh=PING, fencing="stonith")
    assert (v["act"], v["action"]) == (False, "report") and "not gone" in v["summary"]


def test_refused_but_ssh_unreachable_under_fencing_guardrail_is_reported():
    # fenced=false and refused is primary_down_host_up, so this needs a fencing guardrail with a
    # primary that refuses: e.g. an earlier run's state; the host is not clearly gone.
    v = decide(fencing_guardrail("refused"), ssh=GONE, fencing="stonith")
    assert v["action"] == "report" and "not clearly gone" in v["summary"]


def test_fence_command_promotion_is_left_to_pg_failover():
    p = plan("primary_down", kind="unreachable", act=True)
    v = decide(p, ssh=GONE, fence_command=["poweroff-db1"])
    assert (v["action"], v.get("fenced_by_inventory")) == ("promote", None)


# --- untouched --------------------------------------------------------------------------------

def test_no_host_map_leaves_the_verdict_alone():
    base = db_down_verdict(plan("primary_down_host_up"), restart_command=["x"])
    assert db_down_host_verdict(base, plan("primary_down_host_up"), target={"node": OLD, "host": None}) == \
        dict(base, host=None)


def test_other_states_pass_through_without_looking_at_the_host():
    v = decide(plan("primary_busy", kind="too_many_clients"))
    assert v["state"] == "primary_busy" and v["action"] == "report" and v["host"] is None


def test_unconfirmed_down_passes_through_with_host_evidence():
    v = decide(plan("primary_down_unconfirmed", kind="timeout"), ssh=GONE)
    assert v["action"] == "report" and v["host"]["name"] == "db1" and v["host"]["ssh"] == "unreachable"


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"db_down_primary_host", "db_down_host_gone", "db_down_host_verdict"}
