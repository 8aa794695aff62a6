"""Kubernetes events about reconciled objects, posted in the background.

Flux records core ``v1`` Events (client-go's event recorder: ``source.component`` is the controller's name)
and, when ``--events-addr`` is set, also posts each event to that webhook (the notification-controller).
:meth:`EventRecorder.event` never blocks a reconciliation: it puts the event on a queue that one thread
sends. A repeat of an event already recorded for the same object (same type, reason and message) is not
created again: the existing Event's ``count`` and ``lastTimestamp`` are updated instead.
"""
from __future__ import annotations

import collections
import datetime as _dt
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request

from controllers.api.builtin import EVENT
from controllers.runtime.kube import KubeClient, KubeError, NotFound
from controllers.runtime.logs import Logger, get_logger

NORMAL, WARNING = "Normal", "Warning"
#: annotations of the object copied onto its events (as Flux does for the notification-controller).
EVENT_ANNOTATION_PREFIX = "event.toolkit.fluxcd.io/"
_CACHE_SIZE = 4096
_STOP = object()


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _rfc3339(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: dict) -> dict:
    """The ``involvedObject`` reference of an object."""
    meta = obj.get("metadata") or {}
    ref = {"apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "name": meta.get("name", ""),
           "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Records events for one component; start it once, stop it on shutdown (pending events are flushed)."""

    def __init__(self, kube: KubeClient, component: str, *, webhook: str = "", instance: str | None = None,
                 log: Logger | None = None, max_pending: int = 1000):
        self.kube, self.component, self.webhook = kube, component, webhook
        self.instance = instance or socket.gethostname()
        self.log = log or get_logger("events")
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._seen: collections.OrderedDict[tuple, dict] = collections.OrderedDict()
        self._thread: threading.Thread | None = None
        self.posted = 0
        self.dropped = 0

    def start(self) -> "EventRecorder":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is pending (up to ``timeout`` seconds), then stop."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was sent (for tests)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def event(self, obj: dict, type_: str, reason: str, message: str, annotations: dict[str, str] | None = None) -> None:
        """Record an event about ``obj`` (Normal or Warning); returns at once."""
        meta = obj.get("metadata") or {}
        merged = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(EVENT_ANNOTATION_PREFIX)}
        merged.update(annotations or {})
        item = (object_reference(obj), type_, reason, message, merged, _now())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self.log.error("event queue full, dropping event", reason=reason, name=meta.get("name"),
                           namespace=meta.get("namespace"))

    # ------------------------------------------------------------------ sending

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._record(*item)
            except Exception as exc:  # noqa: BLE001 - events are best effort
                self.log.error("unable to record event", error=exc)
            finally:
                self._queue.task_done()

    def _record(self, ref: dict, type_: str, reason: str, message: str, annotations: dict, when: _dt.datetime) -> None:
        self._record_kubernetes(ref, type_, reason, message, annotations, when)
        if self.webhook:
            self._post_webhook(ref, type_, reason, message, annotations, when)
        self.posted += 1

    def _record_kubernetes(self, ref: dict, type_: str, reason: str, message: str, annotations: dict,
                           when: _dt.datetime) -> None:
        namespace = ref.get("namespace") or "default"
        key = (ref.get("uid") or (ref.get("kind"), namespace, ref.get("name")), type_, reason, message,
               tuple(sorted(annotations.items())))
        seen = self._seen.get(key)
        if seen is not None:
            seen["count"] += 1
            patch = {"count": seen["count"], "lastTimestamp": _rfc3339(when)}
            try:
                self.kube.patch(EVENT, seen["name"], patch, namespace)
                self._seen.move_to_end(key)
                return
            except NotFound:
                self._seen.pop(key, None)  # expired (events have a TTL): create a new one
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'unknown')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component},
            "firstTimestamp": _rfc3339(when), "lastTimestamp": _rfc3339(when), "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.instance,
        }
        if annotations:
            event["metadata"]["annotations"] = annotations
        try:
            created = self.kube.create(EVENT, event, namespace)
        except KubeError as exc:
            self.log.error("unable to create event", error=exc, reason=reason, name=ref.get("name"),
                           namespace=namespace)
            return
        self._seen[key] = {"name": created["metadata"]["name"], "count": 1}
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)

    def _post_webhook(self, ref: dict, type_: str, reason: str, message: str, annotations: dict,
                      when: _dt.datetime) -> None:
        payload = {
            "involvedObject": ref, "severity": "error" if type_ == WARNING else "info",
            "timestamp": _rfc3339(when), "message": message, "reason": reason, "metadata": annotations or None,
            "reportingController": self.component, "reportingInstance": self.instance,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        body = json.dumps(payload).encode()
        for attempt in range(4):
            req = urllib.request.Request(self.webhook, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 429 or exc.code < 500:  # 429: a duplicate the receiver already has
                    return
                err: Exception = exc
            except (OSError, urllib.error.URLError) as exc:
                err = exc
            time.sleep(min(0.5 * 2 ** attempt, 4))
        self.log.error("unable to post event to the events webhook", error=err, webhook=self.webhook)
