"""One set of watches shared by every open page: the informers, the graph they make, and its subscribers.

A :class:`Hub` runs one :class:`~controllers.runtime.watch.Informer` per Flux kind (per namespace when the
user may only list some). Any change wakes one thread, which rebuilds the graph
(:func:`flux_cli.web.graph.build`) and publishes the nodes that changed to every subscriber as one ``change``
message, then lets ``debounce`` seconds pass before the next rebuild, so a burst is one message. Nothing polls: the pages wait on their streams, the hub on the watches.

A list or watch the apiserver refuses (403) puts the kind in :attr:`Hub.forbidden`, any other failure (the
apiserver unreachable) in :attr:`Hub.failing`, both shown by the page as banners until the informer recovers;
a kind whose CRD is not installed (404) is left out quietly.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterable

from controllers.api.kinds import KINDS
from controllers.api.types import Kind
from controllers.runtime.kube import Forbidden, KubeClient, NotFound, Unauthorized
from controllers.runtime.watch import Informer
from flux_cli.web import graph

#: how many messages a slow page may fall behind before it is sent the whole graph again.
SUBSCRIBER_BACKLOG = 256


def listed(problems: dict[tuple[str, str | None], str]) -> list[dict]:
    """``[{kind, namespace, message}]`` of :attr:`Hub.forbidden` or :attr:`Hub.failing`, in a stable order."""
    return [{"kind": kind, "namespace": ns or "", "message": message}
            for (kind, ns), message in sorted(problems.items(), key=lambda item: (item[0][0], item[0][1] or ""))]


class Subscription:
    """One page's stream: messages ``(event, data)`` in order; ``None`` from :meth:`get` means resync."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue(SUBSCRIBER_BACKLOG)
        self.overflowed = False

    def put(self, message: tuple[str, dict]) -> None:
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            self.overflowed = True

    def get(self, timeout: float) -> tuple[str, dict] | None:
        """The next message; raises queue.Empty after ``timeout``; ``None`` once the page fell too far behind."""
        if self.overflowed:
            self.overflowed = False
            with self.queue.mutex:
                self.queue.queue.clear()
            return None
        return self.queue.get(timeout=timeout)


class Hub:
    """The informers, the current graph and the pages subscribed to it, for one identity."""

    def __init__(self, kube: KubeClient, *, namespaces: Iterable[str] | None = None,
                 kinds: Iterable[Kind] = KINDS, debounce: float = 0.05, identity: str = ""):
        self.kube = kube
        self.namespaces = tuple(namespaces or ()) or (None,)
        self.kinds = tuple(kinds)
        self.debounce = debounce
        self.identity = identity
        self.informers: dict[tuple[str, str | None], Informer] = {}
        self.forbidden: dict[tuple[str, str | None], str] = {}
        #: (kind, namespace) → why its watch fails, other than RBAC (e.g. the apiserver is unreachable)
        self.failing: dict[tuple[str, str | None], str] = {}
        self.nodes: dict[str, dict] = {}
        self.seq = 0
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        #: per HelmRelease, the release version last read from Helm's storage and its objects
        self._releases: dict[tuple, tuple[tuple, list]] = {}
        self._published_problems: tuple | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, sync_timeout: float = 10.0) -> "Hub":
        """Start the watches and wait (bounded) for their first lists, so the first page is complete."""
        for kind in self.kinds:
            for ns in self.namespaces:
                informer = Informer(self.kube, kind, self._on_change, namespace=ns, backoff_cap=10.0,
                                    on_error=self._error_handler(kind, ns))
                self.informers[(kind.kind, ns)] = informer.start()
        deadline = time.monotonic() + sync_timeout
        for informer in self.informers.values():  # a refused kind (last_error) does not hold the others up
            while not informer.synced.is_set() and informer.last_error is None and time.monotonic() < deadline:
                informer.wait_synced(0.05)
        self._rebuild()
        self._thread = threading.Thread(target=self._run, name="ui-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        for informer in self.informers.values():
            informer.stop()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def publish(self, event: str, data: dict) -> None:
        """Send a message to every open page (e.g. an ``action``'s progress)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.put((event, data))

    # ------------------------------------------------------------------ the graph

    def snapshot(self) -> dict:
        """The whole graph as ``GET /api/graph`` returns it (before filters)."""
        with self._lock:
            nodes = list(self.nodes.values())
            seq = self.seq
        return {"seq": seq, "nodes": nodes, "forbidden": listed(self.forbidden), "errors": listed(self.failing),
                "namespaces": sorted({n["namespace"] for n in nodes if n["namespace"]}),
                "kinds": sorted({n["kind"] for n in nodes if n["flux"]}), "identity": self.identity}

    def cached(self, kind: str, namespace: str | None, name: str) -> dict | None:
        """The cached object of a Flux kind, or None."""
        for ns in self.namespaces:
            informer = self.informers.get((kind, ns))
            if informer is not None:
                found = informer.get(f"{namespace}/{name}" if namespace else name)
                if found is not None:
                    return found
        return None

    def _on_change(self, type_: str, old: dict | None, new: dict | None) -> None:
        self._dirty.set()

    def _error_handler(self, kind: Kind, namespace: str | None):
        def on_error(exc: Exception | None) -> None:
            key = (kind.kind, namespace)
            refused = isinstance(exc, (Forbidden, Unauthorized))
            for problems, applies in ((self.forbidden, refused),
                                      (self.failing, exc is not None and not refused and not isinstance(exc, NotFound))):
                message = (getattr(exc, "message", "") or str(exc)) if applies else None
                if problems.get(key) != message:
                    if message is None:
                        problems.pop(key, None)
                    else:
                        problems[key] = message
                    self._dirty.set()
        return on_error

    def _run(self) -> None:
        """Rebuild at once on a change, then at most once per ``debounce``: a lone change is on the pages
        as soon as the graph is rebuilt, and a burst (a Kustomization applying 100 objects) costs one
        rebuild per interval, not one per object."""
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                self._rebuild()
            except Exception as exc:  # noqa: BLE001 - a bad object must not stop the live view
                from controllers.runtime.logs import get_logger

                get_logger("ui").error("graph rebuild failed", error=exc)
            self._stop.wait(self.debounce)  # what changes meanwhile waits for the next round

    def _rebuild(self) -> None:
        objects = {kind: [] for kind, _ in self.informers}
        for (kind, _), informer in self.informers.items():
            objects[kind] += informer.items()
        fresh = graph.build(objects, self._release_objects)
        with self._lock:
            changed = [node for node_id, node in fresh.items() if self.nodes.get(node_id) != node]
            removed = [node_id for node_id in self.nodes if node_id not in fresh]
            problems = listed(self.forbidden), listed(self.failing)
            if not changed and not removed and problems == self._published_problems:
                return
            self.nodes = fresh
            self.seq += 1
            seq = self.seq
            self._published_problems = problems
        self.publish("change", {"seq": seq, "nodes": changed, "removed": removed, "forbidden": problems[0],
                                "errors": problems[1]})

    def _release_objects(self, release: dict) -> list:
        """The objects of a HelmRelease's latest release, read from Helm's storage once per release version."""
        from controllers.api.objects import dig

        latest = (dig(release, "status.history") or [None])[0] or {}
        meta = release["metadata"]
        if not latest:
            return []
        key = (meta.get("namespace"), meta["name"])
        version = (latest.get("name"), latest.get("version"), dig(release, "status.storageNamespace"))
        if self._releases.get(key, (None,))[0] != version:
            from controllers.lib.tree import TreeError, helm_release_objects
            from controllers.runtime.kube import KubeError

            try:
                objects = helm_release_objects(self.kube, meta.get("namespace"), meta["name"])
            except (TreeError, KubeError):
                objects = []
            self._releases[key] = (version, objects)
        return self._releases[key][1]


class HubPool:
    """One hub per identity, for the in-cluster server: users whose RBAC differs cannot share a cache.

    A hub starts on its identity's first request (with an impersonating client) and stops after ``idle``
    seconds without a request or an open stream; at most ``limit`` identities are watched at once."""

    def __init__(self, make_hub, *, idle: float = 600.0, limit: int = 50):
        self.make_hub, self.idle, self.limit = make_hub, idle, limit
        self.hubs: dict[object, tuple[Hub, float]] = {}
        self._lock = threading.Lock()

    def get(self, identity) -> Hub:
        """The hub of ``identity`` (keyed by its ``key``: user and set of groups), started on first use."""
        key, now = identity.key, time.monotonic()
        with self._lock:
            for other, (hub, used) in list(self.hubs.items()):
                if other != key and now - used > self.idle and not hub._subscribers:
                    hub.stop()
                    del self.hubs[other]
            if key in self.hubs:
                hub = self.hubs[key][0]
            elif len(self.hubs) >= self.limit:
                raise OverflowError(f"too many users at once (at most {self.limit} are watched)")
            else:
                hub = self.make_hub(identity)
            self.hubs[key] = (hub, now)
        return hub

    def stop(self) -> None:
        with self._lock:
            for hub, _ in self.hubs.values():
                hub.stop()
            self.hubs.clear()
