"""module_utils/_net: error classification, input, the bounded batch, resolver parsing."""

from __future__ import annotations

import errno
import socket
import threading
import time

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _net

DEFAULTS = {"timeout": 2.0, "validate_certs": True}


@pytest.mark.parametrize("code,category", [
    (socket.EAI_NONAME, "nxdomain"),
    (getattr(socket, "EAI_NODATA", -5), "nxdomain"),
    (socket.EAI_AGAIN, "dns_timeout"),
    (socket.EAI_FAIL, "dns_error"),
    (socket.EAI_SERVICE, "dns_error"),
])
def test_classify_gaierror(code, category):
    assert _net.classify_gaierror(socket.gaierror(code, "msg"))[0] == category


@pytest.mark.parametrize("exc,category", [
    (socket.timeout("timed out"), "timeout"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "reset"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "no_route"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "no_route"),
    (OSError(errno.EINVAL, "Invalid argument"), "no_route"),
    (OSError(errno.EACCES, "Permission denied"), "filtered"),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), "timeout"),
    (OSError(errno.EMFILE, "Too many open files"), "connection"),
])
def test_classify_connect_error(exc, category):
    assert _net.classify_connect_error(exc, 1.0)[0] == category


def test_normalize_defaults_and_name():
    d = _net.normalize_dependency({"host": "db.internal", "port": 5432}, DEFAULTS)
    assert d == {"name": "db.internal:5432", "host": "db.internal", "port": 5432, "address": None,
                 "timeout": 2.0, "http": None}
    h = _net.normalize_dependency({"http_url": "http://user:pw@web.internal:8080/health", "timeout": 1}, DEFAULTS)
    assert h["host"] == "web.internal" and h["http"]["use_proxy"] is False and "pw" in h["http"]["secrets"]
    assert "pw" not in h["name"]


@pytest.mark.parametrize("raw,match", [
    ({"name": "x"}, "give host"),
    ({"http_url": "http:///nohost"}, "has no host"),
    ({"host": "a", "port": 70000}, "port must be"),
    ({"host": "a", "port": 1, "address": "not-an-ip"}, "must be an IP"),
    ({"host": "a", "timeout": 0}, "timeout must be"),
    ({"host": "a", "http_url": "ftp://a/"}, "dependency 'a'"),
])
def test_normalize_refuses_bad_input(raw, match):
    with pytest.raises(_net.ProbeInputError, match=match):
        _net.normalize_dependency(raw, DEFAULTS)


def test_normalize_dependencies_refuses_empty_and_duplicates():
    with pytest.raises(_net.ProbeInputError, match="at least one"):
        _net.normalize_dependencies([], DEFAULTS)
    with pytest.raises(_net.ProbeInputError, match="duplicate names 'a'"):
        _net.normalize_dependencies([{"name": "a", "host": "x"}, {"name": "a", "host": "y"}], DEFAULTS)


def test_resolve_skips_ip_addresses():
    assert _net.resolve("10.1.2.3")["skipped"] is True
    assert _net.resolve("::1")["addresses"] == ["::1"]


def test_probe_all_keeps_order_and_bounds_total_time():
    release = threading.Event()

    def fake(dep):
        if dep["name"] == "stuck":
            release.wait(30)
        return {"name": dep["name"], "ok": True}

    deps = [{"name": n, "host": h, "port": p} for n, h, p in
            [("a", "a.internal", 1), ("stuck", "b.internal", 2), ("c", "10.0.0.1", 3)]]
    started = time.monotonic()
    results = _net.probe_all(deps, 8, 0.5, probe_fn=fake)
    elapsed = time.monotonic() - started
    release.set()
    assert 0.4 < elapsed < 5
    assert [r["name"] for r in results] == ["a", "stuck", "c"]
    assert results[0]["ok"] and results[2]["ok"]
    assert results[1]["ok"] is False and results[1]["failed_step"] == "dns"
    assert results[1]["error_category"] == "dns_timeout" and "total timeout of 0.5 s" in results[1]["error"]


def test_unfinished_probe_of_an_address_is_a_tcp_or_http_timeout():
    assert _net.unfinished({"name": "x", "host": "10.0.0.1", "port": 5}, 1)["failed_step"] == "tcp"
    assert _net.unfinished({"name": "x", "host": "10.0.0.1", "port": None}, 1)["failed_step"] == "http"


def test_probe_all_turns_a_crash_into_a_result():
    def boom(dep):
        raise RuntimeError("bug")

    [result] = _net.probe_all([{"name": "x", "host": "h", "port": 1}], 1, 5, probe_fn=boom)
    assert result["ok"] is False and result["error_category"] == "connection" and "RuntimeError" in result["error"]


def test_probe_all_with_concurrency_one_is_sequential_but_complete():
    results = _net.probe_all([{"name": str(i), "host": "h", "port": 1} for i in range(5)], 1, 5,
                             probe_fn=lambda d: {"name": d["name"], "ok": True})
    assert [r["name"] for r in results] == ["0", "1", "2", "3", "4"]


def test_summarize():
    results = [
        {"ok": True, "error_category": None, "dns": {"ok": True, "skipped": False, "latency_ms": 2.0},
         "tcp": {"ok": True, "latency_ms": 1.5}},
        {"ok": False, "error_category": "no_route", "dns": {"ok": True, "skipped": True, "latency_ms": 0.0},
         "tcp": {"ok": False, "latency_ms": 0.1}},
        {"ok": False, "error_category": "no_route", "dns": None, "tcp": None},
    ]
    assert _net.summarize(results) == {"total": 3, "ok": 1, "failed": 2, "errors_by_category": {"no_route": 2},
                                       "dns_latency_ms_max": 2.0, "tcp_latency_ms_max": 1.5}
    assert _net.summarize([])["dns_latency_ms_max"] is None


def test_parse_resolv_conf():
    text = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # second\nsearch a.example b.example\noptions x\n"
    assert _net.parse_resolv_conf(text) == {"nameservers": ["127.0.0.53", "10.0.0.2"],
                                            "search": ["a.example", "b.example"]}


def test_parse_unit_show():
    assert _net.parse_unit_show("LoadState=loaded\nActiveState=active\nSubState=running\n") == {
        "exists": True, "load_state": "loaded", "active_state": "active", "sub_state": "running"}
    assert _net.parse_unit_show("LoadState=not-found\nActiveState=inactive\n")["exists"] is False
    assert _net.parse_unit_show("")["load_state"] is None
