"""Helpers for the API model tests: the example objects, a structural-schema checker and a small validator.

The validator covers what the apiserver checks from a structural schema without CEL (types, required,
enums, patterns, lengths, item counts, unknown fields); the integration tests check the real thing.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from controllers.api.kinds import KINDS
from controllers.api.types import Kind

EXAMPLES_DIR = Path(__file__).parent / "examples"

_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_KNOWN_KEYS = {
    "description", "type", "format", "enum", "default", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "minItems", "maxItems", "nullable", "properties", "required", "additionalProperties", "items",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-validations",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "anyOf",
}


def example_file(kind: Kind) -> Path:
    return EXAMPLES_DIR / f"{kind.kind.lower()}.yaml"


def load_examples(kind: Kind) -> list[dict[str, Any]]:
    """The example objects of a kind, as written in Flux's spec documentation."""
    return [doc for doc in yaml.safe_load_all(example_file(kind).read_text()) if doc]


def all_examples() -> list[tuple[Kind, int, dict[str, Any]]]:
    return [(kind, i, doc) for kind in KINDS for i, doc in enumerate(load_examples(kind))]


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """What keeps ``schema`` from being a structural schema apiextensions/v1 accepts (empty when fine)."""
    problems: list[str] = []
    where = path or "<root>"
    unknown = set(schema) - _KNOWN_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    type_ = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if type_:
            problems.append(f"{where}: int-or-string must not set type")
    elif schema.get("x-kubernetes-preserve-unknown-fields"):
        if type_ and type_ not in _TYPES:
            problems.append(f"{where}: bad type {type_!r}")
    elif type_ not in _TYPES:
        problems.append(f"{where}: missing or bad type {type_!r}")
    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{where}: anyOf only allowed for int-or-string here")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{where}: properties and additionalProperties are exclusive")
    if ("properties" in schema or "additionalProperties" in schema or "required" in schema) and type_ != "object":
        problems.append(f"{where}: properties on a non-object")
    for name in schema.get("required", ()):
        if name not in schema.get("properties", {}):
            problems.append(f"{where}: required {name!r} is not a property")
    if len(set(schema.get("required", ()))) != len(schema.get("required", ())):
        problems.append(f"{where}: duplicate required names")
    for name, sub in schema.get("properties", {}).items():
        if not isinstance(sub, dict):
            problems.append(f"{where}.{name}: not a schema")
            continue
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.<value>")
    if type_ == "array":
        if not isinstance(schema.get("items"), dict):
            problems.append(f"{where}: array without items")
        else:
            problems += structural_problems(schema["items"], f"{path}[]")
    elif "items" in schema:
        problems.append(f"{where}: items on a non-array")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as exc:
            problems.append(f"{where}: pattern does not compile: {exc}")
    for rule in schema.get("x-kubernetes-validations", ()):
        if set(rule) - {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"} \
                or not rule.get("rule"):
            problems.append(f"{where}: malformed validation rule {rule}")
    if "default" in schema:
        problems += [f"{where}: default invalid: {p}" for p in validate(schema, schema["default"], path)]
    return problems


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Errors of ``value`` against a structural schema (no CEL), with the field path of each."""
    where = path or "<root>"
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null"]
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: must be an integer or a string"]
    type_ = schema.get("type")
    if type_ is None and schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    if not checks[type_](value):
        return [f"{where}: must be of type {type_}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: unsupported value {value!r}")
    if type_ == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: bad length")
    if type_ == "integer":
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            errors.append(f"{where}: out of range")
    if type_ == "array":
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where}: bad number of items")
        for i, item in enumerate(value):
            errors += validate(schema["items"], item, f"{path}[{i}]")
    if type_ == "object":
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in props:
                errors += validate(props[name], item, f"{path}.{name}")
            elif isinstance(extra, dict):
                errors += validate(extra, item, f"{path}.{name}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{name}: unknown field")
    return errors
