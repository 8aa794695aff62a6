"""Status conditions of plain-dict objects, following Flux's kstatus conventions.

A condition is ``{type, status, observedGeneration, lastTransitionTime, reason, message}``. As in Flux's
runtime, setting a condition always records the object's generation in ``observedGeneration``, and
``lastTransitionTime`` changes only when the condition's state (status, reason or message) changes.
``Stalled`` and ``Reconciling`` are abnormal-true: present only while True. A reconciler declares the
conditions it owns and how they summarise into Ready as a :class:`Conditions`.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any

from controllers.api import meta
from controllers.api.meta import HEALTHY, READY, RECONCILING, STALLED  # noqa: F401 - re-exported
from controllers.api.objects import find_condition

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# The generic reasons the runtime writes (fluxcd/pkg/apis/meta).
SUCCEEDED = meta.SUCCEEDED_REASON
PROGRESSING = meta.PROGRESSING_REASON
PROGRESSING_WITH_RETRY = meta.PROGRESSING_WITH_RETRY_REASON
DEPENDENCY_NOT_READY = meta.DEPENDENCY_NOT_READY_REASON
RECONCILIATION_FAILED = meta.RECONCILIATION_FAILED_REASON

MAX_MESSAGE_LENGTH = 32768
_ORDER = {STALLED: 0, RECONCILING: 1, READY: 2}


def now() -> str:
    """The current time as a condition timestamp (RFC 3339, UTC, whole seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_of(obj: dict) -> list[dict]:
    """The object's ``status.conditions`` list (empty when absent)."""
    return ((obj.get("status") or {}).get("conditions")) or []


#: the condition of a type, or None (the shared helper of controllers.api).
get = find_condition


def status_of(obj: dict, type_: str) -> str | None:
    cond = get(obj, type_)
    return cond.get("status") if cond else None


def is_true(obj: dict, type_: str) -> bool:
    return status_of(obj, type_) == TRUE


def is_false(obj: dict, type_: str) -> bool:
    return status_of(obj, type_) == FALSE


def is_ready(obj: dict) -> bool:
    return is_true(obj, READY)


def reason_of(obj: dict, type_: str) -> str:
    cond = get(obj, type_)
    return (cond or {}).get("reason", "")


def _sort_key(cond: dict) -> tuple:
    t = cond.get("type", "")
    if t in _ORDER:
        return (0, _ORDER[t], 0, "")
    return (1, 0, -int(cond.get("observedGeneration") or 0), t)


def _store(obj: dict, conds: list[dict]) -> None:
    status = obj.setdefault("status", {})
    status["conditions"] = sorted(conds, key=_sort_key)


def set_condition(obj: dict, type_: str, status: str, reason: str, message: str = "", *,
                  timestamp: str | None = None) -> dict:
    """Set a condition; keep its lastTransitionTime unless status, reason or message changed."""
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    new = {
        "type": type_,
        "status": status,
        "observedGeneration": int((obj.get("metadata") or {}).get("generation") or 0),
        "lastTransitionTime": "",
        "reason": reason,
        "message": message,
    }
    conds = [dict(c) for c in conditions_of(obj)]
    for i, old in enumerate(conds):
        if old.get("type") == type_:
            same = all(old.get(k) == new[k] for k in ("status", "reason", "message"))
            new["lastTransitionTime"] = old.get("lastTransitionTime") if same else (timestamp or now())
            if not new["lastTransitionTime"]:
                new["lastTransitionTime"] = timestamp or now()
            conds[i] = new
            break
    else:
        new["lastTransitionTime"] = timestamp or now()
        conds.append(new)
    _store(obj, conds)
    return new


def mark_true(obj: dict, type_: str, reason: str, message: str = "", **kw: Any) -> dict:
    return set_condition(obj, type_, TRUE, reason, message, **kw)


def mark_false(obj: dict, type_: str, reason: str, message: str = "", **kw: Any) -> dict:
    return set_condition(obj, type_, FALSE, reason, message, **kw)


def mark_unknown(obj: dict, type_: str, reason: str, message: str = "", **kw: Any) -> dict:
    return set_condition(obj, type_, UNKNOWN, reason, message, **kw)


def delete(obj: dict, type_: str) -> None:
    """Remove the condition of this type, if present."""
    conds = conditions_of(obj)
    if any(c.get("type") == type_ for c in conds):
        _store(obj, [c for c in conds if c.get("type") != type_])


def mark_reconciling(obj: dict, reason: str, message: str = "", **kw: Any) -> dict:
    """Reconciling=True (and no Stalled): the controller is working on the latest changes."""
    delete(obj, STALLED)
    return mark_true(obj, RECONCILING, reason, message, **kw)


def mark_stalled(obj: dict, reason: str, message: str = "", **kw: Any) -> dict:
    """Stalled=True (and no Reconciling): the controller cannot progress until the spec changes."""
    delete(obj, RECONCILING)
    return mark_true(obj, STALLED, reason, message, **kw)


@dataclasses.dataclass(frozen=True)
class Conditions:
    """The conditions a reconciler declares (as fluxcd/pkg's ``Conditions{Owned, Summarize, NegativePolarity}``
    for the target Ready). The runtime computes Ready from them (:func:`controllers.runtime.outcomes.apply_outcome`)
    and patches only the owned ones (:class:`controllers.runtime.status.Patcher`)."""

    owned: tuple[str, ...] = ()
    """The condition types this reconciler writes, Ready, Reconciling and Stalled included; the status patch
    takes these from the reconciler and every other type as the server has it (another manager's conditions
    are kept). Empty: not declared, every condition is written as the reconciler left it."""
    summarize: tuple[str, ...] = ()
    """The conditions Ready summarises, highest priority first: the first "bad" one gives Ready=False its
    reason and message. ``Stalled`` and ``Reconciling`` stand for the outcome of the reconciliation (a
    failure's reason and message) at their place in the order; a failure is ranked last when neither is
    listed."""
    negative_polarity: tuple[str, ...] = ()
    """The summarised conditions that are bad while True (FetchFailed, ArtifactOutdated, ...); every other
    summarised condition is bad while False (ArtifactInStorage, SourceVerified, Healthy)."""

    def __post_init__(self) -> None:
        for field in ("summarize", "negative_polarity"):
            stray = [t for t in getattr(self, field) if self.owned and t not in self.owned]
            if stray:
                raise ValueError(f"Conditions.{field}: {', '.join(stray)} not in owned")


def is_bad(obj: dict, type_: str, conditions: Conditions) -> bool:
    """Whether condition ``type_`` of ``obj`` counts against Ready: True with negative polarity, False
    otherwise (an absent or Unknown condition never does)."""
    status = status_of(obj, type_)
    return status == (TRUE if type_ in conditions.negative_polarity else FALSE)
