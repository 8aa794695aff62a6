"""Inventory, stale objects, prune (with Flux's exclusions and deletion policies) and the hand-over of an
object that moves to another Kustomization, in either order of reconciliation, keeping its UID."""
from __future__ import annotations

import pytest

from controllers.api.builtin import CONFIGMAP
from controllers.api.kinds import kind_by_name
from controllers.lib.kustomize.inventory import (
    HandoverGrace, PruneError, finalize, finalizer_should_delete, find_pending_claimants, inventory_from_changes,
    inventory_refs, is_settled, pending_claimants, prune, stale_objects,
)
from controllers.runtime.apply import (
    CREATED, DELETED, SKIPPED, ChangeSet, ChangeSetEntry, ObjectRef, Owner, ResourceManager,
    kustomization_apply_options,
)
from controllers.runtime.kube import NotFound

KS = kind_by_name("kustomization")


def ref(name: str, namespace: str = "apps", kind: str = "ConfigMap", group: str = "") -> ObjectRef:
    return ObjectRef(group, kind, namespace, name, "v1")


# --- pure ---------------------------------------------------------------------------------------------


def test_inventory_entries_and_stale_objects():
    changes = ChangeSet([ChangeSetEntry(ref("b"), CREATED), ChangeSetEntry(ref("skip"), SKIPPED),
                         ChangeSetEntry(ref("web", kind="Deployment", group="apps"), "unchanged")])
    inventory = inventory_from_changes(changes, extra=[ref("deferred")])
    assert inventory == {"entries": [{"id": "apps_b__ConfigMap", "v": "v1"},
                                     {"id": "apps_web_apps_Deployment", "v": "v1"},
                                     {"id": "apps_deferred__ConfigMap", "v": "v1"}]}
    assert [r.subject for r in inventory_refs(inventory)] == [
        "ConfigMap/apps/b", "ConfigMap/apps/deferred", "Deployment/apps/web"], "in apply order"
    old = {"entries": [{"id": "apps_b__ConfigMap", "v": "v1"}, {"id": "apps_gone__ConfigMap", "v": "v1"},
                       {"id": "apps_skip__ConfigMap", "v": "v1"}, {"id": "_old_rbac.authorization.k8s.io_ClusterRole",
                                                                 "v": "v1"}]}
    stale = stale_objects(old, inventory, skipped=[ref("skip")])
    assert [(r.subject, r.version) for r in stale] == [("ClusterRole/old", "v1"), ("ConfigMap/apps/gone", "v1")]
    assert stale_objects(None, inventory) == []


@pytest.mark.parametrize("spec, inventory, deletes", [
    ({"prune": True}, True, True),
    ({"prune": False}, True, False),
    ({"prune": True, "deletionPolicy": "Orphan"}, True, False),
    ({"prune": False, "deletionPolicy": "Delete"}, True, True),
    ({"prune": False, "deletionPolicy": "WaitForTermination"}, True, True),
    ({"prune": True, "suspend": True}, True, False),
    ({"prune": True}, False, False),
])
def test_deletion_policy(spec, inventory, deletes):
    entries = [{"id": "a_b__ConfigMap", "v": "v1"}] if inventory else []
    ks = {"spec": spec, "status": {"inventory": {"entries": entries}}}
    assert finalizer_should_delete(ks) is deletes


def kustomization(name: str, namespace: str, *, generation: int = 1, ready: str | None = None,
                  observed: int | None = None, attempted: str | None = None, reason: str = "Test",
                  finished: int | None = None, **spec) -> dict:
    obj = {"metadata": {"name": name, "namespace": namespace, "generation": generation}, "spec": spec, "status": {}}
    if ready:
        obj["status"]["conditions"] = [{"type": "Ready", "status": ready, "reason": reason,
                                        "observedGeneration": generation if observed is None else observed}]
    if attempted:
        obj["status"]["lastAttemptedRevision"] = attempted
    if finished is not None:
        obj["status"]["observedGeneration"] = finished
    return obj


def test_pending_claimants_are_the_kustomizations_not_yet_settled():
    owner = Owner("old", "apps")
    revision = "main@sha1:abc"
    listed = [
        kustomization("old", "apps"),  # the owner itself
        kustomization("new", "apps"),  # never reconciled
        kustomization("busy", "apps", ready="Unknown"),  # reconciling now
        # running again on the revision and generation it already attempted: it claims nothing new
        kustomization("rerun", "apps", ready="Unknown", attempted=revision, finished=1),
        kustomization("respec", "apps", generation=2, ready="Unknown", attempted=revision, finished=1),
        kustomization("changed", "apps", generation=2, ready="True", observed=1, attempted=revision),
        kustomization("behind", "apps", ready="True", attempted="main@sha1:old"),
        kustomization("done", "apps", ready="True", attempted=revision),
        kustomization("failed", "apps", ready="False", attempted=revision),  # attempted it: settled
        kustomization("waits", "apps", ready="False", reason="DependencyNotReady"),  # applied nothing yet
        kustomization("paused", "apps", suspend=True),
        {**kustomization("leaving", "apps"), "metadata": {"name": "leaving", "namespace": "apps",
                                                          "deletionTimestamp": "2024-01-01T00:00:00Z"}},
    ]
    assert pending_claimants(listed, owner, lambda ks: revision) == [
        "apps/behind", "apps/busy", "apps/changed", "apps/new", "apps/respec", "apps/waits"]
    assert is_settled(kustomization("x", "a", ready="True"), None)


def test_handover_grace_bounds_deferral():
    now = [0.0]
    grace = HandoverGrace(60, clock=lambda: now[0])
    owner, r = Owner("a", "b"), ref("x")
    assert not grace.expired(owner, r)
    now[0] = 59
    assert not grace.expired(owner, r)
    now[0] = 61
    assert grace.expired(owner, r)
    grace.forget(owner, [r])
    assert not grace.expired(owner, r)


# --- against the apiserver ------------------------------------------------------------------------------


def cm(name: str, namespace: str, **annotations) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations}, "data": {"k": name}}


@pytest.fixture
def manager(kube) -> ResourceManager:
    return ResourceManager(kube)


def apply_as(manager: ResourceManager, owner: Owner, objects: list[dict]) -> ChangeSet:
    objects = [dict(o, metadata=dict(o["metadata"])) for o in objects]
    manager.set_owner_labels(objects, owner.name, owner.namespace)
    return manager.apply_all_staged(objects, kustomization_apply_options())


def uid(kube, name: str, namespace: str) -> str:
    return kube.get(CONFIGMAP, name, namespace)["metadata"]["uid"]


def test_prune_deletes_stale_objects_but_not_disabled_ones(kube, manager, namespace):
    owner = manager.owner("apps", namespace)
    first = apply_as(manager, owner, [cm("keep", namespace), cm("gone", namespace),
                                      cm("pinned", namespace, **{"kustomize.toolkit.fluxcd.io/prune": "disabled"})])
    old = inventory_from_changes(first)
    second = apply_as(manager, owner, [cm("keep", namespace)])
    stale = stale_objects(old, inventory_from_changes(second))
    assert [r.name for r in stale] == ["gone", "pinned"]
    result = prune(manager, stale, owner)
    assert str(result.changes) == f"ConfigMap/{namespace}/pinned skipped\nConfigMap/{namespace}/gone deleted"
    assert not result.deferred
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "gone", namespace)
    assert kube.get(CONFIGMAP, "pinned", namespace) and kube.get(CONFIGMAP, "keep", namespace)
    assert str(prune(manager, [ref("gone", namespace)], owner).changes) == f"ConfigMap/{namespace}/gone deleted", \
        "an object already gone counts as deleted, as in Flux"


def test_handover_when_the_new_owner_reconciles_first(kube, manager, namespace):
    old, new = manager.owner("old", namespace), manager.owner("new", namespace)
    before = inventory_from_changes(apply_as(manager, old, [cm("moving", namespace), cm("staying", namespace)]))
    moving_uid = uid(kube, "moving", namespace)

    assert str(apply_as(manager, new, [cm("moving", namespace)])) == f"ConfigMap/{namespace}/moving configured"
    after = inventory_from_changes(apply_as(manager, old, [cm("staying", namespace)]))
    result = prune(manager, stale_objects(before, after), old)
    assert str(result.changes) == f"ConfigMap/{namespace}/moving skipped"
    live = kube.get(CONFIGMAP, "moving", namespace)
    assert live["metadata"]["uid"] == moving_uid and new.owns(live)


def test_handover_when_the_old_owner_reconciles_first(kube, manager, namespace, flux_crds):
    old, new = manager.owner("old", namespace), manager.owner("new", namespace)
    for name in ("old", "new"):
        kube.create(KS, {"apiVersion": KS.api_version, "kind": KS.kind,
                         "metadata": {"name": name, "namespace": namespace},
                         "spec": {"interval": "10m", "prune": True,
                                  "sourceRef": {"kind": "GitRepository", "name": "repo"}}})
    listed = lambda: kube.list(KS, namespace)["items"]  # noqa: E731 - this test's Kustomizations only

    before = inventory_from_changes(apply_as(manager, old, [cm("moving", namespace), cm("staying", namespace)]))
    moving_uid = uid(kube, "moving", namespace)
    mark_reconciled(kube, "old", namespace)

    # the old owner reconciles the commit that moved the object first: "new" has not reconciled yet
    changes = apply_as(manager, old, [cm("staying", namespace)])
    claimants = pending_claimants(listed(), old)
    assert claimants == [f"{namespace}/new"]
    assert f"{namespace}/new" in find_pending_claimants(kube, old)
    result = prune(manager, stale_objects(before, inventory_from_changes(changes)), old, claimants=claimants)
    assert result.deferred == [ref("moving", namespace)] and not result.changes
    assert result.deferred_message == (f"deletion of ConfigMap/{namespace}/moving deferred until "
                                       f"Kustomization/{namespace}/new reconciled (hand-over)")
    kept = inventory_from_changes(changes, extra=result.deferred)
    assert {e["id"] for e in kept["entries"]} == {f"{namespace}_staying__ConfigMap", f"{namespace}_moving__ConfigMap"}
    assert uid(kube, "moving", namespace) == moving_uid

    # then the new owner reconciles and takes the object over
    apply_as(manager, new, [cm("moving", namespace)])
    mark_reconciled(kube, "new", namespace)
    assert pending_claimants(listed(), old) == []
    again = prune(manager, stale_objects(kept, inventory_from_changes(changes)), old, claimants=[])
    assert str(again.changes) == f"ConfigMap/{namespace}/moving skipped" and not again.deferred
    live = kube.get(CONFIGMAP, "moving", namespace)
    assert live["metadata"]["uid"] == moving_uid and new.owns(live)


def test_an_unclaimed_object_is_pruned_once_the_grace_expires(kube, manager, namespace):
    owner = manager.owner("apps", namespace)
    before = inventory_from_changes(apply_as(manager, owner, [cm("orphan", namespace)]))
    grace = HandoverGrace(0)
    result = prune(manager, stale_objects(before, None), owner, claimants=["elsewhere/stuck"], grace=grace)
    assert str(result.changes) == f"ConfigMap/{namespace}/orphan deleted" and not result.deferred


def test_finalize_with_wait_for_termination(kube, manager, namespace):
    owner = manager.owner("apps", namespace)
    inventory = inventory_from_changes(apply_as(manager, owner, [cm("a", namespace), cm("b", namespace)]))
    ks = {"metadata": {"name": "apps", "namespace": namespace},
          "spec": {"prune": False, "deletionPolicy": "Orphan"}, "status": {"inventory": inventory}}
    assert not finalize(manager, ks).changes
    assert kube.get(CONFIGMAP, "a", namespace)
    ks["spec"]["deletionPolicy"] = "WaitForTermination"
    result = finalize(manager, ks, timeout=10)
    assert {e.action for e in result.changes} == {DELETED} and not result.termination_error
    for name in ("a", "b"):
        with pytest.raises(NotFound):
            kube.get(CONFIGMAP, name, namespace)


def test_prune_failures_are_reported_with_flux_reason(kube, manager, namespace, control_plane):
    from controllers.runtime.kube import KubeClient

    owner = manager.owner("apps", namespace)
    inventory = inventory_from_changes(apply_as(manager, owner, [cm("locked", namespace)]))
    reader = KubeClient.from_kubeconfig(control_plane.kubeconfig_for("pruner", groups=["viewers"]))
    rbac = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "read-cm", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "read-cm", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
               "subjects": [{"kind": "User", "name": "pruner", "apiGroup": "rbac.authorization.k8s.io"}]}
    ResourceManager(kube, field_manager="test").apply_all([rbac, binding])
    with pytest.raises(PruneError) as failure:
        prune(ResourceManager(reader), inventory_refs(inventory), owner)
    assert failure.value.reason == "PruneFailed"
    assert failure.value.message.startswith(f"delete failed, errors: ConfigMap/{namespace}/locked delete failed: ")
    assert "forbidden" in failure.value.message


def mark_reconciled(kube, name: str, namespace: str) -> None:
    """Write the status a reconciled Kustomization has (Ready=True for its generation)."""
    obj = kube.get(KS, name, namespace)
    kube.patch(KS, name, {"status": {"observedGeneration": obj["metadata"]["generation"], "conditions": [
        {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision",
         "observedGeneration": obj["metadata"]["generation"], "lastTransitionTime": "2024-01-01T00:00:00Z"}]}},
        namespace, subresource="status")
