"""The registry of Flux kinds: lookup by CLI name, by apiVersion/kind, by CLI group and by component."""
from __future__ import annotations

from typing import Any

from controllers.api.helm import HELM_RELEASE
from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY, IMAGE_UPDATE_AUTOMATION
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.notification import ALERT, PROVIDER, RECEIVER
from controllers.api.source import (
    ARTIFACT_GENERATOR, BUCKET, EXTERNAL_ARTIFACT, GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY, OCI_REPOSITORY,
)
from controllers.api.objects import dig, find_condition
from controllers.api.types import Kind, truncate_hex

#: Every kind, in the order ``flux get all`` lists them (sources, images, then the rest).
KINDS: tuple[Kind, ...] = (
    OCI_REPOSITORY, BUCKET, GIT_REPOSITORY, HELM_REPOSITORY, HELM_CHART, EXTERNAL_ARTIFACT, ARTIFACT_GENERATOR,
    IMAGE_REPOSITORY, IMAGE_POLICY, IMAGE_UPDATE_AUTOMATION,
    HELM_RELEASE, KUSTOMIZATION, RECEIVER, PROVIDER, ALERT,
)

#: Components ``install`` deploys by default, and the optional extra ones (as ``flux install``).
COMPONENTS: tuple[str, ...] = ("source-controller", "kustomize-controller", "helm-controller",
                               "notification-controller")
COMPONENTS_EXTRA: tuple[str, ...] = ("image-reflector-controller", "image-automation-controller", "source-watcher")
ALL_COMPONENTS: tuple[str, ...] = COMPONENTS + COMPONENTS_EXTRA


class UnknownKind(ValueError):
    """A name that is no Flux kind. ``suggestions`` holds the closest accepted names; they (and the
    message) are computed only when asked for, so probing names with :func:`kind_by_name` stays cheap."""

    def __init__(self, name: str, suggestions: tuple[str, ...] | None = None) -> None:
        super().__init__(name)
        self.name = name
        self._suggestions = None if suggestions is None else tuple(suggestions)

    @property
    def suggestions(self) -> tuple[str, ...]:
        if self._suggestions is None:
            import difflib  # only on the error path: keeps the CLI's start-up import cheap

            found: list[str] = []
            for match in difflib.get_close_matches(_normalise(self.name), list(_BY_NAME), n=6, cutoff=0.6):
                display = _BY_NAME[match].display
                if display not in found:
                    found.append(display)
            self._suggestions = tuple(found[:3])
        return self._suggestions

    def __str__(self) -> str:
        hint = f" Did you mean {' or '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        accepted = ", ".join(kind.display for kind in KINDS)
        return (f"unknown kind {self.name!r}.{hint} Accepted: {accepted} "
                "(or a kind's plural, singular, short name or Kind).")


def _normalise(name: str) -> str:
    return " ".join(name.lower().split())


def _names_of(kind: Kind) -> set[str]:
    names = {kind.kind, kind.plural, kind.singular, kind.crd_name, f"{kind.singular}.{kind.group}",
             *kind.short_names, *kind.cli_names}
    return {_normalise(n) for n in names if n}


_BY_NAME: dict[str, Kind] = {name: kind for kind in KINDS for name in _names_of(kind)}
_BY_GROUP_KIND: dict[tuple[str, str], Kind] = {(kind.group, kind.kind): kind for kind in KINDS}


def kind_by_name(name: str) -> Kind:
    """Resolve a CLI name or alias ("source git", "ks", "alert-provider"), plural, singular, short name,
    Kind or CRD name (case-insensitive, whitespace-insensitive); raises :class:`UnknownKind`."""
    kind = _BY_NAME.get(_normalise(name))
    if kind is None:
        raise UnknownKind(name)
    return kind


def kinds_in_group(group: str) -> tuple[Kind, ...]:
    """The kinds of a CLI group ("sources", "images"), in :data:`KINDS` order."""
    return tuple(kind for kind in KINDS if kind.cli_group == group)


def kind_for(api_version: str, kind: str) -> Kind | None:
    """The Flux kind of an object's apiVersion/kind, or None when it is not one.

    Matches on API group and kind, so objects written in another served version (e.g.
    ``source.toolkit.fluxcd.io/v1beta2``) resolve to the same kind.
    """
    group = api_version.rpartition("/")[0]
    return _BY_GROUP_KIND.get((group, kind))


def kinds_of_component(name: str) -> tuple[Kind, ...]:
    """The kinds whose CRDs a component (e.g. "source-controller") ships and reconciles."""
    if name not in ALL_COMPONENTS:
        raise ValueError(f"unknown component {name!r}; known: {', '.join(ALL_COMPONENTS)}")
    return tuple(kind for kind in KINDS if kind.controller == name)


def revision_of(kind: Kind, obj: dict[str, Any]) -> str:
    """The revision ``reconcile`` and ``trace`` print for an object (the kind's :attr:`Kind.revision`)."""
    return kind.revision.value(obj) if kind.revision else ""


def ready_of(kind: Kind, obj: dict[str, Any]) -> tuple[str, str]:
    """READY and MESSAGE as flux's ``get`` prints them: the Ready condition; "True" and the kind's fixed
    message for kinds flux always shows ready; "False", "waiting to be reconciled" before any condition."""
    if kind.static_ready and (kind.static_ready_when is None
                              or dig(obj, kind.static_ready_when[0]) == kind.static_ready_when[1]):
        return "True", kind.static_ready
    ready = find_condition(obj, "Ready")
    if not ready:
        return "False", "waiting to be reconciled"
    message = ready.get("message", "")
    return ready.get("status", "Unknown"), truncate_hex(message) if kind.truncate_message else message
