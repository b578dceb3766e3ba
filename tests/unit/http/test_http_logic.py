"""Unit tests for plugins/module_utils/_http.py: JSON paths, status expectations, evaluation of
an answer, percentiles and aggregates, URL masking, endpoint validation, error classification.
No network here; tests/integration/http checks real servers."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import urllib.error

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _http
from ansible_collections.sre.runbooks.plugins.module_utils._secrets import MASK

DEFAULTS = {"timeout": 5.0, "status": ["2xx"], "headers": {}, "validate_certs": True, "ca_path": None,
            "follow_redirects": True, "use_proxy": True, "max_body_bytes": 1048576,
            "user_agent": "sre.runbooks-http_health"}


# --- JSON paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("path, parts", [
    ("status", ["status"]),
    ("checks.db.status", ["checks", "db", "status"]),
    ("checks[0].status", ["checks", 0, "status"]),
    ("items.0.name", ["items", 0, "name"]),
    ("items[-1]", ["items", -1]),
    ("$.status", ["status"]),
    ("$status", ["status"]),
    ("matrix[1][2]", ["matrix", 1, 2]),
    ("[0].ok", [0, "ok"]),
    ("a-b.c_d", ["a-b", "c_d"]),
])
def test_parse_json_path_accepts_dots_and_indexes(path, parts):
    assert _http.parse_json_path(path) == parts


@pytest.mark.parametrize("path", ["", "  ", "a..b", ".a", "a.", "a[x]", "a[0", "a.[0]", "$", "$.", "a]b", "a[0]b"])
def test_parse_json_path_refuses_malformed_paths(path):
    with pytest.raises(_http.HealthCheckError):
        _http.parse_json_path(path)


def test_parse_json_path_refuses_non_strings():
    with pytest.raises(_http.HealthCheckError, match="empty JSON path"):
        _http.parse_json_path(None)


DOC = {"status": "ok", "checks": [{"status": "up"}, {"status": "down"}], "map": {"0": "zero"}, "n": None}


@pytest.mark.parametrize("path, value", [
    ("status", "ok"),
    ("checks[1].status", "down"),
    ("checks.0.status", "up"),
    ("checks[-1].status", "down"),
    ("map.0", "zero"),
    ("n", None),
])
def test_json_path_get_finds_values(path, value):
    assert _http.json_path_get(DOC, _http.parse_json_path(path)) == value


@pytest.mark.parametrize("path", ["missing", "checks[2].status", "checks[-3]", "status.deeper", "checks.name",
                                  "map.1", "status[0]"])
def test_json_path_get_reports_missing(path):
    assert _http.is_missing(_http.json_path_get(DOC, _http.parse_json_path(path)))


# --- value comparison -------------------------------------------------------------------------

@pytest.mark.parametrize("actual, expected, equal", [
    ("ok", "ok", True),
    ("ok", "OK", False),
    (1, "1", True),
    (1.0, 1, True),
    ("1", 1, True),
    (True, True, True),
    (True, "true", True),
    (True, 1, False),
    (1, True, False),
    (None, "null", True),
    ([1, 2], [1, 2], True),
    ([1, 2], "[1, 2]", False),
    ({"a": 1}, {"a": 1}, True),
])
def test_values_equal(actual, expected, equal):
    assert _http.values_equal(actual, expected) is equal


# --- status expectations ----------------------------------------------------------------------

@pytest.mark.parametrize("spec, ranges", [
    ([200], [(200, 200)]),
    (["200"], [(200, 200)]),
    (["2xx"], [(200, 299)]),
    (["2XX", 301], [(200, 299), (301, 301)]),
    (["200-399"], [(200, 399)]),
    ("204", [(204, 204)]),
])
def test_parse_status(spec, ranges):
    assert _http.parse_status(spec) == ranges


@pytest.mark.parametrize("spec", [[], ["abc"], [99], [600], ["399-200"], ["6xx"], [True], ["20"]])
def test_parse_status_refuses_bad_specs(spec):
    with pytest.raises(_http.HealthCheckError, match="status"):
        _http.parse_status(spec)


def test_status_expected():
    ranges = _http.parse_status(["2xx", 304])
    assert _http.status_expected(204, ranges)
    assert _http.status_expected(304, ranges)
    assert not _http.status_expected(301, ranges)
    assert not _http.status_expected(503, ranges)


# --- evaluation -------------------------------------------------------------------------------

R2XX = _http.parse_status(["2xx"])


def test_evaluate_healthy_without_body_check():
    assert _http.evaluate(200, b"anything", R2XX) == (None, None, _http._MISSING)


def test_evaluate_status_outside_expected_fails_first_even_with_matching_body():
    category, message, _actual = _http.evaluate(503, b'{"status": "ok"}', R2XX, ["status"], "status", "ok")
    assert category == _http.HTTP_STATUS
    assert message == "status 503, expected 200-299"


def test_evaluate_lists_single_codes_and_ranges():
    _category, message, _actual = _http.evaluate(500, b"", _http.parse_status([200, "3xx"]))
    assert message == "status 500, expected 200, 300-399"


def test_evaluate_body_equals_match_and_mismatch():
    assert _http.evaluate(200, b'{"status": "ok"}', R2XX, ["status"], "status", "ok")[0] is None
    category, message, actual = _http.evaluate(200, b'{"status": "degraded"}', R2XX, ["status"], "status", "ok")
    assert (category, actual) == (_http.BODY_MISMATCH, "degraded")
    assert message == 'status is "degraded", expected "ok"'


def test_evaluate_body_path_alone_requires_presence():
    assert _http.evaluate(200, b'{"status": false}', R2XX, ["status"], "status")[0] is None
    category, message, _actual = _http.evaluate(200, b'{"other": 1}', R2XX, ["status"], "status")
    assert category == _http.BODY_MISMATCH and "not in the body" in message


def test_evaluate_invalid_json():
    category, message, _actual = _http.evaluate(200, b"<html>", R2XX, ["status"], "status", "ok")
    assert category == _http.INVALID_JSON and message.startswith("body is not JSON")


def test_evaluate_truncated_body_cannot_be_json():
    category, _message, _actual = _http.evaluate(200, b'{"status": "o', R2XX, ["status"], "status", "ok", truncated=True)
    assert category == _http.INVALID_JSON


def test_evaluate_body_contains():
    assert _http.evaluate(200, b"OK healthy", R2XX, body_contains="healthy")[0] is None
    category, message, _actual = _http.evaluate(200, b"maintenance", R2XX, body_contains="healthy")
    assert category == _http.BODY_MISMATCH and "does not contain" in message
    _category, message, _actual = _http.evaluate(200, b"maint", R2XX, body_contains="healthy", truncated=True)
    assert "max_body_bytes" in message


def test_evaluate_long_actual_value_is_truncated_in_message():
    body = ('{"status": "' + "x" * 300 + '"}').encode()
    _category, message, _actual = _http.evaluate(200, body, R2XX, ["status"], "status", "ok")
    assert len(message) < 150 and "..." in message


# --- percentiles and aggregates ---------------------------------------------------------------

def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert _http.percentile(values, 50) == 50.0
    assert _http.percentile(values, 95) == 95.0
    assert _http.percentile(values, 100) == 100.0
    assert _http.percentile([7.0], 95) == 7.0
    assert _http.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert _http.percentile([1.0, 2.0], 0) == 1.0
    assert _http.percentile([], 50) is None


def _result(name, ok, status, latency, category=None):
    return {"name": name, "ok": ok, "status": status, "latency_ms": latency, "error_category": category}


def test_summarize_counts_and_latency_of_answers_only():
    summary = _http.summarize([
        _result("a", True, 200, 10.0),
        _result("b", False, 503, 30.0, "http_status"),
        _result("c", False, None, 1000.0, "timeout"),
        _result("d", False, None, 0.5, "refused"),
    ])
    assert summary["total"] == 4 and summary["ok"] == 1 and summary["failed"] == 3
    assert summary["error_rate"] == 0.75
    assert summary["errors_by_category"] == {"http_status": 1, "timeout": 1, "refused": 1}
    assert summary["latency_ms"] == {"p50": 10.0, "p95": 30.0, "max": 30.0, "count": 2}


def test_summarize_nothing_answered():
    summary = _http.summarize([_result("a", False, None, 5.0, "refused")])
    assert summary["latency_ms"] == {"p50": None, "p95": None, "max": None, "count": 0}
    assert summary["error_rate"] == 1.0


def test_summarize_empty():
    assert _http.summarize([])["error_rate"] == 0.0


# --- URL masking and splitting ----------------------------------------------------------------

@pytest.mark.parametrize("url, masked", [
    ("http://mon:pw@h:1/x", f"http://mon:{MASK}@h:1/x"),
    ("https://TOKEN123@h/", f"https://{MASK}@h/"),
    ("https://h/x?api_token=abc&page=2", f"https://h/x?api_token={MASK}&page=2"),
    ("https://h/x?access_token=abc;password=p", f"https://h/x?access_token={MASK};password={MASK}"),
    ("https://h/x?next=postgresql://u:pw@db/x", f"https://h/x?next=postgresql://u:{MASK}@db/x"),
    ("https://h/health", "https://h/health"),
    ("https://h", "https://h"),
    ("https://h/x#frag", "https://h/x#frag"),
])
def test_mask_url(url, masked):
    assert _http.mask_url(url) == masked


def test_mask_url_passes_non_strings():
    assert _http.mask_url(None) is None


def test_split_url_takes_credentials_out():
    clean, user, password = _http.split_url("HTTP://mon:p%40ss@Example.com:8080/health?x=1#f")
    assert clean == "http://Example.com:8080/health?x=1"
    assert (user, password) == ("mon", "p@ss")


def test_split_url_percent_encodes_non_ascii_and_keeps_encoded_sequences():
    clean = _http.split_url("http://h/gesundheit/über?q=café&x=a%20b")[0]
    assert clean == "http://h/gesundheit/%C3%BCber?q=caf%C3%A9&x=a%20b"


def test_split_url_adds_root_path():
    assert _http.split_url("https://h")[0] == "https://h/"


@pytest.mark.parametrize("url, message", [
    ("ftp://h/x", "scheme must be http or https"),
    ("h/x", "scheme must be http or https"),
    ("http:///x", "has no host"),
    ("http://h:notaport/", "url"),
    ("", "empty"),
])
def test_split_url_refuses(url, message):
    with pytest.raises(_http.HealthCheckError, match=message):
        _http.split_url(url)


def test_split_url_error_masks_credentials():
    with pytest.raises(_http.HealthCheckError) as info:
        _http.split_url("ftp://u:hunter22@h/")
    assert "hunter22" not in str(info.value)


def test_scrub_replaces_known_secrets_but_not_tiny_ones():
    assert _http.scrub("a tok-123 b 1", ["tok-123", "1"]) == f"a {MASK} b 1"


# --- endpoint validation ----------------------------------------------------------------------

def test_normalize_endpoint_defaults():
    ep = _http.normalize_endpoint({"url": "http://h/health"}, DEFAULTS)
    assert ep["name"] == "http://h/health"
    assert ep["method"] == "GET"
    assert ep["ranges"] == [(200, 299)]
    assert ep["timeout"] == 5.0
    assert ep["body_path"] is None and _http.is_missing(ep["body_equals"])
    assert ep["headers"] == {"User-Agent": "sre.runbooks-http_health"}
    assert ep["header_names"] == []


def test_normalize_endpoint_overrides_and_headers_case_insensitive():
    defaults = dict(DEFAULTS, headers={"Authorization": "Bearer global-token"}, timeout=2.0)
    ep = _http.normalize_endpoint({"name": "api", "url": "https://h/x", "method": "post", "status": [201],
                                   "timeout": 0.5, "headers": {"authorization": "Bearer mine-token"},
                                   "validate_certs": False, "body": {"a": 1}, "body_path": "a",
                                   "body_equals": 1}, defaults)
    assert ep["method"] == "POST" and ep["ranges"] == [(201, 201)] and ep["timeout"] == 0.5
    assert ep["headers"]["authorization"] == "Bearer mine-token" and "Authorization" not in ep["headers"]
    assert ep["headers"]["Content-Type"] == "application/json" and ep["data"] == b'{"a": 1}'
    assert ep["validate_certs"] is False
    assert sorted(ep["header_names"]) == ["Content-Type", "authorization"]
    assert "Bearer mine-token" in ep["secrets"] and "Bearer global-token" in ep["secrets"]


def test_normalize_endpoint_text_body_keeps_content_type_unset():
    ep = _http.normalize_endpoint({"url": "http://h/", "method": "POST", "body": "ping"}, DEFAULTS)
    assert ep["data"] == b"ping" and "Content-Type" not in ep["headers"]


def test_normalize_endpoint_url_credentials_become_basic_auth_and_secrets():
    ep = _http.normalize_endpoint({"name": "a", "url": "http://mon:s3cret@h/x"}, DEFAULTS)
    assert ep["request_url"] == "http://h/x"
    token = base64.b64encode(b"mon:s3cret").decode()
    assert ep["headers"]["Authorization"] == f"Basic {token}"
    assert "s3cret" in ep["secrets"] and token in ep["secrets"]
    assert ep["masked_url"] == f"http://mon:{MASK}@h/x"


def test_normalize_endpoint_lone_user_is_a_secret_and_explicit_authorization_wins():
    ep = _http.normalize_endpoint({"url": "http://tok3n@h/", "headers": {"Authorization": "Bearer x-y-z"}}, DEFAULTS)
    assert ep["headers"]["Authorization"] == "Bearer x-y-z"
    assert "tok3n" in ep["secrets"]
    assert ep["name"] == f"http://{MASK}@h/"


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "url": "ftp://h/"}, "endpoint 'x': url 'ftp://h/': scheme must be http or https"),
    ({"name": "x", "url": "http://h/", "method": "GE T"}, "is not an HTTP method"),
    ({"name": "x", "url": "http://h/", "body_path": "a..b"}, "endpoint 'x': JSON path"),
    ({"name": "x", "url": "http://h/", "body_equals": "ok"}, "body_equals needs body_path"),
    ({"name": "x", "url": "http://h/", "method": "HEAD", "body_path": "a"}, "HEAD request has no body"),
    ({"name": "x", "url": "http://h/", "method": "HEAD", "body_contains": "a"}, "HEAD request has no body"),
    ({"name": "x", "url": "http://h/", "status": ["abc"]}, "status: cannot read"),
    ({"name": "x", "url": "http://h/", "timeout": 0}, "timeout must be more than 0"),
])
def test_normalize_endpoint_refuses_bad_input(raw, message):
    with pytest.raises(_http.HealthCheckError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _http.normalize_endpoint(raw, DEFAULTS)


def test_normalize_endpoints_refuses_duplicates_and_empty():
    with pytest.raises(_http.HealthCheckError, match="duplicate names 'api'"):
        _http.normalize_endpoints([{"name": "api", "url": "http://a/"}, {"name": "api", "url": "http://b/"},
                                   {"name": "api", "url": "http://c/"}], DEFAULTS)
    with pytest.raises(_http.HealthCheckError, match="duplicate names"):
        _http.normalize_endpoints([{"url": "http://a/"}, {"url": "http://a/"}], DEFAULTS)
    with pytest.raises(_http.HealthCheckError, match="at least one endpoint"):
        _http.normalize_endpoints([], DEFAULTS)


def test_check_all_empty():
    assert _http.check_all([], 4) == []


# --- error classification ---------------------------------------------------------------------

def _cert_error():
    error = ssl.SSLCertVerificationError(1, "verify failed")
    error.verify_message = "self-signed certificate"
    return error


@pytest.mark.parametrize("exc, category", [
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), _http.REFUSED),
    (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), _http.DNS),
    (urllib.error.URLError(socket.timeout("timed out")), _http.TIMEOUT),
    (TimeoutError("body not complete"), _http.TIMEOUT),
    (urllib.error.URLError(_cert_error()), _http.TLS),
    (urllib.error.URLError(ssl.SSLError(1, "wrong version number")), _http.TLS),
    (ConnectionResetError(104, "reset"), _http.CONNECTION),
    (http.client.RemoteDisconnected("closed"), _http.CONNECTION),
    (http.client.BadStatusLine("garbage"), _http.CONNECTION),
    (urllib.error.URLError(OSError(113, "No route to host")), _http.CONNECTION),
    (urllib.error.URLError("unknown url type"), _http.CONNECTION),
    (ValueError("odd"), _http.CONNECTION),
])
def test_classify_exception(exc, category):
    assert _http.classify_exception(exc)[0] == category


def test_classify_certificate_message_names_the_reason():
    assert "self-signed certificate" in _http.classify_exception(urllib.error.URLError(_cert_error()))[1]


def test_many_endpoints_share_one_tls_context_and_plain_http_builds_none(monkeypatch):
    """Every worker thread once built its own TLS context (loading the system CA bundle) even for
    http:// URLs: over a second for 32 threads. Counted here instead of timed (tests/integration
    /http times a real run, with a bound that must hold on a loaded machine)."""
    import socket as socket_module

    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(_http.ssl, "create_default_context", lambda *a, **k: made.append(1) or real(*a, **k))
    monkeypatch.setattr(_http, "_CONTEXTS", {})
    with socket_module.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: connections are refused
    plain = [_http.normalize_endpoint({"name": f"p{i}", "url": f"http://127.0.0.1:{port}/"}, DEFAULTS) for i in range(40)]
    results = _http.check_all(plain, concurrency=32)
    assert {r["error_category"] for r in results} == {"refused"} and made == []
    tls = [_http.normalize_endpoint({"name": f"t{i}", "url": f"https://127.0.0.1:{port}/"}, DEFAULTS) for i in range(40)]
    _http.check_all(tls, concurrency=32)
    assert len(made) == 1
