"""The Redis lab for the integration tests: one session fixture starts it (lab_running), and
every test starts from the pristine topology (lab/redis/reset), so tests never depend on each
other's order and a failed test leaves nothing behind for the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import typing as t

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

import sre_testlib
from sre_testlib import REPO, lab_running, lab_var

RESET = REPO / "lab" / "redis" / "reset"
UP = REPO / "lab" / "redis" / "up"


class RedisLab:
    """Addresses, clients and fault injection for the lab topology (master + 2 replicas + 3 sentinels)."""

    def __init__(self) -> None:
        self.host = lab_var("lab_bind_address")
        self.password = lab_var("lab_redis_password")
        self.master_name = lab_var("lab_redis_master_name")
        self.ports = [lab_var("lab_redis_master_port"), lab_var("lab_redis_replica1_port"),
                      lab_var("lab_redis_replica2_port")]
        self.sentinel_ports = [lab_var(f"lab_redis_sentinel{i}_port") for i in (1, 2, 3)]
        self.nodes = [self.addr(p) for p in self.ports]
        self.sentinels = [self.addr(p) for p in self.sentinel_ports]
        self.state_dir = f"{lab_var('lab_state_dir')}/redis"

    def addr(self, port: int) -> str:
        return f"{self.host}:{port}"

    def client(self, port: int, password: str | None = "<lab>") -> redis.Redis:
        # No retries: redis-py's default backoff would spend seconds on every dead node.
        return redis.Redis(host=self.host, port=port, password=self.password if password == "<lab>" else password,
                           decode_responses=True, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def reset(self, sentinels: bool = True) -> None:
        subprocess.run([str(RESET)] + ([] if sentinels else ["--no-sentinels"]), check=True,
                       capture_output=True, text=True)

    def start_stopped(self) -> None:
        """Start the nodes that are down again, as configured (a restarted old master is a master)."""
        subprocess.run([str(UP)], check=True, capture_output=True, text=True,
                       env=dict(os.environ, LAB_REDIS_NO_SENTINELS="1"))

    def kill(self, port: int) -> None:
        pidfile = f"{self.state_dir}/node-{port}/redis.pid"
        with open(pidfile) as fh:
            pid = int(fh.read())
        os.kill(pid, signal.SIGKILL)
        for _attempt in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def roles(self) -> dict[str, str]:
        """Every node's role as the nodes themselves say: 'master', 'replica of host:port' or 'down'."""
        out = {}
        for port in self.ports:
            try:
                info = self.client(port).info("replication")
            except redis.exceptions.ConnectionError:
                out[self.addr(port)] = "down"
                continue
            out[self.addr(port)] = "master" if info["role"] == "master" else \
                f"replica of {info['master_host']}:{info['master_port']}"
        return out

    def sentinel_masters(self) -> set[str]:
        return {":".join(redis.Redis(host=self.host, port=p, decode_responses=True, retry=Retry(NoBackoff(), 0))
                         .execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name))
                for p in self.sentinel_ports}

    def sentinels_down_after(self, milliseconds: int) -> None:
        """Set every sentinel's down-after-milliseconds (the lab's is Redis's default, 30 s): how
        long a killed master stays "not agreed down" however slowly a test's runs go."""
        for port in self.sentinel_ports:
            redis.Redis(host=self.host, port=port, decode_responses=True, retry=Retry(NoBackoff(), 0)).execute_command(
                "SENTINEL", "SET", self.master_name, "down-after-milliseconds", milliseconds)

    def write(self, port: int, n: int, prefix: str = "k", size: int = 100, acked_by: int = 0) -> None:
        """Write n keys; with acked_by, wait until that many replicas acknowledged them (WAIT), so
        a test that kills the master next knows the writes were acknowledged, not just sent."""
        client = self.client(port)
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"{prefix}{i}", "x" * size)
        pipe.execute()
        if acked_by:
            acked = client.execute_command("WAIT", acked_by, 10000)
            assert acked >= acked_by, f"only {acked} of {acked_by} replicas acknowledged the writes"

    def fill_client_slots(self, port: int) -> tuple[redis.Redis, list[redis.Redis]]:
        """Set maxclients to what is connected now plus two and take every free slot: a new
        connection then gets 'max number of clients reached', as in a connection leak."""
        admin = self.client(port)
        connected = int(admin.info("clients")["connected_clients"])
        admin.config_set("maxclients", connected + 2)
        fillers = []
        for _slot in range(10):
            client = self.client(port)
            try:
                client.ping()
            except redis.exceptions.ConnectionError as exc:
                assert "max number of clients" in str(exc)
                break
            fillers.append(client)
        else:
            pytest.fail("maxclients never refused a connection")
        return admin, fillers

    def inventory(self, tmp_path, sentinels_only: bool = False, with_sentinels: bool = False, **host_vars: t.Any):
        """A one-host inventory (controller, local connection) for the playbook, the way the lab
        inventory describes the Redis group: nodes, sentinels only, or both (the lab's own)."""
        hostvars: dict[str, t.Any] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "outage_platform": "systemd",
            "redis_login_password": "{{ lab_redis_password }}",
        }
        if sentinels_only or with_sentinels:
            hostvars.update(redis_sentinels=self.sentinels, redis_master_name=self.master_name)
        if not sentinels_only:
            hostvars["redis_nodes"] = self.nodes
        hostvars.update(host_vars)
        inv = tmp_path / "inventory"
        (inv / "group_vars").mkdir(parents=True, exist_ok=True)
        if not (inv / "group_vars" / "all").exists():
            (inv / "group_vars" / "all").symlink_to(sre_testlib.LAB_INVENTORY / "group_vars" / "all")
        (inv / "hosts.yml").write_text(yaml.safe_dump(
            {"all": {"children": {"redis": {"hosts": {"lab-redis": hostvars}}}}}))
        return inv


@pytest.fixture(scope="session")
def redis_lab() -> t.Iterator[RedisLab]:
    was_up = sre_testlib.lab("redis", "status", check=False).returncode == 0
    with lab_running("redis"):
        lab = RedisLab()
        try:
            yield lab
        finally:
            # A lab that stays up (a developer's, or LAB_KEEP=1) goes back to pristine.
            if was_up or os.environ.get("LAB_KEEP") == "1":
                lab.reset()


@pytest.fixture
def lab(redis_lab: RedisLab) -> RedisLab:
    """Pristine topology with sentinels watching the master."""
    redis_lab.reset()
    return redis_lab


@pytest.fixture
def lab_nodes(redis_lab: RedisLab) -> RedisLab:
    """Pristine nodes, no sentinels: an unmanaged group the module drives directly."""
    redis_lab.reset(sentinels=False)
    return redis_lab
