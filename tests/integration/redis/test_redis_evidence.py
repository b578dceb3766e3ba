"""redis_failover on the real lab (issue 9, "never make an outage worse"): a master that is busy,
stalled or only unreachable from here is not replaced; a killed master is replaced only once
the replicas have seen its link down long enough (and the sentinels agree); two masters are a
split brain that is refused and reported; FAILOVER TO works with nodes named by DNS name."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from sre_testlib import run_module

pytestmark = pytest.mark.slow


def failover(lab, check=False, **args):
    args.setdefault("login_password", lab.password)
    return run_module("redis_failover", args, check=check)


def test_master_at_maxclients_is_busy_not_dead(lab_nodes):
    lab = lab_nodes
    admin, fillers = lab.fill_client_slots(lab.ports[0])
    try:
        for mode in ("auto", "promote"):
            result = failover(lab, nodes=lab.nodes, mode=mode)
            assert not result.get("failed"), result
            assert result["changed"] is False and result["actions"] == [] and result["method"] == "none", result
            verdict = result["verdict"]
            assert verdict["state"] == "master_busy" and verdict["act"] is False, verdict
            assert lab.nodes[0] in verdict["reason"] and "max number of clients" in verdict["reason"]
        # The replicas still follow the master, which still is one (asked over the held connection).
        assert admin.info("replication")["role"] == "master"
        assert int(admin.info("replication")["connected_slaves"]) == 2
    finally:
        for client in fillers:
            client.close()
        admin.config_set("maxclients", 10000)
        admin.close()
    assert lab.roles() == {lab.nodes[0]: "master", lab.nodes[1]: f"replica of {lab.nodes[0]}",
                           lab.nodes[2]: f"replica of {lab.nodes[0]}"}


# How long the master stays paused: far longer than the module's run (~1.5 s here, a few seconds on
# a loaded machine), so the run always sees the stall. The test then waits the pause out: commands
# the module queued on the paused master would run when it ends, and must not change the roles.
PAUSE_S = 20


def test_master_unreachable_only_from_here_is_partitioned_not_dead(lab_nodes):
    """A stalled master (CLIENT PAUSE: every client command waits) times out from here while its
    replicas keep master_link_status:up: partitioned from this host, not down."""
    lab = lab_nodes
    before = lab.roles()
    lab.client(lab.ports[0]).execute_command("CLIENT", "PAUSE", PAUSE_S * 1000, "ALL")
    started = time.monotonic()
    result = failover(lab, nodes=lab.nodes, connect_timeout=1, min_master_down_seconds=0)
    assert time.monotonic() - started < PAUSE_S - 1, "the run outlived the pause: the test proves nothing"
    assert not result.get("failed"), result
    assert result["changed"] is False and result["actions"] == [], result
    verdict = result["verdict"]
    assert verdict["state"] == "master_partitioned", verdict
    assert {r["master_link_status"] for r in verdict["evidence"]["replicas"]} == {"up"}
    time.sleep(max(0.0, PAUSE_S + 0.5 - (time.monotonic() - started)))
    assert lab.roles() == before


def test_killed_master_is_replaced_only_after_the_link_down_threshold(lab_nodes):
    lab = lab_nodes
    lab.write(lab.ports[0], 100, acked_by=2)
    lab.kill(lab.ports[0])
    killed = time.monotonic()
    # The early call asks for a link down longer than any run of this test can take (a loaded
    # machine has taken over 3 s to start the module): "too recent" must not depend on timing.
    early = failover(lab, nodes=lab.nodes, min_master_down_seconds=120)
    assert not early.get("failed") and early["changed"] is False, early
    assert early["verdict"]["state"] == "master_unconfirmed" and "too recent" in early["verdict"]["reason"]
    assert lab.roles()[lab.nodes[1]].startswith("replica") and lab.roles()[lab.nodes[2]].startswith("replica")
    time.sleep(max(0.0, 3.2 - (time.monotonic() - killed)))
    plan = failover(lab, check=True, nodes=lab.nodes, min_master_down_seconds=3)
    assert plan["changed"] and plan["method"] == "promote" and plan["verdict"]["state"] == "master_down", plan
    assert "every reachable replica reports its link down" in plan["verdict"]["reason"]
    assert plan["actions"][0]["action"] == "promote" and plan["actions"][0]["result"] == "check mode"
    done = failover(lab, nodes=lab.nodes, min_master_down_seconds=3)
    assert done["changed"] and done["master"] == plan["master"], done
    again = failover(lab, nodes=lab.nodes, min_master_down_seconds=3)
    assert again["changed"] is False and again["verdict"]["state"] == "nodes_unreachable", again


def test_sentinels_must_agree_before_a_failover(lab):
    # The lab's sentinels agree a master is down 30 s after it dies; a module run has taken longer
    # than that to start on a loaded machine. Ten minutes keeps "not agreed yet" true, however slow.
    lab.sentinels_down_after(600_000)
    lab.kill(lab.ports[0])
    args = dict(sentinels=lab.sentinels, master_name=lab.master_name, min_master_down_seconds=0)
    refused = failover(lab, **args)
    assert not refused.get("failed") and refused["changed"] is False, refused
    assert refused["verdict"]["state"] == "master_unconfirmed"
    assert "sentinels do not agree" in refused["verdict"]["reason"]
    assert lab.sentinel_masters() == {lab.nodes[0]}
    forced = failover(lab, force=True, **args)
    assert forced["changed"] and forced["method"] == "sentinel" and forced["master"] in lab.nodes[1:], forced
    assert forced["verdict"]["forced"] is True
    assert lab.sentinel_masters() == {forced["master"]}


def test_two_masters_are_refused_and_reported_whatever_their_offsets(lab_nodes):
    lab = lab_nodes
    lab.write(lab.ports[0], 50, prefix="old-", acked_by=2)
    lab.client(lab.ports[2]).execute_command("REPLICAOF", "NO", "ONE")
    lab.write(lab.ports[0], 30, prefix="a-")        # only the first master has these
    lab.write(lab.ports[2], 5, prefix="b-")         # only the second master has these
    before = lab.roles()
    assert [r for r in before.values() if r == "master"] == ["master", "master"]

    refused = failover(lab, nodes=lab.nodes)
    assert refused["failed"] and refused["guardrail"] == "split_brain" and refused["changed"] is False, refused
    assert refused["actions"] == []
    sides = {m["address"]: m for m in refused["split_brain"]}
    assert sides[lab.nodes[0]]["keys"] == 80 and sides[lab.nodes[0]]["connected_followers"] == 1
    assert sides[lab.nodes[2]]["keys"] == 55 and sides[lab.nodes[2]]["connected_followers"] == 0
    assert lab.nodes[0] in refused["msg"] and lab.nodes[2] in refused["msg"] and "target" in refused["msg"]
    assert "most replicas" not in refused["msg"]
    assert lab.roles() == before and lab.client(lab.ports[2]).get("b-0") is not None

    kept = failover(lab, nodes=lab.nodes, target=lab.nodes[2])
    assert kept["changed"] and kept["master"] == lab.nodes[2] and kept["verdict"]["state"] == "split_brain", kept
    assert lab.roles() == {lab.nodes[0]: f"replica of {lab.nodes[2]}", lab.nodes[1]: f"replica of {lab.nodes[2]}",
                           lab.nodes[2]: "master"}
    assert failover(lab, nodes=lab.nodes)["changed"] is False


def test_failover_to_a_replica_named_by_dns_name(lab_nodes):
    """FAILOVER TO takes the replica as the master lists it (ip=127.0.0.1), not as written."""
    lab = lab_nodes
    assert lab.host == "127.0.0.1"
    nodes = [f"localhost:{p}" for p in lab.ports]
    plan = failover(lab, check=True, nodes=nodes, target=nodes[1])
    assert plan["changed"] and plan["method"] == "failover", plan
    done = failover(lab, nodes=nodes, target=nodes[1])
    assert not done.get("failed"), done
    assert done["master"] == nodes[1] and done["actions"][0]["command"] == f"FAILOVER TO 127.0.0.1 {lab.ports[1]}"
    roles = lab.roles()
    assert roles[lab.nodes[1]] == "master"
    # FAILOVER re-points the old master with the master's view; REPLICAOF uses the name as given.
    assert roles[lab.nodes[0]] == f"replica of {lab.nodes[1]}"
    assert roles[lab.nodes[2]] == f"replica of {nodes[1]}"
    assert failover(lab, nodes=nodes, target=nodes[1])["changed"] is False


def test_a_step_refused_after_the_first_action_returns_what_was_done(lab_nodes):
    """The second step of a promotion is refused (ACL: no REPLICAOF on one replica): the module
    fails with the actions already done and the failed step, not a traceback."""
    lab = lab_nodes
    for port in lab.ports:
        rules = ["on", ">oncall-secret", "~*", "&*", "+@all"] + (["-replicaof", "-slaveof"] if port == lab.ports[2] else [])
        lab.client(port).execute_command("ACL", "SETUSER", "sre-oncall", *rules)
    lab.kill(lab.ports[0])
    result = failover(lab, nodes=lab.nodes, target=lab.nodes[1], min_master_down_seconds=0,
                      login_user="sre-oncall", login_password="oncall-secret")
    assert result["failed"] and result["changed"] is True, result
    assert "Traceback" not in result.get("module_stderr", "") and "exception" not in result
    assert [(a["action"], a["target"], a["result"]) for a in result["actions"] if a["action"] == "promote"] == \
        [("promote", lab.nodes[1], "done")]
    assert f"done so far: promote {lab.nodes[1]}" in result["msg"], result["msg"]
    assert "NOPERM" in result["msg"] or "permission" in result["msg"].lower(), result["msg"]
    assert lab.roles()[lab.nodes[1]] == "master" and lab.roles()[lab.nodes[2]] == f"replica of {lab.nodes[0]}"
    assert "oncall-secret" not in str(result)


def test_master_loading_its_dataset_is_not_replaced(lab_nodes):
    """A restarted master loading a big RDB answers LOADING: alive, not dead. The load is slowed
    with Redis's key-load-delay (microseconds per key) so the test needs no gigabytes."""
    lab = lab_nodes
    lab.write(lab.ports[0], 20000, prefix="rdb-", size=10, acked_by=2)
    lab.client(lab.ports[0]).save()
    lab.kill(lab.ports[0])
    node_dir = f"{lab.state_dir}/node-{lab.ports[0]}"
    # It answers clients between chunks of loaded bytes (1 KiB here, not 2 MiB) as it would mid-load.
    subprocess.run(["redis-server", f"{node_dir}/redis.conf", "--key-load-delay", "1000",
                    "--loading-process-events-interval-bytes", "1024"], check=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            lab.client(lab.ports[0]).ping()
            pytest.fail("the master finished loading before the test could see LOADING")
        except redis.exceptions.BusyLoadingError:
            break
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "the restarted master never answered"
            time.sleep(0.05)
    result = failover(lab, nodes=lab.nodes, min_master_down_seconds=0)
    assert not result.get("failed") and result["changed"] is False and result["actions"] == [], result
    assert result["verdict"]["state"] == "master_loading" and "LOADING" in result["verdict"]["reason"], result
    with pytest.raises(redis.exceptions.BusyLoadingError):
        lab.client(lab.ports[0]).ping()  # still loading: the verdict was about a live, loading master
    for port in lab.ports[1:]:
        assert lab.client(port).info("replication")["role"] == "slave"
