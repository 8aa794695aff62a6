"""What applying a Kustomization would change, found with server-side dry runs (the data of ``fluxpy diff ks``).

:func:`diff_kustomization` dry-runs every built object as the kustomize-controller would apply it (field
manager, owner labels, Flux's annotations, ``spec.force``) and compares the result with the
live object the way Flux decides drift; with ``spec.prune`` it adds what pruning would delete (exactly: objects
handed to another Kustomization or marked ``prune: disabled`` are not listed). Secret values never appear:
``data`` is masked (``***``, or ``*** (before)``/``*** (after)`` for a changed key).

:func:`render_diff` prints it as flux does (``► Deployment/apps/web drifted``), with a unified diff of the
live and merged YAML, leaving out what always differs or is not applied (status, managedFields,
resourceVersion, generation, uid, creationTimestamp).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from typing import Iterable, Mapping

import yaml

from controllers.api.objects import dig
from controllers.lib.kustomize.inventory import PRUNE_EXCLUSIONS, inventory_from_changes, stale_objects
from controllers.runtime.apply import (
    CONFIGURED, CREATED, DELETED, SKIPPED, ChangeSet, DryRunError, ObjectRef, ResourceManager,
    kustomization_apply_options,
)
from controllers.runtime.kube import KubeError

DRIFTED = "drifted"  # how flux prints a configured object in a diff
_NOISE = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")


@dataclasses.dataclass
class ObjectDiff:
    """One object: ``created``, ``drifted``, ``unchanged``, ``skipped`` or ``deleted``; for a drifted object
    the live and the merged (dry-run) object, masked and without managed fields."""

    ref: ObjectRef
    action: str
    live: dict | None = None
    merged: dict | None = None

    @property
    def changed(self) -> bool:
        return self.action in (CREATED, DRIFTED, DELETED)

    def unified(self) -> str:
        """The unified diff of the live and merged YAML (empty unless drifted)."""
        if self.action != DRIFTED:
            return ""
        before, after = (_yaml(_quiet(o)).splitlines(keepends=True) for o in (self.live, self.merged))
        return "".join(difflib.unified_diff(before, after, f"{self.ref.subject} (live)",
                                            f"{self.ref.subject} (merged)"))


@dataclasses.dataclass
class KustomizationDiff:
    """Every object's diff in apply order, stale objects last, and the dry-run errors (one per object)."""

    objects: list[ObjectDiff] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(o.changed for o in self.objects)

    @property
    def exit_code(self) -> int:
        """flux's: 0 nothing to change, 1 changes, 2 errors."""
        return 2 if self.errors else 1 if self.changed else 0


def diff_kustomization(manager: ResourceManager, objects: Iterable[Mapping], kustomization: Mapping
                       ) -> KustomizationDiff:
    """Diff built ``objects`` (the build's output, ``commonMetadata`` included) against the cluster as
    ``kustomization`` would apply them: with its owner labels, Flux's annotations and ``spec.force``.

    ``manager`` must use the controller's field manager (and, for a tenant, the impersonated client).
    """
    name, namespace = dig(kustomization, "metadata.name"), dig(kustomization, "metadata.namespace")
    objects = [copy.deepcopy(dict(o)) for o in objects]
    manager.set_owner_labels(objects, name, namespace)
    options = kustomization_apply_options(force=bool(dig(kustomization, "spec.force")),
                                          field_manager=manager.field_manager)
    result, entries = KustomizationDiff(), ChangeSet()
    for obj in objects:
        try:
            entry, live, merged = manager.diff(obj, options)
        except DryRunError as exc:
            result.errors.append(exc.error)
            continue
        except KubeError as exc:
            result.errors.append(exc.message)
            continue
        entries.append(entry)
        action = DRIFTED if entry.action == CONFIGURED else entry.action
        result.objects.append(ObjectDiff(entry.ref, action, live, merged))
    result.objects.sort(key=lambda o: o.ref.sort_key())
    if dig(kustomization, "spec.prune") and not result.errors:
        skipped = [e.ref for e in entries if e.action == SKIPPED]
        owner = manager.owner(name, namespace)
        for ref in stale_objects(dig(kustomization, "status.inventory"), inventory_from_changes(entries), skipped):
            try:
                would = manager.delete(ref, inclusions=owner.labels, exclusions=PRUNE_EXCLUSIONS, hold=True)
            except KubeError as exc:
                result.errors.append(f"{ref.subject} query failed: {exc.message}")
                continue
            if would is None:  # held: it exists, is ours, and prune would delete it
                result.objects.append(ObjectDiff(ref, DELETED))
    return result


_COLORS = {CREATED: "\x1b[32m", SKIPPED: "\x1b[33m", DELETED: "\x1b[31m", "+": "\x1b[32m", "-": "\x1b[31m"}
_RESET = "\x1b[0m"


def render_diff(diff: KustomizationDiff, *, color: bool = False) -> str:
    """flux's output: ``► Kind/namespace/name created|drifted|skipped|deleted``, a unified diff under each
    drifted object; unchanged objects are not printed."""
    paint = (lambda text, key: f"{_COLORS[key]}{text}{_RESET}" if key in _COLORS else text) if color \
        else (lambda text, key: text)
    lines = []
    for obj in diff.objects:
        if obj.action not in (CREATED, DRIFTED, SKIPPED, DELETED):
            continue
        lines.append(paint(f"► {obj.ref.subject} {obj.action}", obj.action))
        for line in obj.unified().splitlines():
            lines.append(paint(line, line[:1]) if line[:1] in "+-" and not line.startswith(("+++", "---")) else line)
    return "\n".join(lines) + ("\n" if lines else "")


def _quiet(obj: Mapping | None) -> dict:
    """The object without status and the metadata that always differs or is not applied."""
    obj = dict(obj or {})
    obj.pop("status", None)
    obj["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _NOISE}
    return obj


def _yaml(obj: Mapping) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)
