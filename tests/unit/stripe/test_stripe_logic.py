"""Unit tests for plugins/module_utils/_stripe.py: signature, secret inspection, env files,
query, pagination, the replay plan, the verdict, back-off, masking and the client's 429 handling.
No network except a local http.server for the client; tests/integration/stripe uses localstripe."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils import _stripe
from ansible_collections.sre.runbooks.plugins.module_utils._secrets import MASK

NOW = 1_800_000_000
SECRET = "whsec_" + "a1b2c3d4" * 4
KEY = "sk_test_" + "Zx9" * 8


# --- signature --------------------------------------------------------------------------------

def test_sign_payload_is_stripes_scheme():
    header = _stripe.sign_payload(SECRET, b'{"id":"evt_1"}', NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + b'{"id":"evt_1"}', hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_verify_signature_accepts_its_own_and_any_v1():
    payload = b"{}"
    header = _stripe.sign_payload(SECRET, payload, NOW)
    assert _stripe.verify_signature(header, payload, SECRET, NOW)
    assert _stripe.verify_signature(f"t={NOW},v1=00ff,{header.split(',')[1]}", payload, SECRET, NOW)


@pytest.mark.parametrize("header, payload, secret, now", [
    (None, b"{}", SECRET, NOW),
    ("", b"{}", SECRET, NOW),
    ("v1=abc", b"{}", SECRET, NOW),                      # no timestamp
    (f"t={NOW}", b"{}", SECRET, NOW),                     # no v1
    ("SIGNED", b"{}", SECRET, NOW + 301),                 # too old (replaced below)
    ("SIGNED", b'{"x":1}', SECRET, NOW),                  # payload changed
    ("SIGNED", b"{}", "whsec_other", NOW),                # another secret
    ("SIGNED", b"{}", "", NOW),                           # no secret
])
def test_verify_signature_refuses(header, payload, secret, now):
    if header == "SIGNED":
        header = _stripe.sign_payload(SECRET, b"{}", NOW)
    assert not _stripe.verify_signature(header, payload, secret, now)


# --- the secret -------------------------------------------------------------------------------

def test_secret_info_never_holds_the_value():
    info = _stripe.secret_info(SECRET, "EnvironmentFile /etc/app/env (STRIPE_WEBHOOK_SECRET)")
    assert info["present"] and info["format_ok"] and info["length"] == len(SECRET)
    assert SECRET not in json.dumps(info)
    assert info["sha256_prefix"] == hashlib.sha256(SECRET.encode()).hexdigest()[:8]


@pytest.mark.parametrize("value, present, format_ok", [(None, False, False), ("", False, False),
                                                       ("sk_test_notasecret", True, False), ("whsec_", True, False)])
def test_secret_info_absent_or_odd(value, present, format_ok):
    info = _stripe.secret_info(value, "x")
    assert (info["present"], info["format_ok"]) == (present, format_ok)
    assert info["sha256_prefix"] is (None if not value else info["sha256_prefix"])


def test_parse_env_file():
    text = ("# comment\n; other\n\nexport STRIPE_WEBHOOK_SECRET=\"whsec_x\"\nA='b c'\nB=plain \nnot a line\n")
    assert _stripe.parse_env_file(text) == {"STRIPE_WEBHOOK_SECRET": "whsec_x", "A": "b c", "B": "plain"}


# --- listing ----------------------------------------------------------------------------------

def test_events_query():
    assert _stripe.events_query(100, ["invoice.paid", "charge.failed"], "evt_9", 50) == [
        ("delivery_success", "false"), ("created[gte]", "100"), ("limit", "50"),
        ("types[]", "invoice.paid"), ("types[]", "charge.failed"), ("starting_after", "evt_9")]
    assert ("starting_after", None) not in _stripe.events_query(0)


def _pages(pages):
    calls = []

    def fetch(cursor):
        calls.append(cursor)
        return pages[len(calls) - 1]
    return fetch, calls


def test_list_all_follows_has_more():
    fetch, calls = _pages([{"data": [{"id": "a"}, {"id": "b"}], "has_more": True},
                           {"data": [{"id": "c"}], "has_more": False}])
    items, complete = _stripe.list_all(fetch, 10)
    assert [i["id"] for i in items] == ["a", "b", "c"] and complete and calls == [None, "b"]


def test_list_all_incomplete_at_max_pages():
    fetch, calls = _pages([{"data": [{"id": "a"}], "has_more": True}, {"data": [{"id": "b"}], "has_more": True}])
    items, complete = _stripe.list_all(fetch, 2)
    assert len(items) == 2 and not complete


@pytest.mark.parametrize("page", [{"data": [], "has_more": True}, {"data": [{"id": None}], "has_more": True}])
def test_list_all_stops_on_a_page_without_a_cursor(page):
    fetch, calls = _pages([page])
    assert _stripe.list_all(fetch, 5)[1] is True and len(calls) == 1


def test_list_all_stops_on_a_repeated_cursor():
    fetch, calls = _pages([{"data": [{"id": "a"}], "has_more": True}, {"data": [{"id": "a"}], "has_more": True}])
    items, complete = _stripe.list_all(fetch, 5)
    assert complete and len(calls) == 2


# --- the plan ---------------------------------------------------------------------------------

def ev(event_id, age, type_="invoice.paid", pending=1):
    return {"id": event_id, "created": NOW - age, "type": type_, "pending_webhooks": pending}


def test_plan_replay_sorts_filters_and_dedups():
    events = [ev("new", 10), ev("old", 31 * 86400), ev("mid", 100), ev("mid", 100), ev("done", 50, pending=0),
              ev("skip", 60), ev("other", 70, type_="charge.failed"), {"id": None, "created": 1}]
    plan = _stripe.plan_replay(events, NOW, types=["invoice.paid"], skip_ids=["skip"])
    assert [e["id"] for e in plan["replay"]] == ["mid", "new"]            # oldest first, once
    assert [e["id"] for e in plan["too_old"]] == ["old"]
    reasons = {e["id"]: e["reason"] for e in plan["skipped"]}
    assert reasons["done"].startswith("already delivered") and reasons["skip"] == "in skip_event_ids"
    assert reasons["other"] == "type not selected"
    assert plan["replay"][0]["age_seconds"] == 100


def test_plan_replay_keeps_events_exactly_30_days_old():
    assert [e["id"] for e in _stripe.plan_replay([ev("edge", 30 * 86400)], NOW)["replay"]] == ["edge"]


# --- the verdict ------------------------------------------------------------------------------

OK_SECRET = _stripe.secret_info(SECRET, "option")


def plan_of(n, too_old=0):
    return {"replay": [{"id": f"e{i}"} for i in range(n)], "too_old": [{"id": "o"}] * too_old, "skipped": []}


def test_verdict_act():
    verdict = _stripe.replay_verdict(OK_SECRET, plan_of(3, too_old=1), True, 10)
    assert verdict["act"] and not verdict["problem"] and "3 event(s)" in verdict["summary"] and "1 too old" in verdict["summary"]


def test_verdict_healthy_nothing_to_do():
    verdict = _stripe.replay_verdict(OK_SECRET, plan_of(0), True, 10)
    assert verdict["healthy"] and not verdict["act"] and verdict["problem"] is None
    assert "too old" in _stripe.replay_verdict(OK_SECRET, plan_of(0, 2), True, 10)["summary"]


def test_verdict_refuses_without_secret():
    verdict = _stripe.replay_verdict(_stripe.secret_info(None, "EnvironmentFile /x"), plan_of(1), True, 10)
    assert not verdict["act"] and "not configured (EnvironmentFile /x)" in verdict["problem"]
    assert _stripe.replay_verdict(_stripe.secret_info(None, "x"), plan_of(1), True, 10, require_secret=False)["act"]


def test_verdict_guardrails():
    capped = _stripe.replay_verdict(OK_SECRET, plan_of(11), True, 10)
    assert capped["guardrail"] == "max_events" and "raise max_events" in capped["problem"] and not capped["act"]
    assert _stripe.replay_verdict(OK_SECRET, plan_of(10), True, 10)["act"]
    cut = _stripe.replay_verdict(OK_SECRET, plan_of(1), False, 10)
    assert cut["guardrail"] == "max_pages" and not cut["act"]


def test_verdict_warns_on_an_odd_secret():
    verdict = _stripe.replay_verdict(_stripe.secret_info("sk_test_123456789", "x"), plan_of(1), True, 10)
    assert verdict["act"] and "whsec_" in verdict["warnings"][0]


# --- back-off ---------------------------------------------------------------------------------

@pytest.mark.parametrize("attempt, retry_after, cap, expected", [
    (1, None, 30, 0.5), (3, None, 30, 2.0), (10, None, 30, 30), (1, "2", 30, 2.0), (1, "120", 30, 30),
    (2, "soon", 30, 1.0), (1, "-1", 30, 0.5), (1, "nan", 30, 0.5), (1, "0", 30, 0.0),
])
def test_backoff_delay(attempt, retry_after, cap, expected):
    assert _stripe.backoff_delay(attempt, retry_after, cap=cap) == expected


# --- masking ----------------------------------------------------------------------------------

def test_mask_secrets_known_values_and_shapes():
    text = f"key {KEY} secret {SECRET} other sk_live_abcdefgh1234 whsec_zzzzzzzzzz custom-s3cr3t"
    masked = _stripe.mask_secrets(text, [KEY, SECRET, "custom-s3cr3t", None])
    for value in (KEY, SECRET, "sk_live_abcdefgh1234", "whsec_zzzzzzzzzz", "custom-s3cr3t"):
        assert value not in masked
    assert masked.count(MASK) == 5
    assert _stripe.mask_secrets(None, [KEY]) is None


# --- the client against a local server (429 back-off, errors masked) -----------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    script: list = []
    seen: list = []

    def log_message(self, *args):  # quiet
        pass

    def _answer(self):
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, headers, body = self.script.pop(0)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    do_GET = do_POST = _answer


@pytest.fixture()
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.script, _Handler.seen = [], []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_client_backs_off_on_429_then_succeeds(server):
    _Handler.script = [(429, {"Retry-After": "7"}, {}), (429, {}, {}), (200, {}, {"data": [], "has_more": False})]
    waits = []
    client = _stripe.StripeClient(server, KEY, rate_limit=0, backoff_cap=5, sleep=waits.append)
    items, complete = client.failed_events(0, [], 100, 3)
    assert items == [] and complete
    assert waits == [5, 1.0] and client.throttled == 2 and client.requests == 3
    assert _Handler.seen[0][2] == f"Bearer {KEY}" and "delivery_success=false" in _Handler.seen[0][1]


def test_client_gives_up_after_max_retries_and_masks(server):
    _Handler.script = [(429, {}, {})] * 2
    client = _stripe.StripeClient(server, KEY, rate_limit=0, max_retries=1, sleep=lambda s: None)
    with pytest.raises(_stripe.StripeError) as raised:
        client.retry_event("evt_1", "we_1")
    assert raised.value.status == 429 and "lower rate_limit" in str(raised.value)


def test_client_error_message_never_holds_the_key(server):
    _Handler.script = [(401, {}, {"error": {"message": f"Invalid API Key provided: {KEY}"}})]
    client = _stripe.StripeClient(server, KEY, rate_limit=0, secrets=[SECRET])
    with pytest.raises(_stripe.StripeError) as raised:
        client.get_event("evt_1")
    assert KEY not in str(raised.value) and "HTTP 401" in str(raised.value) and "API key right" in str(raised.value)


def test_client_no_answer():
    client = _stripe.StripeClient("http://127.0.0.1:9", KEY, timeout=2, rate_limit=0)
    with pytest.raises(_stripe.StripeError) as raised:
        client.get_event("evt_1")
    assert raised.value.status is None and "no answer" in str(raised.value)


def test_client_paces_requests():
    waits, clock = [], iter([0.0, 0.01, 0.05])
    client = _stripe.StripeClient("http://x", KEY, rate_limit=20, sleep=waits.append, clock=lambda: next(clock))
    client._pace()
    client._pace()
    assert waits == [pytest.approx(0.04)]


def test_post_signed_no_answer_is_a_result():
    status, error = _stripe.post_signed("http://127.0.0.1:9/webhook", {"id": "evt_1"}, SECRET, 2)
    assert status is None and "no answer" in error and SECRET not in error
