"""A Kustomization's inventory (``status.inventory.entries``), stale objects, pruning and hand-over.

Entries are Flux's: ``{"id": "<namespace>_<name>_<group>_<Kind>", "v": "<version>"}``, computed from the apply's
change set (skipped objects are not in it). Objects in the old inventory and not in the new one are stale;
:func:`prune` deletes them when ``spec.prune`` is true, except objects marked
``kustomize.toolkit.fluxcd.io/prune: disabled`` or ``reconcile: disabled``, and objects whose owner labels name
another Kustomization (Flux skips those too).

Hand-over (beyond Flux). An object that moves to another Kustomization (a renamed Kustomization, a manifest
moved to another path) keeps its UID, whichever of the two reconciles first:

- new owner first: its server-side apply rewrites the owner labels (same field manager), so the old owner's
  prune sees labels naming someone else and skips the object;
- old owner first: the object still carries the old owner's labels. Before deleting it, the old owner looks for
  Kustomizations that have not yet reconciled what they were asked to (a new one, a changed spec, a source
  revision not yet attempted: :func:`pending_claimants`). While there are any, the object's deletion is
  deferred (:attr:`PruneResult.deferred`): the reconciler keeps it in the inventory, stays Ready, and retries
  shortly. Once the claimants have reconciled, a claimed object carries their labels and is skipped; an
  unclaimed one is deleted. :class:`HandoverGrace` bounds the wait, so a claimant stuck forever cannot keep
  garbage alive.
- every delete is conditional on the uid and resourceVersion that were examined, so an object relabelled
  between the check and the delete is re-examined, never deleted.

Deleting a Kustomization (its finalizer) runs the same prune over its whole inventory when
:func:`finalizer_should_delete` says its ``deletionPolicy`` wants it.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Iterable, Mapping

from controllers.api import meta
from controllers.api.objects import dig, find_condition, ref as ref_of
from controllers.runtime.apply import (
    DELETED, DISABLED, PRUNE_ANNOTATION, RECONCILE_ANNOTATION, SKIPPED, UNKNOWN, ApplyError, ChangeSet,
    ChangeSetEntry, ObjectRef, Owner, ResourceManager,
)
from controllers.runtime.kube import KubeClient, KubeError, NotFound

#: objects carrying any of these are never pruned
PRUNE_EXCLUSIONS = {PRUNE_ANNOTATION: DISABLED, RECONCILE_ANNOTATION: DISABLED}

MIRROR_PRUNE, DELETE, WAIT_FOR_TERMINATION, ORPHAN = "MirrorPrune", "Delete", "WaitForTermination", "Orphan"


class PruneError(ApplyError):
    """Deleting stale objects failed (Flux's PruneFailed)."""

    default_reason = meta.PRUNE_FAILED_REASON


# --- the inventory --------------------------------------------------------------------------------------


def entry_of(ref: ObjectRef) -> dict:
    return {"id": ref.id, "v": ref.version}


def inventory_from_changes(changes: Iterable[ChangeSetEntry], extra: Iterable[ObjectRef] = ()) -> dict:
    """``status.inventory`` for an apply's change set (skipped objects left out), plus ``extra`` refs (objects
    whose pruning was deferred), in the change set's order."""
    refs = [e.ref for e in changes if e.action != SKIPPED] + list(extra)
    return {"entries": [entry_of(r) for r in dict.fromkeys(refs)]}


def inventory_refs(inventory: Mapping | None) -> list[ObjectRef]:
    """The objects of an inventory, in apply order; raise ValueError on an id that does not parse."""
    refs = [ObjectRef.from_id(e["id"], e.get("v", "")) for e in (inventory or {}).get("entries") or []]
    return sorted(refs, key=ObjectRef.sort_key)


def stale_objects(old: Mapping | None, new: Mapping | None, skipped: Iterable[ObjectRef] = ()) -> list[ObjectRef]:
    """Objects of ``old`` that are not in ``new`` nor ``skipped`` (with the version recorded in ``old``)."""
    keep = set(inventory_refs(new)) | set(skipped)
    return [r for r in inventory_refs(old) if r not in keep]


# --- hand-over ------------------------------------------------------------------------------------------


def is_settled(kustomization: Mapping, source_revision: str | None) -> bool:
    """Whether a Kustomization has reconciled what it was asked to: its current generation (the run that
    ended last was for it, and not stopped for want of a dependency) and, when known, its source's current
    revision. One running again on the revision and generation it already attempted (Ready=Unknown while it
    runs) is settled: it builds the objects it built before, so it claims nothing new. (Two Kustomizations
    that defer their stale deletions to each other would otherwise wait on each other's re-runs for good.)"""
    ready = find_condition(kustomization, meta.READY)
    if not ready or ready.get("reason") == meta.DEPENDENCY_NOT_READY_REASON:
        return False  # never reconciled, or it has not applied anything yet
    generation = dig(kustomization, "metadata.generation")
    attempted = bool(source_revision) and dig(kustomization, "status.lastAttemptedRevision") == source_revision
    if ready.get("status") not in ("True", "False"):
        return attempted and dig(kustomization, "status.observedGeneration") == generation
    if ready.get("observedGeneration") != generation:
        return False
    return not source_revision or attempted


def pending_claimants(kustomizations: Iterable[Mapping], owner: Owner,
                      source_revision: Callable[[Mapping], str | None] = lambda ks: None) -> list[str]:
    """``namespace/name`` of the other Kustomizations that may still take over stale objects of ``owner``:
    not suspended, not being deleted, and not settled (:func:`is_settled`)."""
    pending = []
    for ks in kustomizations:
        meta_ = ks.get("metadata") or {}
        if (meta_.get("namespace"), meta_.get("name")) == (owner.namespace, owner.name):
            continue
        if meta_.get("deletionTimestamp") or dig(ks, "spec.suspend"):
            continue
        if not is_settled(ks, source_revision(ks)):
            pending.append(ref_of(ks))
    return sorted(pending)


def find_pending_claimants(kube: KubeClient, owner: Owner) -> list[str]:
    """:func:`pending_claimants` over every Kustomization the client can list, reading each distinct source's
    artifact revision once."""
    from controllers.api.kinds import kind_by_name, kind_for

    ks_kind = kind_by_name("kustomization")
    default_source = f"{meta.SOURCE_GROUP}/v1"
    try:
        kustomizations = kube.list(ks_kind, None).get("items") or []
    except NotFound:
        return []
    revisions: dict[tuple, str | None] = {}

    def source_revision(ks: Mapping) -> str | None:
        src = dig(ks, "spec.sourceRef") or {}
        api_version = src.get("apiVersion") or default_source
        key = (api_version, src.get("kind"), src.get("namespace") or dig(ks, "metadata.namespace"), src.get("name"))
        if key not in revisions:
            kind = kind_for(api_version, src.get("kind", "")) or kind_for(default_source, src.get("kind", ""))
            try:
                revisions[key] = dig(kube.get(kind, key[3], key[2]), "status.artifact.revision") if kind else None
            except KubeError:
                revisions[key] = None
        return revisions[key]

    return pending_claimants(kustomizations, owner, source_revision)


class HandoverGrace:
    """How long a stale object's deletion may be deferred for pending claimants (in memory, per reconciler).

    ``expired(owner, ref)`` is False from the first deferral until ``seconds`` later; forgotten once pruned.
    """

    def __init__(self, seconds: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._since: dict[tuple[Owner, ObjectRef], float] = {}
        self._lock = threading.Lock()

    def expired(self, owner: Owner, ref: ObjectRef) -> bool:
        with self._lock:
            since = self._since.setdefault((owner, ref), self._clock())
        return self._clock() - since >= self.seconds

    def forget(self, owner: Owner, refs: Iterable[ObjectRef]) -> None:
        with self._lock:
            for ref in refs:
                self._since.pop((owner, ref), None)


# --- pruning --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PruneResult:
    """What a prune did: ``changes`` (deleted and skipped, Flux's change set) and the objects whose deletion
    waits for pending claimants (keep them in the inventory and reconcile again soon)."""

    changes: ChangeSet = dataclasses.field(default_factory=ChangeSet)
    deferred: list[ObjectRef] = dataclasses.field(default_factory=list)
    claimants: list[str] = dataclasses.field(default_factory=list)
    #: set when ``WaitForTermination`` timed out (Flux only logs it and lets the finalizer go)
    termination_error: str = ""

    @property
    def deferred_message(self) -> str:
        if not self.deferred:
            return ""
        return (f"deletion of {', '.join(r.subject for r in self.deferred)} deferred until "
                f"{', '.join('Kustomization/' + c for c in self.claimants)} reconciled (hand-over)")


def prune(manager: ResourceManager, stale: Iterable[ObjectRef], owner: Owner, *,
          claimants: Iterable[str] = (), grace: HandoverGrace | None = None,
          propagation: str = "Background") -> PruneResult:
    """Delete ``stale`` objects still labelled with ``owner``, in reverse apply order.

    Objects labelled with another owner, or marked prune/reconcile disabled, are skipped. While ``claimants``
    (from :func:`pending_claimants`) is not empty, objects that would be deleted are deferred instead, until
    ``grace`` (when given) expires for them. Raises :class:`PruneError` listing every failed deletion.
    """
    claimants = list(claimants)
    result = PruneResult(claimants=claimants)
    errors = []
    for ref in sorted(stale, key=ObjectRef.sort_key, reverse=True):
        hold = bool(claimants) and not (grace and grace.expired(owner, ref))
        try:
            entry = manager.delete(ref, inclusions=owner.labels, exclusions=PRUNE_EXCLUSIONS,
                                   propagation=propagation, hold=hold)
        except KubeError as exc:
            result.changes.append(ChangeSetEntry(ref, UNKNOWN))
            errors.append(f"{ref.subject} delete failed: {exc.message}")
            continue
        if entry is None:
            result.deferred.append(ref)
        else:
            result.changes.append(entry)
    if grace:
        grace.forget(owner, [e.ref for e in result.changes])
    if errors:
        raise PruneError(f"delete failed, errors: {';'.join(errors)};", changes=result.changes)
    return result


# --- deletion of the Kustomization ----------------------------------------------------------------------


def finalizer_should_delete(kustomization: Mapping) -> bool:
    """Whether deleting the Kustomization deletes what it applied (Flux 2.7): never when suspended or without
    an inventory; ``MirrorPrune`` (the default) follows ``spec.prune``; ``Delete`` and ``WaitForTermination``
    always; ``Orphan`` never."""
    if dig(kustomization, "spec.suspend") or not dig(kustomization, "status.inventory.entries"):
        return False
    policy = dig(kustomization, "spec.deletionPolicy") or MIRROR_PRUNE
    if policy == MIRROR_PRUNE:
        return bool(dig(kustomization, "spec.prune"))
    return policy in (DELETE, WAIT_FOR_TERMINATION)


def finalize(manager: ResourceManager, kustomization: Mapping, *, claimants: Iterable[str] = (),
             grace: HandoverGrace | None = None, timeout: float = 300.0) -> PruneResult:
    """Prune the inventory of a Kustomization being deleted, as its deletion policy says; with
    ``WaitForTermination`` also wait (up to ``timeout``) until the deleted objects are gone.

    A non-empty :attr:`PruneResult.deferred` means: keep the finalizer and try again soon (hand-over to a
    renamed Kustomization). A termination timeout is reported in ``termination_error``: Flux only logs it.
    """
    owner = manager.owner(dig(kustomization, "metadata.name"), dig(kustomization, "metadata.namespace"))
    if not finalizer_should_delete(kustomization):
        return PruneResult()
    refs = inventory_refs(dig(kustomization, "status.inventory"))
    result = prune(manager, refs, owner, claimants=claimants, grace=grace)
    if dig(kustomization, "spec.deletionPolicy") == WAIT_FOR_TERMINATION and not result.deferred:
        deleted = [e.ref for e in result.changes if e.action == DELETED]
        try:
            manager.wait_for_termination(deleted, timeout=timeout)
        except TimeoutError as exc:
            result.termination_error = str(exc)
    return result
