"""Outcome -> conditions, observedGeneration, lastHandledReconcileAt, event and requeue (every outcome type)."""
from __future__ import annotations

import pytest

from controllers.runtime import conditions as cond
from controllers.runtime.kube import Conflict
from controllers.runtime.outcomes import (RetryableError, StalledError, Success, Waiting, apply_outcome,
                                          mark_progressing)


def make(generation=3, annotations=None, status=None) -> dict:
    return {"apiVersion": "test.fluxpy.io/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ns", "generation": generation, "annotations": annotations or {}},
            "spec": {"interval": "10m"}, "status": status or {}}


def types(obj) -> list[str]:
    return [c["type"] for c in cond.conditions_of(obj)]


def test_success_sets_ready_removes_reconciling_and_stalled():
    obj = make()
    cond.mark_reconciling(obj, "Progressing", "working")
    cond.mark_stalled(obj, "Old", "old")
    d = apply_outcome(obj, Success("Applied revision: main@sha1:abc", reason="ReconciliationSucceeded"),
                      interval=600.0)
    assert types(obj) == ["Ready"]
    ready = cond.get(obj, "Ready")
    assert ready["status"] == "True" and ready["reason"] == "ReconciliationSucceeded"
    assert ready["message"] == "Applied revision: main@sha1:abc" and ready["observedGeneration"] == 3
    assert obj["status"]["observedGeneration"] == 3
    assert d.result == "requeue_after" and d.requeue_after == 600.0 and not d.backoff and not d.error
    assert d.event.type == "Normal" and d.event.reason == "ReconciliationSucceeded"


def test_none_is_success_and_interval_is_jittered():
    obj = make()
    d = apply_outcome(obj, None, interval=600.0, jitter=lambda s: s * 1.05)
    assert cond.is_ready(obj)
    assert d.requeue_after == pytest.approx(630.0)


def test_success_without_interval_does_not_requeue():
    d = apply_outcome(make(), Success(), interval=None)
    assert d.result == "success" and d.requeue_after is None


def test_success_requeue_after_overrides_interval_and_event_only_on_change():
    obj = make()
    first = apply_outcome(obj, Success("ok"), interval=600.0)
    again = apply_outcome(obj, Success("ok", requeue_after=5.0), interval=600.0)
    assert first.event is not None
    assert again.event is None  # nothing changed: no repeated event
    assert again.requeue_after == 5.0
    assert apply_outcome(obj, Success("ok", notify=True)).event is not None


def test_retryable_error_backs_off_with_reconciling_progressing_with_retry():
    obj = make()
    d = apply_outcome(obj, RetryableError("fetch failed: timeout", reason="GitOperationFailed"), interval=600.0)
    ready = cond.get(obj, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "GitOperationFailed",
                                                                    "fetch failed: timeout")
    rec = cond.get(obj, "Reconciling")
    assert rec["status"] == "True" and rec["reason"] == "ProgressingWithRetry"
    assert not cond.get(obj, "Stalled")
    assert "observedGeneration" not in obj["status"]  # not reconciled successfully
    assert d.backoff and d.result == "error" and d.requeue_after is None
    assert d.event.type == "Warning" and d.event.reason == "GitOperationFailed"


def test_retryable_error_keeps_progress_message_and_explicit_delay():
    obj = make()
    mark_progressing(obj, "Fetching manifests for revision main@sha1:abc")
    d = apply_outcome(obj, RetryableError("boom", requeue_after=60.0))
    assert cond.get(obj, "Reconciling")["message"] == "Fetching manifests for revision main@sha1:abc"
    assert cond.get(obj, "Ready")["reason"] == "ReconciliationFailed"
    assert not d.backoff and d.requeue_after == 60.0 and d.result == "error"


def test_unexpected_exception_is_retryable_with_reconciliation_failed():
    obj = make()
    d = apply_outcome(obj, ValueError("bad thing"))
    assert cond.get(obj, "Ready")["reason"] == "ReconciliationFailed"
    assert cond.get(obj, "Ready")["message"] == "bad thing"
    assert d.backoff and d.error == "bad thing"
    d = apply_outcome(obj, KeyError())
    assert cond.get(obj, "Ready")["message"] == "KeyError"  # no message: the exception's type


def test_stalled_error_stalls_without_requeue():
    obj = make()
    cond.mark_reconciling(obj, "Progressing", "x")
    d = apply_outcome(obj, StalledError("invalid URL 'ftp://x'", reason="InvalidURL"), interval=600.0)
    assert types(obj) == ["Stalled", "Ready"]
    assert cond.get(obj, "Stalled")["status"] == "True" and cond.get(obj, "Stalled")["reason"] == "InvalidURL"
    assert cond.get(obj, "Ready")["status"] == "False"
    assert obj["status"]["observedGeneration"] == 3  # this generation was handled: it cannot progress
    assert d.requeue_after is None and not d.backoff and d.result == "error"
    assert d.event.type == "Warning"


def test_waiting_requeues_after_dependency_interval():
    obj = make()
    cond.mark_stalled(obj, "Old", "old")
    d = apply_outcome(obj, Waiting("dependency 'ns/infra' is not ready"), requeue_dependency=30.0)
    ready = cond.get(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DependencyNotReady")
    assert not cond.get(obj, "Stalled")
    assert d.requeue_after == 30.0 and not d.backoff and d.result == "requeue_after" and not d.error
    assert d.event.type == "Normal"
    assert apply_outcome(obj, Waiting("x", requeue_after=5.0)).requeue_after == 5.0


def test_waiting_turns_reconciling_into_progressing_with_retry():
    obj = make()
    mark_progressing(obj, "working")
    apply_outcome(obj, Waiting("later"))
    assert cond.get(obj, "Reconciling")["reason"] == "ProgressingWithRetry"


def test_conflict_retries_without_touching_status():
    obj = make()
    d = apply_outcome(obj, Conflict(409, "Conflict", "the object has been modified"))
    assert d.backoff and obj["status"] == {}


@pytest.mark.parametrize("outcome", [None, Success(), RetryableError("x"), StalledError("x"), Waiting("x"),
                                     RuntimeError("x")])
def test_every_outcome_acknowledges_reconcile_request(outcome):
    obj = make(annotations={"reconcile.fluxcd.io/requestedAt": "2024-01-01T00:00:00Z"})
    apply_outcome(obj, outcome)
    assert obj["status"]["lastHandledReconcileAt"] == "2024-01-01T00:00:00Z"


def test_no_request_annotation_leaves_last_handled_unset():
    obj = make()
    apply_outcome(obj, None)
    assert "lastHandledReconcileAt" not in obj["status"]


def test_recovery_after_failure_emits_event_and_clears_reconciling():
    obj = make()
    apply_outcome(obj, RetryableError("x"))
    d = apply_outcome(obj, Success("fine"))
    assert types(obj) == ["Ready"] and d.event is not None


def test_mark_progressing():
    obj = make()
    cond.mark_stalled(obj, "S", "s")
    mark_progressing(obj, "Building artifact")
    assert types(obj) == ["Reconciling", "Ready"]
    assert cond.get(obj, "Ready")["status"] == "Unknown" and cond.get(obj, "Ready")["reason"] == "Progressing"
