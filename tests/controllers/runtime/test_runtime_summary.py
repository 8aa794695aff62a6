"""Ready computed from a reconciler's declared conditions (Flux's SetSummary) by ``apply_outcome``: priority
order, negative polarity, success, stalled, waiting, in progress, and the retry interval of a failure."""
from __future__ import annotations

import pytest

from controllers.runtime import conditions as cond
from controllers.runtime.conditions import Conditions
from controllers.runtime.controller import Reconciler
from controllers.runtime.outcomes import (RetryableError, StalledError, Success, Waiting, apply_outcome,
                                          mark_progressing, summary)

#: A source-like kind: two failure conditions (negative polarity), one positive, then the runtime's.
DECLARED = Conditions(owned=("StorageOperationFailed", "FetchFailed", "ArtifactInStorage", "Ready", "Reconciling",
                             "Stalled"),
                      summarize=("StorageOperationFailed", "FetchFailed", "ArtifactInStorage", "Stalled",
                                 "Reconciling"),
                      negative_polarity=("StorageOperationFailed", "FetchFailed", "Stalled", "Reconciling"))


def make(**status) -> dict:
    return {"metadata": {"name": "w", "namespace": "ns", "generation": 2}, "spec": {}, "status": dict(status)}


def ready(obj) -> tuple:
    c = cond.get(obj, "Ready")
    return c["status"], c["reason"], c["message"]


def test_success_without_bad_conditions_is_ready_with_the_success_message():
    obj = make()
    cond.mark_true(obj, "ArtifactInStorage", "Succeeded", "stored artifact for revision 'main@sha1:1'")
    d = apply_outcome(obj, Success("stored artifact for revision 'main@sha1:1'"), conditions=DECLARED,
                      interval=60.0)
    assert ready(obj) == ("True", "Succeeded", "stored artifact for revision 'main@sha1:1'")
    assert d.result == "requeue_after" and not d.backoff and obj["status"]["observedGeneration"] == 2


def test_first_bad_condition_in_priority_order_gives_ready_its_reason_and_message():
    obj = make()
    cond.mark_true(obj, "FetchFailed", "GitOperationFailed", "clone failed")
    cond.mark_true(obj, "StorageOperationFailed", "ArchiveOperationFailed", "disk full")
    assert summary(obj, DECLARED) == ("ArchiveOperationFailed", "disk full")
    apply_outcome(obj, RetryableError("clone failed", reason="GitOperationFailed"), conditions=DECLARED)
    assert ready(obj) == ("False", "ArchiveOperationFailed", "disk full")
    cond.delete(obj, "StorageOperationFailed")
    apply_outcome(obj, RetryableError("clone failed", reason="GitOperationFailed"), conditions=DECLARED)
    assert ready(obj) == ("False", "GitOperationFailed", "clone failed")


def test_polarity_decides_what_is_bad():
    obj = make()
    cond.mark_false(obj, "FetchFailed", "Fine", "negative polarity False is good")
    cond.mark_true(obj, "ArtifactInStorage", "Succeeded", "positive polarity True is good")
    assert summary(obj, DECLARED) is None
    cond.mark_unknown(obj, "ArtifactInStorage", "Progressing", "Unknown is never bad")
    assert summary(obj, DECLARED) is None
    cond.mark_false(obj, "ArtifactInStorage", "Missing", "positive polarity False is bad")
    assert summary(obj, DECLARED) == ("Missing", "positive polarity False is bad")


def test_success_with_a_bad_condition_is_a_failure_with_that_condition():
    obj = make()
    cond.mark_true(obj, "FetchFailed", "AuthenticationFailed", "secret 'ns/auth' not found")
    d = apply_outcome(obj, Success("stored artifact"), conditions=DECLARED, interval=60.0)
    assert ready(obj) == ("False", "AuthenticationFailed", "secret 'ns/auth' not found")
    assert d.error and d.backoff and cond.get(obj, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert "observedGeneration" not in obj["status"]


def test_a_failure_recorded_on_no_condition_ranks_at_stalled_and_reconciling():
    obj = make()
    cond.mark_true(obj, "ArtifactInStorage", "Succeeded", "stored")
    apply_outcome(obj, ValueError("unexpected"), conditions=DECLARED)
    assert ready(obj) == ("False", "ReconciliationFailed", "unexpected")
    # without Stalled/Reconciling in the summary the failure ranks last, after the kind's conditions
    late = Conditions(summarize=("FetchFailed",), negative_polarity=("FetchFailed",))
    cond.mark_true(obj, "FetchFailed", "GitOperationFailed", "clone failed")
    apply_outcome(obj, ValueError("unexpected"), conditions=late)
    assert ready(obj) == ("False", "GitOperationFailed", "clone failed")
    # a failure outranks a stale kind condition listed after Stalled/Reconciling (a Kustomization's Healthy)
    kustomization = Conditions(summarize=("Stalled", "Reconciling", "Healthy"),
                               negative_polarity=("Stalled", "Reconciling"))
    cond.mark_false(obj, "Healthy", "HealthCheckFailed", "old")
    apply_outcome(obj, RetryableError("apply failed"), conditions=kustomization)
    assert ready(obj)[2] == "apply failed"


def test_stalled_outcome():
    obj = make()
    d = apply_outcome(obj, StalledError("invalid url", reason="URLInvalid"), conditions=DECLARED)
    assert ready(obj) == ("False", "URLInvalid", "invalid url")
    assert cond.get(obj, "Stalled")["reason"] == "URLInvalid" and not cond.get(obj, "Reconciling")
    assert d.requeue_after is None and not d.backoff and obj["status"]["observedGeneration"] == 2


def test_waiting_outcome_with_its_condition():
    obj = make()
    cond.mark_true(obj, "FetchFailed", "DependencyNotReady", "include 'ns/other' not ready")
    d = apply_outcome(obj, Waiting("include 'ns/other' not ready"), conditions=DECLARED, requeue_dependency=7.0)
    assert ready(obj) == ("False", "DependencyNotReady", "include 'ns/other' not ready")
    assert d.requeue_after == 7.0 and not d.backoff


def test_in_progress_then_outcome():
    obj = make()
    apply_outcome(obj, Success("ok"), conditions=DECLARED)
    mark_progressing(obj, "building artifact: new revision", ready_message="building artifact: new revision")
    assert ready(obj) == ("Unknown", "Progressing", "building artifact: new revision")
    mark_progressing(obj, "next step")  # Ready stays as the first step left it
    assert ready(obj) == ("Unknown", "Progressing", "building artifact: new revision")
    assert cond.get(obj, "Reconciling")["message"] == "next step"
    fresh = make()
    mark_progressing(fresh, "processing object: new generation 1 -> 2", reconciling=False)
    assert ready(fresh) == ("Unknown", "Progressing", "Reconciliation in progress")
    assert not cond.get(fresh, "Reconciling")
    apply_outcome(obj, Success("ok"), conditions=DECLARED)
    assert ready(obj) == ("True", "Succeeded", "ok") and not cond.get(obj, "Reconciling")


def test_retry_interval_is_used_when_the_failure_has_no_requeue():
    obj = make()
    d = apply_outcome(obj, RetryableError("x"), retry_interval=120.0)
    assert d.requeue_after == 120.0 and not d.backoff
    d = apply_outcome(obj, RuntimeError("x"), retry_interval=120.0)
    assert d.requeue_after == 120.0 and not d.backoff
    d = apply_outcome(obj, RetryableError("x", requeue_after=5.0), retry_interval=120.0)
    assert d.requeue_after == 5.0
    d = apply_outcome(obj, RetryableError("x"))
    assert d.requeue_after is None and d.backoff


def test_declaration_must_summarise_owned_conditions():
    with pytest.raises(ValueError, match="Healthy not in owned"):
        Conditions(owned=("Ready",), summarize=("Healthy",))


def test_reconciler_hooks_are_methods_with_defaults():
    class Plain(Reconciler):
        def reconcile(self, ctx, obj):
            return None

    plain = Plain()
    assert plain.retry_interval({}) is None and plain.leader_runnables() == []
    assert plain.conditions == Conditions()


def test_kustomization_retry_interval_is_flux_s():
    from controllers.kustomize.reconciler import KustomizationReconciler

    rec = KustomizationReconciler()
    assert rec.retry_interval({"spec": {"interval": "10m", "retryInterval": "2m"}}) == 120.0
    assert rec.retry_interval({"spec": {"interval": "10m"}}) == 600.0
