#!/usr/bin/env python
"""Write-unavailability window of a Redis master failure on the lab topology.

A writer issues SET every 10 ms against the current master. The window is the time from its
first failed write to its first successful write on the new master, for:
  a) playbooks/outage/redis_unavailable.yml run as soon as the replicas have seen the SIGKILLed
     master's link down for min_master_down_seconds (--min-down, default 10: the evidence the
     runbook waits for before it promotes), no sentinels,
  a2) the sre.runbooks.redis_failover module alone, same fault (the playbook minus Ansible's start-up),
  b) Sentinel's own automatic failover, down-after-milliseconds 30000 (Redis's default) and 5000.

    benchmarks/redis_failover [--runs N] [--min-down S] [--skip-default-sentinel]   (wrapper: the venv python)

Uses the lab (lab/redis); leaves it in its pristine topology, and stops it if it started it.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "build" / "collections"))

import redis  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

import sre_testlib  # noqa: E402

V = sre_testlib.lab_vars()
HOST, PASSWORD, NAME = V["lab_bind_address"], V["lab_redis_password"], V["lab_redis_master_name"]
PORTS = [V["lab_redis_master_port"], V["lab_redis_replica1_port"], V["lab_redis_replica2_port"]]
SENTINELS = [V[f"lab_redis_sentinel{i}_port"] for i in (1, 2, 3)]
STATE = Path(V["lab_state_dir"]) / "redis"


def client(port: int, password: str | None = PASSWORD) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, password=password, socket_timeout=0.5,
                       socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0), decode_responses=True)


def reset(sentinels: bool, down_after_ms: int | None = None) -> None:
    env = dict(os.environ)
    if down_after_ms:
        env["LAB_REDIS_DOWN_AFTER_MS"] = str(down_after_ms)
    subprocess.run([str(REPO / "lab" / "redis" / "reset")] + ([] if sentinels else ["--no-sentinels"]),
                   check=True, env=env, capture_output=True)


def kill_master() -> float:
    pid = int((STATE / f"node-{PORTS[0]}" / "redis.pid").read_text())
    at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return at


class Writer(threading.Thread):
    """SET every 10 ms against the current master; after a failure, finds the master again
    (from the sentinels when given, else the node that says role:master) and measures the gap."""

    def __init__(self, use_sentinels: bool) -> None:
        super().__init__(daemon=True)
        self.use_sentinels = use_sentinels
        self.port = PORTS[0]
        self.first_failure: float | None = None
        self.recovered: float | None = None
        self.new_master: int | None = None
        self.writes = self.failures = 0
        self.stop = threading.Event()

    def find_master(self) -> int | None:
        if self.use_sentinels:
            for s in SENTINELS:
                try:
                    addr = client(s, None).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)
                    return int(addr[1])
                except redis.exceptions.RedisError:
                    continue
            return None
        for port in PORTS:
            try:
                if client(port).info("replication")["role"] == "master":
                    return port
            except redis.exceptions.RedisError:
                continue
        return None

    def run(self) -> None:
        conn = client(self.port)
        i = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn.set("bench:writer", i)
                self.writes += 1
                if self.first_failure is not None and self.recovered is None and self.port != PORTS[0]:
                    self.recovered, self.new_master = time.monotonic(), self.port
            except redis.exceptions.RedisError:
                self.failures += 1
                if self.first_failure is None:
                    self.first_failure = time.monotonic()
                port = self.find_master()
                if port and port != self.port:
                    self.port, conn = port, client(port)
            i += 1
            time.sleep(max(0.0, 0.01 - (time.monotonic() - started)))

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.recovered is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        self.join(2)


MIN_DOWN = 10.0


def write_inventory(path: Path) -> Path:
    (path / "group_vars").mkdir(parents=True, exist_ok=True)
    link = path / "group_vars" / "all"
    if not link.exists():
        link.symlink_to(sre_testlib.LAB_INVENTORY / "group_vars" / "all")
    nodes = "\n".join(f'            - "{{{{ lab_bind_address }}}}:{p}"' for p in PORTS)
    (path / "hosts.yml").write_text(f"""all:
  children:
    redis:
      hosts:
        lab-redis:
          ansible_connection: local
          ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
          outage_platform: systemd
          redis_login_password: "{{{{ lab_redis_password }}}}"
          redis_unavailable_min_master_down_seconds: {MIN_DOWN}
          redis_nodes:
{nodes}
""")
    return path


def bench_playbook(inventory: Path) -> dict:
    reset(sentinels=False)
    writer = Writer(use_sentinels=False)
    writer.start()
    time.sleep(0.5)
    killed = kill_master()
    time.sleep(MIN_DOWN + 0.2)
    rc, _report, stderr = sre_testlib.run_playbook(REPO / "playbooks" / "outage" / "redis_unavailable.yml", inventory)
    playbook_s = time.monotonic() - killed
    writer.wait(10)
    if rc != 0:
        raise SystemExit(f"playbook failed: {stderr[-2000:]}")
    return dict(window=writer.recovered - writer.first_failure if writer.recovered else None, playbook=playbook_s)


def bench_module() -> dict:
    reset(sentinels=False)
    writer = Writer(use_sentinels=False)
    writer.start()
    time.sleep(0.5)
    killed = kill_master()
    time.sleep(MIN_DOWN + 0.2)
    result = sre_testlib.run_module("redis_failover", dict(nodes=[f"{HOST}:{p}" for p in PORTS], login_password=PASSWORD,
                                                           min_master_down_seconds=MIN_DOWN))
    module_s = time.monotonic() - killed
    writer.wait(10)
    if result.get("failed"):
        raise SystemExit(f"module failed: {result.get('msg')}")
    return dict(window=writer.recovered - writer.first_failure if writer.recovered else None, module=module_s)


def bench_sentinel(down_after_ms: int) -> dict:
    reset(sentinels=True, down_after_ms=down_after_ms)
    writer = Writer(use_sentinels=True)
    writer.start()
    time.sleep(0.5)
    kill_master()
    writer.wait(down_after_ms / 1000 + 60)
    return dict(window=writer.recovered - writer.first_failure if writer.recovered else None)


def fmt(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "no recovery"
    if len(got) == 1:
        return f"{got[0]:7.3f} s"
    return f"median {statistics.median(got):7.3f} s  min {min(got):.3f}  max {max(got):.3f}  (n={len(got)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--skip-default-sentinel", action="store_true",
                        help="skip the 30 s down-after case (saves ~45 s per run)")
    parser.add_argument("--min-down", type=float, default=10.0,
                        help="min_master_down_seconds: how long the replicas must see the link down (default 10)")
    args = parser.parse_args()
    global MIN_DOWN  # noqa: PLW0603 - one setting for the whole run
    MIN_DOWN = args.min_down
    was_up = sre_testlib.lab("redis", "status", check=False).returncode == 0
    if not was_up:
        sre_testlib.lab("redis", "up")
    scratch = tempfile.TemporaryDirectory(prefix="sre-bench-redis-")
    inventory = write_inventory(Path(scratch.name))
    rows: dict[str, list] = {}
    try:
        for _run in range(args.runs):
            p = bench_playbook(inventory)
            rows.setdefault("a) playbook after SIGKILL: write window", []).append(p["window"])
            rows.setdefault("a) playbook after SIGKILL: kill -> playbook done", []).append(p["playbook"])
            m = bench_module()
            rows.setdefault("a2) redis_failover module alone: write window", []).append(m["window"])
            rows.setdefault("a2) redis_failover module alone: kill -> module done", []).append(m["module"])
            rows.setdefault("b) Sentinel automatic, down-after 5000 ms: write window", []).append(
                bench_sentinel(5000)["window"])
            if not args.skip_default_sentinel:
                rows.setdefault("b) Sentinel automatic, down-after 30000 ms (default): write window", []).append(
                    bench_sentinel(30000)["window"])
    finally:
        scratch.cleanup()
        reset(sentinels=True)
        if not was_up:
            sre_testlib.lab("redis", "down", check=False)
    print(f"Redis failover, lab topology (1 master, 2 replicas, 3 sentinels), writer SET every 10 ms, {args.runs} run(s)")
    for name, values in rows.items():
        print(f"  {name:<72} {fmt(values)}")


if __name__ == "__main__":
    main()
