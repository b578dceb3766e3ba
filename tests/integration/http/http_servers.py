"""Real HTTP servers on 127.0.0.1 for the http_health tests and its benchmark: a threaded
http.server with health-like handlers, a listener that accepts and never answers, a port that
refuses, and a self-signed TLS server (certificate made with the openssl CLI).

Every server binds a random free port and is stopped by ``close()``; nothing outlives a test.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import typing as t
from pathlib import Path

SECRET_ECHO_HEADER = "X-Echo-Auth"


class HealthHandler(http.server.BaseHTTPRequestHandler):
    """Paths: /ok (JSON status ok), /degraded (200, status degraded), /status/NNN, /slow/MS
    (JSON ok after MS ms), /text (plain OK), /notjson, /nested, /redirect, /echo-auth (401 and
    echoes the Authorization header back, as a careless server would), /post (POST only)."""

    protocol_version = "HTTP/1.1"
    server_version = "lab-health/1"

    def log_message(self, fmt: str, *args: t.Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: t.Union[bytes, str, dict, list], ctype: str = "application/json") -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path in ("/ok", "/"):
            self._send(200, {"status": "ok", "version": "1.2.3"})
        elif path == "/degraded":
            self._send(200, {"status": "degraded"})
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, {"status": "error", "code": code})
        elif path.startswith("/slow/"):
            time.sleep(int(path.rsplit("/", 1)[1]) / 1000.0)
            self._send(200, {"status": "ok"})
        elif path == "/text":
            self._send(200, "OK healthy", "text/plain")
        elif path == "/notjson":
            self._send(200, "<html>maintenance</html>", "text/html")
        elif path == "/nested":
            self._send(200, {"checks": [{"name": "db", "status": "up"}, {"name": "cache", "status": "down"}],
                             "count": 2, "live": True})
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/echo-auth":
            self._send(401, {"error": "denied", "you_sent": self.headers.get("Authorization", ""),
                             "echo": self.headers.get(SECRET_ECHO_HEADER, "")})
        elif path == "/need-auth":
            if self.headers.get("Authorization", "").startswith("Basic "):
                self._send(200, {"status": "ok"})
            else:
                self._send(401, {"error": "no credentials"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.path == "/post":
            try:
                payload = json.loads(data or b"null")
            except ValueError:
                payload = None
            self._send(200, {"status": "ok", "received": payload,
                             "content_type": self.headers.get("Content-Type")})
        else:
            self._send(405, {"error": "method not allowed"})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class LocalServers:
    """Start with ``start()``, stop with ``close()``. Attributes: ``http`` (base URL),
    ``https`` (base URL or None), ``ca_path`` (the self-signed certificate), ``refused``
    (a URL whose port refuses), ``blackhole`` (a URL that accepts and never answers),
    ``closer`` (a URL that accepts and closes the connection without answering)."""

    def __init__(self, tmpdir: Path, tls: bool = True) -> None:
        self.tmpdir = Path(tmpdir)
        self.want_tls = tls
        self._servers: list[http.server.HTTPServer] = []
        self._sockets: list[socket.socket] = []
        self.https: t.Optional[str] = None
        self.ca_path: t.Optional[str] = None
        self.tls_skip_reason = ""

    def _serve(self, server: http.server.HTTPServer) -> str:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        self._servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    def start(self) -> "LocalServers":
        self.http = "http://" + self._serve(_Server(("127.0.0.1", 0), HealthHandler))
        # A port that refuses: bind it, note it, close it (nobody else binds 127.0.0.1 random ports here).
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.refused = f"http://127.0.0.1:{probe.getsockname()[1]}/health"
        probe.close()
        # Accepts (the kernel completes the handshake from the backlog) and never answers.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(1024)
        self._sockets.append(hole)
        self.blackhole = f"http://127.0.0.1:{hole.getsockname()[1]}/health"
        # Accepts and closes at once without a byte: a crashing worker behind a live listener.
        closer = socket.socket()
        closer.bind(("127.0.0.1", 0))
        closer.listen(64)
        closer.settimeout(0.2)
        self._sockets.append(closer)
        self.closer = f"http://127.0.0.1:{closer.getsockname()[1]}/health"
        self._stop = threading.Event()
        threading.Thread(target=self._close_all, args=(closer,), daemon=True).start()
        if self.want_tls:
            self._start_tls()
        return self

    def _close_all(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = listener.accept()
            except (socket.timeout, OSError):
                continue
            conn.close()

    def _start_tls(self) -> None:
        openssl = shutil.which("openssl")
        if not openssl:
            self.tls_skip_reason = "the openssl CLI is not installed: cannot make a self-signed certificate"
            return
        cert, key = self.tmpdir / "server.pem", self.tmpdir / "server.key"
        proc = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
            capture_output=True, text=True, check=False, timeout=60)
        if proc.returncode != 0:
            self.tls_skip_reason = f"openssl could not make a certificate: {proc.stderr.strip()[:200]}"
            return
        server = _Server(("127.0.0.1", 0), HealthHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.https = "https://" + self._serve(server)
        self.ca_path = str(cert)

    def close(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._servers.clear()
        self._sockets.clear()
