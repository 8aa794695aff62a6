"""Which watch updates deserve a reconciliation: ``predicate(old, new) -> bool`` for MODIFIED events.

Flux reconciles its objects on a generation change (a spec edit) or a new
``reconcile.fluxcd.io/requestedAt`` value, never on status-only updates (which its own writes cause).
"""
from __future__ import annotations

from typing import Callable

from controllers.api.meta import RECONCILE_REQUEST_ANNOTATION
from controllers.api.objects import dig

Predicate = Callable[[dict, dict], bool]


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def generation_changed(old: dict, new: dict) -> bool:
    return _meta(old).get("generation") != _meta(new).get("generation")


def reconcile_requested(old: dict, new: dict) -> bool:
    """The requestedAt annotation is set on ``new`` with a value different from ``old``'s."""
    value = (_meta(new).get("annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)
    return value is not None and value != (_meta(old).get("annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)


def deletion_requested(old: dict, new: dict) -> bool:
    return bool(_meta(new).get("deletionTimestamp")) and not _meta(old).get("deletionTimestamp")


def labels_changed(old: dict, new: dict) -> bool:
    return (_meta(old).get("labels") or {}) != (_meta(new).get("labels") or {})


def annotations_changed(old: dict, new: dict) -> bool:
    return (_meta(old).get("annotations") or {}) != (_meta(new).get("annotations") or {})


def resource_version_changed(old: dict, new: dict) -> bool:
    return _meta(old).get("resourceVersion") != _meta(new).get("resourceVersion")


def artifact_revision_changed(old: dict, new: dict) -> bool:
    """A source got its first artifact or a new revision (Flux's SourceRevisionChangePredicate): what makes
    the objects built from a source (HelmCharts, ArtifactGenerators) reconcile."""
    revision = dig(new, "status.artifact.revision")
    return bool(revision) and dig(old, "status.artifact.revision") != revision


def any_of(*predicates: Predicate) -> Predicate:
    def combined(old: dict, new: dict) -> bool:
        return any(p(old, new) for p in predicates)
    return combined


#: Flux's predicate for its own kinds.
default = any_of(generation_changed, reconcile_requested, deletion_requested)
