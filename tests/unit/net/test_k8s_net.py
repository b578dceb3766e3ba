"""module_utils/_k8s_net: selectors, endpoints, policies and the verdict of k8s_network_info."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _k8s_net as k


def pod(name, labels, ready=True, deleting=False):
    meta = {"name": name, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(name, selector=None, kind="ClusterIP"):
    return {"metadata": {"name": name}, "spec": {"type": kind, "selector": selector or {},
                                                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def endpoints(name, ready=0, not_ready=0):
    subset = {}
    if ready:
        subset["addresses"] = [{"ip": f"10.0.0.{i}"} for i in range(ready)]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": f"10.0.1.{i}"} for i in range(not_ready)]
    return {"metadata": {"name": name}, "subsets": [subset] if subset else []}


def policy(name, selector, types=None, ingress=None, egress=None):
    spec = {"podSelector": selector}
    if types is not None:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("expr,labels,expected", [
    ({"key": "a", "operator": "In", "values": ["1"]}, {"a": "1"}, True),
    ({"key": "a", "operator": "In", "values": ["1"]}, {}, False),
    ({"key": "a", "operator": "NotIn", "values": ["1"]}, {"a": "2"}, True),
    ({"key": "a", "operator": "NotIn", "values": ["1"]}, {"a": "1"}, False),
    ({"key": "a", "operator": "Exists"}, {"a": "x"}, True),
    ({"key": "a", "operator": "DoesNotExist"}, {"a": "x"}, False),
    ({"key": "a", "operator": "Bogus"}, {"a": "x"}, False),
])
def test_expression_matches(expr, labels, expected):
    assert k.expression_matches(expr, labels) is expected


def test_selector_matches():
    assert k.selector_matches({}, {"a": "1"}) and k.selector_matches(None, None)
    assert k.selector_matches({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not k.selector_matches({"matchLabels": {"a": "1"}}, {"a": "2"})
    assert not k.selector_matches({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {})


def test_pod_ready():
    assert k.pod_ready(pod("p", {}))
    assert not k.pod_ready(pod("p", {}, ready=False))
    assert not k.pod_ready(pod("p", {}, deleting=True))
    assert not k.pod_ready({"metadata": {}})


def test_service_with_ready_endpoints_is_fine():
    r = k.service_report(service("api", {"app": "api"}), endpoints("api", ready=2), [pod("a", {"app": "api"})])
    assert not r["no_ready_endpoints"] and r["ready_endpoints"] == 2 and r["pods"] == 1 and r["reason"] is None


def test_no_pod_matches_the_selector():
    r = k.service_report(service("api", {"app": "apii"}), endpoints("api"), [pod("a", {"app": "api"})])
    assert r["no_ready_endpoints"] and "no pod matches the selector app=apii" in r["reason"]


def test_pods_match_but_none_ready():
    r = k.service_report(service("api", {"app": "api"}), endpoints("api", not_ready=2),
                         [pod("a", {"app": "api"}, ready=False), pod("b", {"app": "api"}, ready=False)])
    assert r["no_ready_endpoints"] and r["not_ready_endpoints"] == 2 and "none is Ready" in r["reason"]


def test_ready_pods_the_endpoints_do_not_list():
    r = k.service_report(service("api", {"app": "api"}), None, [pod("a", {"app": "api"})])
    assert r["no_ready_endpoints"] and "endpoints list none" in r["reason"]


def test_selectorless_services():
    manual = k.service_report(service("db"), endpoints("db", ready=1), [])
    assert not manual["no_ready_endpoints"] and "by hand" in manual["reason"]
    empty = k.service_report(service("db"), None, [])
    assert empty["no_ready_endpoints"] and "manual endpoints are empty" in empty["reason"]
    external = k.service_report(service("ext", kind="ExternalName"), None, [])
    assert not external["no_ready_endpoints"]


def test_policy_report():
    affected = [pod("a", {"app": "api"})]
    assert k.policy_report(policy("other", {"matchLabels": {"app": "web"}}), affected) is None
    deny = k.policy_report(policy("deny", {}), affected)
    assert deny["policy_types"] == ["Ingress"] and deny["denies_all_ingress"] and not deny["denies_all_egress"]
    egress = k.policy_report(policy("eg", {"matchLabels": {"app": "api"}}, types=["Egress"], egress=[]), affected)
    assert egress["denies_all_egress"] and not egress["denies_all_ingress"] and egress["selects"] == ["a"]
    allow = k.policy_report(policy("allow", {}, ingress=[{"from": []}], egress=[{"to": []}]), affected)
    assert allow["policy_types"] == ["Ingress", "Egress"] and not allow["denies_all_ingress"]
    assert not allow["denies_all_egress"] and allow["ingress_rules"] == 1


def test_network_report_healthy():
    pods = [pod("a", {"app": "api"}), pod("gone", {"app": "api"}, deleting=True)]
    r = k.network_report([service("api", {"app": "api"})], [endpoints("api", ready=1)],
                         [policy("allow", {}, ingress=[{}])], pods)
    assert r["verdict"]["healthy"] and not r["verdict"]["act"] and r["affected_pods"] == ["a"]
    assert r["verdict"]["summary"].startswith("healthy, nothing to do: 1 services")
    assert "none denies all" in r["verdict"]["summary"]


def test_network_report_names_the_empty_service_and_the_isolating_policy():
    pods = [pod("a", {"app": "api"}, ready=False), pod("w", {"app": "web"})]
    r = k.network_report([service("api", {"app": "api"}), service("web", {"app": "web"})],
                         [endpoints("api", not_ready=1), endpoints("web", ready=1)],
                         [policy("deny-api", {"matchLabels": {"app": "api"}}), policy("web-only", {"matchLabels": {"app": "web"}})],
                         pods, wanted=["api", "nope"])
    v = r["verdict"]
    assert not v["healthy"] and v["services_without_endpoints"] == ["api"] and v["missing_services"] == ["nope"]
    assert v["isolating_policies"] == ["deny-api"] and [p["name"] for p in r["network_policies"]] == ["deny-api"]
    assert "api: no ready endpoints" in v["summary"] and "no such service: nope" in v["summary"]
    assert v["summary"].endswith("report only")


def test_network_report_with_a_pod_selector_and_a_non_isolating_policy():
    pods = [pod("a", {"app": "api"}), pod("w", {"app": "web"})]
    r = k.network_report([service("api", {"app": "api"})], [endpoints("api", ready=1)],
                         [policy("web-rules", {"matchLabels": {"app": "web"}}, ingress=[{}])], pods,
                         pod_selector={"matchLabels": {"app": "web"}})
    assert r["affected_pods"] == ["w"] and r["verdict"]["healthy"]
    assert [p["name"] for p in r["network_policies"]] == ["web-rules"]
