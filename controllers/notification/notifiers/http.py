"""One HTTP POST with Flux's retries (``go-retryablehttp`` as the notification-controller configures it).

Retried: connection errors (not TLS verification failures, not a bad URL), 429 and 5xx except 501; at most
4 retries, waiting 2s, 4s, 8s, ... (capped at 30s, or the ``Retry-After`` of a 429/503), and never past the
delivery's deadline (:attr:`NotifierOptions.timeout`). A response outside 2xx that is not retried, or the
last one, fails with ``request failed with status code N: <body>`` (Flux's message).
"""
from __future__ import annotations

import base64
import dataclasses
import http.client
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping

from controllers.notification.event import go_json
from controllers.notification.notifiers import NotifierError, NotifierOptions

RETRY_MAX = 4
#: seconds before the first retry and the cap (module attributes so tests can shorten them)
RETRY_WAIT_MIN, RETRY_WAIT_MAX = 2.0, 30.0
_MAX_ERROR_BODY = 4096


@dataclasses.dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _retryable_status(status: int) -> bool:
    return status == 429 or (status >= 500 and status != 501) or status == 0


_default_tls: ssl.SSLContext | None = None


def _system_tls() -> ssl.SSLContext:
    """The system trust store's context, built once (loading the CA bundle costs ~10 ms per request)."""
    global _default_tls
    if _default_tls is None:
        _default_tls = ssl.create_default_context()
    return _default_tls


def _opener(options: NotifierOptions) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [urllib.request.ProxyHandler(
        {"http": options.proxy_url, "https": options.proxy_url} if options.proxy_url else {})]
    handlers.append(urllib.request.HTTPSHandler(context=options.tls or _system_tls()))
    return urllib.request.build_opener(*handlers)


def default_validator(response: Response) -> None:
    """Flux's response check: 2xx, else the status code and the body."""
    if 200 <= response.status < 300:
        return
    body = response.body[:_MAX_ERROR_BODY].decode("utf-8", "replace")
    raise NotifierError(f"request failed with status code {response.status}: {body}")


def request(method: str, address: str, data: bytes | None, *, options: NotifierOptions,
            headers: Mapping[str, str] | None = None, validate: Callable[[Response], None] | None = default_validator,
            deadline: float | None = None) -> Response:
    """Send one request with retries; returns the final response (validated with ``validate``)."""
    parsed = urllib.parse.urlsplit(address)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise NotifierError(f"invalid URL '{address}': expected an http or https address")
    deadline = deadline if deadline is not None else time.monotonic() + options.timeout
    opener = _opener(options)
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotifierError(f"failed to execute request: {method} {_redact(address)}: context deadline exceeded")
        req = urllib.request.Request(address, data=data, method=method, headers=dict(headers or {}))
        retry_after = None
        try:
            with opener.open(req, timeout=remaining) as resp:
                response = Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            response = Response(exc.code, dict(exc.headers.items()) if exc.headers else {}, exc.read() or b"")
            retry_after = response.headers.get("Retry-After")
        except (ssl.SSLCertVerificationError, ssl.SSLError) as exc:
            raise NotifierError(f"failed to execute request: {method} {_redact(address)}: {exc}") from None
        except (OSError, http.client.HTTPException, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):
                raise NotifierError(f"failed to execute request: {method} {_redact(address)}: {reason}") from None
            response = Response(0, {}, str(reason).encode())
        if not _retryable_status(response.status) or attempt >= RETRY_MAX:
            if response.status == 0:
                raise NotifierError(f"failed to execute request: {method} {_redact(address)} giving up after "
                                    f"{attempt + 1} attempt(s): {response.body.decode('utf-8', 'replace')}")
            if validate is not None:
                validate(response)
            return response
        wait = min(RETRY_WAIT_MIN * 2 ** attempt, RETRY_WAIT_MAX)
        if retry_after and retry_after.isdigit() and response.status in (429, 503):
            wait = min(float(retry_after), RETRY_WAIT_MAX)
        attempt += 1
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))


def post_message(address: str, payload: Any, *, options: NotifierOptions, content_type: str = "",
                 basic_auth: tuple[str, str] | None = None, headers: Mapping[str, str] | None = None,
                 validate: Callable[[Response], None] | None = default_validator) -> Response:
    """Flux's ``postMessage``: ``payload`` as Go's JSON (``content_type`` empty) or raw bytes with that
    content type; basic auth when a username or password is given; ``headers`` set last."""
    if content_type:
        data = payload if isinstance(payload, bytes) else str(payload).encode()
    else:
        content_type, data = "application/json", go_json(payload)
    all_headers = {"Content-Type": content_type}
    if basic_auth and (basic_auth[0] or basic_auth[1]):
        all_headers["Authorization"] = "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
    all_headers.update(headers or {})
    return request("POST", address, data, options=options, headers=all_headers, validate=validate)


def _redact(address: str) -> str:
    """The address without credentials or query (webhook URLs carry tokens in both)."""
    parts = urllib.parse.urlsplit(address)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
