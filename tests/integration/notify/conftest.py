"""A local HTTP receiver standing in for Slack and PagerDuty: it records every request and can
fail the first N. Nothing here mocks our code: the modules and playbooks send real HTTP."""

from __future__ import annotations

import json
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# Fake secrets, unique enough that finding them in any output means they leaked.
WEBHOOK_SECRET_PATH = "/services/T0LEAK/B0LEAK/hookSecretXq7Zp2"
ROUTING_KEY = "R0UTINGKEYleak9f3a7c1e"
INVALID_ROUTING_KEY = "invalid-routing-key-0000"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, t.Any]] = []
        self.fail_first = 0
        self.fail_status = 500
        self.retry_after: str | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: t.Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(body)
                except ValueError:
                    data = None
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "json": data})
                    failing = len(receiver.requests) <= receiver.fail_first
                if failing:
                    self.send_response(receiver.fail_status)
                    if receiver.retry_after is not None:
                        self.send_header("Retry-After", receiver.retry_after)
                    payload = b'{"status": "throttled"}' if receiver.fail_status == 429 else b"upstream error"
                elif self.path.startswith("/v2/enqueue"):
                    if not isinstance(data, dict) or data.get("routing_key") == INVALID_ROUTING_KEY:
                        self.send_response(400)
                        payload = json.dumps({"status": "invalid event", "message": "Event object is invalid"}).encode()
                    else:
                        self.send_response(202)
                        payload = json.dumps({"status": "success", "message": "Event processed",
                                              "dedup_key": data.get("dedup_key")}).encode()
                else:
                    self.send_response(200)
                    payload = b"ok"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.base + WEBHOOK_SECRET_PATH

    @property
    def pagerduty_url(self) -> str:
        return self.base + "/v2/enqueue"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> t.Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
