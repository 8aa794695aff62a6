"""The notification-controller's two HTTP endpoints, answering as Flux's.

**Events** (``--events-addr``, default ``:9090``; any path): the body (at most 3 MiB, else 413) must be an
event (else 400); its metadata is cleaned (:func:`~.alerts.cleanup_metadata`); a duplicate — same object,
message, revision and token — within ``--rate-limit-interval`` is refused with 429 (so the sender does not
retry it); otherwise it is dispatched (:class:`~.dispatch.Dispatcher`) and answered 202.

**Webhooks** (``--receiverAddr``, default ``:9292``; ``/hook/<sha256>``): the Receiver whose
``status.webhookPath`` is the request path (404 when none), 503 when it is suspended or not Ready, 400 when
the call does not verify (:mod:`.receivers`), then every object of ``spec.resources`` (``*`` with
``matchLabels``; ``resourceFilter`` CEL over ``res`` and ``req``) gets ``reconcile.fluxcd.io/requestedAt``;
200, or 500 when one could not be annotated.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import http.server
import threading
import time
from typing import Any, Callable

from controllers.api.kinds import kind_for
from controllers.api.meta import RECONCILE_REQUEST_ANNOTATION
from controllers.api.notification import RECEIVER
from controllers.api.objects import dig, find_condition
from controllers.api.types import ResourceType
from controllers.lib import credentials
from controllers.lib.credentials import SecretError
from controllers.notification import alerts as matching
from controllers.notification.event import Event, InvalidEvent
from controllers.runtime.endpoints import ThreadedServer, parse_addr
from controllers.runtime.kube import KubeClient, KubeError
from controllers.runtime.logs import Logger, get_logger
from controllers.runtime.watch import Informer

MAX_REQUEST_BYTES = 3 * 1024 * 1024
WEBHOOK_PREFIX = "/hook/"
#: what a Receiver's resources default to when they name no apiVersion (Flux's list)
DEFAULT_API_VERSIONS = {
    "Bucket": "source.toolkit.fluxcd.io/v1", "HelmChart": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1", "GitRepository": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1", "ImageRepository": "image.toolkit.fluxcd.io/v1",
    "ArtifactGenerator": "source.extensions.fluxcd.io/v1beta1",
}


class RateLimiter:
    """One token per key per ``interval`` (go-limiter's memory store with one token): the first event of a
    kind passes, its repeats within the interval do not. Old keys are swept as the store grows."""

    def __init__(self, interval: float):
        self.interval = interval
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._until) > 10000:
                self._until = {k: t for k, t in self._until.items() if t > now}
            if self._until.get(key, 0.0) > now:
                return False
            self._until[key] = now + self.interval
            return True


class _Server:
    """A threaded HTTP server on ``addr`` whose handler calls ``handle(method, path, headers, body)`` ->
    ``(status, body)``; the body is read up to :data:`MAX_REQUEST_BYTES` (+1, to detect more)."""

    def __init__(self, addr: str, name: str, handle: Callable[[str, str, dict, bytes | None], tuple[int, bytes]]):
        bind = parse_addr(addr)
        if bind is None:
            raise ValueError(f"{name} disabled")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body: bytes | None = self.rfile.read(min(length, MAX_REQUEST_BYTES + 1)) if length else b""
                if length > MAX_REQUEST_BYTES:
                    body = None  # too large (the rest is not read: the connection is closed)
                    self.close_connection = True
                status, data = handle(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                if data:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _serve  # noqa: N815 - stdlib naming

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        self._http = ThreadedServer(bind, Handler, name)
        self.port = self._http.port
        self.start, self.stop = self._http.start, self._http.stop


class EventServer:
    """The events endpoint (see the module docstring); ``dispatch`` handles an accepted event."""

    def __init__(self, addr: str, dispatch: Callable[[Event], Any], *, rate_limit_interval: float = 300.0,
                 log: Logger | None = None):
        self.dispatch = dispatch
        self.limiter = RateLimiter(rate_limit_interval)
        self.log = log or get_logger("event-server")
        self._http = _Server(addr, "event-server", self.handle)
        self.port = self._http.port
        self.accepted = self.refused = self.limited = 0

    def start(self) -> "EventServer":
        self._http.start()
        self.log.info("starting event server", port=self.port)
        return self

    def stop(self) -> None:
        self._http.stop()

    def handle(self, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, bytes]:
        if body is None:
            self.log.error("reading the request body failed",
                           error=f"request body exceeds the maximum size of {MAX_REQUEST_BYTES} bytes")
            self.refused += 1
            return 413, b""
        try:
            event = Event.decode(body)
        except InvalidEvent as exc:
            self.log.error("decoding the request body failed", error=str(exc))
            self.refused += 1
            return 400, b""
        matching.cleanup_metadata(event)
        if not self.limiter.allow(hashlib.sha256(matching.rate_limit_key(event).encode()).hexdigest()):
            self.log.debug("Discarding event, rate limiting duplicate events", eventInvolvedObject=event.object_string())
            self.limited += 1
            return 429, b"Too Many Requests\n"
        try:
            self.dispatch(event)
        except Exception as exc:  # noqa: BLE001 - an event is accepted even when dispatching it failed
            self.log.error("failed to dispatch event", error=exc, eventInvolvedObject=event.object_string())
        self.accepted += 1
        return 202, b""


def go_time_string(t: _dt.datetime | None = None) -> str:
    """``metav1.Now().String()``: Go's ``time.Time.String`` (``2006-01-02 15:04:05.999999999 -0700 MST``),
    the value Flux's receiver writes into ``requestedAt``."""
    t = (t or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    fraction = f"{t.microsecond:06d}000".rstrip("0")
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "") + " +0000 UTC"


class ReceiverServer:
    """The webhook endpoint (see the module docstring)."""

    def __init__(self, addr: str, kube: KubeClient, *, namespace: str | None = None,
                 no_cross_namespace_refs: bool = False, log: Logger | None = None):
        self.kube = kube
        self.no_cross_namespace_refs = no_cross_namespace_refs
        self.log = log or get_logger("receiver-server")
        self.receivers = Informer(kube, RECEIVER, lambda *_: None, namespace=namespace)
        self._http = _Server(addr, "receiver-server", self.handle)
        self.port = self._http.port

    def start(self) -> "ReceiverServer":
        self.receivers.start()
        self.receivers.wait_synced(30)
        self._http.start()
        self.log.info("starting webhook receiver server", port=self.port)
        return self

    def stop(self) -> None:
        self._http.stop()
        self.receivers.stop()

    def _receiver_at(self, path: str) -> dict | None:
        return next((r for r in self.receivers.items() if dig(r, "status.webhookPath") == path), None)

    def handle(self, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, bytes]:
        from controllers.notification import receivers

        self.log.info(f"handling request: {path[len(WEBHOOK_PREFIX):] if path.startswith(WEBHOOK_PREFIX) else path}")
        if body is None:
            return 413, b""
        receiver = self._receiver_at(path) if path.startswith(WEBHOOK_PREFIX) else None
        if receiver is None:
            return 404, b"404 page not found\n"
        name, ns = dig(receiver, "metadata.name"), dig(receiver, "metadata.namespace")
        log = self.log.with_values(**{"reconciler kind": "Receiver", "name": name, "namespace": ns})
        ready = find_condition(receiver, "Ready") or {}
        if dig(receiver, "spec.suspend") is True or ready.get("status") != "True":
            log.error("unable to process request", error="receiver is suspended" if dig(receiver, "spec.suspend")
                      else "receiver is not ready")
            return 503, b""
        request = receivers.WebhookRequest(method=method, headers=headers, body=body)
        try:
            token = self._token(receiver)
            receivers.validate(dig(receiver, "spec.type") or "", request, token=token,
                               events=dig(receiver, "spec.events") or ())
        except (receivers.ReceiverValidationError, SecretError) as exc:
            log.error("unable to validate payload", error=str(exc))
            return 400, b""
        try:
            accept = self._resource_filter(receiver, headers, body)
        except Exception as exc:  # noqa: BLE001 - CEL compile/parse failures
            log.error("unable to create resource filter", error=str(exc))
            return 500, b""
        failed = False
        for resource in dig(receiver, "spec.resources") or ():
            try:
                self._request_reconciliation(resource, ns, accept, log)
            except (KubeError, ValueError) as exc:
                log.error("unable to request reconciliation", error=str(getattr(exc, "message", exc)),
                          resource=f"{resource.get('kind')}/{resource.get('name')}")
                failed = True
        return (500, b"") if failed else (200, b"")

    def _token(self, receiver: dict) -> str:
        ns, name = dig(receiver, "metadata.namespace"), dig(receiver, "spec.secretRef.name")
        data = credentials.get_secret(self.kube, ns, name)
        if "token" not in data:
            raise SecretError(f"invalid \"{ns}/{name}\" secret data: required field 'token'")
        return data["token"].decode()

    def _resource_filter(self, receiver: dict, headers: dict, body: bytes) -> Callable[[dict], bool]:
        expression = dig(receiver, "spec.resourceFilter")
        if not expression:
            return lambda _res: True
        import json

        from controllers.lib.health import CelExpression

        compiled = CelExpression(expression, variables=("res", "req"))
        req: Any = {}
        content_type = headers.get("content-type", "")
        if any(part.split(";")[0].strip() == "application/json" for part in content_type.split(",")):
            try:
                req = json.loads(body)
            except ValueError as exc:
                raise ValueError(f"failed to parse request body as JSON: {exc}") from None
        return lambda res: compiled.evaluate_bool({"res": res, "req": req})

    def _request_reconciliation(self, resource: dict, default_namespace: str, accept: Callable[[dict], bool],
                                log: Logger) -> None:
        namespace = default_namespace
        if resource.get("namespace"):
            if self.no_cross_namespace_refs and resource["namespace"] != default_namespace:
                raise ValueError("cross-namespace references are not allowed")
            namespace = resource["namespace"]
        kind = resource.get("kind", "")
        api_version = resource.get("apiVersion") or DEFAULT_API_VERSIONS.get(kind)
        if not api_version:
            raise ValueError(f"apiVersion must be specified for kind \"{kind}\"")
        rt = kind_for(api_version, kind) or self.kube.resource_for(api_version, kind)
        if resource.get("name") == "*":
            labels = resource.get("matchLabels")
            if labels is None:
                raise ValueError("matchLabels field not set when using wildcard '*' as name")
            selector = ",".join(f"{k}={v}" for k, v in labels.items())
            objects = self.kube.list(rt, namespace, label_selector=selector).get("items") or []
            if not objects:
                log.error("error annotating resources", error=f"no \"{kind}\" resources found with matching "
                                                              f"labels in \"{namespace}\" namespace")
            for obj in objects:
                self._annotate(rt, obj, accept, log)
            return
        self._annotate(rt, self.kube.get(rt, resource.get("name", ""), namespace), accept, log)

    def _annotate(self, rt: ResourceType, obj: dict, accept: Callable[[dict], bool], log: Logger) -> None:
        meta = obj.get("metadata") or {}
        name, ns = meta.get("name"), meta.get("namespace")
        res = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta}
        if not accept(res):
            log.debug(f"resource '{rt.kind}/{name}.{ns}' NOT annotated because CEL expression returned false")
            return
        self.kube.patch(rt, name, {"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: go_time_string()}}}, ns)
        log.info(f"resource '{rt.kind}/{name}.{ns}' annotated")
