# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stripe webhook replay: find the events whose delivery failed and send them again.

Standard library only (urllib, hmac) on purpose: the module must run in any execution environment
with nothing to install (no `stripe` SDK).

The pure parts (signature, webhook secret inspection, query building, pagination, the replay plan,
back-off) are separate functions so that unit tests reach every branch; ``StripeClient`` is the only
class that talks to the network, and it never puts the API key or the webhook secret in a message.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import MASK, mask_text

# Stripe keeps events (and lets them be resent) for 30 days.
MAX_AGE_SECONDS = 30 * 86400
DEFAULT_SECRET_VAR = "STRIPE_WEBHOOK_SECRET"
# What urlopen does (proxies from the environment), through an opener of our own.
_OPENER = urllib.request.build_opener()
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class StripeError(Exception):
    """A Stripe call failed. ``status`` is the HTTP status (None: no answer). The message is
    already masked."""

    def __init__(self, message: str, status: t.Optional[int] = None) -> None:
        self.status = status
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Masking: the known secret values first (whatever they look like), then the generic rules


def mask_secrets(text: t.Any, secrets: t.Iterable[t.Optional[str]]) -> t.Any:
    if not isinstance(text, str):
        return text
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    # Stripe key shapes, in case a value reached us that is not one of ours (sk_test_..., whsec_...).
    text = re.sub(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9]{6,}", MASK, text)
    text = re.sub(r"\bwhsec_[A-Za-z0-9+/=_-]{6,}", MASK, text)
    return mask_text(text)


# ---------------------------------------------------------------------------------------------
# Signatures, as Stripe signs: Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "t.payload")>


def sign_payload(secret: str, payload: bytes, timestamp: int) -> str:
    signed = str(int(timestamp)).encode("ascii") + b"." + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={digest}"


def verify_signature(header: t.Optional[str], payload: bytes, secret: str, now: float,
                     tolerance: int = 300) -> bool:
    """Whether a Stripe-Signature header is valid for payload and secret (any v1 may match),
    with a timestamp within ``tolerance`` seconds of ``now``."""
    if not header or not secret:
        return False
    timestamp = None
    candidates = []
    for part in header.split(","):
        key, _sep, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = sign_payload(secret, payload, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


# ---------------------------------------------------------------------------------------------
# The webhook secret: present, length, where it comes from - never the value


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, export, quotes)."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        match = _ENV_LINE.match(line)
        if not match:
            continue
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[match.group(1)] = value
    return values


def secret_info(value: t.Optional[str], source: str) -> dict[str, t.Any]:
    """What may be said about a webhook signing secret: present, length, source, whether it has
    Stripe's whsec_ shape and a short fingerprint (first 8 hex of its SHA-256) to compare two
    configurations without showing either."""
    present = bool(value)
    return {
        "present": present,
        "length": len(value) if value else 0,
        "source": source,
        "format_ok": bool(value and value.startswith("whsec_") and len(value) > 12),
        "sha256_prefix": hashlib.sha256(value.encode("utf-8")).hexdigest()[:8] if value else None,
    }


# ---------------------------------------------------------------------------------------------
# Listing: GET /v1/events?delivery_success=false&created[gte]=...&types[]=...&starting_after=...


def events_query(created_gte: int, types: t.Sequence[str] = (), starting_after: t.Optional[str] = None,
                 limit: int = 100) -> list[tuple[str, str]]:
    query = [("delivery_success", "false"), ("created[gte]", str(int(created_gte))), ("limit", str(int(limit)))]
    query.extend(("types[]", name) for name in types)
    if starting_after:
        query.append(("starting_after", starting_after))
    return query


def list_all(fetch_page: t.Callable[[t.Optional[str]], dict[str, t.Any]], max_pages: int) -> tuple[list[dict], bool]:
    """Follow has_more/starting_after. Returns (items, complete): complete is False when
    ``max_pages`` stopped the listing before the end. Stops on a page that repeats its cursor
    (a server bug must not loop forever)."""
    items: list[dict] = []
    cursor = None
    for _page in range(max_pages):
        page = fetch_page(cursor)
        data = page.get("data") or []
        items.extend(data)
        if not page.get("has_more") or not data:
            return items, True
        next_cursor = data[-1].get("id")
        if not next_cursor or next_cursor == cursor:
            return items, True
        cursor = next_cursor
    return items, False


# ---------------------------------------------------------------------------------------------
# The plan: which failed events to replay, which are too old, which are already delivered


def event_summary(event: dict[str, t.Any], now: float) -> dict[str, t.Any]:
    created = int(event.get("created") or 0)
    return {
        "id": event.get("id"),
        "type": event.get("type"),
        "created": created,
        "age_seconds": max(0, int(now - created)),
        "pending_webhooks": event.get("pending_webhooks"),
    }


def plan_replay(events: t.Sequence[dict[str, t.Any]], now: float, max_age: int = MAX_AGE_SECONDS,
                types: t.Sequence[str] = (), skip_ids: t.Iterable[str] = ()) -> dict[str, list[dict]]:
    """Sort listed events into replay / too_old / skipped. Oldest first, so the processor sees
    them in the order they happened. Deduplicated by id (pagination may repeat an event).

    - too_old: created more than ``max_age`` ago (Stripe cannot resend them): reported only.
    - skipped: already delivered (pending_webhooks == 0: no endpoint is still waiting for it),
      named in ``skip_ids``, or not of the wanted ``types`` (a server that ignores types[]).
    """
    plan: dict[str, list[dict]] = {"replay": [], "too_old": [], "skipped": []}
    seen = set()
    skip = set(skip_ids)
    wanted = set(types)
    for event in sorted(events, key=lambda e: (int(e.get("created") or 0), str(e.get("id")))):
        event_id = event.get("id")
        if not event_id or event_id in seen:
            continue
        seen.add(event_id)
        summary = event_summary(event, now)
        if wanted and event.get("type") not in wanted:
            plan["skipped"].append(dict(summary, reason="type not selected"))
        elif event_id in skip:
            plan["skipped"].append(dict(summary, reason="in skip_event_ids"))
        elif event.get("pending_webhooks") == 0:
            plan["skipped"].append(dict(summary, reason="already delivered (pending_webhooks is 0)"))
        elif now - summary["created"] > max_age:
            plan["too_old"].append(dict(summary, reason=f"older than {max_age // 86400} days: Stripe cannot resend it"))
        else:
            plan["replay"].append(summary)
    return plan


# ---------------------------------------------------------------------------------------------
# Back-off on 429 (Stripe test mode allows 25 requests/s)


def backoff_delay(attempt: int, retry_after: t.Optional[str], base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): Retry-After when the server
    sent a number of seconds, else exponential from ``base``; never more than ``cap``."""
    delay = None
    if retry_after is not None:
        try:
            delay = float(str(retry_after).strip())
        except ValueError:
            delay = None
        if delay is not None and (math.isnan(delay) or delay < 0):
            delay = None
    if delay is None:
        delay = base * (2 ** max(0, attempt - 1))
    return round(min(delay, cap), 3)


# ---------------------------------------------------------------------------------------------
# The network


class StripeClient:
    """Form-encoded calls to the Stripe API (or a stand-in at ``api_base``), paced to
    ``rate_limit`` requests per second, retrying 429 with back-off."""

    def __init__(self, api_base: str, api_key: str, timeout: float = 10.0, rate_limit: float = 20.0,
                 max_retries: int = 5, backoff_cap: float = 30.0, secrets: t.Sequence[str] = (),
                 sleep: t.Callable[[float], None] = time.sleep, clock: t.Callable[[], float] = time.monotonic):
        self.api_base = api_base.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.interval = 1.0 / rate_limit if rate_limit > 0 else 0.0
        self.max_retries = max_retries
        self.backoff_cap = backoff_cap
        self.secrets = [api_key, *secrets]
        self.sleep = sleep
        self.clock = clock
        self.requests = 0
        self.throttled = 0
        self.waited_seconds = 0.0
        self._last = None

    def _pace(self) -> None:
        if self._last is not None and self.interval:
            wait = self.interval - (self.clock() - self._last)
            if wait > 0:
                self.sleep(wait)
        self._last = self.clock()

    def _mask(self, text: t.Any) -> t.Any:
        return mask_secrets(text, self.secrets)

    def request(self, method: str, path: str, query: t.Sequence[tuple[str, str]] = (),
                form: t.Optional[dict[str, str]] = None) -> dict[str, t.Any]:
        url = self.api_base + path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
        data = urllib.parse.urlencode(form).encode("ascii") if form is not None else None
        target = f"{method} {self.api_base}{path}"
        attempt = 0
        while True:
            attempt += 1
            self._pace()
            request = urllib.request.Request(url, data=data, method=method, headers={
                "Authorization": f"Bearer {self.api_key}",
                "User-Agent": "sre.runbooks-stripe_webhook_replay",
                "Content-Type": "application/x-www-form-urlencoded",
            })
            self.requests += 1
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    body = response.read()
                    return json.loads(body.decode("utf-8") or "{}")
            except urllib.error.HTTPError as exc:
                body = exc.read()[:500].decode("utf-8", errors="replace")
                if exc.code == 429 and attempt <= self.max_retries:
                    self.throttled += 1
                    delay = backoff_delay(attempt, exc.headers.get("Retry-After"), cap=self.backoff_cap)
                    self.waited_seconds += delay
                    self.sleep(delay)
                    continue
                message = _error_message(body)
                hint = {401: "is the API key right (and for this account and mode)?",
                        404: "does this object exist in this account and mode?",
                        429: f"still rate limited after {self.max_retries} retries; lower rate_limit"}.get(exc.code, "")
                raise StripeError(self._mask(f"{target}: HTTP {exc.code}: {message}" + (f"; {hint}" if hint else "")),
                                  status=exc.code) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise StripeError(self._mask(f"{target}: no answer ({reason}); is api_base right and reachable?")) from None
            except ValueError as exc:
                raise StripeError(self._mask(f"{target}: the answer is not JSON ({exc})")) from None

    def failed_events(self, created_gte: int, types: t.Sequence[str], page_size: int,
                      max_pages: int) -> tuple[list[dict], bool]:
        def fetch(cursor: t.Optional[str]) -> dict[str, t.Any]:
            return self.request("GET", "/v1/events", events_query(created_gte, types, cursor, page_size))
        return list_all(fetch, max_pages)

    def retry_event(self, event_id: str, webhook_endpoint: str) -> dict[str, t.Any]:
        return self.request("POST", f"/v1/events/{urllib.parse.quote(event_id, safe='')}/retry",
                            form={"webhook_endpoint": webhook_endpoint})

    def get_event(self, event_id: str) -> dict[str, t.Any]:
        return self.request("GET", f"/v1/events/{urllib.parse.quote(event_id, safe='')}")


def _error_message(body: str) -> str:
    try:
        error = json.loads(body).get("error") or {}
        return str(error.get("message") or error.get("type") or body)[:300]
    except (ValueError, AttributeError):
        return body[:300] or "no body"


def post_signed(url: str, event: dict[str, t.Any], secret: str, timeout: float,
                now: t.Callable[[], float] = time.time) -> tuple[t.Optional[int], str]:
    """POST the event to the processor signed as Stripe signs. Returns (status or None, short
    error text or ""); never raises for a network failure, and never includes the secret."""
    payload = json.dumps(event, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(url, data=payload, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) sre.runbooks",
        "Stripe-Signature": sign_payload(secret, payload, int(now())),
    })
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(1024)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, mask_secrets(f"HTTP {exc.code}: {exc.read()[:200].decode('utf-8', errors='replace')}", [secret])
    except (urllib.error.URLError, OSError) as exc:
        return None, mask_secrets(f"no answer: {getattr(exc, 'reason', exc)}", [secret])


# ---------------------------------------------------------------------------------------------
# The verdict: act, or refuse and say why


def replay_verdict(secret: dict[str, t.Any], plan: dict[str, list[dict]], listing_complete: bool,
                   max_events: int, require_secret: bool = True) -> dict[str, t.Any]:
    """Decide from the evidence. ``problem`` set means refuse (change nothing) and report it;
    ``guardrail`` names the limit that tripped, when one did."""
    count = len(plan["replay"])
    verdict: dict[str, t.Any] = {"act": False, "problem": None, "guardrail": None, "healthy": False,
                                 "warnings": [], "replay_count": count}
    if secret["present"] and not secret["format_ok"]:
        verdict["warnings"].append(f"the webhook secret from {secret['source']} does not look like a Stripe "
                                   "signing secret (whsec_...); check it is the endpoint's, not an API key")
    if require_secret and not secret["present"]:
        verdict["problem"] = (f"the webhook signing secret is not configured ({secret['source']}): the processor "
                              "cannot verify Stripe's signatures, so a replay would fail again. Set it in the app's "
                              "configuration and restart the app, then re-run (require_webhook_secret=false skips this check)")
        verdict["summary"] = "refused: webhook secret missing"
        return verdict
    if not listing_complete:
        verdict["guardrail"] = "max_pages"
        verdict["problem"] = ("guardrail 'max_pages' tripped: the failed events were not all listed; nothing was "
                              "replayed. To override: raise max_pages, or narrow since/types")
        verdict["summary"] = "refused: listing incomplete"
        return verdict
    if count > max_events:
        verdict["guardrail"] = "max_events"
        verdict["problem"] = (f"guardrail 'max_events' tripped: {count} events to replay, more than max_events="
                              f"{max_events}; nothing was replayed. To override: raise max_events, or narrow since/types")
        verdict["summary"] = f"refused: {count} events exceed max_events"
        return verdict
    if not count:
        verdict["healthy"] = True
        verdict["summary"] = "no event failed delivery: nothing to replay" + (
            f" ({len(plan['too_old'])} too old to resend)" if plan["too_old"] else "")
        return verdict
    verdict["act"] = True
    verdict["summary"] = f"{count} event(s) failed delivery: replay them" + (
        f"; {len(plan['too_old'])} too old to resend" if plan["too_old"] else "")
    return verdict
