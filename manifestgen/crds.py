"""CustomResourceDefinitions rendered from the API models (controllers.api), the one source of truth.

Pure: kinds in, apiextensions.k8s.io/v1 manifests (plain dicts) out; every call returns fresh dicts.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from controllers.api import kinds as registry
from controllers.api.types import Kind, OlderVersion, PrinterColumn

PART_OF_LABEL = "app.kubernetes.io/part-of"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF = "fluxpy"


def _column(column: PrinterColumn) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
    if column.priority:
        rendered["priority"] = column.priority
    if column.description:
        rendered["description"] = column.description
    return rendered


def _names(kind: Kind) -> dict[str, Any]:
    names: dict[str, Any] = {"kind": kind.kind, "listKind": f"{kind.kind}List", "plural": kind.plural,
                             "singular": kind.singular or kind.kind.lower()}
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    if kind.categories:
        names["categories"] = list(kind.categories)
    return names


def open_api_schema(kind: Kind, older: OlderVersion | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of a kind (or of one of its ``older`` versions): apiVersion, kind, metadata,
    spec and (when it has one) status."""
    spec_schema = older.spec_schema if older else kind.spec_schema
    status_schema = older.status_schema if older and older.status_schema is not None else kind.status_schema
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string", "description": "Versioned schema of this representation."},
        "kind": {"type": "string", "description": "REST resource this object represents."},
        "metadata": {"type": "object"},
        "spec": copy.deepcopy(spec_schema),
    }
    if status_schema:
        properties["status"] = copy.deepcopy(status_schema)
    description = spec_schema.get("description") or f"{kind.kind} ({kind.group}/{older.name if older else kind.version})."
    return {"description": description, "type": "object", "properties": properties}


def _version(kind: Kind, older: OlderVersion | None = None) -> dict[str, Any]:
    """One entry of ``spec.versions``: the storage version, or a deprecated one still served."""
    version: dict[str, Any] = {"name": older.name if older else kind.version, "served": True,
                               "storage": older is None}
    if older:
        version["deprecated"] = True
        version["deprecationWarning"] = kind.deprecation_warning(older)
    schema = open_api_schema(kind, older)
    if "status" in schema["properties"]:
        version["subresources"] = {"status": {}}
    columns = older.printer_columns if older and older.printer_columns is not None else kind.printer_columns
    if columns:
        version["additionalPrinterColumns"] = [_column(c) for c in columns]
    version["schema"] = {"openAPIV3Schema": schema}
    return version


def crd_manifest(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind: the storage version and every older version Flux still
    serves (deprecated, no conversion webhook), status subresource where the version has a status,
    printer columns, short names and categories."""
    labels = {PART_OF_LABEL: PART_OF}
    if kind.controller:
        labels[COMPONENT_LABEL] = kind.controller
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": labels},
        "spec": {
            "group": kind.group,
            "names": _names(kind),
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [_version(kind)] + [_version(kind, older) for older in kind.older_versions],
        },
    }


def crd_manifests(components: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The CRDs of the kinds the given components own (e.g. ["source-controller"]), component by
    component; ``None`` means every component. Unknown component names raise ValueError."""
    names = registry.ALL_COMPONENTS if components is None else tuple(components)
    seen: set[str] = set()
    manifests: list[dict[str, Any]] = []
    for component in names:
        for kind in registry.kinds_of_component(component):
            if kind.crd_name not in seen:
                seen.add(kind.crd_name)
                manifests.append(crd_manifest(kind))
    return manifests
