"""Staged server-side apply of a set of manifests, reporting what changed (used by install and bootstrap).

Stage 1 applies the objects others depend on (CustomResourceDefinitions, Namespaces) and waits until the CRDs
are Established and served; stage 2 applies the rest. Every object is first validated by a server-side dry
run, so an invalid object leaves the cluster untouched.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable

from controllers.api.builtin import CRD
from controllers.api.objects import find_condition
from controllers.runtime.kube import KubeClient, KubeError, NotFound

#: The field manager the flux CLI uses, so objects can move between flux and fluxpy.
CLI_FIELD_MANAGER = "flux"
FIRST_STAGE_KINDS = ("CustomResourceDefinition", "Namespace")


@dataclasses.dataclass(frozen=True)
class Change:
    """One applied object and what happened to it: created, configured or unchanged."""

    kind: str
    namespace: str
    name: str
    action: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name} {self.action}"


def object_id(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{where}{meta.get('name')}"


def apply_staged(kube: KubeClient, objects: Iterable[dict], *, field_manager: str = CLI_FIELD_MANAGER,
                 timeout: float = 120.0, on_change: Callable[[Change], None] | None = None) -> list[Change]:
    """Dry-run then apply ``objects`` in two stages; return the changes (each also passed to ``on_change``)."""
    objects = list(objects)
    first = [o for o in objects if o.get("kind") in FIRST_STAGE_KINDS]
    rest = [o for o in objects if o.get("kind") not in FIRST_STAGE_KINDS]
    changes = _apply(kube, first, field_manager, dry_run_first=True, on_change=on_change)
    crds = [o["metadata"]["name"] for o in first if o["kind"] == "CustomResourceDefinition"]
    if crds:
        wait_crds_established(kube, crds, timeout=timeout)
        kube.forget_discovery()
    return changes + _apply(kube, rest, field_manager, dry_run_first=True, on_change=on_change)


def _apply(kube: KubeClient, objects: list[dict], field_manager: str, *, dry_run_first: bool,
           on_change: Callable[[Change], None] | None) -> list[Change]:
    if dry_run_first:
        for obj in objects:
            try:
                kube.apply(obj, field_manager=field_manager, dry_run=True)
            except KubeError as exc:
                # name the object: the apiserver's message alone does not say which document failed
                raise type(exc)(exc.status, exc.reason, f"{object_id(obj)}: {exc.message}", exc.body) from None
    changes = []
    for obj in objects:
        rt = kube.resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        ns = meta.get("namespace") if rt.namespaced else None
        try:
            before = kube.get(rt, meta["name"], ns)["metadata"].get("resourceVersion")
        except NotFound:
            before = None
        after = kube.apply(obj, field_manager=field_manager)["metadata"].get("resourceVersion")
        action = "created" if before is None else ("unchanged" if before == after else "configured")
        change = Change(obj["kind"], ns or "", meta["name"], action)
        changes.append(change)
        if on_change:
            on_change(change)
    return changes


def wait_crds_established(kube: KubeClient, names: list[str], *, timeout: float) -> None:
    """Wait until every named CRD has Established=True."""
    deadline = time.monotonic() + timeout
    for name in names:
        kube.wait_for(CRD, name, None, lambda o: (find_condition(o, "Established") or {}).get("status") == "True",
                      timeout=max(1.0, deadline - time.monotonic()), what=f"CustomResourceDefinition {name} to be established")
