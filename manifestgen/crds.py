"""CustomResourceDefinitions rendered from the API models (controllers.api), the one source of truth.

Pure: kinds in, apiextensions.k8s.io/v1 manifests (plain dicts) out; every call returns fresh dicts.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from controllers.api import kinds as registry
from controllers.api.types import Kind, PrinterColumn

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


def open_api_schema(kind: Kind) -> dict[str, Any]:
    """The openAPIV3Schema of a kind: apiVersion, kind, metadata, spec and (when it has one) status."""
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string", "description": "Versioned schema of this representation."},
        "kind": {"type": "string", "description": "REST resource this object represents."},
        "metadata": {"type": "object"},
        "spec": copy.deepcopy(kind.spec_schema),
    }
    if kind.status_schema:
        properties["status"] = copy.deepcopy(kind.status_schema)
    description = kind.spec_schema.get("description") or f"{kind.kind} ({kind.api_version})."
    return {"description": description, "type": "object", "properties": properties}


def crd_manifest(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind: one served and stored version, status subresource when
    the kind has a status, printer columns, short names and categories."""
    version: dict[str, Any] = {"name": kind.version, "served": True, "storage": True}
    if kind.status_schema:
        version["subresources"] = {"status": {}}
    if kind.printer_columns:
        version["additionalPrinterColumns"] = [_column(c) for c in kind.printer_columns]
    version["schema"] = {"openAPIV3Schema": open_api_schema(kind)}
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
            "versions": [version],
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
