"""A webhook that records what it is sent: the stand-in for a chat service, an incident tool or any HTTP
endpoint a notification goes to (``method``, ``path``, ``headers``, raw ``body`` of every request).

``answers`` scripts the responses (status codes, consumed in order; then 200), so tests can make it fail::

    from servers.capture import capture_server  # noqa: F401
"""
from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from servers.net import serve_http, stop_http


class Headers(dict):
    """Request headers, looked up case-insensitively (HTTP clients differ in the case they send)."""

    def __init__(self, items):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __contains__(self, key):
        return super().__contains__(key.lower())


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class CaptureServer:
    """Records requests on a loopback port (``.url``); ``answers`` are the next status codes to return."""

    def __init__(self):
        self.requests: list[Request] = []
        self.answers: list[int] = []
        self.get_replies: list[tuple[int, bytes]] = []
        """What GETs answer, in order (then 200 ``[]``): the statuses a commit-status API lists."""
        self._lock = threading.Lock()
        self._server = None

    def start(self) -> "CaptureServer":
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with capture._lock:
                    capture.requests.append(Request(self.command, self.path, Headers(self.headers.items()), body))
                    status = capture.answers.pop(0) if capture.answers else 200
                data = b"ok" if status < 300 else f"failure {status}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PUT = do_POST  # noqa: N815

            def do_GET(self):  # noqa: N802
                with capture._lock:
                    capture.requests.append(Request(self.command, self.path, Headers(self.headers.items()), b""))
                    status, data = capture.get_replies.pop(0) if capture.get_replies else (200, b"[]")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002
                pass

        self._server = serve_http(Handler, "capture")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        stop_http(self._server)

    def received(self) -> list[Request]:
        with self._lock:
            return list(self.requests)


@pytest.fixture
def capture_server():
    server = CaptureServer().start()
    try:
        yield server
    finally:
        server.stop()


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """POST ``body``; the response's status code."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def event_body(kind: str, name: str, namespace: str, *, api_version: str, severity: str = "info",
               message: str = "message", reason: str = "Succeeded", metadata: dict | None = None) -> bytes:
    """A Flux event as a controller posts it."""
    return json.dumps({"involvedObject": {"kind": kind, "namespace": namespace, "name": name,
                                          "apiVersion": api_version},
                       "severity": severity, "timestamp": "2026-12-05T00:00:00Z", "message": message,
                       "reason": reason, "metadata": metadata or {}, "reportingController": "source-controller",
                       "reportingInstance": "source-controller-1"}).encode()
