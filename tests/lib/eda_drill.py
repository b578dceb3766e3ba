"""The alert -> recovery drill (tests/drills/test_alert_to_recovery.py, benchmarks/alert_to_recovery.py): real
Prometheus + Alertmanager (lab/obs) scraping the lab, ansible-rulebook running
extensions/eda/rulebooks/outage.yml, and three real faults - PostgreSQL connection exhaustion
(lab/pg/inject), a killed Redis master, a killed nginx on a lab systemd host.

Each scenario returns the wall-clock time of every stage: fault -> alert firing (Alertmanager has
it) -> webhook (the rulebook received it: the event's meta.received_at, from the gate's ledger) ->
playbook start (the scenario playbook's incident_start ran: the incident record's last_run_at) ->
healed (the service answers as it should, seen from here) -> alert resolved (Alertmanager no
longer has it active). Nothing here sleeps for a fixed time: every stage is a polled condition.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg2
import redis
import yaml

import sre_testlib

STAGES = ("firing", "webhook", "playbook_start", "healed", "resolved")
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
SCENARIO_VARS = {
    # lab/pg/inject holds 320 of 1197 usable connections (27 %); the lab alert fires above 20 %.
    "db_exhaustion": {"db_exhaustion_utilisation_threshold": 20, "db_exhaustion_min_idle": "2s",
                      "db_exhaustion_min_idle_in_transaction": "2s"},
    "redis_unavailable": {"redis_unavailable_min_master_down_seconds": 1},
    "service_down": {},
}
PG_THRESHOLD = 20.0


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    text = iso.replace("Z", "+00:00")
    if "." in text:  # nanoseconds -> microseconds
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    return datetime.datetime.fromisoformat(text).timestamp()


def wait_for(condition: t.Callable[[], t.Any], what: str, timeout: float, interval: float = 0.1) -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def hosts_exclusive() -> t.Iterator[None]:
    """The lab hosts' lock (lab/hosts/exclusive), unless this process already holds it."""
    state_dir = os.environ.get("LAB_STATE_DIR") or sre_testlib.lab_var("lab_state_dir")
    lock = f"{state_dir.rstrip('/')}.hosts.lock"
    if os.environ.get("SRE_LAB_HOSTS_LOCKED") == lock:
        yield
        return
    with open(lock, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        os.environ["SRE_LAB_HOSTS_LOCKED"] = lock
        try:
            yield
        finally:
            os.environ.pop("SRE_LAB_HOSTS_LOCKED", None)
            fcntl.flock(fh, fcntl.LOCK_UN)


class Drill:
    """The lab (pg, redis without sentinels, one systemd host, obs) and one ansible-rulebook."""

    def __init__(self, workdir: Path) -> None:
        v = sre_testlib.lab_vars()
        self.v = v
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.addr = v["lab_bind_address"]
        self.am = f"http://{self.addr}:{v['lab_alertmanager_port']}"
        self.hook = f"http://{self.addr}:{v['lab_eda_webhook_port']}/alerts"
        self.log_path = workdir / "rulebook.log"
        self.proc: subprocess.Popen | None = None
        self.redis_ports = [v["lab_redis_master_port"], v["lab_redis_replica1_port"], v["lab_redis_replica2_port"]]

    # --- lab and rulebook lifecycle ---------------------------------------------------------------
    @contextlib.contextmanager
    def running(self) -> t.Iterator["Drill"]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(hosts_exclusive())
            stack.enter_context(sre_testlib.lab_running("pg"))
            redis_was_up = sre_testlib.lab("redis", "status", check=False).returncode == 0
            stack.enter_context(sre_testlib.lab_running("redis"))
            if redis_was_up or os.environ.get("LAB_KEEP") == "1":  # a Redis lab that stays up goes back to pristine
                stack.callback(self._redis_pristine)
            stack.enter_context(sre_testlib.lab_running("hosts", "1"))
            # An unmanaged Redis group (no sentinels): the playbook, not Sentinel, must heal it.
            subprocess.run([str(sre_testlib.REPO / "lab" / "redis" / "reset"), "--no-sentinels"], check=True,
                           capture_output=True, text=True, timeout=120)
            self.inventory = self._inventory()
            # obs last: its scrape targets are the components up now, and no alert fires from the resets.
            stack.enter_context(sre_testlib.lab_running("obs"))
            self._start_rulebook()
            stack.callback(self.stop_rulebook)
            self.wait_scraped()
            yield self

    def _redis_pristine(self) -> None:
        subprocess.run([str(sre_testlib.REPO / "lab" / "redis" / "reset")], check=False, capture_output=True,
                       timeout=120)

    def _inventory(self) -> Path:
        """The lab inventory as the rulebook sees it: postgresql, redis (its nodes, no sentinels:
        this drill's group is unmanaged), systemd_hosts."""
        inv = sre_testlib.lab_inventory_of(self.workdir, "postgresql", "redis", "systemd_hosts")
        data = yaml.safe_load((inv / "hosts.yml").read_text())
        redis_host = data["all"]["children"]["redis"]["hosts"]["lab-redis"]
        redis_host.pop("redis_sentinels", None)
        redis_host.pop("redis_master_name", None)
        (inv / "hosts.yml").write_text(yaml.safe_dump(data))
        return inv

    def _start_rulebook(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        vars_file = self.workdir / "rulebook-vars.yml"
        vars_file.write_text(yaml.safe_dump({
            "webhook_host": self.addr, "webhook_port": int(self.v["lab_eda_webhook_port"]),
            "auto_remediate": {s: True for s in SCENARIO_VARS}, "max_remediations_per_hour": {"default": 5},
            "scenario_vars": SCENARIO_VARS}))
        # Unbuffered: the drill reads the rulebook's output (a debug rule's message) while it runs.
        env = sre_testlib.ansible_env({"SRE_RUNBOOKS_STATE_DIR": str(self.state_dir), "PYTHONUNBUFFERED": "1",
                                       "JAVA_HOME": os.environ.get("JAVA_HOME") or JAVA_HOME,
                                       "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp")})
        self.log = open(self.log_path, "ab")  # noqa: SIM115  (closed by stop_rulebook)
        self.proc = subprocess.Popen(
            [str(sre_testlib.VENV_BIN / "ansible-rulebook"), "-r",
             str(sre_testlib.REPO / "extensions" / "eda" / "rulebooks" / "outage.yml"),
             "-i", str(self.inventory), "--vars", str(vars_file)],
            cwd=self.workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"ansible-rulebook exited ({self.proc.returncode}): {self.log_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection((self.addr, int(self.v["lab_eda_webhook_port"])), 1):
                return True
            return False

        wait_for(listening, "ansible-rulebook's webhook", 180, 0.2)

    def stop_rulebook(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc:
            self.log.close()

    def log_text(self) -> str:
        """The rulebook's output, whitespace folded (the playbook output wraps long lines)."""
        return " ".join(self.log_path.read_text(errors="replace").split()) if self.log_path.exists() else ""

    def idle(self) -> bool:
        """No playbook runs under the rulebook (its child processes)."""
        children = set()
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children |= set((task / "children").read_text().split())
        return not children

    def wait_scraped(self) -> None:
        """Prometheus has every drilled metric, healthy, before any fault."""
        prom = f"http://{self.addr}:{self.v['lab_prometheus_port']}/api/v1/query?query="

        def ready() -> bool:
            for query in ("pg_settings_max_connections", 'redis_instance_info{role="master"}', "probe_success == 1"):
                with contextlib.suppress(OSError, ValueError):
                    body = json.loads(urllib.request.urlopen(prom + urllib.parse.quote(query), timeout=5).read())
                    if body["data"]["result"]:
                        continue
                return False
            return True

        wait_for(ready, "Prometheus to scrape pg, redis and the lab host", 120, 0.5)

    # --- observations -------------------------------------------------------------------------------
    def active_alerts(self, alertname: str) -> list[dict[str, t.Any]]:
        url = f"{self.am}/api/v2/alerts?active=true&silenced=false&inhibited=false&filter=" + urllib.parse.quote(
            f'alertname="{alertname}"')
        with contextlib.suppress(OSError, ValueError):
            return [a for a in json.loads(urllib.request.urlopen(url, timeout=5).read())
                    if a.get("status", {}).get("state") == "active"]
        return []

    def ledger(self) -> list[dict[str, t.Any]]:
        path = self.state_dir / "eda-ledger.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def entries(self, scenario: str, kind: str = "remediate", since: float = 0) -> list[dict[str, t.Any]]:
        return [e for e in self.ledger() if e["scenario"] == scenario and e.get("kind") == kind and e["ts"] >= since]

    def incident_run_at(self, scenario: str, target: str) -> float | None:
        path = self.state_dir / f"{scenario}--{target}.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            return _epoch(json.loads(path.read_text())["last_run_at"])
        return None

    def post(self, payload: dict[str, t.Any]) -> None:
        request = urllib.request.Request(self.hook, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    # --- one scenario -------------------------------------------------------------------------------
    def run_scenario(self, scenario: str, alertname: str, target: str, inject: t.Callable[[], float | None],
                     healed: t.Callable[[], bool], timeout: float = 180) -> dict[str, t.Any]:
        """inject() makes the fault and returns when it happened (None: when inject() returned)."""
        t_fault = time.time()
        at = inject()
        times: dict[str, float] = {"fault": at or time.time()}
        alert = wait_for(lambda: self.active_alerts(alertname), f"{alertname} to fire", timeout)[0]
        # Prometheus' own time of firing (startsAt; same machine, same clock), not when a poll saw it.
        times["firing"] = _epoch(alert.get("startsAt")) or time.time()
        entry = wait_for(lambda: self.entries(scenario, since=t_fault), f"the rulebook to run {scenario}", timeout)[0]
        times["webhook"] = _epoch(entry["alert"]["received_at"]) or entry["ts"]
        # The scenario playbook's first task stamps the incident record (an earlier run's stamp is older).
        times["playbook_start"] = wait_for(lambda: (self.incident_run_at(scenario, target) or 0) >= entry["ts"]
                                           and self.incident_run_at(scenario, target),
                                           f"{scenario}'s playbook to start", timeout)
        wait_for(healed, f"{scenario} to heal", timeout)
        times["healed"] = time.time()
        wait_for(lambda: not self.active_alerts(alertname), f"{alertname} to resolve", timeout)
        times["resolved"] = time.time()
        resolve = wait_for(lambda: self.entries(scenario, kind="resolve", since=t_fault),
                           f"the rulebook to resolve the incident of {scenario}", timeout)[0]
        wait_for(self.idle, "the rulebook's runs to finish", timeout, 0.2)
        return {"scenario": scenario, "alert": alertname, "target": target, "times": times, "entry": entry,
                "resolve": resolve, "runs": len(self.entries(scenario, since=t_fault))}

    # PostgreSQL: lab/pg/inject holds 300 idle + 20 idle-in-transaction connections.
    def pg_utilisation(self) -> float:
        conn = psycopg2.connect(host=self.addr, port=self.v["lab_pg_port"], user=self.v["lab_pg_superuser"],
                                password=self.v["lab_pg_password"], dbname="postgres", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
                            "current_setting('max_connections')::int "
                            "- current_setting('superuser_reserved_connections')::int FROM pg_stat_activity")
                clients, usable = cur.fetchone()
        finally:
            conn.close()
        return 100.0 * clients / usable

    def db_exhaustion(self) -> dict[str, t.Any]:
        inject = sre_testlib.REPO / "lab" / "pg" / "inject"
        try:
            result = self.run_scenario(
                "db_exhaustion", "HighDatabaseConnections", "lab-postgres",
                # The fault is there once the injector holds every connection (it returns then).
                lambda: subprocess.run([str(inject), "300", "20"], check=True, capture_output=True, timeout=150) and None,
                lambda: self.pg_utilisation() < PG_THRESHOLD)
            result["utilisation_after"] = self.pg_utilisation()
            return result
        finally:
            subprocess.run([str(inject), "stop"], capture_output=True, timeout=60, check=False)

    # Redis: the master is killed (SIGKILL); no sentinels, so only the playbook can promote a replica.
    def redis_client(self, port: int) -> redis.Redis:
        return redis.Redis(host=self.addr, port=port, password=self.v["lab_redis_password"], socket_timeout=2,
                           socket_connect_timeout=2)

    def redis_master(self) -> int | None:
        for port in self.redis_ports:
            with contextlib.suppress(redis.RedisError, OSError):
                if self.redis_client(port).info("replication")["role"] == "master":
                    return port
        return None

    def redis_unavailable(self) -> dict[str, t.Any]:
        master = self.redis_master()
        assert master == self.redis_ports[0], f"the drill expects the lab master on {self.redis_ports[0]}"
        pidfile = Path(self.v["lab_state_dir"]) / "redis" / f"node-{master}" / "redis.pid"

        def kill() -> float:
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGKILL)
            at = time.time()
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the master to die", 30, 0.02)
            return at

        def healed() -> bool:
            port = self.redis_master()
            if port is None:
                return False
            with contextlib.suppress(redis.RedisError, OSError):
                client = self.redis_client(port)
                client.set("sre-eda-drill", "ok")
                return client.get("sre-eda-drill") == b"ok"
            return False

        result = self.run_scenario("redis_unavailable", "RedisDown", "lab-redis", kill, healed)
        result["new_master"] = self.redis_master()
        return result

    # systemd: nginx on lab-host-1 killed (SIGKILL: the unit fails), as tests/integration/systemd do.
    def service_down(self) -> dict[str, t.Any]:
        hosts = yaml.safe_load((sre_testlib.LAB_INVENTORY / "hosts_systemd.yml").read_text())["systemd_hosts"]
        hv = {**hosts.get("vars", {}), **hosts["hosts"]["lab-host-1"]}
        url = f"http://{hv['ansible_host']}/"

        def ssh(command: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["ssh", "-i", hv["ansible_ssh_private_key_file"], "-o", "BatchMode=yes", "-o",
                 "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                 f"root@{hv['ansible_host']}", command], capture_output=True, text=True, timeout=60, check=False)

        def kill() -> float:
            ssh("systemctl kill --signal=SIGKILL nginx.service")
            at = time.time()
            wait_for(lambda: ssh("systemctl show -P ActiveState nginx.service").stdout.strip() == "failed",
                     "nginx to fail", 20, 0.2)
            return at

        def healed() -> bool:
            with contextlib.suppress(OSError, urllib.error.URLError):
                return urllib.request.urlopen(url, timeout=2).status == 200
            return False

        try:
            return self.run_scenario("service_down", "ServiceDown", "lab-host-1", kill, healed)
        finally:
            ssh("systemctl reset-failed; systemctl start nginx.service")

    # --- the storm ----------------------------------------------------------------------------------
    def storm(self, count: int = 50) -> dict[str, t.Any]:
        """`count` identical alerts (one alert instance: same labels, fingerprint and startsAt) as
        fast as the webhook takes them; then an end marker, processed after all of them."""
        assert count % 10 == 0
        fingerprint = f"storm{uuid.uuid4().hex[:12]}"
        alert = {"status": "firing", "fingerprint": fingerprint,
                 "labels": {"alertname": "HighDatabaseConnections", "inventory_host": "lab-postgres",
                            "drill": fingerprint},
                 "startsAt": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")}
        started = time.monotonic()
        # notifications of 10 copies each (the splitter makes every copy an event), from parallel senders at
        # once, as the replicas of an Alertmanager cluster and their retries would post them.
        per_post = 10
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda _n: self.post({"receiver": "drill", "status": "firing", "alerts": [alert] * per_post}),
                          range(count // per_post)))
        elapsed = time.monotonic() - started
        marker = f"EdaDrillEnd{fingerprint}"
        self.post({"alerts": [{"status": "firing", "fingerprint": marker, "labels": {"alertname": marker}}]})
        wait_for(lambda: f"{marker}: no scenario for this alert" in self.log_text(), "the storm to be processed", 120)
        runs = wait_for(lambda: [e for e in self.ledger() if e["alert"]["fingerprint"] == fingerprint],
                        "the storm's run", 120)
        wait_for(self.idle, "the rulebook's runs to finish", 180, 0.2)
        runs = [e for e in self.ledger() if e["alert"]["fingerprint"] == fingerprint]
        return {"posted": count, "seconds": elapsed, "runs": runs}


def table(results: t.Sequence[dict[str, t.Any]]) -> str:
    """Seconds since the fault, per stage and scenario."""
    head = f"{'scenario':<18} {'alert':<24}" + "".join(f"{s:>15}" for s in STAGES)
    lines = [head, "-" * len(head)]
    for r in results:
        times = r["times"]
        lines.append(f"{r['scenario']:<18} {r['alert']:<24}"
                     + "".join(f"{times[s] - times['fault']:>14.1f}s" for s in STAGES))
    return "\n".join(lines)


def cleanup_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
