"""The schema DSL and the schemas of every kind (no cluster)."""
from __future__ import annotations

import re

import pytest

from controllers.api import meta
from controllers.api.kinds import KINDS
from controllers.api.schema import (
    DURATION_NO_HOURS_PATTERN, DURATION_PATTERN, Arr, Bool, Duration, Enum, Int, IntOrStr, Map, Preserve, Str,
    Time, obj,
)
from tests.controllers.api.api_support import all_examples, structural_problems, validate

KIND_IDS = [k.kind for k in KINDS]


# --- the DSL ------------------------------------------------------------------------------------------
def test_leaves_render_their_options():
    assert Str("A name.", required=True, min_length=1, max_length=253, pattern="^[a-z]+$").schema == {
        "description": "A name.", "type": "string", "pattern": "^[a-z]+$", "minLength": 1, "maxLength": 253}
    assert Int(format="int64", minimum=0).schema == {"type": "integer", "format": "int64", "minimum": 0}
    assert Bool(default=False).schema == {"type": "boolean", "default": False}
    assert Time().schema == {"type": "string", "format": "date-time"}
    assert Enum("a", "b", doc="Pick.", default="a").schema == {
        "description": "Pick.", "type": "string", "enum": ["a", "b"], "default": "a"}
    assert Str(nullable=True).schema == {"type": "string", "nullable": True}


def test_containers_and_escape_hatches():
    assert Arr(Str(), max_items=3, list_type="atomic").schema == {
        "type": "array", "items": {"type": "string"}, "maxItems": 3, "x-kubernetes-list-type": "atomic"}
    assert Map(Str()).schema == {"type": "object", "additionalProperties": {"type": "string"}}
    assert Preserve("Anything.").schema == {"description": "Anything.", "x-kubernetes-preserve-unknown-fields": True}
    assert Preserve(type="object").schema["type"] == "object"
    assert IntOrStr().schema == {"x-kubernetes-int-or-string": True}


def test_obj_collects_required_and_strips_trailing_underscore():
    field = obj("Thing.", required=True, type_=Enum("x", required=True), from_=Str(), count=Int(required=True),
                rules=[("has(self.type)", "type is required")])
    assert field.required
    assert list(field.schema["properties"]) == ["type", "from", "count"]
    assert field.schema["required"] == ["type", "count"]
    assert field.schema["x-kubernetes-validations"] == [{"rule": "has(self.type)", "message": "type is required"}]
    assert "required" not in obj().schema and "properties" not in obj().schema


def test_duration_patterns():
    assert Duration().schema["pattern"] == DURATION_PATTERN == r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
    assert Duration(hours=False).schema["pattern"] == DURATION_NO_HOURS_PATTERN
    for good in ("1m", "10m0s", "1.5h", "250ms", "1h30m", "60s"):
        assert re.match(DURATION_PATTERN, good), good
    for bad in ("1d", "10", "5 m", "m", "-1m", "1w", ""):
        assert not re.match(DURATION_PATTERN, bad), bad
    assert not re.match(DURATION_NO_HOURS_PATTERN, "1h")


# --- every kind's schema ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_schemas_are_structural(kind):
    assert kind.spec_schema.get("type") == "object"
    assert structural_problems(kind.spec_schema, "spec") == []
    if kind.status_schema:
        assert kind.status_schema.get("type") == "object"
        assert structural_problems(kind.status_schema, "status") == []


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_spec_field_is_described(kind):
    missing = []

    def walk(schema, path):
        for name, sub in schema.get("properties", {}).items():
            if not sub.get("description"):
                missing.append(f"{path}.{name}")
            walk(sub, f"{path}.{name}")
        if "items" in schema:
            walk(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            walk(schema["additionalProperties"], f"{path}.*")

    walk(kind.spec_schema, "spec")
    assert missing == []


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_intervals_and_timeouts_are_durations(kind):
    """Every interval/timeout-like field carries Flux's duration pattern."""
    found = []

    def walk(schema, path):
        for name, sub in schema.get("properties", {}).items():
            if name in ("interval", "timeout", "retryInterval") and sub.get("type") == "string":
                found.append(f"{path}.{name}")
                assert sub.get("pattern") in (DURATION_PATTERN, DURATION_NO_HOURS_PATTERN), f"{path}.{name}"
            walk(sub, f"{path}.{name}")
        if "items" in schema:
            walk(schema["items"], f"{path}[]")

    walk(kind.spec_schema, "spec")
    if kind.kind not in ("ExternalArtifact", "ArtifactGenerator", "Alert"):
        assert found, "expected at least spec.interval"


@pytest.mark.parametrize("kind", [k for k in KINDS if k.status_schema], ids=lambda k: k.kind)
def test_status_has_conditions(kind):
    props = kind.status_schema["properties"]
    assert props["conditions"]["items"]["required"] == ["lastTransitionTime", "message", "reason", "status", "type"]
    if kind.reconcilable:
        assert "lastHandledReconcileAt" in props
    if kind.kind not in ("ExternalArtifact", "ArtifactGenerator"):
        assert props["observedGeneration"] == {"description": props["observedGeneration"]["description"],
                                               "type": "integer", "format": "int64"}
        assert kind.status_schema["default"] == {"observedGeneration": -1}


def test_shared_shapes():
    art = meta.artifact().schema
    assert art["required"] == ["digest", "lastUpdateTime", "path", "revision", "url"]
    assert re.match(meta.DIGEST_PATTERN, "sha256:" + "a" * 64)
    ref = meta.cross_namespace_source_ref(("GitRepository",)).schema
    assert ref["properties"]["kind"]["enum"] == ["GitRepository"] and ref["required"] == ["kind", "name"]
    kc = meta.kubeconfig_ref().schema
    assert len(kc["x-kubernetes-validations"]) == 2


def test_constants():
    assert meta.RECONCILE_REQUEST_ANNOTATION == "reconcile.fluxcd.io/requestedAt"
    assert meta.FINALIZER == "finalizers.fluxcd.io"
    assert (meta.READY, meta.RECONCILING, meta.STALLED) == ("Ready", "Reconciling", "Stalled")


@pytest.mark.parametrize("kind,index,example", all_examples(),
                         ids=[f"{k.kind}-{i}" for k, i, _ in all_examples()])
def test_examples_validate_locally(kind, index, example):
    """Flux's documented examples use only fields we define, with valid values."""
    assert example["apiVersion"] == kind.api_version and example["kind"] == kind.kind
    assert validate(kind.spec_schema, example.get("spec", {}), "spec") == []
    if "status" in example:
        assert validate(kind.status_schema, example["status"], "status") == []


def test_validator_reports_field_paths():
    from controllers.api.kinds import kind_by_name

    git = kind_by_name("source git")
    errors = validate(git.spec_schema, {"interval": "1 day", "provider": "gitlab", "bogus": 1}, "spec")
    assert any(e.startswith("spec.url") for e in errors)
    assert any(e.startswith("spec.interval") for e in errors)
    assert any(e.startswith("spec.provider") for e in errors)
    assert any(e.startswith("spec.bogus") for e in errors)
