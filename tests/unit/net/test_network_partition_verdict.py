"""The network_partition role's decide step (filter sre.runbooks.network_partition_verdict): every branch."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.filter.network_partition_verdict import (
    FilterModule,
    network_partition_verdict,
)

RESOLVED = "systemd-resolved.service"


def dep(name, ok=True, step=None, category=None, host=None, port=5432, skipped=False, fallback=None):
    dns = {"ok": step != "dns", "skipped": skipped, "addresses": [] if step == "dns" else ["10.0.0.9"]}
    result = {"name": name, "host": host or f"{name}.internal", "port": port, "ok": ok,
              "failed_step": step, "error_category": category,
              "error": f"{category}: {name}" if category else None, "dns": dns, "tcp": None}
    if fallback is not None:
        result["tcp"] = {"ok": fallback, "via_fallback": True}
    return result


def probe(*deps, resolver_exists=False):
    return {"changed": False, "dependencies": list(deps),
            "resolver": {"units": {RESOLVED: {"exists": resolver_exists}}}}


def cut(name, category="no_route", step="tcp", **kw):
    return dep(name, ok=False, step=step, category=category, **kw)


def test_filter_is_registered():
    assert FilterModule().filters()["network_partition_verdict"] is network_partition_verdict


def test_bad_input_is_refused():
    with pytest.raises(AnsibleFilterError, match="mapping"):
        network_partition_verdict([], host="a")
    with pytest.raises(AnsibleFilterError, match="needs host"):
        network_partition_verdict({})


def test_healthy_everywhere_does_nothing():
    v = network_partition_verdict({"a": probe(dep("db"), dep("cache"))}, probe(dep("db"), dep("cache")), host="a")
    assert v["healthy"] and not v["act"] and not v["report"] and v["restart_units"] == []
    assert v["summary"].startswith("healthy, nothing to do")
    assert v["dependencies"]["db"]["state"] == "healthy"
    assert v["dependencies"]["db"]["reachable_from"] == ["a", "controller"]


def test_host_cut_while_controller_reaches_is_a_partition_of_the_host():
    v = network_partition_verdict({"a": probe(cut("db"), dep("cache"))}, probe(dep("db"), dep("cache")), host="a")
    db = v["dependencies"]["db"]
    assert db["state"] == "partition" and db["side"] == "hosts"
    assert db["unreachable_from"] == ["a"] and db["reachable_from"] == ["controller"]
    assert v["cut"] == ["db"] and not v["healthy"] and not v["act"] and v["report"]
    assert "a cannot reach db (db.internal:5432; tcp no_route)" in v["summary"]
    assert "report only" in v["summary"]


def test_one_host_cut_while_another_host_reaches_without_controller():
    probes = {"a": probe(cut("db", "timeout")), "b": probe(dep("db"))}
    v = network_partition_verdict(probes, {"skipped": True}, host="a")
    assert v["dependencies"]["db"]["state"] == "partition" and v["cut"] == ["db"]
    assert v["dependencies"]["db"]["reachable_from"] == ["b"]
    # From b's point of view: it reaches everything, the partition is elsewhere.
    vb = network_partition_verdict(probes, {}, host="b")
    assert vb["healthy"] and vb["cut"] == [] and vb["partitions"] == ["db"] and vb["report"]
    assert vb["summary"].startswith("b reaches all 1 dependencies; partition elsewhere")


def test_unreachable_from_every_host_and_the_controller_is_down_not_a_partition():
    probes = {"a": probe(cut("db", "refused"))}
    v = network_partition_verdict(probes, probe(cut("db", "refused")), host="a")
    db = v["dependencies"]["db"]
    assert db["state"] == "down" and db["side"] == "dependency"
    assert db["unreachable_from"] == ["a", "controller"] and v["down"] == ["db"] and v["cut"] == []
    assert "not a partition" in v["summary"] and not v["act"]


def test_unreachable_from_two_hosts_without_controller_is_down():
    probes = {"a": probe(cut("db")), "b": probe(cut("db"))}
    v = network_partition_verdict(probes, None, host="a")
    assert v["dependencies"]["db"]["state"] == "down"
    assert "every host (a, b)" in v["dependencies"]["db"]["reason"]


def test_one_host_alone_cannot_tell_partition_from_outage():
    v = network_partition_verdict({"a": probe(cut("db"))}, None, host="a")
    assert v["dependencies"]["db"]["state"] == "unknown" and v["unknown"] == ["db"]
    assert not v["act"] and "cannot be told" in v["summary"]


def test_controller_cut_leaves_hosts_healthy():
    v = network_partition_verdict({"a": probe(dep("db"))}, probe(cut("db", "timeout")), host="a")
    assert v["dependencies"]["db"]["state"] == "controller_cut"
    assert v["dependencies"]["db"]["side"] == "controller"
    assert v["healthy"] and v["report"] and not v["act"] and v["controller_cut"] == ["db"]


def test_dependency_the_controller_does_not_probe_counts_on_hosts_only():
    v = network_partition_verdict({"a": probe(dep("local"), cut("db")), "b": probe(dep("local"), dep("db"))},
                                  probe(), host="b")
    assert v["dependencies"]["local"]["reachable_from"] == ["a", "b"]
    assert v["dependencies"]["db"]["state"] == "partition"


def test_failed_or_missing_probe_of_this_host_is_a_problem():
    v = network_partition_verdict({"a": {"failed": True, "msg": "boom"}, "b": probe(dep("db"))}, None, host="a")
    assert v["problem"] and not v["healthy"] and not v["act"] and v["summary"] == v["problem"]


# --- the one remediation: a stuck resolver ---------------------------------------------------

def dns_down(name, category="dns_timeout", fallback=True):
    return cut(name, category=category, step="dns", fallback=fallback)


def stuck_resolver_case(exists=True, **kw):
    probes = {"a": probe(dns_down("db", **kw), dns_down("cache", **kw), resolver_exists=exists)}
    return network_partition_verdict(probes, probe(dep("db"), dep("cache")), host="a")


def test_stuck_resolver_is_restarted_when_all_evidence_agrees():
    v = stuck_resolver_case()
    assert v["act"] and v["restart_units"] == [RESOLVED]
    assert v["resolver"]["restart"] == RESOLVED and "resolver is stuck" in v["summary"]
    assert v["summary"].endswith(f"restart {RESOLVED}")


def test_stuck_resolver_not_restarted_when_disabled():
    probes = {"a": probe(dns_down("db"), dns_down("cache"), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache")), host="a", restart_resolver=False)
    assert not v["act"] and v["restart_units"] == [] and "report only" in v["resolver"]["reason"]


def test_no_resolver_unit_reports_only():
    v = stuck_resolver_case(exists=False)
    assert not v["act"] and "no resolver unit" in v["resolver"]["reason"]


def test_resolver_candidates_are_configurable():
    probes = {"a": probe(dns_down("db"), dns_down("cache"), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache")), host="a", resolver_units=[])
    assert not v["act"] and "none configured" in v["resolver"]["reason"]


def test_nxdomain_is_an_answer_not_a_stuck_resolver():
    v = stuck_resolver_case(category="nxdomain")
    assert not v["act"] and "name server answered" in v["resolver"]["reason"]


def test_a_single_failing_name_is_too_little_evidence():
    probes = {"a": probe(dns_down("db"), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db")), host="a")
    assert not v["act"] and "only one name" in v["resolver"]["reason"]


def test_names_that_still_resolve_mean_the_resolver_works():
    probes = {"a": probe(dns_down("db"), dns_down("cache"), dep("queue"), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache"), dep("queue")), host="a")
    assert not v["act"] and "works for the others" in v["resolver"]["reason"]


def test_ip_only_dependencies_do_not_count_as_names():
    probes = {"a": probe(dns_down("db"), dns_down("cache"), dep("raw", host="10.0.0.5", skipped=True),
                         resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache"), dep("raw")), host="a")
    assert v["act"]


def test_names_unresolved_everywhere_are_not_this_hosts_resolver():
    probes = {"a": probe(dns_down("db"), dns_down("cache"), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dns_down("db"), dns_down("cache")), host="a")
    assert not v["act"] and "not this host's resolver alone" in v["resolver"]["reason"]


def test_without_a_known_address_a_resolver_cannot_be_blamed():
    probes = {"a": probe(cut("db", "dns_timeout", step="dns"), cut("cache", "dns_timeout", step="dns"),
                         resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache")), host="a")
    assert not v["act"] and "give the dependencies an address" in v["resolver"]["reason"]


def test_path_cut_by_address_too_is_not_the_resolver():
    probes = {"a": probe(dns_down("db"), dns_down("cache", fallback=False), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache")), host="a")
    assert not v["act"] and "path is cut" in v["resolver"]["reason"]


def test_tcp_timeout_of_one_dependency_never_restarts_anything():
    probes = {"a": probe(cut("db", "timeout"), dep("cache"), resolver_exists=True)}
    v = network_partition_verdict(probes, probe(dep("db"), dep("cache")), host="a")
    assert not v["act"] and v["resolver"] is None and v["cut"] == ["db"]
