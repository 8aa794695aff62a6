"""The controller components fluxpy runs and the reconcilers each one hosts.

A reconciler is named by an import path ``"package.module:factory"``; the factory is called with the parsed
command line (``argparse.Namespace``, including the component's own flags) and returns a
:class:`controllers.runtime.controller.Reconciler`. Imports are lazy so that a process loads only its own
controllers. Component-specific flags are added by ``add_arguments`` (``"package.module:function"``, called
with the ``argparse.ArgumentParser``).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
from typing import Any, Callable

from controllers.api.kinds import ALL_COMPONENTS


@dataclasses.dataclass(frozen=True)
class Component:
    """One controller process (a Deployment in a cluster)."""

    name: str
    reconcilers: tuple[str, ...] = ()
    """Import paths of reconciler factories."""
    concurrent: int = 4
    """Flux's default of ``--concurrent`` for this component."""
    add_arguments: str = ""
    """Import path of a function adding the component's own flags to the parser."""
    receives_events: bool = False
    """It serves the events endpoint: ``--events-addr`` is where it listens (default ``:9090``), not where
    it posts (Flux's notification-controller)."""


#: What differs from a plain Component, per component; reconcilers are added here as controllers land.
_COMPONENT_SETTINGS: dict[str, dict[str, Any]] = {
    "source-controller": {"concurrent": 2, "add_arguments": "controllers.source.common:add_arguments",
                          "reconcilers": ("controllers.source.git:new_reconciler",
                                          "controllers.source.oci:new_reconciler",
                                          "controllers.source.helmrepo:new_reconciler",
                                          "controllers.source.helmchart:new_reconciler",
                                          "controllers.source.bucket:new_reconciler")},
    "kustomize-controller": {"reconcilers": ("controllers.kustomize.reconciler:new_reconciler",),
                             "add_arguments": "controllers.kustomize.reconciler:add_arguments"},
    "helm-controller": {"reconcilers": ("controllers.helm.reconciler:new_reconciler",),
                        "add_arguments": "controllers.helm.reconciler:add_arguments"},
    "notification-controller": {"reconcilers": ("controllers.notification.reconciler:new_reconciler",),
                                "add_arguments": "controllers.notification.reconciler:add_arguments",
                                "receives_events": True},
    "image-reflector-controller": {"reconcilers": ("controllers.image.reflector:new_repository_reconciler",
                                                   "controllers.image.reflector:new_policy_reconciler"),
                                   "add_arguments": "controllers.image.reflector:add_arguments"},
    "image-automation-controller": {"reconcilers": ("controllers.image.automation:new_reconciler",),
                                    "add_arguments": "controllers.image.automation:add_arguments"},
    "source-watcher": {"concurrent": 10, "reconcilers": ("controllers.source.generator:new_reconciler",),
                       "add_arguments": "controllers.source.generator:add_arguments"},
}

#: Every component fluxpy can install (controllers.api.kinds names them: one list for install and runtime).
COMPONENTS: dict[str, Component] = {
    name: Component(name, **_COMPONENT_SETTINGS.get(name, {})) for name in ALL_COMPONENTS
}


def _load(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def add_component_arguments(component: Component, parser: argparse.ArgumentParser) -> None:
    if component.add_arguments:
        _load(component.add_arguments)(parser)


def load_reconcilers(component: Component, args: argparse.Namespace) -> list:
    """Instantiate the component's reconcilers."""
    return [_load(path)(args) for path in component.reconcilers]
