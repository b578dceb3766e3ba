"""redis_health_info and redis_failover against the real lab topology (master, 2 replicas,
3 sentinels, requirepass on). Every test starts from the pristine topology."""

from __future__ import annotations

import json

import pytest

from sre_testlib import run_module

pytestmark = pytest.mark.slow


def failover(lab, check=False, diff=False, **args):
    args.setdefault("login_password", lab.password)
    return run_module("redis_failover", args, check=check, diff=diff)


def assert_no_secret(lab, result):
    assert lab.password not in json.dumps(result)


# ------------------------------------------------------------------ redis_health_info

def test_health_of_master_with_sentinel_views(lab):
    result = run_module("redis_health_info", dict(
        login_host=lab.host, login_port=lab.ports[0], login_password=lab.password,
        sentinels=lab.sentinels, master_name=lab.master_name, write_check=True))
    assert not result.get("failed"), result
    node = result["node"]
    assert node["reachable"] and node["role"] == "master" and node["ping_ms"] > 0
    assert {r["address"] for r in node["replication"]["replicas"]} == set(lab.nodes[1:])
    assert all(r["state"] == "online" for r in node["replication"]["replicas"])
    assert node["server"]["version"].startswith("7.")
    assert {"used_bytes", "maxmemory_policy", "evicted_keys"} <= set(node["memory"])
    assert node["write_check"]["ok"] is True
    assert result["sentinel_master"] == lab.nodes[0]
    assert [v["master"] for v in result["sentinels"]] == [lab.nodes[0]] * 3
    assert all(v["quorum_reachable"] and not v["sdown"] and v["num_other_sentinels"] == 2
               for v in result["sentinels"])
    assert result["changed"] is False
    assert_no_secret(lab, result)


def test_health_of_replica_and_of_a_dead_node(lab):
    replica = run_module("redis_health_info", dict(login_host=lab.host, login_port=lab.ports[1],
                                                   login_password=lab.password, write_check=True))
    assert replica["node"]["role"] == "replica"
    assert replica["node"]["replication"]["master"] == lab.nodes[0]
    assert replica["node"]["replication"]["master_link_status"] == "up"
    assert replica["node"]["write_check"]["ok"] is False  # READONLY: a replica takes no writes
    lab.kill(lab.ports[2])
    gone = run_module("redis_health_info", dict(login_host=lab.host, login_port=lab.ports[2],
                                                login_password=lab.password))
    assert not gone.get("failed") and gone["node"]["reachable"] is False
    assert "Connection refused" in gone["node"]["error"]


def test_health_of_a_whole_group_in_one_call(lab):
    lab.kill(lab.ports[2])
    result = run_module("redis_health_info", dict(
        nodes=lab.nodes, login_password=lab.password, sentinels=lab.sentinels, master_name=lab.master_name))
    assert not result.get("failed"), result
    assert [n["address"] for n in result["nodes"]] == lab.nodes, "nodes come back in the order given"
    assert [n["reachable"] for n in result["nodes"]] == [True, True, False]
    assert [n.get("role") for n in result["nodes"][:2]] == ["master", "replica"]
    assert "Connection refused" in result["nodes"][2]["error"]
    assert result["node"] == result["nodes"][0]
    assert result["sentinel_master"] == lab.nodes[0] and len(result["sentinels"]) == 3
    assert_no_secret(lab, result)

    wrong = run_module("redis_health_info", dict(nodes=lab.nodes[:2], login_password="not-the-password"))
    assert wrong["failed"] and (lab.nodes[0] in wrong["msg"] or lab.nodes[1] in wrong["msg"]), wrong
    assert "not-the-password" not in json.dumps(wrong)
    empty = run_module("redis_health_info", dict(nodes=[], login_password=lab.password))
    assert empty["failed"] and "nodes is empty" in empty["msg"]
    bad = run_module("redis_health_info", dict(nodes=["127.0.0.1:99999"], login_password=lab.password))
    assert bad["failed"] and "127.0.0.1:99999" in bad["msg"] and "port" in bad["msg"]


def test_health_check_mode_skips_the_write_check(lab):
    result = run_module("redis_health_info", dict(login_host=lab.host, login_port=lab.ports[0],
                                                  login_password=lab.password, write_check=True), check=True)
    assert "write_check" not in result["node"]


# ------------------------------------------------------------------ redis_failover: nodes

def test_failover_with_master_alive_loses_no_write_and_is_idempotent(lab_nodes):
    lab = lab_nodes
    lab.write(lab.ports[0], 2000, prefix="before-")
    plan = failover(lab, check=True, diff=True, nodes=lab.nodes, target=lab.nodes[1])
    assert plan["changed"] and plan["method"] == "failover"
    assert [a["action"] for a in plan["actions"]] == ["failover", "replicaof"]
    assert all(a["result"] == "check mode" for a in plan["actions"])
    assert plan["diff"]["after"]["master"] == lab.nodes[1]
    assert lab.roles()[lab.nodes[0]] == "master", "check mode changed the group"

    done = failover(lab, nodes=lab.nodes, target=lab.nodes[1])
    assert done["changed"] and done["master"] == lab.nodes[1] and done["previous_master"] == lab.nodes[0], done
    assert [a["action"] for a in done["actions"]][:2] == ["failover", "replicaof"]
    assert all(a["timestamp"].endswith("Z") for a in done["actions"])
    assert lab.roles() == {lab.nodes[0]: f"replica of {lab.nodes[1]}", lab.nodes[1]: "master",
                           lab.nodes[2]: f"replica of {lab.nodes[1]}"}
    assert lab.client(lab.ports[1]).get("before-1999") == "x" * 100
    assert lab.client(lab.ports[1]).dbsize() == 2000

    again = failover(lab, nodes=lab.nodes, target=lab.nodes[1])
    assert again["changed"] is False and again["actions"] == []
    untargeted = failover(lab, nodes=lab.nodes)
    assert untargeted["changed"] is False and untargeted["master"] == lab.nodes[1]
    assert_no_secret(lab, done)


def test_sigkill_master_promotes_best_replica_and_old_master_rejoins(lab_nodes):
    lab = lab_nodes
    lab.write(lab.ports[0], 500, acked_by=2)
    lab.kill(lab.ports[0])
    # Both replicas report the link down at once; a zero threshold keeps the test fast (the
    # threshold itself is tested in test_redis_evidence.py).
    plan = failover(lab, check=True, nodes=lab.nodes, min_master_down_seconds=0)
    assert plan["changed"] and plan["method"] == "promote" and plan["unreachable_nodes"] == [lab.nodes[0]]
    assert lab.roles()[lab.nodes[0]] == "down" and lab.roles()[lab.nodes[1]].startswith("replica")

    done = failover(lab, nodes=lab.nodes, min_master_down_seconds=0)
    assert done["changed"] and done["method"] == "promote", done
    new_master = done["master"]
    assert new_master in lab.nodes[1:] and done["previous_master"] == lab.nodes[0]
    other = next(n for n in lab.nodes[1:] if n != new_master)
    assert lab.roles() == {lab.nodes[0]: "down", new_master: "master", other: f"replica of {new_master}"}
    assert done["replicas"] == [{"address": other, "role": "replica", "master": new_master,
                                 "master_link_status": "up", "offset": done["replicas"][0]["offset"]}]

    second = failover(lab, nodes=lab.nodes)
    assert second["changed"] is False and second["unreachable_nodes"] == [lab.nodes[0]]

    # The old master restarts as configured: a second master, a split brain the module only
    # resolves when told which master to keep.
    lab.start_stopped()
    assert lab.roles()[lab.nodes[0]] == "master"
    refused = failover(lab, nodes=lab.nodes)
    assert refused["failed"] and refused["guardrail"] == "split_brain" and lab.roles()[lab.nodes[0]] == "master"
    rejoin = failover(lab, nodes=lab.nodes, target=new_master)
    assert rejoin["changed"] and rejoin["method"] == "repoint"
    assert [(a["action"], a["target"]) for a in rejoin["actions"]] == [("demote", lab.nodes[0])]
    assert lab.roles()[lab.nodes[0]] == f"replica of {new_master}"
    assert lab.client(int(new_master.rsplit(":", 1)[1])).dbsize() == 500
    assert failover(lab, nodes=lab.nodes)["changed"] is False


def test_lag_guardrail_refuses_a_lagging_replica(lab_nodes):
    lab = lab_nodes
    lagging = lab.client(lab.ports[2])
    # Pause the replica's link: it can no longer authenticate to the master, so it falls behind.
    lagging.config_set("masterauth", "not-the-password")
    lagging.execute_command("CLIENT", "KILL", "TYPE", "master")
    lab.write(lab.ports[0], 20000, size=100, acked_by=1)  # the healthy replica has them all
    before = lab.roles()
    result = failover(lab, nodes=lab.nodes, target=lab.nodes[2], max_lag_bytes=1048576)
    assert result["failed"] and result["guardrail"] == "max_lag_bytes" and result["changed"] is False
    assert "max_lag_bytes" in result["msg"] and lab.nodes[2] in result["msg"]
    assert lab.roles() == before

    # With the master gone too, the untargeted choice skips the lagging replica.
    lab.kill(lab.ports[0])
    promoted = failover(lab, nodes=lab.nodes, check=True, min_master_down_seconds=0)
    assert promoted["master"] == lab.nodes[1]
    refused = failover(lab, nodes=lab.nodes, target=lab.nodes[2], min_master_down_seconds=0)
    assert refused.get("guardrail") == "max_lag_bytes" and "most advanced replica" in refused["msg"], refused


def test_split_brain_guardrail_and_force(lab_nodes):
    lab = lab_nodes
    before = lab.roles()
    refused = failover(lab, nodes=lab.nodes, target=lab.nodes[2], mode="promote")
    assert refused["failed"] and refused["guardrail"] == "split_brain" and "force: true" in refused["msg"]
    assert lab.roles() == before
    forced = failover(lab, nodes=lab.nodes, target=lab.nodes[2], mode="promote", force=True)
    assert forced["changed"] and forced["master"] == lab.nodes[2]
    assert lab.roles() == {lab.nodes[0]: f"replica of {lab.nodes[2]}", lab.nodes[1]: f"replica of {lab.nodes[2]}",
                           lab.nodes[2]: "master"}
    assert failover(lab, nodes=lab.nodes, target=lab.nodes[2], mode="promote")["changed"] is False


def test_auth_wrong_or_missing_password_fails_and_changes_nothing(lab_nodes):
    lab = lab_nodes
    lab.kill(lab.ports[0])  # a failover would be due: make sure nothing happens anyway
    before = lab.roles()
    wrong = failover(lab, nodes=lab.nodes, login_password="not-the-password")
    assert wrong["failed"] and "rejected the credentials" in wrong["msg"] and wrong["changed"] is False
    missing = run_module("redis_failover", dict(nodes=lab.nodes))
    assert missing["failed"] and "NOAUTH" in missing["msg"] or "credentials" in missing["msg"]
    assert lab.roles() == before
    health = run_module("redis_health_info", dict(login_host=lab.host, login_port=lab.ports[1],
                                                  login_password="not-the-password"))
    assert health["failed"] and "login_password" in health["msg"]
    for result in (wrong, missing, health):
        assert lab.password not in json.dumps(result)
        assert "not-the-password" not in json.dumps(result)


def test_bad_input_fails_clearly_and_changes_nothing(lab_nodes):
    lab = lab_nodes
    before = lab.roles()
    empty = failover(lab, nodes=[])
    assert empty["failed"] and "empty" in empty["msg"]
    unknown = failover(lab, nodes=lab.nodes, target=lab.addr(1))
    assert unknown["failed"] and "not one of the group's nodes" in unknown["msg"]
    foreign = failover(lab, nodes=lab.nodes[1:])
    assert foreign["failed"] and "not part of this group" in foreign["msg"]
    garbage = failover(lab, nodes=[lab.nodes[0], "host:notaport"])
    assert garbage["failed"] and "host:port" in garbage["msg"]
    assert lab.roles() == before


# ------------------------------------------------------------------ redis_failover: sentinels

def test_sentinel_managed_failover_after_master_sigkill(lab):
    lab.kill(lab.ports[0])
    # force: the sentinels (down-after 30s) do not agree yet; test_redis_evidence.py shows the
    # refusal without it.
    args = dict(sentinels=lab.sentinels, master_name=lab.master_name, force=True, min_master_down_seconds=0)
    plan = failover(lab, check=True, **args)
    assert plan["method"] == "sentinel" and plan["changed"] and plan["unreachable_nodes"] == [lab.nodes[0]]
    assert lab.sentinel_masters() == {lab.nodes[0]}

    done = failover(lab, **args)
    assert done["changed"] and done["method"] == "sentinel", done
    new_master = done["master"]
    assert new_master in lab.nodes[1:]
    assert lab.sentinel_masters() == {new_master}, "the sentinels do not agree on the new master"
    assert [a["action"] for a in done["actions"]][-1] == "sentinel_agreement"
    other = next(n for n in lab.nodes[1:] if n != new_master)
    assert lab.roles()[other] == f"replica of {new_master}"

    again = failover(lab, **args)
    assert again["changed"] is False and again["master"] == new_master


def test_sentinel_failover_to_a_named_target(lab):
    args = dict(sentinels=lab.sentinels, master_name=lab.master_name, target=lab.nodes[2])
    done = failover(lab, **args)
    assert done["changed"] and done["master"] == lab.nodes[2], done
    assert lab.sentinel_masters() == {lab.nodes[2]}
    assert lab.roles()[lab.nodes[2]] == "master"
    # replica-priority pins are restored after the failover
    assert {lab.client(p).config_get("replica-priority")["replica-priority"] for p in lab.ports} == {"100"}
    assert failover(lab, **args)["changed"] is False


def test_unknown_master_name_fails(lab):
    result = failover(lab, sentinels=lab.sentinels, master_name="no-such-master")
    assert result["failed"] and "does not monitor" in result["msg"]


def test_acl_user_login(lab_nodes):
    lab = lab_nodes
    for port in lab.ports:
        lab.client(port).execute_command("ACL", "SETUSER", "sre-oncall", "on", ">oncall-secret", "~*", "&*", "+@all")
    result = failover(lab, nodes=lab.nodes, login_user="sre-oncall", login_password="oncall-secret")
    assert not result.get("failed") and result["changed"] is False, result
    wrong = run_module("redis_health_info", dict(login_host=lab.host, login_port=lab.ports[0],
                                                 login_user="sre-oncall", login_password="nope"))
    assert wrong["failed"] and "as sre-oncall" in wrong["msg"]
    assert "oncall-secret" not in json.dumps(result) + json.dumps(wrong)
