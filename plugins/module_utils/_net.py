# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reachability of dependencies from where this code runs: DNS, TCP connect, optional HTTP.

Standard library only, so the module runs with any host's Python. Every dependency is probed in
a daemon thread of its own (``concurrency`` at a time) and the whole batch is bounded by
``total_timeout``: a ``getaddrinfo`` stuck in a broken resolver cannot be interrupted, so a
probe still running at the deadline is reported as a timeout and abandoned (daemon threads do
not hold the module's exit, unlike ``concurrent.futures`` workers).

The pure parts (error classification, normalization, the summary, resolv.conf parsing) are
separate functions so that unit tests reach every branch.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
import typing as t
import urllib.parse

from ansible_collections.sre.runbooks.plugins.module_utils import _http

# Error categories. DNS first, then the TCP path, then HTTP (from _http).
NXDOMAIN = "nxdomain"        # a name server answered: the name does not exist
DNS_TIMEOUT = "dns_timeout"  # no name server answered (EAI_AGAIN): resolver down or unreachable
DNS_ERROR = "dns_error"      # SERVFAIL or another resolver failure
REFUSED = "refused"          # the address answered with a reset: nothing listens on that port
TIMEOUT = "timeout"          # no answer: packets dropped on the way, or the peer is overloaded
NO_ROUTE = "no_route"        # no route to the address (unreachable route, ICMP unreachable, blackhole)
FILTERED = "filtered"        # a local rule prohibits the path (EACCES/EPERM)
RESET = "reset"              # the connection was reset
CONNECTION = "connection"    # any other network failure
DNS_CATEGORIES = (NXDOMAIN, DNS_TIMEOUT, DNS_ERROR)
TCP_CATEGORIES = (REFUSED, TIMEOUT, NO_ROUTE, FILTERED, RESET, CONNECTION)

_NO_ROUTE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EINVAL, errno.EHOSTDOWN, errno.ENETDOWN}
_FILTERED_ERRNOS = {errno.EACCES, errno.EPERM}
_MAX_ADDRESSES = 3


class ProbeInputError(ValueError):
    """Bad input: the message names the dependency and the option, for fail_json."""


# ---------------------------------------------------------------------------------------------
# Error classification


def classify_gaierror(exc: BaseException) -> tuple[str, str]:
    """(category, message) for a failed name resolution."""
    code = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None) or str(exc)
    if code in (getattr(socket, "EAI_NONAME", -2), getattr(socket, "EAI_NODATA", -5)):
        return NXDOMAIN, f"the name does not exist (NXDOMAIN): {text}"
    if code == getattr(socket, "EAI_AGAIN", -3):
        return DNS_TIMEOUT, f"no name server answered: {text}"
    if code == getattr(socket, "EAI_FAIL", -4):
        return DNS_ERROR, f"the name server failed (SERVFAIL): {text}"
    return DNS_ERROR, f"resolution failed: {text}"


def classify_connect_error(exc: BaseException, timeout: float) -> tuple[str, str]:
    """(category, message) for a failed TCP connect."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TIMEOUT, f"no answer within {timeout:g} s (packets dropped on the way, or the peer is overloaded)"
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED, "connection refused: the address answers, nothing listens on that port"
    if isinstance(exc, ConnectionResetError):
        return RESET, "connection reset"
    code = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None) or str(exc)
    if code in _NO_ROUTE_ERRNOS:
        return NO_ROUTE, f"no route to the address: {text}"
    if code in _FILTERED_ERRNOS:
        return FILTERED, f"a local rule prohibits the path: {text}"
    if code == errno.ETIMEDOUT:
        return TIMEOUT, f"no answer within {timeout:g} s: {text}"
    return CONNECTION, f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------------------
# Input


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def normalize_dependency(raw: dict[str, t.Any], defaults: dict[str, t.Any]) -> dict[str, t.Any]:
    """Validate one dependency; raises ProbeInputError naming it and the option."""
    host = str(raw.get("host") or "").strip()
    port = raw.get("port")
    http_url = raw.get("http_url")
    name = raw.get("name") or (f"{host}:{port}" if port else host) or _http.mask_url(http_url)
    label = name or "(no host)"
    if not host and not http_url:
        raise ProbeInputError(f"dependency {label!r}: give host (and port), or http_url")
    if http_url and not host:
        host = str(urllib.parse.urlsplit(str(http_url)).hostname or "")
        if not host:
            raise ProbeInputError(f"dependency {label!r}: http_url {_http.mask_url(http_url)!r} has no host")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ProbeInputError(f"dependency {label!r}: port must be 1-65535, got {port}")
    address = raw.get("address")
    if address and not is_ip(str(address)):
        raise ProbeInputError(f"dependency {label!r}: address must be an IP address, got {address!r}")
    timeout = raw.get("timeout") if raw.get("timeout") is not None else defaults["timeout"]
    if float(timeout) <= 0:
        raise ProbeInputError(f"dependency {label!r}: timeout must be more than 0 seconds, got {timeout}")
    http = None
    if http_url:
        try:
            http = _http.normalize_endpoint(
                {"name": name, "url": http_url, "status": raw.get("http_status"), "timeout": float(timeout)},
                {"timeout": float(timeout), "use_proxy": False, "validate_certs": defaults.get("validate_certs", True),
                 "user_agent": "sre.runbooks-net_probe"})
        except _http.HealthCheckError as exc:
            raise ProbeInputError(f"dependency {label!r}: {exc}") from None
    return {"name": str(name), "host": host, "port": int(port) if port is not None else None,
            "address": str(address) if address else None, "timeout": float(timeout), "http": http}


def normalize_dependencies(raw: t.Sequence[dict[str, t.Any]], defaults: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    if not raw:
        raise ProbeInputError("dependencies: give at least one, for example "
                              "[{name: db, host: db.internal, port: 5432}]")
    deps = [normalize_dependency(r, defaults) for r in raw]
    names = [d["name"] for d in deps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProbeInputError(f"dependencies: duplicate names {', '.join(repr(d) for d in duplicates)}; "
                              "every dependency needs its own name (results are keyed by it)")
    return deps


# ---------------------------------------------------------------------------------------------
# The network


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000.0, 1)


def resolve(host: str) -> dict[str, t.Any]:
    if is_ip(host):
        return {"ok": True, "skipped": True, "addresses": [host], "latency_ms": 0.0,
                "error_category": None, "error": None}
    started = time.monotonic()
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        category, message = classify_gaierror(exc)
        return {"ok": False, "skipped": False, "addresses": [], "latency_ms": _ms(started),
                "error_category": category, "error": f"{category}: {host}: {message}"}
    addresses: list[str] = []
    for info in infos:
        if info[4][0] not in addresses:
            addresses.append(info[4][0])
    return {"ok": True, "skipped": False, "addresses": addresses, "latency_ms": _ms(started),
            "error_category": None, "error": None}


def connect(addresses: t.Sequence[str], port: int, timeout: float, via_fallback: bool = False) -> dict[str, t.Any]:
    """TCP connect to the first addresses in turn; the first success wins, else the last error."""
    result: dict[str, t.Any] = {"ok": False, "address": None, "port": port, "latency_ms": None,
                                "error_category": None, "error": None, "via_fallback": via_fallback}
    for address in list(addresses)[:_MAX_ADDRESSES]:
        started = time.monotonic()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        result["address"] = address
        try:
            sock.connect((address, port))
        except OSError as exc:
            category, message = classify_connect_error(exc, timeout)
            result.update(latency_ms=_ms(started), error_category=category,
                          error=f"{category}: {address}:{port}: {message}")
            continue
        finally:
            sock.close()
        result.update(ok=True, latency_ms=_ms(started), error_category=None, error=None)
        return result
    return result


def probe(dep: dict[str, t.Any]) -> dict[str, t.Any]:
    """Probe one normalized dependency: DNS, then TCP, then HTTP; the first failing step is the
    dependency's error. When the name does not resolve and a fallback address is known, TCP is
    tried on it anyway: a path that works by address while the name fails points at the resolver."""
    started = time.monotonic()
    result: dict[str, t.Any] = {"name": dep["name"], "host": dep["host"], "port": dep["port"],
                                "ok": False, "failed_step": None, "error_category": None, "error": None,
                                "dns": None, "tcp": None, "http": None, "latency_ms": None}
    dns = resolve(dep["host"])
    result["dns"] = dns
    if not dns["ok"]:
        result.update(failed_step="dns", error_category=dns["error_category"], error=dns["error"])
        if dep["address"] and dep["port"]:
            result["tcp"] = connect([dep["address"]], dep["port"], dep["timeout"], via_fallback=True)
        result["latency_ms"] = _ms(started)
        return result
    if dep["port"]:
        tcp = connect(dns["addresses"], dep["port"], dep["timeout"])
        result["tcp"] = tcp
        if not tcp["ok"]:
            result.update(failed_step="tcp", error_category=tcp["error_category"], error=tcp["error"])
            result["latency_ms"] = _ms(started)
            return result
    if dep["http"]:
        http = _http.check_endpoint(dep["http"])
        result["http"] = {k: http.get(k) for k in ("url", "ok", "status", "latency_ms", "error_category", "error")}
        if not http["ok"]:
            result.update(failed_step="http", error_category=http["error_category"], error=http["error"])
            result["latency_ms"] = _ms(started)
            return result
    result.update(ok=True, latency_ms=_ms(started))
    return result


def unfinished(dep: dict[str, t.Any], total_timeout: float) -> dict[str, t.Any]:
    """The result of a probe still running at the batch deadline (a resolver that hangs)."""
    step = "dns" if not is_ip(dep["host"]) else ("tcp" if dep["port"] else "http")
    category = DNS_TIMEOUT if step == "dns" else TIMEOUT
    error = f"{category}: {dep['name']}: still probing after the total timeout of {total_timeout:g} s"
    return {"name": dep["name"], "host": dep["host"], "port": dep["port"], "ok": False, "failed_step": step,
            "error_category": category, "error": error, "dns": None, "tcp": None, "http": None,
            "latency_ms": round(total_timeout * 1000.0, 1)}


def probe_all(deps: t.Sequence[dict[str, t.Any]], concurrency: int, total_timeout: float,
              probe_fn: t.Callable[[dict[str, t.Any]], dict[str, t.Any]] = probe) -> list[dict[str, t.Any]]:
    """Probe every dependency, ``concurrency`` at a time, in daemon threads; results in the order
    given. Whatever is still running at ``total_timeout`` is reported as unfinished."""
    results: list[t.Optional[dict[str, t.Any]]] = [None] * len(deps)
    slots = threading.Semaphore(max(1, int(concurrency)))
    done = threading.Condition()
    remaining = [len(deps)]

    def worker(index: int) -> None:
        try:
            try:
                outcome = probe_fn(deps[index])
            except Exception as exc:  # noqa: BLE001 - one broken probe must not lose the others
                outcome = unfinished(deps[index], total_timeout)
                outcome.update(error_category=CONNECTION, error=f"{CONNECTION}: {type(exc).__name__}: {exc}")
            results[index] = outcome
        finally:
            slots.release()
            with done:
                remaining[0] -= 1
                done.notify_all()

    deadline = time.monotonic() + total_timeout
    for index in range(len(deps)):
        if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
        threading.Thread(target=worker, args=(index,), daemon=True).start()
    with done:
        while remaining[0] > 0 and time.monotonic() < deadline:
            done.wait(timeout=max(0.0, deadline - time.monotonic()))
    return [r if r is not None else unfinished(deps[i], total_timeout) for i, r in enumerate(list(results))]


# ---------------------------------------------------------------------------------------------
# Summary and resolver


def summarize(results: t.Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    failed = [r for r in results if not r["ok"]]
    by_category: dict[str, int] = {}
    for r in failed:
        by_category[r["error_category"]] = by_category.get(r["error_category"], 0) + 1
    tcp = [r["tcp"]["latency_ms"] for r in results if r.get("tcp") and r["tcp"]["ok"]]
    dns = [r["dns"]["latency_ms"] for r in results if r.get("dns") and r["dns"]["ok"] and not r["dns"]["skipped"]]
    return {
        "total": len(results),
        "ok": len(results) - len(failed),
        "failed": len(failed),
        "errors_by_category": by_category,
        "dns_latency_ms_max": max(dns) if dns else None,
        "tcp_latency_ms_max": max(tcp) if tcp else None,
    }


def parse_resolv_conf(text: str) -> dict[str, t.Any]:
    nameservers: list[str] = []
    search: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            nameservers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
    return {"nameservers": nameservers, "search": search}


def parse_unit_show(text: str) -> dict[str, t.Any]:
    """`systemctl show -p LoadState,ActiveState,SubState UNIT` -> exists, states."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    load = props.get("LoadState", "")
    return {"exists": load == "loaded", "load_state": load or None,
            "active_state": props.get("ActiveState") or None, "sub_state": props.get("SubState") or None}
