"""The triage verdict on real sre.runbooks.redis_health_info results (with `nodes`) from the lab
Redis group (master + 2 replicas, no sentinels so nothing fails over behind the test's back):
healthy -> nothing to do; a replica killed -> degraded, redis_unavailable; the master killed too
-> no reachable master, down."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import typing as t

import pytest
import sre_testlib
from sre_testlib import REPO, lab_var, run_module

from ansible_collections.sre.runbooks.plugins.plugin_utils import _triage

COMPONENTS = [{"name": "redis", "match": ["redis"], "impact": "secondary"}]


class Group:
    def __init__(self) -> None:
        host = lab_var("lab_bind_address")
        self.ports = [lab_var("lab_redis_master_port"), lab_var("lab_redis_replica1_port"), lab_var("lab_redis_replica2_port")]
        self.nodes = [f"{host}:{p}" for p in self.ports]
        self.password = lab_var("lab_redis_password")
        self.state_dir = f"{lab_var('lab_state_dir')}/redis"

    def reset(self) -> None:
        subprocess.run([str(REPO / "lab" / "redis" / "reset"), "--no-sentinels"], check=True, capture_output=True, text=True)

    def kill(self, port: int) -> None:
        with open(f"{self.state_dir}/node-{port}/redis.pid", encoding="utf-8") as fh:
            pid = int(fh.read())
        os.kill(pid, signal.SIGKILL)
        for _attempt in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def assess(self) -> dict[str, t.Any]:
        result = run_module("redis_health_info", {"nodes": self.nodes, "login_password": self.password, "connect_timeout": 2})
        assert result.get("failed") is not True, result.get("msg")
        return result


@pytest.fixture(scope="module")
def group() -> t.Iterator[Group]:
    with sre_testlib.lab_running("redis"):
        g = Group()
        g.reset()
        try:
            yield g
        finally:
            subprocess.run([str(REPO / "lab" / "redis" / "up")], check=False, capture_output=True,
                           env=dict(os.environ, LAB_REDIS_NO_SENTINELS="1"))
            g.reset()


def verdict(result):
    return _triage.verdict([{"source": "redis_health_info", "host": "lab-redis", "result": result}], components=COMPONENTS)


def test_healthy_group_is_nothing_to_do(group):
    v = verdict(group.assess())
    assert v["status"] == "healthy" and v["summary"] == "healthy, nothing to do", v["findings"]


def test_dead_replica_then_dead_master(group):
    group.kill(group.ports[2])
    v = verdict(group.assess())
    assert [f["kind"] for f in v["findings"]] == ["redis_node_down"] and v["severity"] == "P3"
    assert v["next"][0]["playbook"] == "redis_unavailable" and v["next"][0]["extra_vars"] == {"target": "lab-redis"}
    group.kill(group.ports[0])
    v = verdict(group.assess())
    kinds = {f["kind"] for f in v["findings"]}
    assert "redis_master_down" in kinds and v["components"][0]["status"] == "down"
    assert v["severity"] == "P2" and v["next"][0]["playbook"] == "redis_unavailable"
