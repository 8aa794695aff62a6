"""Loopback endpoints for the failure cases of network clients.

- :func:`refused_endpoint`: ``127.0.0.1:<port>`` where nothing listens (connection refused);
- :func:`hanging_endpoint` (fixture): a listener that accepts connections and never answers (timeouts);
- :func:`serve_http` / :func:`stop_http`: a threaded ``http.server`` (HTTPS with a context) on a loopback port,
  as the test servers run their handlers.

    from servers.net import hanging_endpoint  # noqa: F401
"""
from __future__ import annotations

import http.server
import socket
import ssl
import threading

import pytest

HOST = "127.0.0.1"


def refused_endpoint() -> str:
    """``127.0.0.1:<port>`` of a port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return f"{HOST}:{s.getsockname()[1]}"


def serve_http(handler: type[http.server.BaseHTTPRequestHandler], name: str,
               context: ssl.SSLContext | None = None) -> http.server.ThreadingHTTPServer:
    """Serve ``handler`` on a loopback port (``.server_address[1]``) from a daemon thread ``<name>-<port>``,
    over TLS when ``context`` is given; stop it with :func:`stop_http`."""
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name=f"{name}-{server.server_address[1]}", daemon=True).start()
    return server


def stop_http(server: http.server.ThreadingHTTPServer | None) -> None:
    """Stop a server of :func:`serve_http` (None: nothing to stop)."""
    if server is not None:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hanging_endpoint():
    """``host:port`` of a TCP listener that accepts connections and never answers (for timeouts)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(16)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"{HOST}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
