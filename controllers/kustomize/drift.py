"""Beyond Flux: drift corrected within seconds, by watching what the Kustomizations applied.

Flux corrects drift when a Kustomization is reconciled, i.e. once per ``spec.interval``. The
:class:`DriftWatcher` keeps one label-selected watch per kind found in the inventories (objects carrying
Flux's owner label ``kustomize.toolkit.fluxcd.io/name``, cluster-wide) and reports each object that someone
else changed or deleted to its owner (read from the owner labels), which re-applies just those objects from
its last build (see :mod:`controllers.kustomize.reconciler`). Nothing is dry-run on a timer: the only
requests are the watches.

What counts as drift (:func:`is_foreign_change`): the object is deleted, or its content (anything but
``status``, ``resourceVersion``, ``managedFields`` and ``generation``) changed and a managed-fields entry of
another field manager appeared or was touched (its time moved) — through the main resource or any
subresource but ``status`` (``kubectl scale`` writes through ``scale``). The controller's own applies (its
field manager), status updates by other controllers and objects created by the controller are not drift.

The watches' caches also serve the apply engine as the live objects (``live=watcher.live``): an unchanged
object then costs one dry run instead of a dry run and an apply.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Mapping

from controllers.api.types import ResourceType
from controllers.runtime.apply import FIELD_MANAGER, NAME_LABEL, NAMESPACE_LABEL, ObjectRef
from controllers.runtime.kube import KubeClient, KubeError
from controllers.runtime.logs import Logger, get_logger
from controllers.runtime.watch import Informer

_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")


def _content(obj: Mapping) -> dict:
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
    return out


def _manager_times(obj: Mapping) -> dict[tuple, str]:
    return {(e.get("manager"), e.get("operation"), e.get("subresource", "")): e.get("time", "")
            for e in (obj.get("metadata") or {}).get("managedFields") or []}


def is_foreign_change(old: Mapping, new: Mapping, own_managers: Iterable[str] = (FIELD_MANAGER,)) -> bool:
    """Whether an update of an applied object was made by someone else (see the module docstring)."""
    if _content(old) == _content(new):
        return False
    own = set(own_managers)
    before = _manager_times(old)
    for (manager, operation, subresource), time in _manager_times(new).items():
        if manager in own or subresource == "status":
            continue
        if before.get((manager, operation, subresource)) != time:
            return True
    return False


def owner_key(obj: Mapping) -> str | None:
    """``namespace/name`` of the Kustomization named by an object's owner labels."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name, namespace = labels.get(NAME_LABEL), labels.get(NAMESPACE_LABEL)
    return f"{namespace}/{name}" if name and namespace else None


class DriftWatcher:
    """Watches the kinds of the tracked inventories and reports drift as ``on_drift(owner_key)``; the drifted
    objects are collected until :meth:`take` (see the module docstring)."""

    def __init__(self, kube: KubeClient, on_drift: Callable[[str], None], *,
                 own_managers: Iterable[str] = (FIELD_MANAGER,), timeout_seconds: int = 300,
                 log: Logger | None = None):
        self.kube, self.on_drift = kube, on_drift
        self.own_managers = tuple(own_managers)
        self.timeout_seconds = timeout_seconds
        self.log = log or get_logger("drift")
        self._lock = threading.Lock()
        self._informers: dict[tuple[str, str], Informer] = {}
        self._tracked: dict[str, dict[tuple[str, str], set[ObjectRef]]] = {}
        self._pending: dict[str, set[ObjectRef]] = {}
        self._stopped = False
        #: drift reports so far (objects), for metrics and tests
        self.reported = 0

    # ------------------------------------------------------------------ tracking

    def track(self, key: str, refs: Iterable[ObjectRef]) -> None:
        """The objects Kustomization ``key`` applied (its inventory): watch their kinds, report their drift."""
        by_kind: dict[tuple[str, str], set[ObjectRef]] = {}
        types: dict[tuple[str, str], ResourceType] = {}
        for ref in refs:
            gk = (ref.group, ref.kind)
            if gk not in types:
                try:
                    types[gk] = self.kube.resource_for(ref.api_version, ref.kind)
                except KubeError:
                    continue
            by_kind.setdefault(gk, set()).add(ref)
        with self._lock:
            if self._stopped:
                return
            self._tracked[key] = by_kind
            for gk, rt in types.items():
                if gk in by_kind and gk not in self._informers:
                    informer = Informer(self.kube, rt, self._handler(rt), label_selector=NAME_LABEL,
                                        timeout_seconds=self.timeout_seconds,
                                        log=self.log.with_values(watchKind=rt.kind))
                    self._informers[gk] = informer
                    informer.start()
            self._stop_unused()

    def forget(self, key: str) -> None:
        """Stop reporting drift for ``key`` (deleted, or moved to a remote cluster)."""
        with self._lock:
            self._tracked.pop(key, None)
            self._pending.pop(key, None)
            self._stop_unused()

    def _stop_unused(self) -> None:
        used = {gk for kinds in self._tracked.values() for gk in kinds}
        for gk in [gk for gk in self._informers if gk not in used]:
            self._informers.pop(gk).stop()

    def take(self, key: str) -> set[ObjectRef]:
        """The drifted objects of ``key`` reported since the last call."""
        with self._lock:
            return self._pending.pop(key, set())

    def pending(self, key: str) -> bool:
        with self._lock:
            return bool(self._pending.get(key))

    def watched_kinds(self) -> list[str]:
        with self._lock:
            return sorted(f"{kind}.{group}" if group else kind for group, kind in self._informers)

    # ------------------------------------------------------------------ live objects

    def live(self, ref: ObjectRef) -> dict | None:
        """The watched object of ``ref`` (None when its kind is not watched yet or the cache is not synced)."""
        with self._lock:
            informer = self._informers.get((ref.group, ref.kind))
        if informer is None or not informer.synced.is_set():
            return None
        return informer.get(f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name)

    def covers(self, refs: Iterable[ObjectRef]) -> bool:
        """Whether every object of ``refs`` is in a synced watch cache (so a change to it would be reported)."""
        return all(self.live(ref) is not None for ref in refs)

    # ------------------------------------------------------------------ events

    def _handler(self, rt: ResourceType) -> Callable[[str, dict | None, dict | None], None]:
        def handle(type_: str, old: dict | None, new: dict | None) -> None:
            if type_ == "ADDED":
                return
            if type_ == "MODIFIED" and not is_foreign_change(old, new, self.own_managers):
                return
            obj = new if new is not None else old
            key = owner_key(obj)
            if key is None:
                return
            ref = ObjectRef.from_object(obj, namespaced=rt.namespaced)
            with self._lock:
                if ref not in self._tracked.get(key, {}).get((rt.group, rt.kind), ()):
                    return
                self._pending.setdefault(key, set()).add(ref)
                self.reported += 1
            self.log.info("drift detected", kustomization=key, object=ref.subject,
                          change="deleted" if type_ == "DELETED" else "modified",
                          managers=_changed_managers(old, new) if new is not None else None)
            self.on_drift(key)
        return handle

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "DriftWatcher":
        """Watches start as kinds are tracked; this only re-arms a stopped watcher."""
        with self._lock:
            self._stopped = False
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for informer in self._informers.values():
                informer.stop()
            self._informers.clear()
            self._tracked.clear()
            self._pending.clear()


def _changed_managers(old: Mapping | None, new: Mapping) -> list[str]:
    before = _manager_times(old or {})
    return sorted({m for (m, op, sub), t in _manager_times(new).items() if before.get((m, op, sub)) != t and m})


__all__ = ["DriftWatcher", "is_foreign_change", "owner_key"]
