"""List + watch one kind and keep a cache of it (an informer).

The informer lists the objects, then watches from the list's resourceVersion (with bookmarks, so a quiet
watch still advances), re-opening the watch from the last resourceVersion seen when the server ends it. When
that resourceVersion is too old (HTTP 410 Gone, or an ERROR event with code 410) it re-lists and reports the
difference against its cache. Any other failure is retried with exponential backoff. Every change is passed
to ``handler(type, old, new)`` from the informer's thread (``old`` is None for ADDED, ``new`` None for DELETED).
``on_error(exc)`` (optional) hears every failure of a list or watch (e.g. ``Forbidden`` for a user without
RBAC), and ``on_error(None)`` once a list succeeds after one; :attr:`Informer.last_error` holds the current one.
"""
from __future__ import annotations

import threading
from typing import Callable

from controllers.api.types import ResourceType
from controllers.runtime.kube import Gone, KubeClient
from controllers.runtime.logs import Logger, get_logger

Handler = Callable[[str, "dict | None", "dict | None"], None]


def object_key(obj: dict) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def split_key(key: str) -> tuple[str | None, str]:
    """``(namespace, name)`` of a key made by :func:`object_key`."""
    ns, _, name = key.rpartition("/")
    return (ns or None), name


class Informer:
    """Lists and watches one kind in a background thread, keeping ``store`` (key -> object) current."""

    def __init__(self, kube: KubeClient, rt: ResourceType, handler: Handler, *, namespace: str | None = None,
                 label_selector: str | None = None, timeout_seconds: int = 300, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, log: Logger | None = None,
                 on_error: Callable[[Exception | None], None] | None = None):
        self.kube, self.rt, self.handler = kube, rt, handler
        self.on_error = on_error
        #: the failure the informer is retrying now (None while it lists and watches normally).
        self.last_error: Exception | None = None
        self.namespace = namespace if rt.namespaced else None
        self.label_selector = label_selector or None
        self.timeout_seconds = timeout_seconds
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.log = log or get_logger("watch").with_values(kind=rt.kind)
        self.store: dict[str, dict] = {}
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Informer":
        self._thread = threading.Thread(target=self.run, name=f"watch-{self.rt.plural}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the informer to stop (a watch blocked on a quiet stream ends with its server-side timeout)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced.wait(timeout)

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self.store.get(key)

    def items(self) -> list[dict]:
        with self._lock:
            return list(self.store.values())

    def run(self) -> None:
        """List then watch until stopped (the thread body)."""
        need_list, failures = self.resource_version is None, 0
        while not self._stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                self.watch_once()
                failures = 0
            except Gone:
                self.log.debug("watch resourceVersion expired, re-listing", resourceVersion=self.resource_version)
                need_list = True
            except Exception as exc:  # noqa: BLE001 - any failure: back off and try again
                failures += 1
                self.errors += 1
                delay = min(self.backoff_base * 2 ** (failures - 1), self.backoff_cap)
                # an owner that hears the errors (on_error) reports them its own way: no traceback per retry
                (self.log.debug if self.on_error else self.log.error)("watch failed, retrying", error=exc,
                                                                      retryIn=delay)
                self._report(exc)
                self._stop.wait(delay)

    # ------------------------------------------------------------------ steps

    def relist(self) -> None:
        """List every object, report the differences to the cache, and remember the list's resourceVersion."""
        result = self.kube.list(self.rt, self.namespace, label_selector=self.label_selector)
        fresh = {object_key(o): o for o in result.get("items") or []}
        events: list[tuple[str, dict | None, dict | None]] = []
        with self._lock:
            for key, old in self.store.items():
                if key not in fresh:
                    events.append(("DELETED", old, None))
            for key, obj in fresh.items():
                old = self.store.get(key)
                if old is None:
                    events.append(("ADDED", None, obj))
                elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                    events.append(("MODIFIED", old, obj))
            self.store = fresh
            self.resource_version = (result.get("metadata") or {}).get("resourceVersion")
        self.relists += 1
        self.synced.set()
        if self.last_error is not None:
            self._report(None)
        for event in events:
            self._dispatch(*event)

    def watch_once(self) -> None:
        """Follow one watch stream from :attr:`resource_version` until the server ends it; raise Gone if too old."""
        for type_, obj in self.kube.watch(self.rt, self.namespace, resource_version=self.resource_version,
                                          label_selector=self.label_selector, timeout_seconds=self.timeout_seconds):
            if self._stop.is_set():
                return
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if type_ == "BOOKMARK":
                if rv:
                    self.resource_version = rv
                continue
            obj.setdefault("apiVersion", self.rt.api_version)
            obj.setdefault("kind", self.rt.kind)
            key = object_key(obj)
            with self._lock:
                old = self.store.get(key)
                if type_ == "DELETED":
                    self.store.pop(key, None)
                else:
                    self.store[key] = obj
                if rv:
                    self.resource_version = rv
            if type_ == "DELETED":
                self._dispatch("DELETED", old or obj, None)
            else:
                self._dispatch("MODIFIED" if old is not None else "ADDED", old, obj)

    def _report(self, error: Exception | None) -> None:
        self.last_error = error
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception as exc:  # noqa: BLE001 - a callback bug must not kill the watch
                self.log.error("watch error callback failed", error=exc)

    def _dispatch(self, type_: str, old: dict | None, new: dict | None) -> None:
        try:
            self.handler(type_, old, new)
        except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the watch
            self.log.error("watch event handler failed", error=exc)
