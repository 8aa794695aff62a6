"""Waiting in the controller tests: a reconciler runs in-process (``start_controller``) and the test waits
until the object, its events or anything else show what it expects.

- :func:`ready_with`: a predicate — Ready has a status (and reason) for the object's current generation;
- :func:`wait`: ``kube.wait_for`` that fails with the object's conditions and artifact in the message;
- :func:`request_reconcile`, :func:`handled`, :func:`reconcile_now`: the ``requestedAt`` protocol, and the
  object once its controller handled the request;
- :func:`wait_gone`: until an object is deleted (its finalizer removed);
- :func:`events`, :func:`wait_event`: the events of an object (they are posted in the background, after the
  status may already show the outcome);
- :func:`until`: poll any function;
- :class:`Waits`: the waits above for one kind, with a test module's timeout and its idea of "handled".
"""
from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from controllers.api.builtin import EVENT
from controllers.api.objects import dig, find_condition
from controllers.runtime import protocol
from controllers.runtime.kube import NotFound

TIMEOUT = 60.0
Predicate = Callable[[dict], bool]


def ready_with(status: str = "True", reason: str | None = None) -> Predicate:
    """A predicate: Ready has ``status`` (and ``reason``) for the object's current generation."""
    def check(obj: dict) -> bool:
        ready = find_condition(obj, "Ready") or {}
        return (ready.get("observedGeneration") == obj["metadata"]["generation"] and ready.get("status") == status
                and (reason is None or ready.get("reason") == reason))
    return check


def wait(kube, kind, namespace: str, name: str, predicate: Predicate, what: str, timeout: float = TIMEOUT) -> dict:
    """The object once ``predicate(obj)`` holds (``kind`` a controllers.api Kind); NotFound when it is
    deleted meanwhile; a failure naming its conditions and artifact after ``timeout`` seconds."""
    try:
        return kube.wait_for(kind, name, namespace, predicate, timeout=timeout, what=what)
    except TimeoutError as exc:
        status = kube.get(kind, name, namespace).get("status") or {}
        conditions = [(c["type"], c["status"], c["reason"], c["message"]) for c in status.get("conditions") or []]
        raise AssertionError(f"{exc}; conditions: {conditions}; artifact: {status.get('artifact')}") from None


def request_reconcile(kube, kind, namespace: str, name: str) -> str:
    """Ask the controller to reconcile the object now; the token its status will acknowledge."""
    return protocol.request_reconcile(kube, kind, name, namespace)


def handled(token: str, settled: Predicate | None = None) -> Predicate:
    """A predicate: the controller handled the request ``token`` and wrote the outcome — Ready is no longer
    Unknown, or ``settled(obj)`` when given."""
    def check(obj: dict) -> bool:
        if dig(obj, "status.lastHandledReconcileAt") != token:
            return False
        if settled is not None:
            return settled(obj)
        return (find_condition(obj, "Ready") or {}).get("status") != "Unknown"
    return check


def reconcile_now(kube, kind, namespace: str, name: str, *, settled: Predicate | None = None,
                  timeout: float = TIMEOUT) -> dict:
    """Request a reconciliation; the object once it was handled (success or failure, see :func:`handled`)."""
    token = request_reconcile(kube, kind, namespace, name)
    return wait(kube, kind, namespace, name, handled(token, settled), f"{name} reconciled", timeout)


def wait_gone(kube, kind, namespace: str, name: str, timeout: float = TIMEOUT) -> None:
    """Until the object is deleted (its controller removed the finalizer)."""
    try:
        kube.wait_for(kind, name, namespace, lambda obj: False, timeout=timeout, what=f"{name} deleted")
    except NotFound:
        return
    except TimeoutError:
        pytest.fail(f"{kind.kind} {name} was not deleted (finalizer not removed) within {timeout}s")


def events(kube, namespace: str, name: str, kind: str | None = None) -> list[dict]:
    """The events about the object ``name`` (of ``kind`` when given) in ``namespace``."""
    return [e for e in kube.list(EVENT, namespace).get("items") or []
            if dig(e, "involvedObject.name") == name and (kind is None or dig(e, "involvedObject.kind") == kind)]


def wait_event(kube, namespace: str, name: str, reason: str, *, kind: str | None = None,
               timeout: float = 15.0) -> dict:
    """The last event with ``reason`` about the object, once there is one."""
    found = until(lambda: [e for e in events(kube, namespace, name, kind) if e["reason"] == reason],
                  f"a {reason} event for {name}", timeout, fail=False)
    if not found:
        pytest.fail(f"no {reason} event for {name}: "
                    f"{[(e['reason'], e['message']) for e in events(kube, namespace, name, kind)]}")
    return found[-1]


def until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT, *, fail: bool = True) -> Any:
    """Poll ``predicate()`` (every 0.1s) until it returns something true, and return that; after ``timeout``
    seconds fail the test (or return the last value with ``fail=False``)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    if fail:
        pytest.fail(f"timed out waiting for {what}")
    return value


class Waits:
    """The waits of one kind with one timeout, called as a test module calls them (``wait(kube, namespace,
    name, predicate, what)``); ``settled`` is what "handled" means there (see :func:`handled`)."""

    def __init__(self, kind, timeout: float = TIMEOUT, settled: Predicate | None = None):
        self.kind, self.timeout, self.settled = kind, timeout, settled

    def wait(self, kube, namespace: str, name: str, predicate: Predicate, what: str) -> dict:
        return wait(kube, self.kind, namespace, name, predicate, what, self.timeout)

    def request_reconcile(self, kube, namespace: str, name: str) -> str:
        return request_reconcile(kube, self.kind, namespace, name)

    def handled(self, token: str) -> Predicate:
        return handled(token, self.settled)

    def reconcile_now(self, kube, namespace: str, name: str) -> dict:
        return reconcile_now(kube, self.kind, namespace, name, settled=self.settled, timeout=self.timeout)

    def gone(self, kube, namespace: str, name: str) -> None:
        wait_gone(kube, self.kind, namespace, name, self.timeout)
