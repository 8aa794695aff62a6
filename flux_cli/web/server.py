"""The ``fluxpy ui`` web server: static assets, a JSON API, and one Server-Sent Events stream per page.

Routes (the JSON shapes are in ``docs/ui.md``): ``/`` (the page), ``/static/*``, ``GET /api/graph``,
``GET /api/events`` (SSE), ``GET /api/object?id=``, ``GET /api/diff?id=``, ``POST /api/action``.

Who may talk to it. On a workstation the server is reachable by every web page the user's browser opens and by
every local user, so:

- ``Host`` must name the bound address (or ``localhost``) and port: a DNS-rebinding page cannot reach it;
- the URL printed at start carries a per-process token; opening it sets an ``HttpOnly; SameSite=Strict``
  cookie, and every other request needs that cookie (other local users do not know the token);
- a POST also needs the token in ``X-Fluxpy-Token`` (read by the page from its ``<meta>``) and a JSON body,
  and a present ``Origin`` must be the server's own: another site's page can neither read the token nor send
  a custom header without a CORS preflight, which this server never grants;
- every answer forbids framing and inline script (CSP ``default-src 'self'``).

In a cluster (``--in-cluster``) a trusted proxy authenticates the user instead (:mod:`flux_cli.web.trust`):
the identity headers are read only from it, each identity gets its own impersonating client and watches, and
actions are refused unless the server was started with ``--allow-actions``.
"""
from __future__ import annotations

import dataclasses
import gzip
import hmac
import http.cookies
import http.server
import json
import queue
import secrets
import threading
import urllib.parse
from importlib import resources
from typing import Callable

from controllers.runtime.endpoints import QuietHTTPServer, ThreadedServer
from controllers.runtime.kube import KubeError
from flux_cli.web import api, graph
from flux_cli.web.hub import Hub

COOKIE = "fluxpy_ui"
TOKEN_HEADER = "X-Fluxpy-Token"
#: open event streams at most; each holds a thread.
MAX_STREAMS = 200
KEEP_ALIVE_SECONDS = 15.0
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                               "form-action 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY"}


@dataclasses.dataclass
class UIConfig:
    """How the server runs."""

    address: str = "127.0.0.1"
    port: int = 9080
    #: the per-process secret of the printed URL, the cookie and the POST header.
    token: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))
    #: whether POST /api/action is served (always in CLI mode; ``--allow-actions`` in a cluster).
    allow_actions: bool = True
    flux_namespace: str = "flux-system"
    #: ``fluxpy dev``'s state directory, where the local controllers' logs are.
    state_dir: str | None = None
    #: in a cluster: the proxy that authenticates users (a :class:`flux_cli.web.trust.ProxyTrust`); None on a
    #: workstation, where the token and cookie admit the one user whose kubeconfig the server uses.
    trust: object | None = None


class Forbidden(Exception):
    """A request refused before it reaches the API (status, message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def static_file(name: str) -> bytes | None:
    """An asset of ``flux_cli/web/static`` (package data), or None."""
    if not name or "/" in name or name.startswith("."):
        return None
    path = resources.files("flux_cli.web").joinpath("static", name)
    return path.read_bytes() if path.is_file() else None


class UIServer:
    """The HTTP server, bound at construction (an address in use raises OSError). ``hub_for(identity)``
    gives the hub whose watches and client a request uses: one for the CLI, one per user in a cluster."""

    def __init__(self, hub_for: Callable[[object], Hub], config: UIConfig):
        self.hub_for, self.config = hub_for, config
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self.stopping = threading.Event()
        server = self

        class Handler(RequestHandler):
            ui = server

        context = getattr(config.trust, "ssl_context", None)
        server_class = None
        if context is not None:
            from flux_cli.web.trust import HandshakeInThread

            server_class = type("TLSServer", (HandshakeInThread, QuietHTTPServer), {})
        self.http = ThreadedServer((config.address, config.port), Handler, "ui", server_class=server_class)
        if context is not None:
            from flux_cli.web.trust import wrap_server

            wrap_server(self.http.http_server, context)
        self.port = self.http.port

    @property
    def base_url(self) -> str:
        host = self.config.address if self.config.address not in ("", "0.0.0.0", "::") else "127.0.0.1"
        scheme = "https" if getattr(self.config.trust, "ssl_context", None) is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to open: with the token on a workstation."""
        return self.base_url + ("/" if self.config.trust is not None else f"/?token={self.config.token}")

    def start(self) -> "UIServer":
        self.http.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.http.stop()


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """One request. The class attribute ``ui`` is the :class:`UIServer`."""

    ui: UIServer
    protocol_version = "HTTP/1.1"
    server_version = "fluxpy-ui"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        return  # requests are not logged: the terminal shows the URL and errors only

    # ------------------------------------------------------------------ dispatch

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            self.check_host()
            if self.ui.config.trust is None and url.path == "/" and "token" in query:
                return self.exchange_token(query["token"])
            identity = self.identify()
            if method == "GET" and (url.path == "/" or url.path == "/index.html"):
                return self.index()
            if method == "GET" and url.path.startswith("/static/"):
                return self.asset(url.path[len("/static/"):])
            hub = self.ui.hub_for(identity)
            kube = hub.kube  # the user's own client: their kubeconfig, or impersonating them
            if method == "GET" and url.path == "/api/graph":
                return self.json(200, filtered(hub.snapshot(), query))
            if method == "GET" and url.path == "/api/events":
                return self.events(hub)
            if method == "GET" and url.path == "/api/object":
                return self.json(200, api.object_page(kube, hub, query.get("id", ""),
                                                      flux_namespace=self.ui.config.flux_namespace,
                                                      state_dir=self.ui.config.state_dir))
            if method == "GET" and url.path == "/api/diff":
                return self.json(200, api.diff_of(kube, hub, query.get("id", "")))
            if method == "POST" and url.path == "/api/action":
                self.check_post()
                return self.json(202, api.start_action(kube, hub, self.read_json()))
            self.json(404, {"error": "not found", "message": f"no route {method} {url.path}"})
        except Forbidden as exc:
            self.json(exc.status, {"error": {401: "unauthorized", 403: "forbidden"}.get(exc.status, "bad request"),
                                   "message": str(exc)})
        except api.ApiError as exc:
            self.json(exc.status, {"error": exc.error, "message": exc.message})
        except OverflowError as exc:  # the in-cluster server's cap on identities watched at once
            self.json(503, {"error": "busy", "message": str(exc)})
        except KubeError as exc:  # a request made for the page failed (e.g. the apiserver is unreachable)
            error = api.ApiError.of(exc)
            self.json(error.status, {"error": error.error, "message": error.message})
        except Exception as exc:  # noqa: BLE001 - a bug: one line for the page and the log, no traceback
            from controllers.runtime.logs import get_logger

            get_logger("ui").error("request failed", path=url.path, error=exc)
            self.json(500, {"error": "internal", "message": f"{type(exc).__name__}: {exc}"})

    # ------------------------------------------------------------------ who is asking

    def check_host(self) -> None:
        """Refuse a ``Host`` that is not this server (DNS rebinding); in a cluster the proxy's Host is unknown."""
        if self.ui.config.trust is not None:
            return
        host = (self.headers.get("Host") or "").lower()
        allowed = {f"{name}:{self.ui.port}" for name in ("localhost", "127.0.0.1", "[::1]", self.ui.config.address)}
        if host not in allowed:
            raise Forbidden(403, f"unexpected Host {host!r}: open {self.ui.base_url}/")

    def identify(self) -> object:
        """The identity the request acts for: the proxy's user in a cluster; on a workstation the cookie must
        hold the token (then the kubeconfig's user is the identity)."""
        trust = self.ui.config.trust
        if trust is not None:
            from flux_cli.web.trust import Untrusted

            try:
                peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
                return trust.identify(self.headers, peer)  # type: ignore[attr-defined]
            except Untrusted as exc:
                raise Forbidden(exc.status, str(exc)) from None
        cookies = http.cookies.SimpleCookie(self.headers.get("Cookie") or "")
        given = cookies[COOKIE].value if COOKIE in cookies else ""
        if not hmac.compare_digest(given.encode(), self.ui.config.token.encode()):
            raise Forbidden(401, "open the URL 'fluxpy ui' printed (it carries this session's token)")
        return None

    def check_post(self) -> None:
        """CSRF: the token in a custom header, a JSON body, and no foreign Origin."""
        if not self.ui.config.allow_actions:
            raise api.ApiError(403, "read-only", "this UI is read-only: actions are disabled (--allow-actions)")
        origin = self.headers.get("Origin")
        host = self.headers.get("Host") or ""
        if origin is not None and urllib.parse.urlsplit(origin).netloc.lower() != host.lower():
            raise Forbidden(403, f"cross-origin request from {origin!r} refused")
        if self.headers.get("Sec-Fetch-Site") not in (None, "same-origin"):
            raise Forbidden(403, "cross-site request refused")
        if not hmac.compare_digest((self.headers.get(TOKEN_HEADER) or "").encode(), self.ui.config.token.encode()):
            raise Forbidden(403, f"missing or wrong {TOKEN_HEADER} header")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise api.ApiError(415, "bad request", "the body must be application/json")

    def exchange_token(self, token: str) -> None:
        """``/?token=``: set the session cookie and send the browser to ``/`` (the token leaves the address bar)."""
        if not hmac.compare_digest(token.encode(), self.ui.config.token.encode()):
            raise Forbidden(401, "wrong token: open the URL 'fluxpy ui' printed")
        self.send_response(303)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", f"{COOKIE}={self.ui.config.token}; HttpOnly; SameSite=Strict; Path=/")
        self.send_header("Content-Length", "0")
        self.finish_headers()

    # ------------------------------------------------------------------ answers

    def finish_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def body(self, status: int, content_type: str, data: bytes) -> None:
        if len(data) > 1024 and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            data = gzip.compress(data, 6)
            encoding = "gzip"
        else:
            encoding = ""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
            self.send_header("Vary", "Accept-Encoding")
        self.finish_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def json(self, status: int, payload: dict) -> None:
        self.body(status, "application/json", json.dumps(payload, separators=(",", ":")).encode())

    def read_json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            raise api.ApiError(413, "bad request", "body too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            raise api.ApiError(400, "bad request", f"invalid JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise api.ApiError(400, "bad request", "the body must be a JSON object")
        return body

    def index(self) -> None:
        page = static_file("index.html")
        if page is None:
            raise api.ApiError(500, "missing asset", "index.html is not in the package")
        self.body(200, CONTENT_TYPES[".html"], page.replace(b"{{TOKEN}}", self.ui.config.token.encode()))

    def asset(self, name: str) -> None:
        data = static_file(name)
        if data is None:
            raise api.ApiError(404, "not found", f"no asset {name!r}")
        self.body(200, CONTENT_TYPES.get("." + name.rpartition(".")[2], "application/octet-stream"), data)

    def events(self, hub: Hub) -> None:
        """The SSE stream: the whole graph first, then each change, action and keep-alive, until the page goes."""
        if not self.ui.streams.acquire(blocking=False):
            raise api.ApiError(503, "busy", f"too many open pages (at most {MAX_STREAMS})")
        subscription = hub.subscribe()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("X-Accel-Buffering", "no")
            self.send_header("Connection", "close")
            self.close_connection = True
            self.finish_headers()
            self.send_event("graph", hub.snapshot())
            while not self.ui.stopping.is_set():
                try:
                    message = subscription.get(timeout=KEEP_ALIVE_SECONDS)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if message is None:  # fell behind: start again from the whole graph
                    self.send_event("graph", hub.snapshot())
                else:
                    self.send_event(*message)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            hub.unsubscribe(subscription)
            self.ui.streams.release()

    def send_event(self, event: str, data: dict) -> None:
        payload = json.dumps(data, separators=(",", ":"))
        self.wfile.write(f"event: {event}\ndata: {payload}\n\n".encode())
        self.wfile.flush()


def filtered(snapshot: dict, query: dict) -> dict:
    """``/api/graph``'s filters (namespace, kind, state, q) applied to a snapshot."""
    wanted = {"namespace": query.get("namespace", ""), "kind": query.get("kind", ""),
              "state": query.get("state", ""), "text": query.get("q", "")}
    if not any(wanted.values()):
        return snapshot
    return {**snapshot, "nodes": [n for n in snapshot["nodes"] if graph.matches(n, **wanted)]}
