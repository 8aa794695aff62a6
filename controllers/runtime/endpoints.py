"""The HTTP endpoints of a controller process (``/metrics``, ``/healthz``, ``/readyz``), stdlib only."""
from __future__ import annotations

import http.server
import sys
import threading
from typing import Callable

#: a route answers (status, content type, body).
Route = Callable[[], "tuple[int, str, str]"]


def parse_addr(addr: str) -> tuple[str, int] | None:
    """``":8080"`` -> ("", 8080); ``"127.0.0.1:0"`` -> ("127.0.0.1", 0); ``""`` or ``"0"`` -> None (disabled)."""
    if not addr or addr == "0":
        return None
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise ValueError(f"invalid address {addr!r}: expected [host]:port")
    return host.strip("[]"), int(port)


class EndpointServer:
    """A threaded HTTP server serving a few GET routes; :attr:`port` is the bound port."""

    def __init__(self, addr: str, routes: dict[str, Route]):
        bind = parse_addr(addr)
        if bind is None:
            raise ValueError("endpoint disabled")
        server_routes = routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                route = server_routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain; charset=utf-8", "404 page not found\n"
                else:
                    try:
                        status, ctype, body = route()
                    except Exception as exc:  # noqa: BLE001
                        status, ctype, body = 500, "text/plain; charset=utf-8", f"{exc}\n"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        self._http = ThreadedServer(bind, Handler, "http")
        self.port = self._http.port

    def start(self) -> "EndpointServer":
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` of daemon threads that says nothing when a client hangs up mid-answer (a
    consumer killed or timed out while downloading); any other handler error still prints its traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class ThreadedServer:
    """A :class:`QuietHTTPServer` bound to ``bind`` and served on a daemon thread; :attr:`port` is the bound
    port."""

    def __init__(self, bind: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler], name: str, *,
                 server_class: type[QuietHTTPServer] | None = None):
        self._server = (server_class or QuietHTTPServer)(bind, handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{name}-{self.port}", daemon=True)

    @property
    def http_server(self) -> QuietHTTPServer:
        """The server itself (e.g. to wrap its socket in TLS before :meth:`start`)."""
        return self._server

    def start(self) -> "ThreadedServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def text(body: str, status: int = 200) -> tuple[int, str, str]:
    return status, "text/plain; charset=utf-8", body
