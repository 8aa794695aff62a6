"""The processing layer: a :class:`Reconciler` (what a controller implements) run by a :class:`Controller`.

A controller only implements :meth:`Reconciler.reconcile` (and :meth:`Reconciler.finalize` when deleting
needs clean-up). The runtime does the rest, for every object of :attr:`Reconciler.kind`:

1. watch it (and the kinds of :meth:`Reconciler.watches`), queue its key on a new object, a spec change
   (generation), a new ``reconcile.fluxcd.io/requestedAt`` or a deletion — never on status-only updates;
2. read it from the informer's cache (a GET when the cache is older than this controller's own last write
   of it, or does not hold it yet: see :meth:`Controller.read`); when it is being deleted call ``finalize``
   and remove the ``finalizers.fluxcd.io`` finalizer (objects being deleted without our finalizer are
   ignored); otherwise add the finalizer first;
3. skip it when :meth:`Reconciler.suspended` (``spec.suspend: true`` unless a kind says otherwise) — logged,
   and the reconcile request still acknowledged;
4. call ``reconcile(ctx, obj)``: the object is a dict the reconciler may change the ``status`` of;
5. turn the outcome into conditions, observedGeneration and lastHandledReconcileAt
   (:func:`controllers.runtime.outcomes.apply_outcome`: Ready summarises the reconciler's declared
   :attr:`Reconciler.conditions`), patch only the status that changed (of the conditions, only the owned
   ones), record the event, log, update metrics, and requeue: the interval (jittered) on success, the
   :meth:`Reconciler.retry_interval` or backoff on failure, the dependency interval when waiting, nothing
   when stalled.
"""
from __future__ import annotations

import abc
import copy
import dataclasses
import random
import threading
import time
import uuid
from typing import Any, Callable, Iterable

from controllers.api.duration import format_duration, parse_duration
from controllers.api.meta import FINALIZER, RECONCILE_REQUEST_ANNOTATION
from controllers.api.types import Kind, ResourceType
from controllers.runtime import conditions as cond
from controllers.runtime import predicates
from controllers.runtime.conditions import Conditions
from controllers.runtime.events import EventRecorder
from controllers.runtime.kube import KubeClient, KubeError, NotFound
from controllers.runtime.logs import Logger, get_logger
from controllers.runtime.metrics import Metrics
from controllers.runtime.outcomes import (Decision, ReconcileError, StalledError, Success, Waiting, apply_outcome,
                                          handle_reconcile_request, mark_progressing)
from controllers.runtime.queue import ExponentialBackoff, WorkQueue, jitter
from controllers.runtime.settings import ManagerSettings
from controllers.runtime.status import Patcher
from controllers.runtime.watch import Informer, object_key, split_key


#: seconds between two written progress reports of one reconciliation, for throttled ones (see
#: :meth:`ReconcileContext.progress`): a quick reconciliation writes its first report and its result only.
PROGRESS_WRITE_INTERVAL = 1.0


@dataclasses.dataclass
class Watch:
    """Another kind whose changes queue objects of the reconciler's kind (e.g. sources for Kustomizations)."""

    kind: ResourceType
    map: Callable[[dict], Iterable[str]]
    """Keys (``namespace/name``) of the objects to reconcile when this object changes."""
    predicate: predicates.Predicate = predicates.resource_version_changed
    """Which updates count (ADDED and DELETED always do)."""
    label_selector: str = ""


class Reconciler(abc.ABC):
    """Base class of a controller: set :attr:`kind`, implement :meth:`reconcile`."""

    #: the kind reconciled (a :class:`controllers.api.types.Kind` or any ResourceType).
    kind: ResourceType
    #: the finalizer added before the first reconciliation and removed after :meth:`finalize`; None for none.
    finalizer: str | None = FINALIZER
    #: the conditions it owns, which summarise into Ready and their polarity (see :class:`Conditions`); the
    #: runtime computes Ready/Reconciling/Stalled from them and patches only the owned ones.
    conditions: Conditions = Conditions()

    def conditions_for(self, obj: dict) -> Conditions:
        """The conditions Ready summarises for this object (default: :attr:`conditions`; a kind whose
        summary depends on the spec, as a HelmRelease's tests, narrows it)."""
        return self.conditions

    @property
    def name(self) -> str:
        """The controller's name in logs and metrics (the lower-case kind, as controller-runtime)."""
        return self.kind.kind.lower()

    @abc.abstractmethod
    def reconcile(self, ctx: "ReconcileContext", obj: dict) -> Success | None:
        """Bring the world in line with ``obj``; change ``obj['status']`` as needed.

        Return None or a :class:`Success`; raise :class:`~controllers.runtime.outcomes.RetryableError`,
        :class:`~controllers.runtime.outcomes.StalledError` or :class:`~controllers.runtime.outcomes.Waiting`
        (any other exception counts as retryable).
        """

    def manages(self, obj: dict) -> bool:
        """Whether this reconciler manages ``obj`` at all (default: yes). An object it does not manage gets
        :meth:`release` called, loses the finalizer and is left alone (no conditions, no requeue)."""
        return True

    def release(self, ctx: "ReconcileContext", obj: dict) -> None:
        """Clear what this reconciler wrote into ``obj['status']`` for an object it no longer manages."""

    def suspended(self, obj: dict) -> bool:
        """Whether reconciliation of ``obj`` is switched off (default: ``spec.suspend: true``)."""
        return (obj.get("spec") or {}).get("suspend") is True

    def finalize(self, ctx: "ReconcileContext", obj: dict) -> None:
        """Clean up before ``obj`` is deleted (raise to retry with backoff). Default: nothing to do."""

    def watches(self) -> list[Watch]:
        """Other kinds to watch; default none."""
        return []

    def should_reconcile(self, old: dict, new: dict) -> bool:
        """Whether an update of an object queues it (new objects and deletions always do).

        Default: a spec change (generation), a new requestedAt annotation or a deletion; never status-only
        updates.
        """
        return predicates.default(old, new)

    def retry_interval(self, obj: dict) -> float | None:
        """Seconds until a failed reconciliation without its own ``requeue_after`` is retried. Default: the
        kind's ``retry_interval_paths`` (e.g. a Kustomization's spec.retryInterval, else spec.interval),
        and None without them: the per-object exponential backoff."""
        kind = getattr(self, "kind", None)  # abstract test reconcilers may declare none
        found = kind.retry_interval(obj) if isinstance(kind, Kind) else None
        return found[0] if found else None

    def leader_runnables(self) -> list:
        """Objects with ``start()``/``stop()`` run only while this process leads (e.g. an artifact server);
        the same object returned by several reconcilers runs once. Default: none."""
        return []

    def servers(self, kube: KubeClient, events: EventRecorder, namespace: str | None) -> list:
        """Objects with ``start()``/``stop()`` run in every replica, leader or not, for the whole life of the
        process (e.g. the notification-controller's HTTP endpoints, which a Service routes to any pod);
        ``namespace`` is the watched one (None: all). Default: none."""
        return []

    def interval(self, obj: dict) -> float | None:
        """Seconds between two successful reconciliations: ``spec.interval`` (None: no periodic run)."""
        value = (obj.get("spec") or {}).get("interval")
        try:
            return parse_duration(value) if value else None
        except ValueError:
            return None


class ReconcileContext:
    """What one reconciliation gets besides the object: clients, logger, settings and status helpers."""

    def __init__(self, controller: "Controller", key: str, obj: dict, patcher: Patcher, log: Logger,
                 reconcile_id: str):
        self.controller = controller
        self.kube: KubeClient = controller.kube
        self.settings: ManagerSettings = controller.settings
        self.key, self.obj, self.log, self.reconcile_id = key, obj, log, reconcile_id
        self._patcher = patcher
        self._progress_written: float | None = None
        self.after_status: list[Callable[[], None]] = []

    @property
    def periodic(self) -> bool:
        """Whether this run is only the periodic one: the object is Ready for its generation and no reconcile
        request is pending (a reconciler may then skip work and writes that only report news)."""
        meta, status = self.obj.get("metadata") or {}, self.obj.get("status") or {}
        requested = (meta.get("annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)
        return (cond.is_true(self.obj, cond.READY)
                and int(status.get("observedGeneration") or -1) == int(meta.get("generation") or 0)
                and (requested is None or requested == status.get("lastHandledReconcileAt")))

    @property
    def requeue_dependency(self) -> float:
        """Seconds to wait for a dependency (``--requeue-dependency``)."""
        return self.settings.controller.requeue_dependency

    @property
    def field_manager(self) -> str:
        return self.settings.field_manager

    def event(self, type_: str, reason: str, message: str, annotations: dict[str, str] | None = None) -> None:
        """Record a Kubernetes event about the object (in the background)."""
        if self.controller.events:
            self.controller.events.event(self.obj, type_, reason, message, annotations)

    def patch_status(self) -> bool:
        """Write the status changes made so far (they are written at the end anyway)."""
        return self._patcher.patch_status(self.obj)

    def progress(self, message: str, *, ready_message: str | None = None, reconciling: bool = True,
                 ready: bool = True, write: bool = True, throttle: bool = False) -> None:
        """Report that work on new changes started (:func:`~controllers.runtime.outcomes.mark_progressing`:
        Reconciling=True with ``message``, Ready=Unknown unless ``ready`` is False); written at once unless
        ``write`` is False. A ``throttle``d report (a quick step) is written only when this reconciliation's
        last written one is :data:`PROGRESS_WRITE_INTERVAL` old; otherwise the next write carries it."""
        mark_progressing(self.obj, message, ready_message=ready_message, reconciling=reconciling, ready=ready)
        now = time.monotonic()
        if write and not (throttle and self._progress_written is not None
                          and now - self._progress_written < PROGRESS_WRITE_INTERVAL):
            self.patch_status()
            self._progress_written = now

    def enqueue(self, key: str, delay: float = 0.0) -> None:
        """Queue another object of this controller's kind."""
        if delay > 0:
            self.controller.queue.add_after(key, delay)
        else:
            self.controller.queue.add(key)

    def enqueue_after_status(self, key: str) -> None:
        """Queue another object once this run's final status is written (a dependent woken by this object's
        success must read it Ready, not the status of the run still in progress)."""
        self.after_status.append(lambda: self.enqueue(key))


class Controller:
    """Runs one reconciler: informers feed a work queue, ``concurrent`` workers process it."""

    def __init__(self, reconciler: Reconciler, kube: KubeClient, settings: ManagerSettings | None = None, *,
                 events: EventRecorder | None = None, metrics: Metrics | None = None, log: Logger | None = None,
                 rng: random.Random | None = None):
        self.reconciler, self.kube = reconciler, kube
        self.settings = settings or ManagerSettings()
        self.events, self.metrics = events, metrics or Metrics()
        self.rt = reconciler.kind
        self.name = reconciler.name
        self._rng = rng or random.Random()
        cs = self.settings.controller
        self.queue = WorkQueue(ExponentialBackoff(cs.min_retry_delay, cs.max_retry_delay),
                               self.metrics.queue_metrics(self.name))
        self.log = (log or get_logger()).with_values(
            controller=self.name, controllerGroup=self.rt.group, controllerKind=self.rt.kind)
        ws = self.settings.watch
        self.informer = Informer(kube, self.rt, self._on_event, namespace=ws.watch_namespace,
                                 label_selector=ws.label_selector, timeout_seconds=ws.timeout_seconds,
                                 log=self.log)
        self.secondary = [
            Informer(kube, w.kind, self._mapper(w), namespace=ws.watch_namespace, label_selector=w.label_selector,
                     timeout_seconds=ws.timeout_seconds, log=self.log.with_values(watchKind=w.kind.kind))
            for w in reconciler.watches()
        ]
        self._workers: list[threading.Thread] = []
        self._known_versions: dict[str, str] = {}
        """key -> the newest resourceVersion this controller read or wrote (see :meth:`read`)."""
        self._active = 0
        self._active_lock = threading.Lock()
        self.metrics.max_concurrent.set(self.name, value=cs.concurrent)
        self.metrics.active_workers.set(self.name, value=0)
        self.metrics.registry.add_collector(self.queue.report)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Controller":
        self.log.info("Starting Controller")
        for informer in (self.informer, *self.secondary):
            informer.start()
        for i in range(max(1, self.settings.controller.concurrent)):
            t = threading.Thread(target=self._worker, name=f"{self.name}-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        self.log.info("Starting workers", workerCount=len(self._workers))
        return self

    def wait_synced(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        for informer in (self.informer, *self.secondary):
            left = None if end is None else max(0.0, end - time.monotonic())
            if not informer.wait_synced(left):
                return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching and queueing; wait up to ``timeout`` for running reconciliations."""
        self.log.info("Shutdown signal received, waiting for all workers to finish")
        for informer in (self.informer, *self.secondary):
            informer.stop()
        self.queue.shutdown()
        end = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, end - time.monotonic()))
        self.log.info("All workers finished")

    # ------------------------------------------------------------------ event handling

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def _on_event(self, type_: str, old: dict | None, new: dict | None) -> None:
        if type_ == "DELETED":
            key = object_key(old)
            self._known_versions.pop(key, None)
            self.queue.cancel(key)
            self.queue.forget(key)
            namespace, name = split_key(key)
            self.metrics.gotk_duration.remove(self.rt.kind, name, namespace or "")
            return
        if type_ == "ADDED" or self.reconciler.should_reconcile(old, new):
            self.queue.add(object_key(new))

    def _mapper(self, watch: Watch) -> Callable[[str, dict | None, dict | None], None]:
        def handle(type_: str, old: dict | None, new: dict | None) -> None:
            if type_ == "MODIFIED" and not watch.predicate(old, new):
                return
            for key in watch.map(new if new is not None else old):
                self.queue.add(key)
        return handle

    # ------------------------------------------------------------------ reading

    def read(self, key: str) -> dict | None:
        """The object of ``key`` to reconcile (a copy; None when it is gone).

        As Flux's controllers, from the informer's cache — no GET per reconciliation — unless the cache may be
        older than what this controller itself last wrote (a reconciliation queued again right after its
        status patch, before the watch delivered it): then a GET. resourceVersions are compared as the
        integers etcd makes them; one that is not an integer always means a GET.
        """
        cached = self.informer.get(key) if self.informer.synced.is_set() else None
        if cached is not None and _not_older(cached, self._known_versions.get(key)):
            return copy.deepcopy(cached)
        namespace, name = split_key(key)
        try:
            return self.kube.get(self.rt, name, namespace)
        except NotFound:
            return None

    def cached(self, rt: ResourceType, namespace: str | None, name: str) -> dict | None:
        """A copy of an object of another kind from this controller's synced informers (:meth:`Reconciler.
        watches`), None when none of them holds it (then read it from the apiserver)."""
        key = f"{namespace}/{name}" if namespace and rt.namespaced else name
        for informer in self.secondary:
            if informer.rt.plural == rt.plural and informer.rt.group == rt.group and informer.synced.is_set():
                found = informer.get(key)
                if found is not None:
                    return copy.deepcopy(found)
        return None

    # ------------------------------------------------------------------ processing

    def _worker(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            with self._active_lock:
                self._active += 1
                self.metrics.active_workers.set(self.name, value=self._active)
            try:
                self.process(key)
            except Exception as exc:  # noqa: BLE001 - the runtime itself failed (e.g. apiserver down)
                self.log.error("Reconciler error", error=exc, namespace=split_key(key)[0], name=split_key(key)[1])
                self.metrics.reconcile_total.inc(self.name, "error")
                self.metrics.reconcile_errors.inc(self.name)
                self.queue.add_rate_limited(key)
            finally:
                with self._active_lock:
                    self._active -= 1
                    self.metrics.active_workers.set(self.name, value=self._active)
                self.queue.done(key)

    def process(self, key: str) -> Decision | None:
        """Reconcile the object of ``key`` once (see the module docstring). Returns the decision taken."""
        namespace, name = split_key(key)
        reconcile_id = str(uuid.uuid4())
        log = self.log.with_values(kind=self.rt.kind, namespace=namespace or "", name=name, reconcileID=reconcile_id)
        started = time.monotonic()
        obj = self.read(key)
        if obj is None:
            self.queue.cancel(key)
            self.queue.forget(key)
            return None
        try:
            return self._process(key, obj, log, reconcile_id, started)
        finally:
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._known_versions[key] = rv

    def _process(self, key: str, obj: dict, log: Logger, reconcile_id: str, started: float) -> Decision | None:
        obj.setdefault("apiVersion", self.rt.api_version)
        obj.setdefault("kind", self.rt.kind)
        obj.setdefault("status", {})
        patcher = Patcher(self.kube, self.rt, obj, field_manager=self.settings.field_manager,
                          owned=self.reconciler.conditions.owned)
        ctx = ReconcileContext(self, key, obj, patcher, log, reconcile_id)
        meta = obj["metadata"]
        finalizer = self.reconciler.finalizer

        if meta.get("deletionTimestamp"):
            return self._finalize(ctx, obj, patcher, started)
        if not self.reconciler.manages(obj):
            return self._release(ctx, obj, patcher)

        if finalizer and finalizer not in (meta.get("finalizers") or []):
            obj["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), finalizer]
            if patcher.patch_finalizers(obj) is None:
                return None

        if self.reconciler.suspended(obj):
            log.info("Reconciliation is suspended for this object")
            handle_reconcile_request(obj)
            patcher.patch_status(obj)
            self.queue.cancel(key)
            self.queue.forget(key)
            return Decision(result="success")

        try:
            outcome: Any = self.reconciler.reconcile(ctx, obj)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome
            outcome = exc
        cs = self.settings.controller
        decision = apply_outcome(
            obj, outcome, conditions=self.reconciler.conditions_for(obj), interval=self.reconciler.interval(obj),
            retry_interval=self.reconciler.retry_interval(obj), requeue_dependency=cs.requeue_dependency,
            jitter=lambda d: jitter(d, cs.interval_jitter_percentage, self._rng))
        try:
            patcher.patch_status(obj)
        except KubeError as exc:
            log.error("failed to update status", error=exc)
            decision = dataclasses.replace(decision, result="error", backoff=True, error=decision.error or str(exc))
        for callback in ctx.after_status:
            callback()
        return self._conclude(key, obj, outcome, decision, log, started)

    def _conclude(self, key: str, obj: dict, outcome: Any, decision: Decision, log: Logger,
                  started: float) -> Decision:
        if decision.event and self.events:
            self.events.event(obj, decision.event.type, decision.event.reason, decision.event.message)
        if decision.backoff:
            delay = self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
            delay = decision.requeue_after
            if delay is not None:  # 0: at once
                self.queue.add_after(key, delay)
            else:
                self.queue.cancel(key)
        elapsed = time.monotonic() - started
        took, nxt = format_duration(round(elapsed, 3)), format_duration(round(delay, 3)) if delay else ""
        if isinstance(outcome, Waiting):
            log.info(f"{outcome.message}, retrying in {nxt}")
        elif isinstance(outcome, StalledError):
            log.error("Reconciliation stalled", error=decision.error, reason=outcome.reason)
        elif decision.error:
            unexpected = isinstance(outcome, Exception) and not isinstance(outcome, (ReconcileError, KubeError))
            # an unexpected exception is likely a bug: log where it came from
            log.error(f"Reconciliation failed after {took}, next try in {nxt}",
                      error=outcome if unexpected else decision.error, stacktrace=unexpected)
        else:
            log.info(f"Reconciliation finished in {took}" + (f", next run in {nxt}" if nxt else ""))
        m = self.metrics
        m.reconcile_total.inc(self.name, decision.result)
        m.reconcile_time.observe(self.name, value=elapsed)
        if decision.result == "error":
            m.reconcile_errors.inc(self.name)
        if isinstance(outcome, StalledError):
            m.terminal_errors.inc(self.name)
        meta = obj.get("metadata") or {}
        m.gotk_duration.observe(self.rt.kind, meta.get("name", ""), meta.get("namespace", ""), value=elapsed)
        return decision

    def _drop_finalizer(self, ctx: ReconcileContext, obj: dict, patcher: Patcher) -> None:
        """Remove our finalizer (if present) and forget the object in the queue."""
        finalizer = self.reconciler.finalizer
        if finalizer and finalizer in (obj["metadata"].get("finalizers") or []):
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != finalizer]
            patcher.patch_finalizers(obj)
        self.queue.cancel(ctx.key)
        self.queue.forget(ctx.key)

    def _release(self, ctx: ReconcileContext, obj: dict, patcher: Patcher) -> Decision:
        """An object this reconciler does not manage (e.g. a HelmRepository of type oci): let the reconciler
        clear what it owned in the status, then drop the finalizer; no conditions, no requeue."""
        self.reconciler.release(ctx, obj)
        patcher.patch_status(obj)
        self._drop_finalizer(ctx, obj, patcher)
        return Decision(result="success")

    def _finalize(self, ctx: ReconcileContext, obj: dict, patcher: Patcher, started: float) -> Decision | None:
        meta, finalizer = obj["metadata"], self.reconciler.finalizer
        if not finalizer or finalizer not in (meta.get("finalizers") or []):
            ctx.log.debug("object is being deleted and carries no finalizer of this controller, ignoring")
            return None
        try:
            self.reconciler.finalize(ctx, obj)
        except Exception as exc:  # noqa: BLE001 - retry the clean-up
            delay = self.queue.add_rate_limited(ctx.key)
            ctx.log.error(f"Finalization failed, next try in {format_duration(round(delay, 3))}", error=exc)
            ctx.event("Warning", getattr(exc, "reason", "") or "FinalizationFailed", str(exc) or type(exc).__name__)
            self.metrics.reconcile_total.inc(self.name, "error")
            self.metrics.reconcile_errors.inc(self.name)
            return Decision(result="error", backoff=True, error=str(exc))
        self._drop_finalizer(ctx, obj, patcher)
        self.metrics.gotk_duration.remove(self.rt.kind, meta.get("name", ""), meta.get("namespace", ""))
        self.metrics.reconcile_total.inc(self.name, "success")
        self.metrics.reconcile_time.observe(self.name, value=time.monotonic() - started)
        ctx.log.info("Finalization completed, finalizer removed")
        return Decision(result="success")


def _not_older(obj: dict, resource_version: str | None) -> bool:
    """Whether ``obj`` is at least as new as ``resource_version`` (False when they cannot be compared)."""
    if not resource_version:
        return True
    try:
        return int(obj["metadata"]["resourceVersion"]) >= int(resource_version)
    except (KeyError, TypeError, ValueError):
        return False
