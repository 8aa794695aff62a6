"""A tiny DSL for *structural* OpenAPI v3 schemas, the dialect apiextensions.k8s.io/v1 accepts.

Every builder returns a :class:`Field`: the schema node (a plain dict) plus whether the parent object must
list it under ``required``. Objects take their properties as keyword arguments; a trailing underscore is
dropped from a property name so Python keywords and option names stay usable (``from_=``, ``type_=``)::

    spec = obj(
        "Desired state of a thing.",
        url=Str("Where to fetch from.", required=True, pattern="^https://.*$"),
        interval=Duration("How often to reconcile.", required=True),
        type_=Enum("a", "b", doc="Flavour of the thing.", default="a"),
        labels=Map(Str(), "Labels to add."),
        values=Preserve("Free-form values."),
        rules=[("has(self.url)", "url is required")],
    ).schema

Structural means every node has a ``type`` unless it is int-or-string or preserves unknown fields, and
objects use ``properties`` or ``additionalProperties`` (never both). Standard library only: the CLI
imports the API models on every start.
"""
from __future__ import annotations

from typing import Any, Iterable

#: Go ``time.Duration`` strings as Flux accepts them for intervals (e.g. "1m30s", "1.5h").
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
#: The same without hours: Flux bounds some timeouts this way (e.g. source fetch timeouts).
DURATION_NO_HOURS_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"

#: Marks "no default given" (None is a legitimate default).
UNSET: Any = object()

__all__ = [
    "UNSET",
    "DURATION_PATTERN", "DURATION_NO_HOURS_PATTERN", "Field", "Str", "Int", "Bool", "Time", "Duration",
    "Enum", "Arr", "Map", "Preserve", "IntOrStr", "obj",
]


class Field:
    """One schema node and whether its parent must require it."""

    __slots__ = ("schema", "required")

    def __init__(self, schema: dict[str, Any], required: bool = False) -> None:
        self.schema = schema
        self.required = required

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Field({self.schema!r}, required={self.required})"


def _node(type_: str | None, description: str, required: bool, default: Any, nullable: bool,
          rules: Iterable[tuple[str, str]] | None, extra: dict[str, Any]) -> Field:
    schema: dict[str, Any] = {}
    if description:
        schema["description"] = description
    if type_:
        schema["type"] = type_
    for key, value in extra.items():
        if value is not None:
            schema[key] = value
    if default is not UNSET:
        schema["default"] = default
    if nullable:
        schema["nullable"] = True
    if rules:
        schema["x-kubernetes-validations"] = [{"rule": rule, "message": message} for rule, message in rules]
    return Field(schema, required)


def Str(description: str = "", /, *, required: bool = False, default: Any = UNSET,
        enum: Iterable[str] | None = None, pattern: str | None = None, min_length: int | None = None,
        max_length: int | None = None, format: str | None = None, nullable: bool = False,
        rules: Iterable[tuple[str, str]] | None = None) -> Field:
    """A string, optionally constrained by enum, pattern, length or format."""
    return _node("string", description, required, default, nullable, rules,
                 {"format": format, "enum": list(enum) if enum is not None else None, "pattern": pattern,
                  "minLength": min_length, "maxLength": max_length})


def Int(description: str = "", /, *, required: bool = False, default: Any = UNSET, format: str | None = None,
        minimum: int | None = None, maximum: int | None = None, nullable: bool = False) -> Field:
    """An integer; ``format`` is "int32"/"int64" where the Go type fixes it."""
    return _node("integer", description, required, default, nullable, None,
                 {"format": format, "minimum": minimum, "maximum": maximum})


def Bool(description: str = "", /, *, required: bool = False, default: Any = UNSET) -> Field:
    """A boolean."""
    return _node("boolean", description, required, default, False, None, {})


def Time(description: str = "", /, *, required: bool = False) -> Field:
    """An RFC 3339 timestamp (metav1.Time)."""
    return Str(description, required=required, format="date-time")


def Duration(description: str = "", /, *, required: bool = False, default: Any = UNSET,
             hours: bool = True) -> Field:
    """A Go duration string such as "10m" or "1h30m"; ``hours=False`` refuses the "h" unit."""
    pattern = DURATION_PATTERN if hours else DURATION_NO_HOURS_PATTERN
    return Str(description, required=required, default=default, pattern=pattern)


def Enum(*values: str, doc: str = "", required: bool = False, default: Any = UNSET) -> Field:
    """A string restricted to ``values``."""
    return Str(doc, required=required, default=default, enum=values)


def Arr(items: Field, description: str = "", /, *, required: bool = False, default: Any = UNSET,
        min_items: int | None = None, max_items: int | None = None, list_type: str | None = None) -> Field:
    """An array of ``items``; ``list_type`` sets x-kubernetes-list-type ("atomic", "set", "map")."""
    return _node("array", description, required, default, False, None,
                 {"items": items.schema, "minItems": min_items, "maxItems": max_items,
                  "x-kubernetes-list-type": list_type})


def Map(values: Field, description: str = "", /, *, required: bool = False, default: Any = UNSET) -> Field:
    """An object with arbitrary keys whose values all follow ``values`` (additionalProperties)."""
    return _node("object", description, required, default, False, None, {"additionalProperties": values.schema})


def Preserve(description: str = "", /, *, required: bool = False, type: str | None = None) -> Field:
    """Free-form JSON kept as is (x-kubernetes-preserve-unknown-fields); untyped unless ``type`` is given."""
    return _node(type, description, required, UNSET, False, None, {"x-kubernetes-preserve-unknown-fields": True})


def IntOrStr(description: str = "", /, *, required: bool = False, pattern: str | None = None) -> Field:
    """An integer or a string (intstr.IntOrString)."""
    return _node(None, description, required, UNSET, False, None,
                 {"pattern": pattern, "x-kubernetes-int-or-string": True})


def obj(description: str = "", /, *, required: bool = False, default: Any = UNSET,
        rules: Iterable[tuple[str, str]] | None = None, nullable: bool = False, map_type: str | None = None,
        **properties: Field) -> Field:
    """An object with the given properties; ``rules`` are CEL (rule, message) pairs."""
    props: dict[str, Any] = {}
    required_names: list[str] = []
    for name, field in properties.items():
        if name.endswith("_"):
            name = name[:-1]
        props[name] = field.schema
        if field.required:
            required_names.append(name)
    extra: dict[str, Any] = {"x-kubernetes-map-type": map_type}
    if props:
        extra["properties"] = props
    if required_names:
        extra["required"] = required_names
    return _node("object", description, required, default, nullable, rules, extra)


def derive(schema: dict[str, Any], *, add: dict[str, Field] | None = None,
           remove: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of an object ``schema`` with fields added and removed: how an older API version's schema
    is stated as its difference from the storage version's.

    Paths are dotted, ``[]`` steps into array items: ``"dependsOn[].readyExpr"``,
    ``"postRenderers[].kustomize.patchesJson6902"``. Removing a field also drops it from ``required`` and
    drops the CEL rules of its object that mention it (they would not compile without it). A path that
    does not exist raises KeyError, so a derived schema cannot silently drift from its base.
    """
    import copy

    derived = copy.deepcopy(schema)
    for path in remove:
        parent, name = _parent_of(derived, path)
        if name not in parent.get("properties", {}):
            raise KeyError(f"{path}: no such field to remove")
        del parent["properties"][name]
        if name in parent.get("required", []):
            parent["required"] = [n for n in parent["required"] if n != name]
            if not parent["required"]:
                del parent["required"]
        rules = [r for r in parent.get("x-kubernetes-validations", []) if f"self.{name}" not in r["rule"]]
        if rules:
            parent["x-kubernetes-validations"] = rules
        else:
            parent.pop("x-kubernetes-validations", None)
    for path, field in (add or {}).items():
        parent, name = _parent_of(derived, path)
        parent.setdefault("properties", {})[name] = copy.deepcopy(field.schema)
        if field.required:
            parent.setdefault("required", []).append(name)
    return derived


def _parent_of(schema: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The object schema holding the last step of ``path``, and that step's name."""
    *steps, name = path.split(".")
    node = schema
    for step in steps:
        into_items = step.endswith("[]")
        node = node["properties"][step[:-2] if into_items else step]
        if into_items:
            node = node["items"]
    if name.endswith("[]"):
        raise KeyError(f"{path}: the last step must name a field")
    return node, name
