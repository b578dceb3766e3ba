# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delivery of incident notifications (Slack incoming webhooks, PagerDuty Events API v2).

A notification must never make an incident worse: a failed delivery is retried (5xx, 429,
connection errors), then reported as a warning, never as a task failure. Webhook URLs and routing
keys are secrets: messages name only the scheme and host of the URL, and the callers declare
those options no_log so Ansible masks them everywhere.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import json
import time
import typing as t
from urllib.parse import urlsplit

from ansible.module_utils.urls import fetch_url

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_DELAY = 30.0

NOTIFY_ARGUMENT_SPEC: dict[str, t.Any] = {
    "retries": {"type": "int", "default": 3},
    "retry_delay": {"type": "float", "default": 1.0},
    "timeout": {"type": "float", "default": 10.0},
    "validate_certs": {"type": "bool", "default": True},
}


def safe_origin(url: str) -> str:
    """scheme://host[:port] of a URL: what may be shown of a webhook URL."""
    parts = urlsplit(str(url))
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or '?'}://{host}{port}"


def delay_for(attempt: int, base: float, retry_after: t.Any) -> float:
    """Seconds to wait before attempt number `attempt + 1`: Retry-After if the server gave one
    (capped), else exponential back-off from `base`."""
    try:
        if retry_after is not None:
            return max(0.0, min(float(retry_after), MAX_RETRY_DELAY))
    except (TypeError, ValueError):
        pass  # an HTTP-date or garbage: fall back to our own back-off
    return max(0.0, min(base * (2 ** attempt), MAX_RETRY_DELAY))


def post_json(module: t.Any, url: str, payload: dict[str, t.Any], what: str,
              sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    """POST `payload` as JSON, retrying transient failures. Never raises for HTTP or network
    errors: returns delivered, status, body, attempts and (when not delivered) error."""
    params = module.params
    retries = max(0, int(params["retries"]))
    origin = safe_origin(url)
    data = json.dumps(payload)
    attempts: list[dict[str, t.Any]] = []
    status: int | None = None
    body = ""
    for attempt in range(retries + 1):
        started = time.monotonic()
        response, info = fetch_url(module, url, data=data, method="POST", timeout=params["timeout"],
                                   headers={"Content-Type": "application/json"})
        status = int(info.get("status", -1))
        raw = info.get("body")  # an error answer's body (fetch_url has read it already)
        if raw is None and response is not None:
            try:
                raw = response.read()
            except Exception:  # noqa: BLE001 - a truncated body after a 2xx is still a delivery
                raw = b""
        body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        record: dict[str, t.Any] = {"attempt": attempt + 1, "status": status if status > 0 else None,
                                    "seconds": round(time.monotonic() - started, 3)}
        if 200 <= status < 300:
            attempts.append(record)
            return {"delivered": True, "status": status, "body": body[:500], "attempts": attempts}
        # fetch_url's msg never holds the URL; keep it short all the same.
        record["error"] = (f"HTTP {status}" if status > 0 else "no answer") + f": {str(info.get('msg') or '')[:200]}"
        retryable = status <= 0 or status in RETRY_STATUSES
        if retryable and attempt < retries:
            record["retry_in_seconds"] = delay_for(attempt, float(params["retry_delay"]), info.get("retry-after"))
            attempts.append(record)
            sleep(record["retry_in_seconds"])
            continue
        attempts.append(record)
        break
    last = attempts[-1]
    error = (f"{what} at {origin} not delivered after {len(attempts)} attempt(s): {last['error']}"
             + ("" if (status or 0) <= 0 or status in RETRY_STATUSES else " (not retried: the request itself was refused)")
             + (f"; answer: {body[:200]}" if body else ""))
    return {"delivered": False, "status": status if (status or 0) > 0 else None, "body": body[:500],
            "attempts": attempts, "error": error}
