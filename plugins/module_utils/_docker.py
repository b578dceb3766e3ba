# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker Engine API access and the compose-service logic shared by compose_service_info and
compose_service.

The client speaks the Engine's HTTP API over its Unix socket (or plain TCP) with the standard
library only, so a compose host needs nothing installed besides Docker itself: the Docker SDK
is rarely on such hosts, and community.docker's client needs C(requests) there. Services are
found by the labels docker-compose v1 and v2 both set (com.docker.compose.project/service), so
either CLI's projects work.

The decisions (what is down, what crash-loops, what to start or restart once) are plain
functions of the inspected containers, unit-tested branch by branch.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import http.client
import json
import socket
import typing as t
import urllib.parse

from ansible.module_utils.basic import env_fallback

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import mask_text

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
DEFAULT_HOST = "unix:///var/run/docker.sock"
STOPPED_STATES = ("exited", "dead", "created")
# Concurrent per-container calls (inspect, stats, logs): the Engine has no batch form of them.
WORKERS = 8


def docker_argument_spec() -> dict[str, t.Any]:
    return {
        "docker_host": {"type": "str", "default": DEFAULT_HOST, "fallback": (env_fallback, ["DOCKER_HOST"])},
        "timeout": {"type": "float", "default": 60.0},
    }


class DockerError(Exception):
    """A failed Engine call; the message names the host and the next step."""

    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerAPI:
    """The few Engine endpoints the runbooks need. One connection per call, so calls may run in
    threads."""

    def __init__(self, host: str, timeout: float = 60.0) -> None:
        self.host = host
        self.timeout = timeout
        parsed = urllib.parse.urlparse(host)
        if parsed.scheme == "unix":
            self._unix = parsed.path
            self._netloc = None
        elif parsed.scheme in ("tcp", "http") and parsed.hostname:
            self._unix = None
            self._netloc = (parsed.hostname, parsed.port or 2375)
        else:
            raise DockerError(f"docker_host {host!r} is not unix:///PATH or tcp://HOST:PORT (TLS is not supported)")

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        timeout = self.timeout if timeout is None else timeout
        if self._unix is not None:
            return _UnixConnection(self._unix, timeout)
        return http.client.HTTPConnection(self._netloc[0], self._netloc[1], timeout=timeout)

    def call(self, method: str, path: str, query: dict[str, t.Any] | None = None,
             timeout: float | None = None) -> tuple[int, bytes]:
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        conn = self._connection(timeout)
        try:
            conn.request(method, path, headers={"Host": "docker"})
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DockerError(f"cannot reach the Docker engine at {self.host}: {exc}; is dockerd running, "
                              "and is docker_host (or DOCKER_HOST) right?") from exc
        finally:
            conn.close()
        if response.status >= 400:
            try:
                message = json.loads(body).get("message", "")
            except ValueError:
                message = body.decode("utf-8", "replace")
            raise DockerError(f"{method} {path.split('?')[0]} on {self.host}: HTTP {response.status} {message}".strip(),
                              response.status)
        return response.status, body

    def get_json(self, path: str, **query: t.Any) -> t.Any:
        return json.loads(self.call("GET", path, query)[1] or b"null")

    def containers(self, project: str | None) -> list[dict[str, t.Any]]:
        """Every compose container (of one project, or of all), running or not: one list call."""
        label = f"{PROJECT_LABEL}={project}" if project else PROJECT_LABEL
        return self.get_json("/containers/json", all="1", filters=json.dumps({"label": [label]}))

    def inspect(self, container_id: str) -> dict[str, t.Any]:
        return self.get_json(f"/containers/{container_id}/json")

    def stats(self, container_id: str) -> dict[str, t.Any]:
        # stream=false waits for two samples (about a second), which is what a CPU % needs.
        return self.get_json(f"/containers/{container_id}/stats", stream="false")

    def logs(self, container_id: str, lines: int) -> str:
        body = self.call("GET", f"/containers/{container_id}/logs",
                         {"stdout": "1", "stderr": "1", "tail": str(lines)})[1]
        return demux(body)

    def events(self, since: float, until: float, project: str, events: t.Sequence[str]) -> list[dict[str, t.Any]]:
        """Container events of one project between two moments: one call (until makes it end)."""
        filters = {"type": ["container"], "event": list(events), "label": [f"{PROJECT_LABEL}={project}"]}
        body = self.call("GET", "/events", {"since": f"{since:.3f}", "until": f"{until:.3f}",
                                            "filters": json.dumps(filters)})[1]
        return [json.loads(line) for line in body.decode("utf-8", "replace").splitlines() if line.strip()]

    def post(self, path: str, timeout: float | None = None, **query: t.Any) -> int:
        return self.call("POST", path, query, timeout=timeout)[0]


def demux(body: bytes) -> str:
    """The log stream of a container without a TTY is framed (8-byte header: stream, 0, 0, 0,
    big-endian size); with a TTY it is raw."""
    if len(body) < 8 or body[0] not in (0, 1, 2) or body[1:4] != b"\0\0\0":
        return body.decode("utf-8", "replace")
    out, i = [], 0
    while i + 8 <= len(body):
        size = int.from_bytes(body[i + 4:i + 8], "big")
        out.append(body[i + 8:i + 8 + size])
        i += 8 + size
    return b"".join(out).decode("utf-8", "replace")


def parallel(func: t.Callable[[t.Any], t.Any], items: t.Sequence[t.Any]) -> list[t.Any]:
    """func over items in threads; an item's exception is returned in its place, not raised."""
    def guarded(item: t.Any) -> t.Any:
        try:
            return func(item)
        except Exception as exc:  # pylint: disable=broad-except
            return exc
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(WORKERS, len(items))) as pool:
        return list(pool.map(guarded, items))


def parse_docker_time(value: str | None) -> datetime.datetime | None:
    """Docker's RFC 3339 times (nanoseconds, Z) -> aware datetime; the zero time -> None."""
    if not value or value.startswith("0001-"):
        return None
    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        digits = "".join(ch for ch in frac if ch.isdigit())
        rest = frac[len(digits):]
        text = f"{head}.{digits[:6]}{rest}"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def container_record(inspected: dict[str, t.Any]) -> dict[str, t.Any]:
    """What a runbook reads of one container (docker inspect), never its environment."""
    state = inspected.get("State") or {}
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    host_config = inspected.get("HostConfig") or {}
    health = state.get("Health") or {}
    return {
        "name": (inspected.get("Name") or "").lstrip("/"),
        "id": (inspected.get("Id") or "")[:12],
        "project": labels.get(PROJECT_LABEL),
        "service": labels.get(SERVICE_LABEL),
        "number": int(labels.get(NUMBER_LABEL) or 0),
        "oneoff": labels.get(ONEOFF_LABEL) == "True",
        "image": (inspected.get("Config") or {}).get("Image"),
        "state": state.get("Status") or "unknown",
        "running": bool(state.get("Running")),
        "health": health.get("Status"),
        "failing_streak": health.get("FailingStreak"),
        "restart_count": inspected.get("RestartCount", 0),
        "restart_policy": (host_config.get("RestartPolicy") or {}).get("Name") or "no",
        "exit_code": state.get("ExitCode"),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": mask_text(state.get("Error")) or None,
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt") if not state.get("Running") else None,
        "memory_limit_bytes": host_config.get("Memory") or None,
    }


def usage_record(stats: dict[str, t.Any]) -> dict[str, t.Any]:
    """docker stats' numbers from one /stats sample: CPU % of one CPU x online CPUs, memory
    without the page cache (as docker stats counts it), in % of the limit (the host's memory
    when the container has none)."""
    memory = stats.get("memory_stats") or {}
    details = memory.get("stats") or {}
    usage = memory.get("usage")
    if usage is not None:
        # cgroup v1 counts the page cache as "cache", v2 as "inactive_file".
        usage -= details.get("total_inactive_file", details.get("inactive_file", details.get("cache", 0))) or 0
    limit = memory.get("limit")
    cpu, precpu = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_percent = None
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - precpu["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - precpu["system_cpu_usage"]
        cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
        if system_delta > 0:
            cpu_percent = round(cpu_delta / system_delta * cpus * 100.0, 2)
    except (KeyError, TypeError):
        pass
    return {
        "cpu_percent": cpu_percent,
        "memory_usage_bytes": usage,
        "memory_percent": round(usage * 100.0 / limit, 1) if usage is not None and limit else None,
    }


def problem_of(container: dict[str, t.Any], now: datetime.datetime, loop_threshold: int,
               stable_seconds: float) -> str | None:
    """Why a container needs a human or an action, or None when it serves.

    stopped: not running and Docker will not start it again (stopped by hand, or exited with no
      restart policy); restarting: Docker's restart policy is between two crashes; looping:
      running now but restarted often and lately (a crash loop seen between two crashes);
      unhealthy: running, and its healthcheck fails; paused: frozen by someone on purpose.
    """
    state = container["state"]
    if state == "restarting":
        return "restarting"
    if state == "paused":
        return "paused"
    if state in STOPPED_STATES or not container["running"]:
        return "stopped"
    if container["health"] == "unhealthy":
        return "unhealthy"
    started = parse_docker_time(container.get("started_at"))
    if (container.get("restart_count") or 0) >= loop_threshold and started is not None \
            and (now - started).total_seconds() < stable_seconds:
        return "looping"
    return None


def service_verdict(containers: list[dict[str, t.Any]], services: list[str] | None, acted: dict[str, list[str]],
                    now: datetime.datetime, loop_threshold: int = 3, stable_seconds: float = 60.0,
                    max_actions: int = 5) -> dict[str, t.Any]:
    """What is wrong with a compose project's services and what to do about it, once.

    containers: container_record()s (one-off `run` containers are ignored); services: the ones
    in scope (None: every service found); acted: {"restart": [names], "start": [names]} of the
    containers this incident already restarted or started (Docker events since its start).

    - stopped, never started this incident -> start it (docker-compose start);
    - stopped again after this incident started it -> report (it does not stay up);
    - restarting / looping / unhealthy, not restarted this incident -> restart once;
    - the same after this incident's restart -> report, do not restart again;
    - paused -> report (someone froze it on purpose);
    - more containers to act on than max_actions -> act on none (the host is the problem).
    """
    scoped = [c for c in containers if not c.get("oneoff") and (services is None or c["service"] in services)]
    found = sorted({c["service"] for c in scoped if c.get("service")})
    missing = [s for s in (services or []) if s not in found]
    restarted, started = set(acted.get("restart") or []), set(acted.get("start") or [])
    problems: dict[str, str] = {}
    to_start, to_restart, report, oom = [], [], [], []
    for c in sorted(scoped, key=lambda c: (c["service"] or "", c["number"])):
        if c.get("oom_killed"):
            oom.append(c["name"])
        problem = problem_of(c, now, loop_threshold, stable_seconds)
        if problem is None:
            continue
        problems[c["name"]] = problem
        if problem == "paused":
            report.append(c["name"])
        elif problem == "stopped":
            (report if c["name"] in started or c["name"] in restarted else to_start).append(c["name"])
        elif c["name"] in restarted:
            report.append(c["name"])
        else:
            to_restart.append(c["name"])
    by_service = {s: [c["name"] for c in scoped if c["service"] == s] for s in found}
    service_of = {c["name"]: c["service"] for c in scoped}
    problem = None
    if missing:
        problem = (f"service(s) {', '.join(missing)} have no container in this project (found: "
                   f"{', '.join(found) or 'none'}); creating containers is docker-compose up's job, not a runbook's")
    elif len(to_start) + len(to_restart) > max_actions:
        problem = (f"guardrail max_actions: {len(to_start) + len(to_restart)} containers need a start or restart "
                   f"(limit {max_actions}); that many at once points at the host, not the services. "
                   "Check memory, disk and the Docker daemon; raise max_actions to act anyway")
        to_start, to_restart = [], []
    names = sorted(problems)
    parts = [f"{n} {problems[n]}" for n in names]
    if oom:
        parts.append(f"OOM-killed: {', '.join(oom)}")
    return {
        "healthy": not problems and not missing,
        "problems": problems,
        "down": names,
        "oom_killed": oom,
        "to_start": to_start,
        "to_restart": to_restart,
        "report": report,
        "services_to_start": sorted({service_of[n] for n in to_start}),
        "services_to_restart": sorted({service_of[n] for n in to_restart}),
        "act": problem is None and bool(to_start or to_restart),
        "problem": problem,
        "services": by_service,
        "summary": "; ".join(parts) if parts else "every container running and healthy",
    }


def acted_containers(events: list[dict[str, t.Any]]) -> dict[str, list[str]]:
    """Docker events -> the containers restarted or started on request. An API restart (docker
    restart, docker-compose restart, this collection) logs a `restart` event; a restart policy
    logs only die/start, so `restart` events are the human (or runbook) restarts. Starts are
    taken as given: a container stopped now that started since is one that did not stay up."""
    acted: dict[str, set[str]] = {"restart": set(), "start": set()}
    for event in events:
        action = event.get("Action") or event.get("status")
        name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
        if name and action in acted:
            acted[action].add(name)
    return {k: sorted(v) for k, v in acted.items()}


def oom_kills(events: list[dict[str, t.Any]]) -> dict[str, int]:
    """Docker events -> how many times each container was OOM-killed (`oom` events). A container
    under a restart policy runs again a moment after its OOM kill, and its State.OOMKilled and
    exit code describe only the current run: the events keep the evidence."""
    counts: dict[str, int] = {}
    for event in events:
        name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
        if name and (event.get("Action") or event.get("status")) == "oom":
            counts[name] = counts.get(name, 0) + 1
    return counts


def log_tail(api: DockerAPI, container_id: str, lines: int) -> list[str]:
    text = mask_text(api.logs(container_id, lines))
    return text.splitlines()[-lines:] if lines else []


def plan_service_action(containers: list[dict[str, t.Any]], services: list[str], known: list[str], state: str,
                        acted: dict[str, list[str]], max_containers: int, since: str | None,
                        only: list[str] | None = None) -> dict[str, t.Any]:
    """Which containers compose_service starts or restarts, which it leaves alone and why, or the
    guardrail that stops it. containers: the named services' container_record()s; known: every
    service of the project; only: the containers to limit the action to (None: all)."""
    missing = [s for s in services if s not in known]
    if missing:
        return {"problem": f"service(s) {', '.join(missing)} not in the project (it has: {', '.join(known)}); "
                           "nothing was changed", "act": [], "skipped": {}}
    scoped = sorted((c for c in containers if not c.get("oneoff")), key=lambda c: (c["service"], c["number"]))
    have = {c["service"] for c in scoped}
    empty = [s for s in services if s not in have]
    if empty:
        return {"problem": f"service(s) {', '.join(empty)} have no container; creating one is docker-compose up's "
                           "job, not a runbook's; nothing was changed", "act": [], "skipped": {}}
    if only is not None:
        strangers = sorted(set(only) - {c["name"] for c in scoped})
        if strangers:
            return {"problem": f"container(s) {', '.join(strangers)} do not belong to service(s) {', '.join(services)}; "
                               "nothing was changed", "act": [], "skipped": {}}
        scoped = [c for c in scoped if c["name"] in only]
    act, skipped = [], {}
    restarted = set(acted.get("restart") or [])
    for c in scoped:
        if c["state"] == "paused":
            skipped[c["name"]] = "paused (someone froze it on purpose); docker unpause it by hand"
        elif state == "started":
            if c["state"] == "restarting":
                skipped[c["name"]] = "in Docker's restart back-off; its restart policy starts it"
            elif c["running"]:
                skipped[c["name"]] = "running"
            else:
                act.append(c["name"])
        elif c["name"] in restarted:
            skipped[c["name"]] = f"already restarted at or after {since}"
        else:
            act.append(c["name"])
    if len(act) > max_containers:
        return {"problem": f"guardrail max_containers: {len(act)} containers to {'start' if state == 'started' else 'restart'} "
                           f"({', '.join(act)}), limit {max_containers}; raise max_containers to act anyway; "
                           "nothing was changed", "act": [], "skipped": skipped}
    return {"problem": None, "act": act, "skipped": skipped}


def _mib(value: t.Any) -> str:
    return f"{value / 1048576:.0f} MiB" if isinstance(value, (int, float)) and value else "no limit"


def oom_verdict(containers: list[dict[str, t.Any]], acted: dict[str, list[str]], max_actions: int = 3,
                warn_percent: float = 90.0, restart: bool = True) -> dict[str, t.Any]:
    """memory_exhaustion on a compose host (runbook 003 "High memory"), from compose_service_info's
    containers (container_record() + usage_record() + its `problem`) and the containers this
    incident already restarted (acted["restart"]).

    - OOM-killed (its last exit was the kernel's OOM killer) and not serving now (stopped,
      restarting, crash-looping, unhealthy), not restarted this incident -> restart once;
    - the same after this incident's restart -> report: the work does not fit the limit (or it
      leaks); raising mem_limit is a change to the compose file, a human's decision;
    - OOM-killed but serving again (its restart policy brought it back and it stayed up) -> report;
    - not OOM-killed, memory at or above warn_percent of its limit -> report (near its limit);
    - down for another reason -> not this runbook's (service_down's): listed in `other`;
    - restart false -> report only; more than max_actions to restart -> none (the host is the problem).
    """
    restarted = set(acted.get("restart") or [])
    oom, near, other, to_restart, again = [], [], [], [], []
    report: dict[str, str] = {}
    for c in sorted((c for c in containers if not c.get("oneoff")), key=lambda c: (c.get("service") or "", c.get("number") or 0)):
        name, problem = c["name"], c.get("problem")
        usage = (f"limit {_mib(c.get('memory_limit_bytes'))}, usage {_mib(c.get('memory_usage_bytes'))}"
                 if c.get("memory_usage_bytes") else f"limit {_mib(c.get('memory_limit_bytes'))}")
        if c.get("oom_killed"):
            oom.append({"name": name, "service": c.get("service"), "state": c.get("state"), "problem": problem,
                        "memory_limit_bytes": c.get("memory_limit_bytes"), "memory_usage_bytes": c.get("memory_usage_bytes"),
                        "memory_percent": c.get("memory_percent"), "restart_count": c.get("restart_count"),
                        "exit_code": c.get("exit_code")})
            if problem is None:
                report[name] = f"OOM-killed earlier, serving again ({usage}); watch it"
            elif problem == "paused":
                report[name] = f"OOM-killed and paused ({usage}); someone froze it on purpose"
            elif name in restarted:
                again.append(name)
                report[name] = (f"OOM-killed again after this incident's restart ({usage}): the work does not fit "
                                "the limit or it leaks; raise mem_limit in the compose file (a human's change) "
                                "or find the leak")
            elif not restart:
                report[name] = f"OOM-killed, {problem} ({usage}); restart not allowed (memory_exhaustion_compose_restart)"
            else:
                to_restart.append(name)
        elif problem is not None:
            other.append(name)
        elif (c.get("memory_percent") or 0) >= warn_percent and c.get("memory_limit_bytes"):
            near.append(name)
            report[name] = f"at {c['memory_percent']}% of its memory limit ({usage}); not OOM-killed yet"
    service_of = {c["name"]: c.get("service") for c in containers}
    guardrail = None
    if len(to_restart) > max_actions:
        guardrail = (f"guardrail max_actions: {len(to_restart)} OOM-killed containers to restart (limit {max_actions}); "
                     "that many at once points at the host's memory, not the services; raise the limit to act anyway")
        for name in to_restart:
            report[name] = "OOM-killed; not restarted: " + guardrail
        to_restart = []
    parts = [f"{o['name']} OOM-killed ({o['state']}, limit {_mib(o['memory_limit_bytes'])})" for o in oom]
    parts += [f"{n} near its limit" for n in near]
    return {
        "found": bool(oom or near),
        "oom_killed": oom,
        "near_limit": near,
        "to_restart": to_restart,
        "services_to_restart": sorted({service_of[n] for n in to_restart}),
        "report": report,
        "other": other,
        "down_after_restart": again,
        "act": bool(to_restart),
        "problem": guardrail,
        "summary": "; ".join(parts) if parts else "no container OOM-killed or near its memory limit",
    }


MEANT_TO_RUN_POLICIES = ("always", "unless-stopped")
# BuildKit's own `docker builder prune` (without --all) leaves these record types alone.
KEPT_CACHE_TYPES = ("internal", "frontend")


def _finished(moment: str | None, created: float | None) -> float | None:
    """When a stopped container stopped (FinishedAt), else when it was created (never started)."""
    parsed = parse_docker_time(moment)
    if parsed is not None:
        return parsed.timestamp()
    return created


def _real(values: list[str] | None, none: str) -> list[str]:
    return [v for v in (values or []) if v != none]


def _take(candidates: list[dict[str, t.Any]], cap: int, budget: list[int | None], partial: bool) -> list[dict[str, t.Any]]:
    """In partial cap mode, the oldest candidates within a count cap and the bytes left (budget[0])."""
    if not partial:
        return candidates
    taken = []
    for item in candidates:
        if len(taken) >= cap:
            break
        if budget[0] is not None:
            if item["size_bytes"] > budget[0]:
                continue
            budget[0] -= item["size_bytes"]
        taken.append(item)
    return taken


def prune_plan(containers: list[dict[str, t.Any]], images: list[dict[str, t.Any]], now: float,
               inspected: dict[str, dict[str, t.Any]] | None = None, build_cache: list[dict[str, t.Any]] | None = None,
               min_age_seconds: float = 3600.0, max_containers: int = 20, max_images: int = 20,
               max_build_cache: int = 100, max_bytes: int | None = None, cap_mode: str = "fail",
               allow_stopped_services: bool = False, prune_containers: bool = True) -> dict[str, t.Any]:
    """`docker system prune` (runbook 003 "Disk space issues"), guarded, from one GET /system/df
    (its Containers, Images and BuildCache lists, in the Engine's shapes) and one inspect of each
    stopped container (`inspected`: full container id -> docker inspect, for its restart policy,
    exit code and FinishedAt, which the list does not carry).

    - a container goes only when stopped (exited, created, dead) at least min_age_seconds ago
      (FinishedAt: a container created a month ago that crashed a minute ago is fresh evidence),
      and is not meant to run: restart policy always or unless-stopped, on-failure with a failed
      exit, or a compose service container (not a one-off) of a project with a running container.
      A stopped service is service_down's business, and removing it loses its logs;
      allow_stopped_services lifts that rule, never the age;
    - a stopped container that could not be inspected stays;
    - an image goes only when dangling (no tag and no digest: an untagged image pulled by digest
      is a pinned service image) at least min_age_seconds old, and no container that stays uses it;
    - a build-cache record goes only when not in use, not shared with an image, not of a type
      `docker builder prune` keeps (internal, frontend), and unused for min_age_seconds;
    - never volumes, never networks, never a tagged image;
    - caps: max_containers, max_images, max_build_cache (counts) and max_bytes (what goes in all).
      cap_mode fail: over any cap nothing goes (something else is wrong, a human looks);
      partial: the oldest within the caps.
    prune_containers false: no container goes (and every one keeps its image).
    """
    inspected = inspected or {}
    partial = cap_mode == "partial"
    kept: dict[str, str] = {}
    running_projects = {(c.get("Labels") or {}).get(PROJECT_LABEL) for c in containers
                        if c.get("State") not in STOPPED_STATES} - {None}
    stopped = []
    for c in sorted(containers, key=lambda c: (c.get("Created") or 0, c.get("Id") or "")):
        if c.get("State") not in STOPPED_STATES or not prune_containers:
            continue
        name = ((c.get("Names") or ["?"])[0]).lstrip("/")
        labels = c.get("Labels") or {}
        details = inspected.get(c.get("Id") or "")
        if details is None:
            kept[name] = "could not be inspected (gone, or the engine did not answer); left alone"
            continue
        policy = ((details.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        state = details.get("State") or {}
        project = labels.get(PROJECT_LABEL)
        service = labels.get(SERVICE_LABEL)
        meant = None
        if policy in MEANT_TO_RUN_POLICIES:
            meant = f"restart policy {policy}: meant to run"
        elif policy == "on-failure" and state.get("ExitCode"):
            meant = f"restart policy on-failure, exited {state.get('ExitCode')}: a failed service"
        elif project and labels.get(ONEOFF_LABEL) != "True" and project in running_projects:
            meant = f"service {service} of compose project {project}, which is up"
        if meant and not allow_stopped_services:
            kept[name] = f"stopped, {meant} (service_down's business; its logs are the evidence)"
            continue
        finished = _finished(state.get("FinishedAt"), c.get("Created"))
        if finished is None or now - finished < min_age_seconds:
            kept[name] = f"stopped less than {min_age_seconds:.0f} s ago"
            continue
        stopped.append({"name": name, "id": (c.get("Id") or "")[:12], "full_id": c.get("Id"), "image": c.get("Image"),
                        "image_id": c.get("ImageID"), "state": c.get("State"), "project": project, "service": service,
                        "restart_policy": policy, "exit_code": state.get("ExitCode"),
                        "finished_at": state.get("FinishedAt"), "size_bytes": c.get("SizeRw") or 0, "_stopped": finished})
    # Oldest stop first: what partial cap mode keeps is the most recent evidence.
    stopped.sort(key=lambda c: (c.pop("_stopped"), c["name"]))

    dangling = []
    for image in sorted(images, key=lambda i: (i.get("Created") or 0, i.get("Id") or "")):
        if _real(image.get("RepoTags"), "<none>:<none>") or _real(image.get("RepoDigests"), "<none>@<none>"):
            continue
        short = (image.get("Id") or "").split(":")[-1][:12]
        if now - (image.get("Created") or now) < min_age_seconds:
            kept[short] = f"dangling image created less than {min_age_seconds:.0f} s ago"
            continue
        shared = image.get("SharedSize")
        size = (image.get("Size") or 0) - (shared if isinstance(shared, int) and shared > 0 else 0)
        dangling.append({"id": short, "full_id": image.get("Id"), "size_bytes": max(size, 0), "created": image.get("Created")})

    cache = []
    for record in sorted(build_cache or [], key=lambda r: (r.get("LastUsedAt") or r.get("CreatedAt") or "", r.get("ID") or "")):
        rid = record.get("ID") or ""
        if record.get("InUse"):
            kept[f"build cache {rid[:12]}"] = "in use by a build"
            continue
        if record.get("Shared") or record.get("Type") in KEPT_CACHE_TYPES:
            continue
        used = parse_docker_time(record.get("LastUsedAt")) or parse_docker_time(record.get("CreatedAt"))
        if used is None or now - used.timestamp() < min_age_seconds:
            kept[f"build cache {rid[:12]}"] = f"used less than {min_age_seconds:.0f} s ago"
            continue
        cache.append({"id": rid, "type": record.get("Type"), "description": mask_text(record.get("Description")) or None,
                      "size_bytes": record.get("Size") or 0, "last_used_at": record.get("LastUsedAt")})

    def images_free_of(going: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        staying = {c.get("ImageID") for c in containers if c.get("Id") not in {g["full_id"] for g in going}}
        out = []
        for image in dangling:
            if image["full_id"] in staying:
                kept[image["id"]] = "dangling image used by a container that stays"
            else:
                out.append(dict(image, used_by_removed_container=any(g["image_id"] == image["full_id"] for g in going)))
        return out

    candidates = {"containers": stopped, "images": images_free_of(stopped), "build_cache": cache}
    budget: list[int | None] = [max_bytes]
    chosen_containers = _take(stopped, max_containers, budget, partial)
    chosen = {"containers": chosen_containers,
              "images": _take(images_free_of(chosen_containers) if partial else candidates["images"], max_images, budget, partial),
              "build_cache": _take(cache, max_build_cache, budget, partial)}
    caps = {"containers": max_containers, "images": max_images, "build_cache": max_build_cache}
    over = [f"{len(candidates[k])} {k.replace('_', ' ')} (cap {caps[k]})" for k in caps if len(candidates[k]) > caps[k]]
    total = sum(i["size_bytes"] for k in candidates for i in candidates[k])
    if max_bytes is not None and total > max_bytes:
        over.append(f"{total} bytes (cap max_bytes {max_bytes})")
    problem = None
    if over and not partial:
        problem = (f"guardrail: {', '.join(over)} would go; nothing was removed. Check mode lists them; "
                   "raise the caps, or set cap_mode partial to prune the oldest within them")
        chosen = {k: [] for k in chosen}
    elif over:
        for kind in chosen:
            taken = {i["id"] for i in chosen[kind]}
            for item in candidates[kind]:
                if item["id"] not in taken:
                    kept.setdefault(item.get("name") or item["id"], "over a cap (cap_mode partial): left for a later run")

    def public(item: dict[str, t.Any]) -> dict[str, t.Any]:
        return {k: v for k, v in item.items() if k not in ("full_id", "image_id")}
    freed = sum(i["size_bytes"] for k in chosen for i in chosen[k])
    return {
        "containers": [public(c) for c in chosen["containers"]],
        "images": [public(i) for i in chosen["images"]],
        "build_cache": list(chosen["build_cache"]),
        "ids": {k: [i.get("full_id") or i["id"] for i in chosen[k]] for k in chosen},
        "candidates": {k: [public(i) for i in candidates[k]] for k in candidates},
        "would_free_bytes": freed,
        "kept": kept,
        "problem": problem,
        "act": problem is None and any(chosen.values()),
        "summary": (problem or (f"{len(chosen['containers'])} stopped container(s), {len(chosen['images'])} dangling "
                                f"image(s), {len(chosen['build_cache'])} build-cache record(s): {freed / 1048576:.1f} MiB"
                                if any(chosen.values()) else "nothing to prune")),
    }
