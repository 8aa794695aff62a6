"""Typed reconcile outcomes, and the ONE function that turns an outcome into status and a requeue decision.

A controller's ``reconcile`` either returns (``None`` or a :class:`Success`) or raises:

- :class:`RetryableError` — transient failure: Ready=False, Reconciling=True (ProgressingWithRetry),
  retried with per-object exponential backoff (or after ``requeue_after`` when given);
- :class:`StalledError` — cannot progress until the spec changes: Stalled=True, Ready=False, no requeue;
- :class:`Waiting` — something else must happen first (e.g. a dependency is not ready): Ready=False with
  reason DependencyNotReady, retried after ``--requeue-dependency``;
- any other exception — like a RetryableError with reason ReconciliationFailed.

:func:`apply_outcome` is the only place where these become conditions, ``status.observedGeneration``,
``status.lastHandledReconcileAt``, the event to record and the requeue delay.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from controllers.runtime import conditions as cond
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

    def __init__(self, message: str, *, reason: str | None = None, requeue_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.requeue_after = requeue_after


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


def apply_outcome(obj: dict, outcome: Success | BaseException | None, *, interval: float | None = None,
                  requeue_dependency: float = 30.0,
                  jitter: Callable[[float], float] = lambda d: d) -> Decision:
    """Write the outcome of a reconciliation into ``obj['status']`` and decide what happens next.

    ``interval`` is the object's reconcile interval (seconds) used for a :class:`Success` without its own
    ``requeue_after``; ``jitter`` spreads interval requeues.
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

    if isinstance(outcome, Waiting):
        cond.mark_false(obj, cond.READY, outcome.reason, outcome.message)
        cond.delete(obj, cond.STALLED)
        reconciling = cond.get(obj, cond.RECONCILING)
        if reconciling:
            cond.mark_true(obj, cond.RECONCILING, cond.PROGRESSING_WITH_RETRY, reconciling.get("message", ""))
        delay = outcome.requeue_after if outcome.requeue_after is not None else requeue_dependency
        return Decision(result="requeue_after", requeue_after=delay,
                        event=Event(NORMAL, outcome.reason, outcome.message))

    if isinstance(outcome, StalledError):
        cond.mark_false(obj, cond.READY, outcome.reason, outcome.message)
        cond.mark_stalled(obj, outcome.reason, outcome.message)
        status["observedGeneration"] = generation
        return Decision(result="error", error=outcome.message, requeue_after=outcome.requeue_after,
                        event=Event(WARNING, outcome.reason, outcome.message))

    # RetryableError, or any other exception.
    if isinstance(outcome, ReconcileError):
        reason, message, delay = outcome.reason, outcome.message, outcome.requeue_after
    else:
        reason, message, delay = cond.RECONCILIATION_FAILED, str(outcome) or type(outcome).__name__, None
    cond.mark_false(obj, cond.READY, reason, message)
    cond.delete(obj, cond.STALLED)
    reconciling = cond.get(obj, cond.RECONCILING)
    cond.mark_true(obj, cond.RECONCILING, cond.PROGRESSING_WITH_RETRY,
                   reconciling.get("message", "") if reconciling else message)
    return Decision(result="error", requeue_after=delay, backoff=delay is None, error=message,
                    event=Event(WARNING, reason, message))


def mark_progressing(obj: dict, message: str) -> None:
    """Reconciling=True (Progressing) and Ready=Unknown: a reconciliation of new changes is under way."""
    cond.mark_reconciling(obj, cond.PROGRESSING, message)
    cond.mark_unknown(obj, cond.READY, cond.PROGRESSING, "Reconciliation in progress")
