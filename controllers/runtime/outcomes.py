"""Typed reconcile outcomes, and the ONE function that turns an outcome into status and a requeue decision.

A controller's ``reconcile`` either returns (``None`` or a :class:`Success`) or raises:

- :class:`RetryableError` — transient failure: Ready=False, Reconciling=True (ProgressingWithRetry),
  retried after ``requeue_after`` when given, else after the reconciler's ``retry_interval``, else with
  per-object exponential backoff;
- :class:`StalledError` — cannot progress until the spec changes: Stalled=True, Ready=False, no requeue;
- :class:`Waiting` — something else must happen first (e.g. a dependency is not ready): Ready=False with
  reason DependencyNotReady, retried after ``--requeue-dependency``;
- any other exception — like a RetryableError with reason ReconciliationFailed.

:func:`apply_outcome` is the only place where these become Ready, Reconciling and Stalled (summarising the
reconciler's declared :class:`~controllers.runtime.conditions.Conditions`), ``status.observedGeneration``,
``status.lastHandledReconcileAt``, the event to record and the requeue delay; :func:`mark_progressing` the
only way to say a reconciliation is under way.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from controllers.runtime import conditions as cond
from controllers.runtime.conditions import Conditions
from controllers.runtime.kube import Conflict
from controllers.api.meta import RECONCILE_REQUEST_ANNOTATION

NORMAL, WARNING = "Normal", "Warning"


@dataclasses.dataclass
class Success:
    """The object is reconciled: Ready=True with this reason and message."""

    message: str = "Reconciliation succeeded"
    reason: str = cond.SUCCEEDED
    requeue_after: float | None = None
    """Seconds until the next reconciliation; None means the object's ``spec.interval`` (jittered)."""
    notify: bool | None = None
    """Record a Normal event: True always, False never, None only when Ready's state changed."""


class ReconcileError(Exception):
    """Base of the typed failures; ``reason`` becomes the conditions' reason, ``message`` their message."""

    default_reason = cond.RECONCILIATION_FAILED

    def __init__(self, message: str, *, reason: str | None = None, requeue_after: float | None = None,
                 summarize: bool = True):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.requeue_after = requeue_after
        self.summarize = summarize
        """False: Ready takes this failure's reason and message even where a summarised condition is bad
        (a failure before the work the conditions describe, e.g. a HelmRelease's values not found)."""


class RetryableError(ReconcileError):
    """A transient failure; retried with backoff, or after ``requeue_after`` seconds when given."""


class StalledError(ReconcileError):
    """A failure that retrying cannot fix (invalid spec, access denied): no requeue until the spec changes —
    unless ``requeue_after`` is given, for a stall that a change elsewhere can end (a dependency cycle is
    broken by editing another object, which may be of a kind no watch of ours sees)."""


class Waiting(ReconcileError):
    """The reconciliation must wait for something else; retried after ``requeue_after`` (default
    ``--requeue-dependency``)."""

    default_reason = cond.DEPENDENCY_NOT_READY


@dataclasses.dataclass
class Event:
    """A Kubernetes event to record about the reconciled object."""

    type: str
    reason: str
    message: str


@dataclasses.dataclass
class Decision:
    """What the runtime does after a reconciliation."""

    result: str
    """Metric label: ``success``, ``error``, ``requeue`` or ``requeue_after``."""
    requeue_after: float | None = None
    """Seconds until the next reconciliation (None: none scheduled)."""
    backoff: bool = False
    """Requeue with the per-object exponential backoff (a failure); otherwise the backoff is reset."""
    error: str = ""
    """The failure message ('' on success)."""
    event: Event | None = None


def handle_reconcile_request(obj: dict) -> None:
    """Echo ``reconcile.fluxcd.io/requestedAt`` into ``status.lastHandledReconcileAt``."""
    token = ((obj.get("metadata") or {}).get("annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)
    if token:
        obj.setdefault("status", {})["lastHandledReconcileAt"] = token


def _ready_state(obj: dict) -> tuple:
    c = cond.get(obj, cond.READY) or {}
    return c.get("status"), c.get("reason"), c.get("message")


#: The Ready message while a reconciliation is under way (unless the reconciler gives its own).
IN_PROGRESS_MESSAGE = "Reconciliation in progress"
#: The conditions Ready/Reconciling/Stalled the runtime writes from the outcome.
RUNTIME_CONDITIONS = (cond.READY, cond.RECONCILING, cond.STALLED)


def summary(obj: dict, conditions: Conditions, failure: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The ``(reason, message)`` Ready=False takes, or None when nothing counts against Ready (Flux's
    SetSummary): the first summarised condition in priority order that is bad
    (:func:`~controllers.runtime.conditions.is_bad`), where Stalled and Reconciling stand for ``failure``
    (the outcome's reason and message); ``failure`` when no condition is bad."""
    for type_ in conditions.summarize:
        if type_ in (cond.STALLED, cond.RECONCILING):
            if failure:
                return failure
        elif type_ != cond.READY and cond.is_bad(obj, type_, conditions):
            c = cond.get(obj, type_) or {}
            return c.get("reason", ""), c.get("message", "")
    return failure


def apply_outcome(obj: dict, outcome: Success | BaseException | None, *, conditions: Conditions = Conditions(),
                  interval: float | None = None, retry_interval: float | None = None,
                  requeue_dependency: float = 30.0,
                  jitter: Callable[[float], float] = lambda d: d) -> Decision:
    """Write the outcome of a reconciliation into ``obj['status']`` and decide what happens next.

    Ready, Reconciling and Stalled are computed here, from the outcome and the reconciler's declared
    ``conditions`` (:func:`summary`): a success leaves Ready=True with its reason and message unless a
    summarised condition is bad — then it counts as a failure with that condition's reason and message.
    ``interval`` is the object's reconcile interval (seconds) used for a :class:`Success` without its own
    ``requeue_after``; ``retry_interval`` (None: exponential backoff) the delay after a failure without one;
    ``jitter`` spreads interval requeues.
    """
    if isinstance(outcome, Conflict):
        # The object changed under us: not a failure of the object, run again soon on its latest version.
        return Decision(result="error", backoff=True, error=str(outcome))
    if outcome is None:
        outcome = Success()
    status = obj.setdefault("status", {})
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    ready_before = _ready_state(obj)
    handle_reconcile_request(obj)

    if isinstance(outcome, Success):
        bad = summary(obj, conditions)
        if bad:
            outcome = RetryableError(bad[1], reason=bad[0])
        else:
            cond.mark_true(obj, cond.READY, outcome.reason, outcome.message)
            cond.delete(obj, cond.RECONCILING)
            cond.delete(obj, cond.STALLED)
            status["observedGeneration"] = generation
            delay = outcome.requeue_after if outcome.requeue_after is not None else interval
            changed = _ready_state(obj) != ready_before
            notify = changed if outcome.notify is None else outcome.notify
            return Decision(
                result="requeue_after" if delay else "success",
                requeue_after=jitter(delay) if delay else None,
                event=Event(NORMAL, outcome.reason, outcome.message) if notify else None,
            )

    if isinstance(outcome, ReconcileError):
        reason, message, delay = outcome.reason, outcome.message, outcome.requeue_after
    else:  # any other exception
        reason, message, delay = cond.RECONCILIATION_FAILED, str(outcome) or type(outcome).__name__, None
    if isinstance(outcome, ReconcileError) and not outcome.summarize:
        ready_reason, ready_message = reason, message
    else:
        ready_reason, ready_message = summary(obj, conditions, (reason, message))

    if isinstance(outcome, Waiting):
        cond.mark_false(obj, cond.READY, ready_reason, ready_message)
        cond.delete(obj, cond.STALLED)
        reconciling = cond.get(obj, cond.RECONCILING)
        if reconciling:
            cond.mark_true(obj, cond.RECONCILING, cond.PROGRESSING_WITH_RETRY, reconciling.get("message", ""))
        delay = delay if delay is not None else requeue_dependency
        return Decision(result="requeue_after", requeue_after=delay, event=Event(NORMAL, reason, message))

    if isinstance(outcome, StalledError):
        cond.mark_false(obj, cond.READY, ready_reason, ready_message)
        cond.mark_stalled(obj, reason, message)
        status["observedGeneration"] = generation
        return Decision(result="error", error=message, requeue_after=delay, event=Event(WARNING, reason, message))

    # RetryableError, or any other exception.
    if delay is None:
        delay = retry_interval
    cond.mark_false(obj, cond.READY, ready_reason, ready_message)
    cond.delete(obj, cond.STALLED)
    reconciling = cond.get(obj, cond.RECONCILING)
    cond.mark_true(obj, cond.RECONCILING, cond.PROGRESSING_WITH_RETRY,
                   reconciling.get("message", "") if reconciling else message)
    return Decision(result="error", requeue_after=delay, backoff=delay is None, error=message,
                    event=Event(WARNING, reason, message))


def mark_progressing(obj: dict, message: str, *, ready_message: str | None = None, reconciling: bool = True,
                     ready: bool = True) -> None:
    """The one way to report that a reconciliation of new changes is under way: Reconciling=True
    (Progressing) with ``message`` (unless ``reconciling`` is False) and Ready=Unknown (Progressing) with
    ``ready_message`` (default "Reconciliation in progress") — kept as it is when Ready is Unknown already, and
    left alone with ``ready`` False (work that may change nothing, as the helm-controller's prerequisites)."""
    if reconciling:
        cond.mark_reconciling(obj, cond.PROGRESSING, message)
    if ready and cond.status_of(obj, cond.READY) != cond.UNKNOWN:
        cond.mark_unknown(obj, cond.READY, cond.PROGRESSING, ready_message or IN_PROGRESS_MESSAGE)


def ready_conditions(obj: dict, outcome: Success) -> list[dict]:
    """The conditions of an object another reconciler produces already reconciled (an ExternalArtifact an
    ArtifactGenerator stores): Ready=True with the outcome's reason and message, for ``obj``'s generation."""
    holder = {"metadata": obj.get("metadata") or {}, "status": {}}
    cond.mark_true(holder, cond.READY, outcome.reason, outcome.message)
    return holder["status"]["conditions"]
