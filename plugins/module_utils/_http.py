# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP health checks of many endpoints at once, with the standard library only.

Standard library only (urllib, http.client, ssl, concurrent.futures) on purpose: the module must
run in any execution environment and on any controller, with nothing to install.

The pure parts (JSON paths, status expectations, evaluation of a response, percentiles, URL
masking) are separate functions so that unit tests reach every branch; ``check_endpoint`` is the
only function that talks to the network.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import math
import os
import re
import socket
import ssl
import threading
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import MASK, is_secret_name, mask_text

# Error categories, in the order an on-call engineer reads them: the network first, then HTTP.
REFUSED = "refused"          # nothing listens: the process is down or the port is wrong
TIMEOUT = "timeout"          # no answer in time: overloaded, hung, or a firewall drops packets
DNS = "dns"                  # the name does not resolve
TLS = "tls"                  # handshake or certificate verification failed
CONNECTION = "connection"    # any other network failure: reset, closed without answer, bad HTTP
HTTP_STATUS = "http_status"  # an answer, with a status outside the expected ones
INVALID_JSON = "invalid_json"    # a body check needs JSON and the body is not JSON
BODY_MISMATCH = "body_mismatch"  # the body does not hold what was expected
CATEGORIES = (REFUSED, TIMEOUT, DNS, TLS, CONNECTION, HTTP_STATUS, INVALID_JSON, BODY_MISMATCH)

DEFAULT_STATUS = ("2xx",)
_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]*$")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]|\.")
_EXCERPT = 200


class HealthCheckError(ValueError):
    """Bad input: the message names the endpoint and the option, for fail_json."""


# ---------------------------------------------------------------------------------------------
# JSON paths: "status", "checks.db.status", "checks[0].status", "items.0.name", "$.status"


def parse_json_path(path: str) -> list[t.Union[str, int]]:
    """Split a dotted JSON path into keys (str) and list indexes (int).

    ``a.b``, ``a[0].b``, ``a.0.b`` (a number as a key also indexes a list), ``a[-1]`` (the last
    item), an optional leading ``$`` or ``$.``. Raises HealthCheckError for anything else.
    """
    if not isinstance(path, str) or not path.strip():
        raise HealthCheckError("empty JSON path; use a dotted path such as 'status' or 'checks[0].status'")
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
        if not text:
            raise HealthCheckError(f"JSON path {path!r} names the whole document; give a key such as '$.status'")
    parts: list[t.Union[str, int]] = []
    position = 0
    expect_part = True  # at the start and after a dot, a key or an index must follow
    while position < len(text):
        match = _PATH_PART.match(text, position)
        if not match:
            raise HealthCheckError(f"JSON path {path!r}: unexpected {text[position]!r} at position {position}; "
                                   "use keys separated by dots and [N] for list items")
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not expect_part:
                raise HealthCheckError(f"JSON path {path!r}: a key must follow a dot")
            parts.append(int(key) if re.fullmatch(r"-?\d+", key) else key)
            expect_part = False
        elif index is not None:
            if expect_part and parts:
                raise HealthCheckError(f"JSON path {path!r}: '.[' is not allowed; write 'items[0]'")
            parts.append(int(index))
            expect_part = False
        else:  # a dot
            if expect_part:
                raise HealthCheckError(f"JSON path {path!r}: empty key (two dots, or a leading/trailing dot)")
            expect_part = True
        position = match.end()
    if expect_part:
        raise HealthCheckError(f"JSON path {path!r}: ends with a dot")
    return parts


_MISSING = object()


def json_path_get(document: t.Any, parts: t.Sequence[t.Union[str, int]]) -> t.Any:
    """The value at ``parts`` in ``document``, or the sentinel ``_MISSING`` when it is not there.

    An int part indexes a list, or is looked up as its text in an object ({"0": ...}).
    """
    current = document
    for part in parts:
        if isinstance(part, int):
            if isinstance(current, list):
                if -len(current) <= part < len(current):
                    current = current[part]
                    continue
                return _MISSING
            if isinstance(current, dict) and str(part) in current:
                current = current[str(part)]
                continue
            return _MISSING
        if isinstance(current, dict) and part in current:
            current = current[part]
            continue
        return _MISSING
    return current


def is_missing(value: t.Any) -> bool:
    return value is _MISSING


def _scalar_text(value: t.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def values_equal(actual: t.Any, expected: t.Any) -> bool:
    """JSON equality, lenient on the text form of scalars only: 1 == "1" and "ok" == "ok", but
    true != 1 and a list equals only an equal list. YAML and Jinja turn numbers into strings
    easily; an on-call engineer writing `body_equals: 1` must not get a false alarm."""
    if isinstance(actual, (dict, list)) or isinstance(expected, (dict, list)):
        return actual == expected
    if isinstance(actual, bool) != isinstance(expected, bool) and not isinstance(expected, str):
        return False
    return _scalar_text(actual) == _scalar_text(expected)


# ---------------------------------------------------------------------------------------------
# Expected status: 200, "200", "2xx", "200-399"


def parse_status(spec: t.Any) -> list[tuple[int, int]]:
    """Turn a list of status expectations into inclusive ranges. Raises HealthCheckError."""
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    if not items:
        raise HealthCheckError("status: give at least one expected status, for example [200] or ['2xx']")
    ranges: list[tuple[int, int]] = []
    for item in items:
        text = str(item).strip().lower()
        if isinstance(item, bool):
            text = ""
        low = high = None
        if re.fullmatch(r"\d{3}", text):
            low = high = int(text)
        elif re.fullmatch(r"[1-5]xx", text):
            low, high = int(text[0]) * 100, int(text[0]) * 100 + 99
        else:
            match = re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", text)
            if match:
                low, high = int(match.group(1)), int(match.group(2))
        if low is None or high is None or not 100 <= low <= high <= 599:
            raise HealthCheckError(f"status: cannot read {item!r}; use a code (200), a class ('2xx') "
                                   "or a range ('200-399') between 100 and 599")
        ranges.append((low, high))
    return ranges


def status_expected(status: int, ranges: t.Sequence[tuple[int, int]]) -> bool:
    return any(low <= status <= high for low, high in ranges)


# ---------------------------------------------------------------------------------------------
# URLs: validation, credentials, masking


def split_url(url: str) -> tuple[str, t.Optional[str], t.Optional[str]]:
    """Return (url without userinfo, user, password). Raises HealthCheckError for a URL the
    module cannot check (not http/https, no host)."""
    if not isinstance(url, str) or not url.strip():
        raise HealthCheckError("url is empty")
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme.lower() not in ("http", "https"):
        raise HealthCheckError(f"url {mask_url(url)!r}: scheme must be http or https, "
                               f"got {parsed.scheme or 'none'!r}")
    try:
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise HealthCheckError(f"url {mask_url(url)!r}: {exc}") from None
    if not host:
        raise HealthCheckError(f"url {mask_url(url)!r} has no host")
    netloc = parsed.netloc.rpartition("@")[2]
    # http.client sends the request line as ASCII: percent-encode what is not (already-encoded
    # %XX sequences and the reserved characters stay as they are).
    path = urllib.parse.quote(parsed.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parsed.query, safe="/%:@!$&'()*+,;=-._~?")
    clean = urllib.parse.urlunsplit((parsed.scheme.lower(), netloc, path, query, ""))
    user = urllib.parse.unquote(parsed.username) if parsed.username is not None else None
    password = urllib.parse.unquote(parsed.password) if parsed.password is not None else None
    return clean, user, password


def mask_url(url: t.Any) -> t.Any:
    """The URL as it may be returned: userinfo masked (a password, or a lone user name, which is
    often a token: https://TOKEN@host), secret-looking query parameters masked by name
    (?access_token=, ?api_key=, ?sig is kept), and mask_text over the rest."""
    if not isinstance(url, str):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return mask_text(url)
    rest, hash_sign, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _at, hostport = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    if query:
        pairs = []
        for pair in re.split(r"([&;])", query):
            key, equals, value = pair.partition("=")
            if equals and is_secret_name(urllib.parse.unquote_plus(key)):
                value = MASK
            elif equals:
                value = mask_text(value)
            pairs.append(f"{key}{equals}{value}")
        query = "".join(pairs)
    # The scheme is put back last: mask_text would read "https:" as the key of an assignment.
    return f"{scheme}{sep}{authority}{slash}{mask_text(path) if path else ''}{question}{query}" \
           f"{hash_sign}{mask_text(fragment) if fragment else ''}"


# ---------------------------------------------------------------------------------------------
# Evaluation of one answer (pure: no network)


def evaluate(status: int, body: t.Optional[bytes], ranges: t.Sequence[tuple[int, int]],
             body_path: t.Optional[t.Sequence[t.Union[str, int]]] = None, body_path_text: str = "",
             body_equals: t.Any = _MISSING, body_contains: t.Optional[str] = None,
             truncated: bool = False) -> tuple[t.Optional[str], t.Optional[str], t.Any]:
    """Judge an answer. Returns (category, message, actual value at body_path) - category None
    when the endpoint is healthy. The status is judged first: a 503 with a JSON body is an
    http_status failure, whatever the body says."""
    if not status_expected(status, ranges):
        wanted = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
        return HTTP_STATUS, f"status {status}, expected {wanted}", _MISSING
    text = (body or b"").decode("utf-8", errors="replace")
    if body_contains is not None and body_contains not in text:
        return BODY_MISMATCH, f"body does not contain {body_contains!r}" + (
            " (in the first bytes read; raise max_body_bytes)" if truncated else ""), _MISSING
    if body_path is None:
        return None, None, _MISSING
    if truncated:
        return INVALID_JSON, "body larger than max_body_bytes; cannot read it as JSON", _MISSING
    try:
        document = json.loads(text)
    except ValueError as exc:
        return INVALID_JSON, f"body is not JSON ({exc.msg} at position {exc.pos})", _MISSING
    actual = json_path_get(document, body_path)
    if actual is _MISSING:
        return BODY_MISMATCH, f"{body_path_text} is not in the body", _MISSING
    if body_equals is _MISSING:
        return None, None, actual
    if not values_equal(actual, body_equals):
        shown = json.dumps(actual)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return BODY_MISMATCH, f"{body_path_text} is {shown}, expected {json.dumps(body_equals)}", actual
    return None, None, actual


# ---------------------------------------------------------------------------------------------
# Aggregates


def percentile(values: t.Sequence[float], pct: float) -> t.Optional[float]:
    """Nearest-rank percentile (a value that was measured, never an interpolation); None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(results: t.Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Totals, error rate and latency percentiles. Latency counts the endpoints that answered
    (any status): the time a refused or timed-out check took says nothing about the service."""
    total = len(results)
    failed = [r for r in results if not r["ok"]]
    answered = [r["latency_ms"] for r in results if r.get("status") is not None and r.get("latency_ms") is not None]
    by_category: dict[str, int] = {}
    for result in failed:
        by_category[result["error_category"]] = by_category.get(result["error_category"], 0) + 1

    def rounded(value: t.Optional[float]) -> t.Optional[float]:
        return None if value is None else round(value, 1)

    return {
        "total": total,
        "ok": total - len(failed),
        "failed": len(failed),
        "error_rate": round(len(failed) / total, 4) if total else 0.0,
        "errors_by_category": by_category,
        "latency_ms": {
            "p50": rounded(percentile(answered, 50)),
            "p95": rounded(percentile(answered, 95)),
            "max": rounded(max(answered) if answered else None),
            "count": len(answered),
        },
    }


# ---------------------------------------------------------------------------------------------
# The network


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib API
        return None


_CONTEXTS: dict[tuple[bool, t.Optional[str]], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def ssl_context(validate_certs: bool, ca_path: t.Optional[str]) -> ssl.SSLContext:
    """One SSL context per (validate_certs, ca_path), shared by every thread (contexts are
    thread-safe, and loading the CA bundle costs more than a check: 200 threads each loading it
    at once took seconds)."""
    key = (bool(validate_certs), ca_path)
    with _CONTEXTS_LOCK:
        return _CONTEXTS[key] if key in _CONTEXTS else _new_context(key)


def _new_context(key: tuple[bool, t.Optional[str]]) -> ssl.SSLContext:
    validate_certs, ca_path = key
    if ca_path and os.path.isdir(ca_path):
        context = ssl.create_default_context(capath=ca_path)
    elif ca_path:
        context = ssl.create_default_context(cafile=ca_path)
    else:
        context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _CONTEXTS[key] = context
    return context


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in str(exc).lower()


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """(category, message) for a network failure. URLError wraps the real cause in .reason."""
    cause: t.Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return TLS, f"certificate verification failed: {getattr(cause, 'verify_message', None) or cause}"
    if isinstance(cause, ssl.SSLError):
        return TLS, f"TLS handshake failed: {getattr(cause, 'reason', None) or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return REFUSED, "connection refused; is the service running and listening on that port?"
    if isinstance(cause, socket.gaierror):
        return DNS, f"name does not resolve: {cause.strerror or cause}"
    if isinstance(cause, BaseException) and _is_timeout(cause):
        return TIMEOUT, "no answer within the timeout"
    if isinstance(cause, ConnectionResetError):
        return CONNECTION, "connection reset by the server"
    if isinstance(cause, http.client.RemoteDisconnected):
        return CONNECTION, "server closed the connection without an answer"
    if isinstance(cause, http.client.HTTPException):
        return CONNECTION, f"bad HTTP answer: {type(cause).__name__}: {cause}"
    if isinstance(cause, OSError):
        return CONNECTION, f"{type(cause).__name__}: {cause.strerror or cause}"
    return CONNECTION, f"{type(cause).__name__}: {cause}"


def build_request(endpoint: dict[str, t.Any]) -> urllib.request.Request:
    """The urllib request of a normalized endpoint (see normalize_endpoint)."""
    request = urllib.request.Request(endpoint["request_url"], data=endpoint["data"], method=endpoint["method"])
    for name, value in endpoint["headers"].items():
        request.add_header(name, value)
    return request


def _read_body(response: t.Any, limit: int, deadline: float) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes, in chunks, giving up at the deadline (a server that drips
    its body must not hold the check past its timeout). Returns (body, truncated)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        if time.monotonic() > deadline:
            raise TimeoutError("body not complete within the timeout")
        chunk = response.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], True


def check_endpoint(endpoint: dict[str, t.Any]) -> dict[str, t.Any]:
    """Check one normalized endpoint. Never raises for a network or HTTP failure: the result
    says what went wrong (an assessment of a broken system must complete)."""
    result: dict[str, t.Any] = {
        "name": endpoint["name"],
        "url": endpoint["masked_url"],
        "method": endpoint["method"],
        "ok": False,
        "status": None,
        "latency_ms": None,
        "error_category": None,
        "error": None,
        "header_names": sorted(endpoint["header_names"]),
    }
    if endpoint["body_path"] is not None:
        result["body_path"] = endpoint["body_path_text"]
    handlers: list[t.Any] = []
    # A plain http:// endpoint with default TLS settings needs no context (http.client makes
    # the default one itself should a redirect lead to https).
    if endpoint["request_url"].startswith("https:") or not endpoint["validate_certs"] or endpoint["ca_path"]:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context(endpoint["validate_certs"],
                                                                        endpoint["ca_path"])))
    if not endpoint["follow_redirects"]:
        handlers.append(_NoRedirect())
    if not endpoint["use_proxy"]:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    timeout = endpoint["timeout"]
    started = time.monotonic()
    deadline = started + timeout
    status: t.Optional[int] = None
    body: t.Optional[bytes] = None
    truncated = False
    try:
        try:
            response = opener.open(build_request(endpoint), timeout=timeout)
        except urllib.error.HTTPError as answer:  # an answer with a 4xx/5xx (or a 3xx not followed)
            response = answer
        with response:
            status = response.getcode()
            if endpoint["method"] != "HEAD" and getattr(response, "fp", True) is not None:
                body, truncated = _read_body(response, endpoint["max_body_bytes"], deadline)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a category in the result
        category, message = classify_exception(exc)
        if category == TIMEOUT:
            message = f"no answer within {timeout:g} s" if status is None else \
                f"status {status} but the body was not complete within {timeout:g} s"
        result["status"] = status
        result["latency_ms"] = round((time.monotonic() - started) * 1000.0, 1)
        result["error_category"] = category
        result["error"] = scrub(f"{category}: {message}", endpoint["secrets"])
        return result
    result["latency_ms"] = round((time.monotonic() - started) * 1000.0, 1)
    result["status"] = status
    category, message, actual = evaluate(
        status, body, endpoint["ranges"], endpoint["body_path"], endpoint["body_path_text"],
        endpoint["body_equals"], endpoint["body_contains"], truncated)
    if actual is not _MISSING:
        result["body_value"] = actual if isinstance(actual, (int, float, bool)) or actual is None \
            else scrub(mask_text(_truncate(actual if isinstance(actual, str) else json.dumps(actual))),
                       endpoint["secrets"])
    if category is None:
        result["ok"] = True
        return result
    result["error_category"] = category
    result["error"] = scrub(mask_text(f"{category}: {message}"), endpoint["secrets"])
    if body:
        result["body_excerpt"] = scrub(mask_text(_truncate(body.decode("utf-8", errors="replace"))),
                                       endpoint["secrets"])
    return result


def _truncate(text: str, limit: int = _EXCERPT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scrub(text: str, secrets: t.Iterable[str]) -> str:
    """Replace every known secret value (header values, URL credentials) wherever it appears:
    a server may echo a header back in an error page, an exception may quote the URL."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


# ---------------------------------------------------------------------------------------------
# Input: one endpoint as the module receives it -> what check_endpoint needs


def normalize_endpoint(raw: dict[str, t.Any], defaults: dict[str, t.Any]) -> dict[str, t.Any]:
    """Validate one endpoint and merge the module-wide defaults. Raises HealthCheckError with a
    message naming the endpoint and the option."""
    url = raw.get("url")
    label = raw.get("name") or mask_url(url) or "(no url)"
    try:
        request_url, user, password = split_url(url)
        method = str(raw.get("method") or "GET").strip().upper()
        if not _METHOD.match(method):
            raise HealthCheckError(f"method {raw.get('method')!r} is not an HTTP method")
        ranges = parse_status(raw["status"] if raw.get("status") is not None
                              else defaults.get("status") or list(DEFAULT_STATUS))
        body_path = parse_json_path(raw["body_path"]) if raw.get("body_path") is not None else None
        has_equals = raw.get("body_equals") is not None
        if has_equals and body_path is None:
            raise HealthCheckError("body_equals needs body_path (which value of the JSON body to compare)")
        if method == "HEAD" and (body_path is not None or raw.get("body_contains") is not None):
            raise HealthCheckError("a HEAD request has no body to check; use GET with body_path or body_contains")
        timeout = raw.get("timeout") if raw.get("timeout") is not None else defaults["timeout"]
        if timeout is None or float(timeout) <= 0:
            raise HealthCheckError(f"timeout must be more than 0 seconds, got {timeout!r}")
    except HealthCheckError as exc:
        raise HealthCheckError(f"endpoint {label!r}: {exc}") from None

    headers: dict[str, str] = {"User-Agent": defaults.get("user_agent") or "sre.runbooks-http_health"}
    merged = dict(defaults.get("headers") or {})
    merged.update(raw.get("headers") or {})
    secrets = [str(v) for v in merged.values() if v is not None]
    for name, value in merged.items():
        # Header names are case-insensitive: a per-endpoint header replaces a module-wide one.
        for existing in [h for h in headers if h.lower() == str(name).lower()]:
            del headers[existing]
        headers[str(name)] = "" if value is None else str(value)
    if user is not None and not any(h.lower() == "authorization" for h in headers):
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        secrets.append(token)
    if password:
        secrets.append(password)
    if user is not None and password is None and user:
        secrets.append(user)  # https://TOKEN@host: the lone user name is the secret

    data = None
    body = raw.get("body")
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            if not any(h.lower() == "content-type" for h in headers):
                headers["Content-Type"] = "application/json"
        else:
            data = str(body).encode()

    follow = raw.get("follow_redirects")
    return {
        "name": raw.get("name") or mask_url(url),
        "masked_url": mask_url(url),
        "request_url": request_url,
        "method": method,
        "headers": headers,
        "header_names": [h for h in headers if h != "User-Agent"],
        "data": data,
        "ranges": ranges,
        "body_path": body_path,
        "body_path_text": raw.get("body_path") or "",
        "body_equals": raw["body_equals"] if has_equals else _MISSING,
        "body_contains": raw.get("body_contains"),
        "timeout": float(timeout),
        "validate_certs": defaults.get("validate_certs", True) if raw.get("validate_certs") is None
        else raw["validate_certs"],
        "ca_path": raw.get("ca_path") or defaults.get("ca_path"),
        "follow_redirects": defaults.get("follow_redirects", True) if follow is None else follow,
        "use_proxy": defaults.get("use_proxy", True),
        "max_body_bytes": int(defaults.get("max_body_bytes") or 1048576),
        "secrets": sorted(set(secrets), key=len, reverse=True),
    }


def normalize_endpoints(raw_endpoints: t.Sequence[dict[str, t.Any]], defaults: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Every endpoint validated; duplicate names refused (results are looked up by name)."""
    if not raw_endpoints:
        raise HealthCheckError("endpoints: give at least one endpoint, for example "
                               "[{name: api, url: 'https://api.example.com/health'}]")
    endpoints = [normalize_endpoint(raw, defaults) for raw in raw_endpoints]
    seen: dict[str, int] = {}
    duplicates = []
    for endpoint in endpoints:
        seen[endpoint["name"]] = seen.get(endpoint["name"], 0) + 1
        if seen[endpoint["name"]] == 2:
            duplicates.append(endpoint["name"])
    if duplicates:
        raise HealthCheckError(f"endpoints: duplicate names {', '.join(repr(d) for d in duplicates)}; "
                               "every endpoint needs its own name (results and failing are keyed by it)")
    return endpoints


def check_all(endpoints: t.Sequence[dict[str, t.Any]], concurrency: int) -> list[dict[str, t.Any]]:
    """Check every endpoint, ``concurrency`` at a time; results in the order given."""
    if not endpoints:
        return []
    workers = max(1, min(int(concurrency), len(endpoints)))
    if workers == 1:
        return [check_endpoint(e) for e in endpoints]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check_endpoint, endpoints))
