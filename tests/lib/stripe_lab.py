"""The Stripe lab: real localstripe, a stand-in for the routes it lacks, and a payment processor.

    python tests/lib/stripe_lab.py localstripe --port P --state DIR
    python tests/lib/stripe_lab.py standin --port P --upstream http://127.0.0.1:LOCALSTRIPE_PORT
    python tests/lib/stripe_lab.py receiver --port P

Everything binds 127.0.0.1. The test fixtures and the Molecule drill start these as processes and
end them afterwards (``StripeLab`` below); ports come from the lab inventory.

- ``localstripe`` (PyPI, pinned in requirements.txt) is the real fake Stripe: customers, events,
  signed webhooks. Its own ``start()`` binds every address and keeps its state in
  /tmp/localstripe.pickle; here it binds 127.0.0.1 and its pickle goes to ``--state``.
- ``standin`` is a STAND-IN, not Stripe: localstripe has no ``delivery_success`` filter on
  ``GET /v1/events``, no ``POST /v1/events/{id}/retry`` and no ``/v1/webhook_endpoints``. The
  stand-in serves exactly those, tracking each delivery by relaying localstripe's webhooks through
  itself, and proxies every other request to localstripe unchanged. ``/_standin/throttle``
  answers the next N API requests 429 (to test the back-off).
- ``receiver`` plays the payment processor: verifies the Stripe signature, acknowledges (200)
  or, when switched to fail, answers 500; ``/health`` says 503 while failing.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import hashlib
import hmac
import json
import os
import secrets as _secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# localstripe, bound to 127.0.0.1 with its own state file


def run_localstripe(port: int, state: str) -> None:
    from localstripe import resources
    from aiohttp import web
    from localstripe.server import app

    pickle_path = os.path.join(state, "localstripe.pickle")

    def private_open(path, *args, **kwargs):
        # localstripe hard-codes /tmp/localstripe.pickle: shared by every user of the machine.
        return builtins.open(pickle_path if path == "/tmp/localstripe.pickle" else path, *args, **kwargs)

    resources.open = private_open
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


# ---------------------------------------------------------------------------------------------
# The stand-in (NOT Stripe): delivery_success, /v1/events/{id}/retry, /v1/webhook_endpoints


def sign(secret: str, payload: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def run_standin(port: int, upstream: str) -> None:
    import aiohttp
    from aiohttp import web

    endpoints: dict[str, dict] = {}
    delivered: dict[str, dict[str, bool]] = {}  # event id -> endpoint id -> last delivery ok
    throttle = {"left": 0}

    async def deliver(session, endpoint: dict, event_id: str, payload: bytes, signature: str) -> bool:
        try:
            async with session.post(endpoint["url"], data=payload, headers={
                    "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature},
                    timeout=aiohttp.ClientTimeout(total=10)) as answer:
                ok = 200 <= answer.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        delivered.setdefault(event_id, {})[endpoint["id"]] = ok
        return ok

    async def upstream_json(session, method: str, path: str, auth: str, query=None) -> tuple[int, t.Any]:
        async with session.request(method, upstream + path, params=query, headers={"Authorization": auth}) as answer:
            return answer.status, await answer.json(content_type=None)

    @web.middleware
    async def throttled(request, handler):
        if request.path.startswith("/v1/") and throttle["left"] > 0:
            throttle["left"] -= 1
            return web.json_response({"error": {"type": "rate_limit_error", "message": "Too many requests (stand-in)"}},
                                     status=429, headers={"Retry-After": "0.2"})
        return await handler(request)

    async def create_endpoint(request):
        form = await request.post()
        url = form.get("url")
        if not url:
            return web.json_response({"error": {"message": "Missing required param: url."}}, status=400)
        endpoint_id = "we_" + _secrets.token_hex(12)
        endpoint = {"id": endpoint_id, "object": "webhook_endpoint", "url": url, "status": "enabled",
                    "enabled_events": form.getall("enabled_events[]", ["*"]), "created": int(time.time()),
                    "secret": "whsec_" + _secrets.token_hex(16)}
        endpoints[endpoint_id] = endpoint
        async with aiohttp.ClientSession() as session:
            relay = f"http://{HOST}:{port}/_relay/{endpoint_id}"
            async with session.post(f"{upstream}/_config/webhooks/{endpoint_id}",
                                    json={"url": relay, "secret": endpoint["secret"]}) as answer:
                if answer.status != 200:
                    return web.json_response({"error": {"message": "localstripe refused the webhook"}}, status=502)
        return web.json_response(endpoint)  # Stripe returns the secret on creation only

    async def list_endpoints(request):
        data = [{k: v for k, v in e.items() if k != "secret"} for e in endpoints.values()]
        return web.json_response({"object": "list", "url": "/v1/webhook_endpoints", "has_more": False, "data": data})

    async def relay(request):
        endpoint = endpoints.get(request.match_info["id"])
        payload = await request.read()
        if endpoint is None:
            return web.Response(status=410)
        event_id = json.loads(payload).get("id")
        async with aiohttp.ClientSession() as session:
            ok = await deliver(session, endpoint, event_id, payload, request.headers.get("Stripe-Signature", ""))
        return web.Response(status=200 if ok else 502)

    def pending(event_id: str) -> int:
        state = delivered.get(event_id, {})
        return sum(1 for endpoint_id in endpoints if state.get(endpoint_id) is False)

    async def list_events(request):
        query = request.query
        success = query.get("delivery_success")
        auth = request.headers.get("Authorization", "")
        upstream_query = [(k, v) for k, v in query.items() if k.startswith("created[")]
        async with aiohttp.ClientSession() as session:
            status, body = await upstream_json(session, "GET", "/v1/events", auth, upstream_query + [("limit", "100")])
            if status != 200:
                return web.json_response(body, status=status)
            events = body.get("data", [])
            while body.get("has_more") and body.get("data"):
                status, body = await upstream_json(session, "GET", "/v1/events", auth,
                                                   upstream_query + [("limit", "100"),
                                                                     ("starting_after", body["data"][-1]["id"])])
                events.extend(body.get("data", []))
        types = query.getall("types[]", [])
        out = []
        for event in events:
            if types and event.get("type") not in types:
                continue
            event["pending_webhooks"] = pending(event["id"])
            if success == "false" and not event["pending_webhooks"]:
                continue
            if success == "true" and (event["id"] not in delivered or event["pending_webhooks"]):
                continue
            out.append(event)
        out.sort(key=lambda e: (-e["created"], e["id"]))
        start = 0
        after = query.get("starting_after")
        if after:
            ids = [e["id"] for e in out]
            start = ids.index(after) + 1 if after in ids else len(out)
        limit = int(query.get("limit", "10"))
        page = out[start:start + limit]
        return web.json_response({"object": "list", "url": "/v1/events", "data": page,
                                  "has_more": start + limit < len(out)})

    async def retry_event(request):
        event_id = request.match_info["id"]
        form = await request.post()
        endpoint = endpoints.get(form.get("webhook_endpoint", ""))
        if endpoint is None:
            return web.json_response({"error": {"message": "No such webhook endpoint"}}, status=404)
        async with aiohttp.ClientSession() as session:
            status, event = await upstream_json(session, "GET", f"/v1/events/{event_id}",
                                                request.headers.get("Authorization", ""))
            if status != 200:
                return web.json_response(event, status=status)
            payload = json.dumps(event, indent=2, sort_keys=True).encode()
            await deliver(session, endpoint, event_id, payload, sign(endpoint["secret"], payload, int(time.time())))
        event["pending_webhooks"] = pending(event_id)
        return web.json_response(event)

    async def set_throttle(request):
        throttle["left"] = int(request.query.get("count", "0"))
        return web.json_response(throttle)

    async def deliveries(request):
        return web.json_response(delivered)

    async def reset(request):
        # A clean account between tests: no endpoint, no delivery, no object in localstripe.
        # (localstripe keeps the old webhooks; their relay answers 410 and records nothing.)
        endpoints.clear()
        delivered.clear()
        throttle["left"] = 0
        async with aiohttp.ClientSession() as session:
            async with session.delete(f"{upstream}/_config/data") as answer:
                return web.json_response({"reset": answer.status == 200})

    async def proxy(request):
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, upstream + request.path_qs, data=body, headers=headers) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    content_type=answer.content_type)

    app = web.Application(middlewares=[throttled])
    app.router.add_post("/v1/webhook_endpoints", create_endpoint)
    app.router.add_get("/v1/webhook_endpoints", list_endpoints)
    app.router.add_post("/_relay/{id}", relay)
    app.router.add_get("/v1/events", list_events)
    app.router.add_post("/v1/events/{id}/retry", retry_event)
    app.router.add_post("/_standin/throttle", set_throttle)
    app.router.add_get("/_standin/deliveries", deliveries)
    app.router.add_post("/_standin/reset", reset)
    app.router.add_route("*", "/{tail:.*}", proxy)
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


# ---------------------------------------------------------------------------------------------
# The payment processor


def verify(header: str, payload: bytes, secret: str, tolerance: int = 600) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if not secret or not parts.get("t", "").isdigit() or abs(time.time() - int(parts["t"])) > tolerance:
        return False
    expected = sign(secret, payload, int(parts["t"])).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v.split("=", 1)[1])
               for v in header.split(",") if v.startswith("v1="))


def run_receiver(port: int) -> None:
    from aiohttp import web

    state: dict[str, t.Any] = {"failing": False, "secret": "", "acks": [], "rejected": 0}

    async def webhook(request):
        payload = await request.read()
        if state["failing"]:
            return web.json_response({"error": "processor failing (switched)"}, status=500)
        if not verify(request.headers.get("Stripe-Signature", ""), payload, state["secret"]):
            state["rejected"] += 1
            return web.json_response({"error": "bad signature"}, status=400)
        event_id = json.loads(payload).get("id")
        if event_id not in state["acks"]:
            state["acks"].append(event_id)
        return web.json_response({"received": True})

    async def health(request):
        return web.json_response({"status": "failing" if state["failing"] else "ok"},
                                 status=503 if state["failing"] else 200)

    async def control(request):
        data = await request.json() if request.can_read_body else {}
        for key in ("failing", "secret"):
            if key in data:
                state[key] = data[key]
        if data.get("reset"):
            state["acks"], state["rejected"] = [], 0
        return web.json_response({"failing": state["failing"], "acks": state["acks"], "rejected": state["rejected"],
                                  "secret_set": bool(state["secret"])})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/health", health)
    app.router.add_post("/_control", control)
    app.router.add_get("/_control", control)
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


# ---------------------------------------------------------------------------------------------
# Starting and stopping all three (fixtures, drills)


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stripe lab: the process for port {port} exited with {process.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"stripe lab: nothing listens on {HOST}:{port} after {timeout}s")


class StripeLab:
    """The three processes, on the lab's ports; ``close()`` ends them and removes the state."""

    def __init__(self, localstripe_port: int, standin_port: int, receiver_port: int) -> None:
        self.ports = {"localstripe": localstripe_port, "standin": standin_port, "receiver": receiver_port}
        self.state = tempfile.mkdtemp(prefix="sre-stripe-lab-")
        self.processes: list[subprocess.Popen] = []
        self.api_base = f"http://{HOST}:{standin_port}"
        self.receiver = f"http://{HOST}:{receiver_port}"
        self.api_key = "sk_test_" + _secrets.token_hex(12)

    def start(self) -> "StripeLab":
        me = str(Path(__file__).resolve())
        commands = [
            ("localstripe", [sys.executable, me, "localstripe", "--port", str(self.ports["localstripe"]), "--state", self.state]),
            ("standin", [sys.executable, me, "standin", "--port", str(self.ports["standin"]),
                         "--upstream", f"http://{HOST}:{self.ports['localstripe']}"]),
            ("receiver", [sys.executable, me, "receiver", "--port", str(self.ports["receiver"])]),
        ]
        try:
            for name, command in commands:
                log = open(os.path.join(self.state, f"{name}.log"), "wb")  # noqa: SIM115 - closed with the process
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
                log.close()
                self.processes.append(process)
                _wait_port(self.ports[name], process)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes = []
        shutil.rmtree(self.state, ignore_errors=True)

    # --- calls the tests and the drill make ------------------------------------------------

    def call(self, method: str, url: str, form: t.Optional[dict] = None, json_body: t.Any = None,
             auth: bool = True) -> t.Any:
        data, headers = None, {}
        if form is not None:
            data = urllib.parse.urlencode(form, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - the lab, on 127.0.0.1
            return json.loads(answer.read() or b"null")

    def create_endpoint(self) -> dict:
        endpoint = self.call("POST", f"{self.api_base}/v1/webhook_endpoints", form={"url": f"{self.receiver}/webhook"})
        self.receiver_control(secret=endpoint["secret"])
        return endpoint

    def receiver_control(self, **changes: t.Any) -> dict:
        return self.call("POST", f"{self.receiver}/_control", json_body=changes, auth=False)

    def create_customers(self, count: int) -> list[str]:
        return [self.call("POST", f"{self.api_base}/v1/customers", form={"email": f"c{i}@example.com"})["id"]
                for i in range(count)]

    def deliveries(self) -> dict:
        return self.call("GET", f"{self.api_base}/_standin/deliveries", auth=False)

    def wait_deliveries(self, count: int, timeout: float = 60.0) -> dict:
        """localstripe posts each webhook about a second after the event: wait for ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.deliveries()
            if len(seen) >= count or time.monotonic() > deadline:
                return seen
            time.sleep(0.3)

    def reset(self) -> None:
        self.call("POST", f"{self.api_base}/_standin/reset", auth=False)
        self.receiver_control(failing=False, secret="", reset=True)

    def throttle(self, count: int) -> None:
        self.call("POST", f"{self.api_base}/_standin/throttle?count={count}", auth=False)


# ---------------------------------------------------------------------------------------------
# The drill (molecule/stripe_webhooks): up, fault, down, with a JSON state file between steps


def drill_up(state_file: str, ports: list[int]) -> None:
    lab = StripeLab(*ports).start()
    Path(state_file).write_text(json.dumps({"pids": [p.pid for p in lab.processes], "state": lab.state,
                                            "ports": ports, "api_key": lab.api_key}))


def drill_lab(state_file: str) -> tuple[StripeLab, dict]:
    saved = json.loads(Path(state_file).read_text())
    lab = StripeLab(*saved["ports"])
    shutil.rmtree(lab.state, ignore_errors=True)
    lab.state, lab.api_key = saved["state"], saved["api_key"]
    return lab, saved


def drill_fault(state_file: str) -> None:
    """The fault: the processor fails while 3 events happen (their delivery fails), then it is
    healed - the state the on-call finds. 2 events delivered before stay delivered."""
    lab, saved = drill_lab(state_file)
    lab.reset()
    endpoint = lab.create_endpoint()
    lab.create_customers(2)
    lab.wait_deliveries(2)
    lab.receiver_control(failing=True)
    lab.create_customers(3)
    deliveries = lab.wait_deliveries(5)
    lab.receiver_control(failing=False)
    saved.update(endpoint_id=endpoint["id"], webhook_secret=endpoint["secret"],
                 failed=sorted(e for e, d in deliveries.items() if d.get(endpoint["id"]) is False))
    Path(state_file).write_text(json.dumps(saved))


def drill_down(state_file: str) -> None:
    path = Path(state_file)
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    for pid in saved.get("pids", []):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _attempt in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(saved.get("state", ""), ignore_errors=True)
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["localstripe", "standin", "receiver", "drill-up", "drill-fault", "drill-down"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--ports", type=int, nargs=3)
    parser.add_argument("--state")
    parser.add_argument("--state-file")
    parser.add_argument("--upstream")
    args = parser.parse_args()
    if args.role == "drill-up":
        drill_up(args.state_file, args.ports)
    elif args.role == "drill-fault":
        drill_fault(args.state_file)
    elif args.role == "drill-down":
        drill_down(args.state_file)
    elif args.role == "localstripe":
        run_localstripe(args.port, args.state)
    elif args.role == "standin":
        run_standin(args.port, args.upstream)
    else:
        run_receiver(args.port)


if __name__ == "__main__":
    main()
