"""The triage verdict (plugin_utils/_triage): findings per source, component, playbook, severity,
ambiguity, escalation and the triage table. Inputs are shaped like the modules' RETURN docs."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage as T

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((REPO / "roles" / "incident" / "defaults" / "main.yml").read_text())
CONFIG = {
    "components": DEFAULTS["incident_components"],
    "severity_by_impact": DEFAULTS["incident_severity_by_impact"],
    "severity_levels": DEFAULTS["incident_severity_levels"],
    "thresholds": DEFAULTS["incident_triage_thresholds"],
    "playbooks": DEFAULTS["incident_triage_playbooks"],
    "default_impact": DEFAULTS["incident_triage_default_impact"],
}


def run(*observations, **config):
    return T.verdict(list(observations), **{**CONFIG, **config})


# --- healthy results of every module ---

def pg(util=10.0, blocked=None, **extra):
    return {"source": "pg_activity_info", "host": "db1",
            "result": {"utilisation_percent": util, "client_backends": int(util), "usable_connections": 97,
                       "blocked": blocked or [], "blocking_pids": [101] if blocked else [], **extra}}


def redis(nodes=None, sentinels=None):
    nodes = nodes if nodes is not None else [
        {"address": "10.0.0.11:6379", "reachable": True, "role": "master", "memory": {"used_ratio": None}},
        {"address": "10.0.0.12:6379", "reachable": True, "role": "replica",
         "replication": {"master": "10.0.0.11:6379", "master_link_status": "up"}},
    ]
    return {"source": "redis_health_info", "host": "cache1",
            "result": {"nodes": nodes, "node": nodes[0] if nodes else {}, "sentinels": sentinels or []}}


def unit(name="nginx.service", failed=False, probe_failed=False, missing=False, looping=False, oom=False, host="web1"):
    u = {"name": name, "exists": not missing, "active_state": "failed" if failed else "active",
         "sub_state": "auto-restart" if looping else ("failed" if failed else "running"),
         "result": "oom-kill" if oom else ("exit-code" if failed else "success"), "healthy": not (failed or looping),
         "restart_looping": looping, "n_restarts": 5 if looping else 0, "oom_killed": oom,
         "probe": {"type": "http", "target": "http://127.0.0.1/", "ok": not probe_failed, "status": 502 if probe_failed else 200,
                   "error": "status 502" if probe_failed else None}}
    return {"source": "systemd_unit_info", "host": host,
            "result": {"units": {name: u}, "failed_units": [name] if (failed or looping) else [],
                       "probe_failed_units": [name] if probe_failed else [],
                       "missing_units": [name] if missing else [], "restart_order": [name]}}


def host(mem=40.0, disk=50.0, load=0.5, kills=None, name="web1"):
    return {"source": "host_resources_info", "host": name,
            "result": {"memory": {"used_percent": mem}, "disks": [{"mount": "/", "used_percent": disk, "inodes_used_percent": 1.0}],
                       "load": {"load_1m": load * 2, "cpus": 2, "load_1m_per_cpu": load},
                       "oom": {"kills": kills or []}}}


def k8s(pods=None, workloads=None, nodes=None, services=None):
    return {"source": "k8s_triage_info", "host": "lab-k8s",
            "result": {"healthy": not (pods or workloads or nodes or services), "unhealthy_pods": pods or [],
                       "workloads": workloads or [], "nodes": nodes or [], "services_without_endpoints": services or []}}


def pod(name="web-abc", owner="web", reason="CrashLoopBackOff", oom=False, node="n1", ns="default"):
    return {"namespace": ns, "name": name, "phase": "Running", "reason": reason, "reasons": [reason], "node": node,
            "owner": {"kind": "Deployment", "name": owner}, "restart_count": 7, "oom_killed": oom}


def workload(name="web", ready=0, desired=2, ns="default", kind="Deployment"):
    return {"kind": kind, "name": name, "namespace": ns, "desired": desired, "ready": ready, "available": ready}


def http(*endpoints, p95=None):
    eps = [{"name": n, "url": f"https://api.example.com/{n}/health", "ok": ok, "status": 200 if ok else 503,
            "latency_ms": lat, "error": None if ok else "http_status: status 503, expected 200-299"}
           for n, ok, lat in endpoints]
    failed = len([e for e in eps if not e["ok"]])
    return {"source": "http_health", "host": "localhost",
            "result": {"endpoints": eps, "failing": [e["name"] for e in eps if not e["ok"]],
                       "summary": {"total": len(eps), "ok": len(eps) - failed, "failed": failed,
                                   "error_rate": failed / len(eps) if eps else 0,
                                   "latency_ms": {"p50": 10, "p95": p95 if p95 is not None else max([e["latency_ms"] for e in eps] or [0])}}}}


ALL_OK = [pg(), redis(), unit(), host(), k8s(), http(("api-gateway", True, 12), ("auth", True, 15))]


# --- healthy / nothing ---

def test_healthy_everywhere_says_nothing_to_do():
    v = run(*ALL_OK)
    assert v["healthy"] is True and v["status"] == "healthy"
    assert v["summary"] == "healthy, nothing to do"
    assert v["next"] == [] and v["act"] is False and v["severity"] is None and v["findings"] == []
    assert T.render_table(v).startswith("TRIAGE  HEALTHY")


def test_no_observation_is_not_healthy():
    v = run()
    assert v["healthy"] is False and v["act"] is False
    assert "nothing was assessed" in v["summary"]


def test_skipped_results_are_no_evidence():
    v = run({"source": "pg_activity_info", "host": "db1", "result": {"skipped": True}})
    assert v["findings"] == [] and v["assessed"] == []


# --- input forms and errors ---

def test_mapping_form_and_fqcn_source():
    v = T.verdict({"sre.runbooks.pg_activity_info": {"db1": pg(util=100)["result"]}}, **CONFIG)
    assert v["suspected_component"] == "postgresql"


@pytest.mark.parametrize("bad", [
    "text", [{"host": "x"}], [{"source": "nope", "host": "x", "result": {}}],
    [{"source": "pg_activity_info", "host": "x", "result": "text"}], {"pg_activity_info": ["x"]},
])
def test_unreadable_input_names_the_problem(bad):
    with pytest.raises(T.TriageError):
        T.verdict(bad)


def test_looped_registration_is_one_observation_per_item():
    items = [dict(unit(failed=True)["result"], item="nginx", ansible_loop_var="item"),
             dict(unit(name="cron.service")["result"], item="cron", ansible_loop_var="item")]
    looped = {"source": "systemd_unit_info", "host": "web1", "result": {"changed": False, "results": items}}
    v = run(looped)
    assert [f["unit"] for f in v["findings"]] == ["nginx.service"] and v["next"][0]["playbook"] == "service_down"


def test_component_table_needs_names():
    with pytest.raises(T.TriageError, match="needs a name"):
        T.verdict([pg(util=100)], components=[{"match": ["x"]}])


def test_component_table_as_mapping():
    v = T.verdict([pg(util=100)], components={"database": {"match": ["postgresql"], "impact": "outage"}})
    assert v["suspected_component"] == "database" and v["severity"] == "P0"


# --- PostgreSQL ---

def test_pg_exhausted_is_down_and_picks_db_exhaustion():
    v = run(*ALL_OK[1:], pg(util=100.0))
    assert v["status"] == "failing" and v["act"] is True
    assert v["suspected_component"] == "postgresql"
    assert [s["playbook"] for s in v["next"]] == ["db_exhaustion"]
    assert v["next"][0]["extra_vars"] == {"target": "db1"}
    assert v["next"][0]["path"] == "playbooks/outage/db_exhaustion.yml"
    assert v["severity"] == "P1" and v["response_minutes"] == 15


def test_pg_saturated_is_degraded_p3():
    v = run(pg(util=85.0))
    assert v["findings"][0]["kind"] == "pg_saturated" and v["severity"] == "P3"
    assert v["next"][0]["playbook"] == "db_exhaustion"


def test_pg_lock_contention():
    v = run(pg(util=10, blocked=[{"pid": 5}]))
    assert v["findings"][0]["kind"] == "pg_lock_contention" and "101" in v["findings"][0]["detail"]


def test_failed_assessment_is_a_gap_not_healthy():
    v = run({"source": "pg_activity_info", "host": "db1", "result": {"failed": True, "msg": "cannot connect to PostgreSQL at db1:5432"}})
    assert v["healthy"] is False and v["status"] == "unassessed"
    assert v["unassessed"] == [{"source": "pg_activity_info", "host": "db1", "msg": "cannot connect to PostgreSQL at db1:5432"}]
    assert v["act"] is False and v["next"] == []
    assert v["severity"] == "P3"  # unknown counts as degraded, never as healthy
    assert "GAP" in T.render_table(v)


def test_unreachable_host_is_a_gap():
    v = run({"source": "systemd_unit_info", "host": "web9", "result": {"unreachable": True, "msg": "ssh: timeout"}})
    assert v["status"] == "unassessed" and v["findings"][0]["kind"] == "assessment_failed"


# --- Redis ---

def test_redis_no_master():
    nodes = [{"address": "a:1", "reachable": False, "error": "refused"},
             {"address": "b:1", "reachable": True, "role": "replica",
              "replication": {"master_link_status": "down", "master": "a:1"}}]
    v = run(redis(nodes=nodes))
    kinds = {f["kind"] for f in v["findings"]}
    assert {"redis_master_down", "redis_replication_broken"} <= kinds
    assert v["next"][0]["playbook"] == "redis_unavailable" and v["severity"] == "P2"


def test_redis_sentinels_odown():
    v = run(redis(sentinels=[{"reachable": True, "odown": True}]))
    assert v["findings"][0]["kind"] == "redis_master_down"


def test_redis_replica_down_is_degraded():
    nodes = [{"address": "a:1", "reachable": True, "role": "master"}, {"address": "b:1", "reachable": False}]
    v = run(redis(nodes=nodes))
    assert v["findings"][0]["kind"] == "redis_node_down" and v["severity"] == "P3"


def test_redis_memory_full_and_loading():
    nodes = [{"address": "a:1", "reachable": True, "role": "master", "memory": {"used_ratio": 0.99},
              "persistence": {"loading": True}}]
    v = run(redis(nodes=nodes))
    kinds = [f["kind"] for f in v["findings"]]
    assert "redis_memory_full" in kinds and "redis_loading" in kinds


def test_redis_single_node_form():
    v = run({"source": "redis_health_info", "host": "c", "result": {"node": {"address": "a:1", "reachable": False}}})
    assert v["findings"][0]["kind"] == "redis_master_down"


# --- systemd and host ---

def test_unit_down_picks_service_down_for_that_host():
    v = run(unit(failed=True), host())
    assert v["suspected_component"] == "nginx" and v["next"][0]["playbook"] == "service_down"
    assert v["next"][0]["extra_vars"] == {"target": "web1"}


def test_unit_probe_failed_restart_loop_missing_and_oom():
    assert run(unit(probe_failed=True))["findings"][0]["kind"] == "unit_probe_failed"
    assert run(unit(looping=True))["findings"][0]["kind"] == "unit_restart_loop"
    missing = run(unit(missing=True))
    assert missing["findings"][0]["kind"] == "unit_missing" and missing["next"] == []
    assert "OOM-killed" in run(unit(failed=True, oom=True))["findings"][0]["detail"]


def test_host_pressure_alone_is_a_suspect_without_playbook():
    v = run(host(mem=97, load=3.0, kills=[{"name": "java"}]))
    assert {f["kind"] for f in v["findings"]} == {"host_memory", "host_load", "host_oom"}
    assert v["suspected_component"] == "host/web1" and v["act"] is False
    assert "investigate" in v["summary"]


def test_a_full_disk_points_at_disk_full():
    v = run(host(disk=99))
    assert {f["kind"] for f in v["findings"]} == {"host_disk"}
    assert [n["path"] for n in v["next"]] == ["playbooks/outage/disk_full.yml"], v["next"]


def test_host_pressure_on_the_same_host_is_context_of_the_unit():
    v = run(unit(failed=True, oom=True), host(mem=97, kills=[{"name": "nginx"}]))
    assert v["ambiguous"] is False and v["suspected_component"] == "nginx"
    comps = {c["name"]: c for c in v["components"]}
    assert comps["host/web1"]["explained_by"] == ["nginx"]


def test_host_pressure_elsewhere_is_a_second_candidate():
    v = run(unit(failed=True), host(mem=97, name="web2"))
    assert v["ambiguous"] is True and v["next"] == []


# --- Kubernetes ---

def test_crashloop_names_namespace_and_workloads():
    v = run(k8s(pods=[pod(), pod(name="web-def")], workloads=[workload()]))
    step = v["next"][0]
    assert step["playbook"] == "crashloop"
    assert step["extra_vars"] == {"target": "lab-k8s", "crashloop_namespace": "default", "crashloop_workloads": ["web"]}
    assert v["severity"] == "P2"  # web is not in the table: default impact secondary


def test_oom_wins_over_crashloop_in_one_workload():
    v = run(k8s(pods=[pod(), pod(name="web-2", reason="CrashLoopBackOff", oom=True)], workloads=[workload(ready=1)]))
    assert v["findings"][0]["kind"] == "oom_killed" and v["findings"][0]["status"] == "degraded"
    assert v["next"][0]["playbook"] == "memory_exhaustion"
    assert v["next"][0]["extra_vars"]["memory_exhaustion_namespace"] == "default"


def test_api_gateway_goes_to_its_own_playbook_and_is_p0():
    v = run(k8s(pods=[pod(name="api-gateway-1", owner="api-gateway")], workloads=[workload(name="api-gateway")]))
    step = v["next"][0]
    assert step["playbook"] == "api_gateway_down"
    assert step["extra_vars"]["api_gateway_down_deployment"] == "api-gateway"
    assert v["severity"] == "P0"


@pytest.mark.parametrize("reason,kind,playbook", [
    ("ImagePullBackOff", "image_pull", None), ("CreateContainerConfigError", "config_error", "crashloop"),
    ("Pending", "pending", None), ("Error", "pod_failing", None), ("OOMKilled", "oom_killed", "memory_exhaustion"),
])
def test_pod_reasons(reason, kind, playbook):
    v = run(k8s(pods=[pod(reason=reason)]))
    assert v["findings"][0]["kind"] == kind
    assert [s["playbook"] for s in v["next"]] == ([playbook] if playbook else [])


def test_restarted_and_ready_again_pods_do_not_count():
    assert run(k8s(pods=[pod(reason="Restarted")]))["healthy"] is True


def test_bare_pod_without_owner():
    p = pod()
    p["owner"] = None
    v = run(k8s(pods=[p]))
    assert v["findings"][0]["workload"] == "web-abc"


def test_node_not_ready_explains_its_pods():
    v = run(k8s(pods=[pod(node="n2")], workloads=[workload(ready=1)],
                nodes=[{"name": "n2", "ready": False, "problems": ["Ready=Unknown: NodeStatusUnknown"]}]))
    assert v["ambiguous"] is False and v["suspected_component"] == "kubernetes-node"
    assert v["next"][0]["playbook"] == "node_failure"
    assert v["next"][0]["extra_vars"]["node_failure_nodes"] == ["n2"]
    web = next(c for c in v["components"] if c["name"] == "web")
    assert web["explained_by"] == ["kubernetes-node"]


def test_node_pressure_and_degraded_workload_and_empty_service():
    v = run(k8s(workloads=[workload(name="api", ready=1, desired=3)],
                nodes=[{"name": "n1", "ready": True, "problems": ["MemoryPressure=True"]}],
                services=[{"namespace": "default", "name": "shop"}]))
    kinds = {f["kind"] for f in v["findings"]}
    assert kinds == {"workload_degraded", "node_pressure", "no_endpoints"}
    assert v["ambiguous"] is True  # three unrelated failures: nothing picked


def test_workload_down_without_pods():
    v = run(k8s(workloads=[workload(name="orders-worker", ready=0, desired=1)]))
    assert v["findings"][0]["kind"] == "workload_down" and v["findings"][0]["status"] == "down"


# --- HTTP, severity ---

def test_all_endpoints_down_is_p0_and_the_gateway_is_the_suspect():
    v = run(http(("api-gateway", False, 5), ("auth", False, 5), ("orders", False, 5)))
    assert v["severity"] == "P0" and "full outage" in v["severity_reason"]
    assert v["suspected_component"] == "api-gateway"
    assert v["next"][0]["playbook"] == "api_gateway_down"  # the http platform override
    assert v["next"][0]["extra_vars"] == {}  # http_health ran on the controller: the playbook's default group
    assert [c["name"] for c in v["components"]][0] == "api-gateway"  # the suspect first
    auth = next(c for c in v["components"] if c["name"] == "auth-service")
    assert auth["explained_by"] == ["api-gateway"]


def test_payments_down_is_p1():
    v = run(http(("api-gateway", True, 5), ("payments", False, 5), ("products", True, 5)))
    assert v["severity"] == "P1" and v["suspected_component"] == "order-payment-service"
    assert v["next"] == [] and "investigate" in v["summary"]


def test_secondary_feature_down_is_p2():
    v = run(http(("api-gateway", True, 5), ("analytics", False, 5), ("a", True, 5), ("b", True, 5),
                 ("c", True, 5), ("d", True, 5), ("e", True, 5), ("f", True, 5), ("g", True, 5),
                 ("h", True, 5), ("i", True, 5), ("j", True, 5), ("k", True, 5), ("l", True, 5),
                 ("m", True, 5), ("n", True, 5), ("o", True, 5), ("p", True, 5), ("q", True, 5), ("r", True, 5)))
    assert v["severity"] == "P2"


def test_slow_is_p3():
    v = run(http(("api-gateway", True, 2500), ("auth", True, 20), p95=2500))
    assert v["severity"] == "P3" and v["findings"][0]["kind"] == "endpoint_slow"
    assert "p95 latency" in v["severity_reason"]


def test_error_rate_above_threshold_alone_is_p3():
    sev, why = T.severity_of([], {"total": 10, "failed": 1, "error_rate": 0.1, "latency_p95_ms": 0}, T.SEVERITY_BY_IMPACT, T.THRESHOLDS)
    assert sev == "P3" and "error rate" in why


def test_severity_none_without_findings_and_unknown_levels():
    assert T.severity_of([], {"total": 0, "failed": 0, "error_rate": 0, "latency_p95_ms": 0}, {}, T.THRESHOLDS) == (None, "")
    comp = [{"name": "x", "status": "down", "impact": "weird"}]
    assert T.severity_of(comp, {"total": 0, "failed": 0, "error_rate": 0, "latency_p95_ms": 0}, {"weird": "SEV1"}, T.THRESHOLDS)[0] == "SEV1"


def test_custom_level_names_rank_in_the_order_given():
    levels = {"SEV1": {"description": "all down", "response_minutes": 5}, "SEV2": {"description": "bad", "response_minutes": 30}}
    by_impact = {"outage": "SEV1", "critical": "SEV1", "secondary": "SEV2", "degraded": "SEV2"}
    v = run(pg(util=85), unit(failed=True, name="payments.service"), severity_levels=levels, severity_by_impact=by_impact)
    assert v["severity"] == "SEV1" and v["response_minutes"] == 5  # payments down beats postgres saturated


def test_severity_mapping_is_data():
    v = run(pg(util=100), severity_by_impact={**CONFIG["severity_by_impact"], "critical": "P0"})
    assert v["severity"] == "P0"


def test_endpoint_symptom_explained_by_failing_dependency():
    v = run(pg(util=100), http(("api-gateway", True, 5), ("auth", False, 5)))
    assert v["ambiguous"] is False and v["suspected_component"] == "postgresql"
    assert v["severity"] == "P1"
    assert next(c for c in v["components"] if c["name"] == "auth-service")["explained_by"] == ["postgresql"]


def test_http_aggregates_counted_from_endpoints_without_summary():
    obs = http(("a", False, 5), ("b", True, 5))
    del obs["result"]["summary"]
    assert T.http_aggregate(T.normalize_observations([obs]))["failed"] == 1


# --- ambiguity ---

def test_two_independent_causes_are_both_named_and_none_picked():
    v = run(pg(util=100), unit(failed=True))
    assert v["ambiguous"] is True and v["status"] == "ambiguous" and v["act"] is False and v["next"] == []
    assert set(v["suspected"]) == {"postgresql", "nginx"} and v["suspected_component"] is None
    assert {s["playbook"] for c in v["candidates"] for s in c["next"]} == {"db_exhaustion", "service_down"}
    table = T.render_table(v)
    assert "OPTION" in table and "none picked" in table


def test_own_evidence_plus_failing_dependency_is_ambiguous():
    # A crash-looping auth-service and an exhausted database: a bad release leaking connections
    # or a database starving the service. Rolling back and terminating sessions conflict.
    v = run(pg(util=100), k8s(pods=[pod(name="auth-1", owner="auth-service")], workloads=[workload(name="auth-service")]))
    assert v["ambiguous"] is True and v["next"] == []
    assert set(v["suspected"]) == {"postgresql", "auth-service"}


def test_one_component_two_playbooks_is_ambiguous():
    comps = [{"name": "shop", "match": ["web", "nginx", "host/*"]}]
    v = run(unit(failed=True), k8s(pods=[pod()]), components=comps)
    assert v["suspected"] == ["shop"] and v["ambiguous"] is True
    assert "several playbooks" in v["summary"]


# --- playbook arguments ---

def test_playbook_args_unknown_playbook_gets_target_only():
    f = {"host": "h1", "namespace": "ns", "workload": "w", "source": "k8s_triage_info"}
    assert T.playbook_args("custom", [f]) == {"target": "h1"}


def test_next_step_command_is_shell_quoted():
    step = T.next_step("crashloop", "web", [{"host": "k", "namespace": "a b", "workload": "w", "detail": "x", "source": "k8s_triage_info"}])
    assert step["command"].endswith("""-e '{"crashloop_namespace": "a b", "crashloop_workloads": ["w"], "target": "k"}'""")


# --- escalation ---

@pytest.mark.parametrize("severity,minutes,page,nxt", [
    ("P0", 0, ["On-call engineer"], "L2"),
    ("P0", 16, ["On-call engineer", "Lead backend engineer / secondary on-call"], "L3"),
    ("P0", 31, ["On-call engineer", "Lead backend engineer / secondary on-call", "CTO / Engineering Manager"], "L4"),
    ("P1", 31, ["On-call engineer", "Lead backend engineer / secondary on-call"], "L3"),
    ("P2", 20, ["On-call engineer"], "L2"),
    ("P3", 45, ["On-call engineer", "Lead backend engineer / secondary on-call"], None),
])
def test_escalation_matrix(severity, minutes, page, nxt):
    e = T.escalation(severity, minutes, DEFAULTS["incident_escalation_matrix"])
    assert e["page"] == page
    assert (e["next"] or {}).get("level") == nxt


def test_escalation_next_in_minutes_and_resolved():
    e = T.escalation("P0", 10, DEFAULTS["incident_escalation_matrix"])
    assert e["next"]["in_minutes"] == 5 and e["current"]["level"] == "L1"
    assert T.escalation("P0", 10, resolved=True)["page"] == []
    assert T.escalation(None, 10)["page"] == []


def test_escalation_flat_minutes_and_bad_input():
    e = T.escalation("P2", 20, [{"level": "L1", "who": "a", "after_minutes": 0}, {"level": "L2", "who": "b", "after_minutes": 15}])
    assert e["page"] == ["a", "b"]
    with pytest.raises(T.TriageError):
        T.escalation("P0", -1)


def test_elapsed_minutes():
    now = datetime.datetime(2026, 1, 31, 3, 30, tzinfo=datetime.timezone.utc)
    assert T.elapsed_minutes("2026-01-31T03:00:00Z", now) == 30
    assert T.elapsed_minutes("2026-01-31T04:00:00Z", now) == 0


# --- the fallbacks are the role's defaults ---

def test_python_fallbacks_match_role_defaults():
    assert DEFAULTS["incident_severity_by_impact"] == T.SEVERITY_BY_IMPACT
    assert DEFAULTS["incident_severity_levels"] == T.SEVERITY_LEVELS
    assert DEFAULTS["incident_triage_thresholds"] == T.THRESHOLDS
    assert DEFAULTS["incident_escalation_matrix"] == T.ESCALATION
    assert DEFAULTS["incident_pagerduty_severity"] == T.PAGERDUTY_SEVERITY
    for kind, playbook in DEFAULTS["incident_triage_playbooks"].items():
        assert T.PLAYBOOK_BY_KIND[kind] == playbook, kind


def test_every_playbook_in_the_defaults_exists():
    names = set(v for v in T.PLAYBOOK_BY_KIND.values() if v)
    for comp in DEFAULTS["incident_components"]:
        names |= set((comp.get("playbooks") or {}).values())
    for name in names:
        assert (REPO / "playbooks" / "outage" / f"{name}.yml").is_file(), name


# --- the table ---

def test_table_width_and_long_evidence():
    v = run(k8s(pods=[pod(name=f"web-{i}", owner=f"svc{i}") for i in range(3)]))
    table = T.render_table(v, width=80)
    rows = [line for line in table.splitlines() if line.startswith("svc")]
    assert "COMPONENT" in table and len(rows) == 3 and all(len(line) <= 80 for line in rows)
    assert "svc0, svc1 and svc2 fail and none explains another" in table
    comp = {"name": "x" * 40, "status": "down", "evidence": ["e1", "e2", "e3", "e4", "e5"], "explained_by": []}
    text = T.render_table({"status": "failing", "summary": "s", "components": [comp], "next": []})
    assert "(+2 more)" in text and "x" * 21 + "~" in text and "no scenario playbook fits" in text
