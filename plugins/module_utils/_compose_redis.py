# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis_unavailable on a docker-compose host (runbook 004 "Redis and consumer containers",
002 "RedisDown"): the decision, from two witnesses - Docker (the Redis container's state and its
own healthcheck, compose_service_info) and a PING from the compose host (redis_health_info).

A project's Redis is one container with no replica: there is nothing to promote, so the only
remedy is to start or restart that container, once per incident. Evidence before action: a
Redis that answers LOADING or "max number of clients" is alive; a container Docker's own check
finds healthy while the PING fails is a network question, not a dead Redis; both are reported.
"""

from __future__ import annotations

import typing as t

# The PING's answer, worst first: a node that answers at all (loading, busy) is alive.
PING_ORDER = ("loading", "busy", "unreachable", "ok")


def ping_state(nodes: t.Sequence[dict[str, t.Any]]) -> str | None:
    """redis_health_info's nodes -> ok | unreachable | busy | loading (None: no address to PING)."""
    kinds = {("ok" if n.get("reachable") else (n.get("error_kind") or "unreachable")) for n in nodes or []}
    if not kinds:
        return None
    return next(k for k in PING_ORDER if k in kinds)


def redis_container_verdict(containers: list[dict[str, t.Any]], service: str, pings: t.Sequence[dict[str, t.Any]],
                            acted: dict[str, list[str]], max_actions: int = 2, restart: bool = True) -> dict[str, t.Any]:
    """What to do about the Redis service of one compose project.

    containers: compose_service_info's records of the project (each with its `problem`: stopped,
    restarting, looping, unhealthy, paused or None); service: the Redis service; pings:
    redis_health_info's `nodes` for the addresses the service listens on (empty: Docker's evidence
    only); acted: the containers this incident already restarted or started (Docker events).

    - paused -> report (someone froze it on purpose);
    - PING answers LOADING -> report (alive, loading its data set: a restart starts the load again);
    - PING answers "max number of clients" -> report (busy, not down: a restart drops every client);
    - stopped, nothing answers PING, not started or restarted this incident -> start it;
    - stopped but something answers PING at its address -> report (another process holds the port);
    - restarting (Docker's back-off) or crash-looping, not restarted this incident -> restart once;
    - unhealthy (Docker's healthcheck fails) and PING fails too -> restart once;
    - unhealthy but PING answers -> report (recovering, or the healthcheck is wrong);
    - running with no healthcheck, PING fails from the compose host -> restart once (hung or not listening);
    - running, Docker's healthcheck healthy, PING fails -> report (a path or bind problem, not a dead Redis);
    - running, healthcheck still starting, PING fails -> report (wait for the check);
    - the same failure after this incident's start or restart -> report, never twice;
    - restart false -> report only; more than max_actions to act on -> none (the host is the problem);
    - no container of the service -> problem (creating one is docker-compose up's job).

    The PING is attributed to a container only when the service has one container (the usual
    Redis of a compose project); a scaled service is judged on Docker's evidence alone.
    """
    scoped = sorted((c for c in containers if not c.get("oneoff") and c.get("service") == service),
                    key=lambda c: c.get("number") or 0)
    ping = ping_state(pings)
    attributable = ping if len(scoped) == 1 else None
    restarted, started = set(acted.get("restart") or []), set(acted.get("start") or [])
    to_start: list[str] = []
    to_restart: list[str] = []
    report: dict[str, str] = {}
    again: list[str] = []
    failing: list[str] = []
    checked = []
    for c in scoped:
        name, problem, health = c["name"], c.get("problem"), c.get("health")
        checked.append({"name": name, "state": c.get("state"), "health": health, "problem": problem,
                        "ping": attributable, "restart_count": c.get("restart_count"), "exit_code": c.get("exit_code"),
                        "oom_killed": c.get("oom_killed"), "started_at": c.get("started_at")})
        action = None
        if problem == "paused":
            report[name] = "paused: someone froze it on purpose; docker unpause it by hand"
        elif attributable == "loading":
            report[name] = "answers LOADING: alive, loading its data set; a restart would start the load again - wait"
        elif attributable == "busy":
            report[name] = ("answers 'max number of clients reached': busy, not down; a restart would drop every "
                            "client - find who holds the connections (CLIENT LIST)")
        elif problem == "stopped":
            if attributable == "ok":
                report[name] = "stopped, yet something answers PING at its address: another process holds the port"
            else:
                action = "start"
        elif problem in ("restarting", "looping"):
            action = "restart"
        elif problem == "unhealthy":
            if attributable == "ok":
                report[name] = ("Docker's healthcheck fails but PING answers from this host: recovering, or the "
                                "healthcheck is wrong; not restarted")
            else:
                action = "restart"
        elif attributable == "unreachable":
            if health is None:
                action = "restart"
            elif health == "healthy":
                report[name] = ("Docker's healthcheck answers inside the container but PING fails from this host: "
                                "a network or bind-address problem, not a dead Redis; not restarted")
            else:
                report[name] = f"healthcheck {health} and PING fails: the check has not decided yet; run again shortly"
        if action is None:
            if name in report:
                failing.append(name)
            continue
        failing.append(name)
        if name in restarted or name in started:
            again.append(name)
            report[name] = (f"{problem or 'not answering PING'} again after this incident's "
                            f"{'restart' if name in restarted else 'start'}: it does not stay up; not "
                            "restarted twice - read its logs (a bad config, a full disk, a corrupt dump)")
        elif not restart:
            report[name] = f"{problem or 'not answering PING'}; restart not allowed (redis_unavailable_compose_restart)"
        else:
            (to_start if action == "start" else to_restart).append(name)
    problem_text = None
    if not scoped:
        found = sorted({c.get("service") for c in containers if c.get("service")})
        problem_text = (f"service {service} has no container in this project (found: {', '.join(found) or 'none'}); "
                        "creating one is docker-compose up's job, not a runbook's; set redis_unavailable_compose_service")
    elif len(to_start) + len(to_restart) > max_actions:
        problem_text = (f"guardrail max_actions: {len(to_start) + len(to_restart)} Redis containers to start or restart "
                        f"(limit {max_actions}); that many at once points at the host; raise "
                        "redis_unavailable_compose_max_restarts to act anyway")
        for name in to_start + to_restart:
            report[name] = "not acted on: " + problem_text
        to_start, to_restart = [], []
    why = {c["name"]: f"{c['problem'] or 'running'}, PING {c['ping'] or 'not asked'}" for c in checked}
    parts = [f"{n} ({why[n]}): {'start' if n in to_start else 'restart once' if n in to_restart else report[n]}"
             for n in failing]
    if ping is not None and len(scoped) > 1:
        parts.append(f"PING {ping} (not attributed: {len(scoped)} containers)")
    if parts:
        summary = "; ".join(parts)
    elif problem_text:
        summary = problem_text
    elif ping == "ok":
        summary = f"{service}: running and answering PING"
    else:
        summary = f"{service}: running and healthy (Docker's evidence; no address to PING)"
    return {
        "found": bool(failing) or problem_text is not None,
        "healthy": not failing and problem_text is None,
        "ping": ping,
        "containers": checked,
        "failing": failing,
        "to_start": to_start,
        "to_restart": to_restart,
        "services_to_start": [service] if to_start else [],
        "services_to_restart": [service] if to_restart else [],
        "report": report,
        "down_after_action": again,
        "act": problem_text is None and bool(to_start or to_restart),
        "problem": problem_text,
        "summary": summary,
    }
