"""Conditions: transition times, observedGeneration, order, abnormal-true types; status patches (pure parts)."""
from __future__ import annotations

from controllers.runtime import conditions as cond
from controllers.runtime.predicates import default as default_predicate
from controllers.runtime.status import apply_merge_patch, merge_patch, rebase_status


def obj(generation=1):
    return {"metadata": {"name": "x", "generation": generation}}


def test_transition_time_kept_while_state_unchanged():
    o = obj()
    cond.mark_false(o, "Ready", "Failed", "boom", timestamp="2024-01-01T00:00:00Z")
    cond.mark_false(o, "Ready", "Failed", "boom", timestamp="2024-01-02T00:00:00Z")
    assert cond.get(o, "Ready")["lastTransitionTime"] == "2024-01-01T00:00:00Z"


def test_transition_time_changes_on_status_change():
    o = obj()
    cond.mark_false(o, "Ready", "Failed", "boom", timestamp="2024-01-01T00:00:00Z")
    cond.mark_true(o, "Ready", "Succeeded", "ok", timestamp="2024-01-02T00:00:00Z")
    assert cond.get(o, "Ready")["lastTransitionTime"] == "2024-01-02T00:00:00Z"


def test_transition_time_changes_on_reason_or_message_change_as_flux():
    o = obj()
    cond.mark_false(o, "Ready", "Failed", "boom", timestamp="2024-01-01T00:00:00Z")
    cond.mark_false(o, "Ready", "Failed", "other", timestamp="2024-01-03T00:00:00Z")
    assert cond.get(o, "Ready")["lastTransitionTime"] == "2024-01-03T00:00:00Z"


def test_observed_generation_updated_on_every_set_without_transition():
    o = obj(1)
    cond.mark_true(o, "Ready", "Succeeded", "ok", timestamp="2024-01-01T00:00:00Z")
    o["metadata"]["generation"] = 2
    cond.mark_true(o, "Ready", "Succeeded", "ok", timestamp="2024-01-05T00:00:00Z")
    c = cond.get(o, "Ready")
    assert c["observedGeneration"] == 2 and c["lastTransitionTime"] == "2024-01-01T00:00:00Z"


def test_condition_shape_and_timestamp_format():
    o = obj(4)
    c = cond.mark_true(o, "Ready", "Succeeded", "ok")
    assert set(c) == {"type", "status", "observedGeneration", "lastTransitionTime", "reason", "message"}
    assert len(c["lastTransitionTime"]) == 20 and c["lastTransitionTime"].endswith("Z")


def test_order_stalled_reconciling_ready_then_others():
    o = obj()
    cond.mark_true(o, "ArtifactInStorage", "Succeeded")
    cond.mark_true(o, "Ready", "Succeeded")
    cond.mark_true(o, "Reconciling", "Progressing")
    cond.mark_true(o, "Stalled", "X")
    cond.mark_true(o, "Healthy", "Succeeded")
    assert [c["type"] for c in o["status"]["conditions"]] == [
        "Stalled", "Reconciling", "Ready", "ArtifactInStorage", "Healthy"]


def test_mark_reconciling_and_stalled_are_exclusive():
    o = obj()
    cond.mark_stalled(o, "Invalid", "bad")
    cond.mark_reconciling(o, "Progressing", "go")
    assert cond.get(o, "Stalled") is None and cond.is_true(o, "Reconciling")
    cond.mark_stalled(o, "Invalid", "bad")
    assert cond.get(o, "Reconciling") is None


def test_long_messages_trimmed():
    o = obj()
    cond.mark_false(o, "Ready", "Failed", "x" * 40000)
    assert len(cond.get(o, "Ready")["message"]) == cond.MAX_MESSAGE_LENGTH


def test_merge_patch_roundtrip():
    before = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2], "gone": True}
    after = {"a": 1, "b": {"c": 5, "d": 3}, "l": [1], "new": {"x": 1}}
    patch = merge_patch(before, after)
    assert patch == {"b": {"c": 5}, "l": [1], "gone": None, "new": {"x": 1}}
    assert apply_merge_patch(before, patch) == after
    assert merge_patch(after, after) == {}


def test_rebase_keeps_conditions_owned_by_others():
    before = {"conditions": [{"type": "Ready", "status": "Unknown"}], "observedGeneration": 1}
    after = {"conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 2, "artifact": {"x": 1}}
    latest = {"conditions": [{"type": "Ready", "status": "Unknown"}, {"type": "Custom", "status": "True"}],
              "observedGeneration": 1, "other": "kept"}
    rebased = rebase_status(before, after, latest)
    assert rebased["observedGeneration"] == 2 and rebased["artifact"] == {"x": 1} and rebased["other"] == "kept"
    assert {c["type"]: c["status"] for c in rebased["conditions"]} == {"Ready": "True", "Custom": "True"}


def test_rebase_applies_condition_removal():
    before = {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Stalled", "status": "True"}]}
    after = {"conditions": [{"type": "Ready", "status": "True"}]}
    latest = {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Stalled", "status": "True"}]}
    assert [c["type"] for c in rebase_status(before, after, latest)["conditions"]] == ["Ready"]


def _o(gen=1, ann=None, rv="1", deleting=False, labels=None):
    meta = {"generation": gen, "annotations": ann or {}, "resourceVersion": rv, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta}


def test_default_predicate_skips_status_only_updates():
    assert not default_predicate(_o(rv="1"), _o(rv="2"))  # status/metadata-only update
    assert default_predicate(_o(gen=1), _o(gen=2))  # spec change
    r = "reconcile.fluxcd.io/requestedAt"
    assert default_predicate(_o(), _o(ann={r: "t1"}))
    assert default_predicate(_o(ann={r: "t1"}), _o(ann={r: "t2"}))
    assert not default_predicate(_o(ann={r: "t1"}), _o(ann={r: "t1"}, rv="2"))
    assert default_predicate(_o(), _o(deleting=True))
    assert not default_predicate(_o(labels={"a": "1"}), _o(labels={"a": "2"}))
