"""The server-side apply engine: pure helpers, then staged apply against the real apiserver (validation of the
whole set first, Flux's annotations, forced recreation, taking over kubectl's fields, unchanged detection)."""
from __future__ import annotations

import base64
import copy
import uuid

import pytest

from controllers.api.builtin import CONFIGMAP, CRD, NAMESPACE
from controllers.api.types import ResourceType
from controllers.runtime.apply import (
    CONFIGURED, CREATED, FIELD_MANAGER, SKIPPED, UNCHANGED, ApplyOptions, ChangeSet, DryRunError,
    FieldManagerMatch, ObjectRef, Owner, ResourceManager, any_in_metadata, apply_staged, has_drifted,
    kustomization_apply_options, normalize, stage_of, take_over_managed_fields,
)
from controllers.runtime.kube import KubeClient, NotFound

JOB = ResourceType("batch", "v1", "Job", "jobs")
SERVICE = ResourceType("", "v1", "Service", "services")
OWNER = Owner("apps", "flux-system")


# --- pure helpers ---------------------------------------------------------------------------------------


def test_object_ref_ids_round_trip_as_flux_writes_them():
    ref = ObjectRef("apps", "Deployment", "web", "podinfo", "v1")
    assert ref.id == "web_podinfo_apps_Deployment" and ref.subject == "Deployment/web/podinfo"
    assert ObjectRef.from_id(ref.id, "v1") == ref and ObjectRef.from_id(ref.id).version == ""
    core = ObjectRef("", "ConfigMap", "web", "cfg", "v1")
    assert core.id == "web_cfg__ConfigMap" and ObjectRef.from_id(core.id) == core
    role = ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "system:flux", "v1")
    assert role.id == "_system__flux_rbac.authorization.k8s.io_ClusterRole"
    assert role.subject == "ClusterRole/system:flux"
    assert ObjectRef.from_id(role.id) == role
    with pytest.raises(ValueError, match="unable to parse stored object metadata: nonsense"):
        ObjectRef.from_id("nonsense")


def test_normalize_as_flux_does_before_applying():
    secret = normalize({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "creationTimestamp": None},
                        "stringData": {"token": "abc"}, "data": {"old": "eA=="}, "status": {}})
    assert secret == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                      "data": {"old": "eA==", "token": base64.b64encode(b"abc").decode()}}
    containers = [{"name": "c", "ports": [{"containerPort": 80}]}]
    deploy = normalize({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                        "spec": {"template": {"spec": {"containers": containers}}}})
    assert deploy["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    svc = normalize({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                     "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}})
    assert [p["protocol"] for p in svc["spec"]["ports"]] == ["TCP", "UDP"]
    crd = normalize({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "metadata": {"name": "x"}, "status": {"acceptedNames": {}},
                     "spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": "Cg=="}}}}})
    assert crd["status"] == {"acceptedNames": {}}, "CRDs keep their status (kstatus reads it)"
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"] == {}, "a placeholder caBundle is dropped"


def test_stages_selectors_and_drift():
    assert [stage_of({"apiVersion": v, "kind": k}) for v, k in (
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"), ("v1", "Namespace"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("storage.k8s.io/v1", "StorageClass"),
        ("networking.k8s.io/v1", "IngressClass"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("apps/v1", "Deployment"))] == [0, 0, 0, 1, 1, 2, 2]
    obj = {"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/ssa": "ifnotpresent"}}}
    assert any_in_metadata(obj, {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"})
    assert not any_in_metadata(obj, {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"})
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "5", "uid": "u"},
            "data": {"a": "1"}}
    dry = copy.deepcopy(live)
    dry["metadata"]["managedFields"] = [{"manager": FIELD_MANAGER}]
    assert not has_drifted(live, dry), "metadata other than labels and annotations is not drift"
    dry["data"]["a"] = "2"
    assert has_drifted(live, dry)
    assert has_drifted(live, {**live, "metadata": {**live["metadata"], "labels": {"x": "y"}}})


def test_take_over_managed_fields_merges_kubectl_into_ours():
    entries = [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsV1": {"f:data": {"f:a": {}}}},
        {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:data": {"f:b": {}}}},
        {"manager": "kubectl", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
        {"manager": "before-first-apply", "operation": "Update", "fieldsV1": {"f:metadata": {"f:labels": {}}}},
        {"manager": "helm", "operation": "Update", "fieldsV1": {"f:data": {"f:c": {}}}},
    ]
    matches = kustomization_apply_options().cleanup.field_managers
    result = take_over_managed_fields(entries, matches, FIELD_MANAGER)
    assert [(e["manager"], e["operation"]) for e in result] == [
        ("kubectl", "Update"), ("helm", "Update"), (FIELD_MANAGER, "Apply")]
    assert result[-1]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {}}}
    assert take_over_managed_fields(entries[1:2], matches, FIELD_MANAGER) is None
    first = take_over_managed_fields(entries[:1], [FieldManagerMatch("kubectl", "Update")], FIELD_MANAGER)
    assert first == [{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}}}}]


# --- against the apiserver ------------------------------------------------------------------------------


def cm(name: str, namespace: str, **data) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {k: str(v) for k, v in data.items()}}


def job(name: str, namespace: str, command: str, **annotations) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "command": [command]}]}}}}


def owned(objects: list[dict], owner: Owner = OWNER) -> list[dict]:
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(owner.labels)
    return objects


@pytest.fixture
def manager(kube) -> ResourceManager:
    return ResourceManager(kube)


@pytest.fixture
def widget_crd(kube):
    """A fresh namespaced CRD (unique group), deleted afterwards."""
    group = f"w{uuid.uuid4().hex[:8]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer", "minimum": 1}}}}}}}]}}
    yield crd
    kube.delete(CRD, crd["metadata"]["name"])


def test_staged_apply_creates_crd_namespace_and_custom_resource_in_one_set(kube, manager, widget_crd):
    group = widget_crd["spec"]["group"]
    ns = f"staged-{uuid.uuid4().hex[:6]}"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
              "spec": {"size": 3}}
    objects = owned([widget, cm("settings", ns, a=1), {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": ns}}, widget_crd])
    try:
        changes = manager.apply_all_staged(objects, kustomization_apply_options())
        assert str(changes) == "\n".join([
            f"CustomResourceDefinition/widgets.{group} created", f"Namespace/{ns} created",
            f"ConfigMap/{ns}/settings created", f"Widget/{ns}/w created"])
        assert [e.ref.version for e in changes] == ["v1"] * 4
        live = kube.get(kube.resource_for(f"{group}/v1", "Widget"), "w", ns)
        assert live["metadata"]["labels"] == OWNER.labels
        assert [m["manager"] for m in live["metadata"]["managedFields"]] == [FIELD_MANAGER]

        again = manager.apply_all_staged(objects, kustomization_apply_options())
        assert {e.action for e in again} == {UNCHANGED}
        assert kube.get(kube.resource_for(f"{group}/v1", "Widget"), "w", ns)["metadata"]["resourceVersion"] == \
            live["metadata"]["resourceVersion"], "an unchanged object is not written"
    finally:
        kube.delete(NAMESPACE, ns)


def test_an_invalid_object_leaves_the_cluster_untouched(kube, manager, namespace):
    new_ns = f"never-{uuid.uuid4().hex[:6]}"
    manager.apply_all_staged(owned([cm("existing", namespace, a=1)]))
    bad_deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web"}]}}}}
    objects = owned([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": new_ns}},
                     cm("existing", namespace, a=2), cm("fresh", namespace, b=1), bad_deploy,
                     {"apiVersion": "example.com/v1", "kind": "Nope",
                      "metadata": {"name": "x", "namespace": namespace}}])
    with pytest.raises(DryRunError) as failure:
        manager.apply_all_staged(objects, kustomization_apply_options())
    message = failure.value.message
    assert failure.value.reason == "ReconciliationFailed" and not failure.value.changes
    assert (f"Deployment/{namespace}/web dry-run failed (Invalid): Deployment.apps \"web\" is invalid: "
            "spec.template.spec.containers[0].image: Required value") in message
    assert f'Nope/{namespace}/x dry-run failed: no matches for kind "Nope" in version "example.com/v1"' in message
    with pytest.raises(NotFound):
        kube.get(NAMESPACE, new_ns)
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "fresh", namespace)
    assert kube.get(CONFIGMAP, "existing", namespace)["data"] == {"a": "1"}


def test_objects_in_a_namespace_the_set_creates_are_validated_after_it(kube, manager):
    """They cannot be dry-run before their namespace exists: the definitions stage is applied first, then
    their validation fails before anything of their own stage is applied."""
    ns = f"later-{uuid.uuid4().hex[:6]}"
    objects = owned([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                     cm("fine", ns, a=1), {**cm("broken", ns), "data": {"a": {"nested": "no"}}}])
    try:
        with pytest.raises(DryRunError) as failure:
            manager.apply_all_staged(objects, kustomization_apply_options())
        assert failure.value.message.startswith(f"ConfigMap/{ns}/broken dry-run failed")
        assert failure.value.message.endswith(f"\nNamespace/{ns} created"), "the partial apply is reported"
        with pytest.raises(NotFound):
            kube.get(CONFIGMAP, "fine", ns)
    finally:
        kube.delete(NAMESPACE, ns)


def test_ssa_annotations(kube, manager, namespace):
    opts = kustomization_apply_options()
    ignored = cm("ignored", namespace, a=1)
    ignored["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}
    once = cm("once", namespace, a=1)
    once["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
    paused, merged, plain = cm("paused", namespace, a=1), cm("merged", namespace, a=1), cm("plain", namespace, a=1)
    merged["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "Merge"}
    first = manager.apply_all_staged(owned([ignored, once, paused, merged, plain]), opts)
    assert first.to_map() == {f"ConfigMap/{namespace}/{n}": a for n, a in (
        ("ignored", SKIPPED), ("merged", CREATED), ("once", CREATED), ("paused", CREATED), ("plain", CREATED))}
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "ignored", namespace)

    # out-of-band changes: kubectl edits, a client-side kubectl apply adding a key, a reconcile: disabled mark
    for name in ("once", "paused", "plain", "merged"):
        kube.patch(CONFIGMAP, name, {"data": {"a": "edited"}}, namespace, field_manager="kubectl-edit")
    for name in ("merged", "plain"):
        kube.patch(CONFIGMAP, name, {"data": {"extra": "x"}}, namespace, field_manager="kubectl-client-side-apply")
    kube.patch(CONFIGMAP, "paused",
               {"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}},
               namespace, field_manager="kubectl-annotate")

    once_changed = copy.deepcopy(once)
    once_changed["data"] = {"a": "2"}
    second = manager.apply_all_staged(owned([ignored, once_changed, paused, merged, plain]), opts)
    assert second.to_map() == {f"ConfigMap/{namespace}/{n}": a for n, a in (
        ("ignored", SKIPPED), ("merged", CONFIGURED), ("once", SKIPPED), ("paused", SKIPPED), ("plain", CONFIGURED))}
    data = {n: kube.get(CONFIGMAP, n, namespace)["data"] for n in ("once", "paused", "plain", "merged")}
    assert data["once"] == {"a": "edited"} and data["paused"] == {"a": "edited"}, "skipped objects are left alone"
    assert data["plain"] == {"a": "1"}, "kubectl's extra key is taken over and dropped"
    assert data["merged"] == {"a": "1", "extra": "x"}, "ssa: Merge keeps fields of other managers"
    managers = {m["manager"] for m in kube.get(CONFIGMAP, "plain", namespace)["metadata"]["managedFields"]}
    assert managers == {FIELD_MANAGER}


def test_force_recreates_objects_with_immutable_changes(kube, manager, namespace):
    opts = kustomization_apply_options()
    manager.apply_all_staged(owned([job("migrate", namespace, "/v1"), job("forced", namespace, "/v1")]), opts)
    uids = {n: kube.get(JOB, n, namespace)["metadata"]["uid"] for n in ("migrate", "forced")}

    with pytest.raises(DryRunError) as failure:
        manager.apply_all_staged(owned([job("migrate", namespace, "/v2")]), opts)
    assert f"Job/{namespace}/migrate dry-run failed (Invalid)" in failure.value.message
    assert "field is immutable" in failure.value.message
    assert kube.get(JOB, "migrate", namespace)["metadata"]["uid"] == uids["migrate"]

    annotated = job("forced", namespace, "/v2", **{"kustomize.toolkit.fluxcd.io/force": "Enabled"})
    changes = manager.apply_all_staged(owned([annotated, job("migrate", namespace, "/v2")]),
                                       kustomization_apply_options(force=True))
    assert {e.subject: e.action for e in changes} == {f"Job/{namespace}/forced": CREATED,
                                                      f"Job/{namespace}/migrate": CREATED}
    for name in ("migrate", "forced"):
        live = kube.get(JOB, name, namespace)
        assert live["metadata"]["uid"] != uids[name]
        assert live["spec"]["template"]["spec"]["containers"][0]["command"] == ["/v2"]


def test_force_recreates_a_service_with_a_new_cluster_ip_but_never_deletes_for_an_invalid_one(kube, manager,
                                                                                            namespace):
    def service(ip: str, port: int = 80) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
                "spec": {"clusterIP": ip, "ports": [{"port": port}]}}

    octet = uuid.uuid4().int % 200 + 20
    manager.apply_all_staged(owned([service(f"10.96.{octet}.10")]))
    uid = kube.get(SERVICE, "web", namespace)["metadata"]["uid"]
    with pytest.raises(DryRunError):
        manager.apply_all_staged(owned([service(f"10.96.{octet}.11", port=0)]), kustomization_apply_options(force=True))
    assert kube.get(SERVICE, "web", namespace)["metadata"]["uid"] == uid, "a replacement that would be refused"

    changes = manager.apply_all_staged(owned([service(f"10.96.{octet}.11")]), kustomization_apply_options(force=True))
    assert str(changes) == f"Service/{namespace}/web created"
    live = kube.get(SERVICE, "web", namespace)
    assert live["metadata"]["uid"] != uid and live["spec"]["clusterIP"] == f"10.96.{octet}.11"


def test_kubectl_applied_objects_are_taken_over(kube, manager, namespace):
    """An object last applied with kubectl (client-side): its annotation goes, its fields become Flux's."""
    legacy = cm("legacy", namespace, a=1, old=1)
    legacy["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    kube.create(CONFIGMAP, legacy, namespace)
    fields = kube.get(CONFIGMAP, "legacy", namespace)["metadata"]["managedFields"]
    for entry in fields:  # as if kubectl had created it
        entry["manager"] = "kubectl-client-side-apply"
    kube.patch(CONFIGMAP, "legacy", [{"op": "replace", "path": "/metadata/managedFields", "value": fields}],
               namespace, patch_type="json")
    assert [m["manager"] for m in kube.get(CONFIGMAP, "legacy", namespace)["metadata"]["managedFields"]] == \
        ["kubectl-client-side-apply"]
    changes = manager.apply_all_staged(owned([cm("legacy", namespace, a=1)]), kustomization_apply_options())
    assert str(changes) == f"ConfigMap/{namespace}/legacy configured"
    live = kube.get(CONFIGMAP, "legacy", namespace)
    assert live["data"] == {"a": "1"} and not live["metadata"].get("annotations")
    assert [m["manager"] for m in live["metadata"]["managedFields"]] == [FIELD_MANAGER]


def test_a_live_cache_spares_applying_unchanged_objects(kubeconfig, namespace):
    kube = KubeClient.from_kubeconfig(kubeconfig)
    manager = ResourceManager(kube)
    objects = owned([cm("a", namespace, x=1), cm("b", namespace, x=1)])
    manager.apply_all_staged(objects)
    cache = {n: kube.get(CONFIGMAP, n, namespace) for n in ("a", "b")}
    writes = []
    original = kube.patch
    kube.patch = lambda *a, **kw: (writes.append(bool(kw.get("dry_run"))), original(*a, **kw))[1]
    objects[1]["data"]["x"] = "2"
    changes = manager.apply_all_staged(objects, live=lambda ref: cache.get(ref.name))
    assert changes.to_map() == {f"ConfigMap/{namespace}/a": UNCHANGED, f"ConfigMap/{namespace}/b": CONFIGURED}
    assert writes == [True, True, False], "two dry runs, one apply"


def test_apply_staged_is_the_cli_entry_point(kube, namespace):
    seen: list[str] = []
    changes = apply_staged(kube, [cm("cli", namespace, a=1)], on_change=lambda c: seen.append(str(c)))
    assert isinstance(changes, ChangeSet) and seen == [f"ConfigMap/{namespace}/cli created"]
    managers = [m["manager"] for m in kube.get(CONFIGMAP, "cli", namespace)["metadata"]["managedFields"]]
    assert managers == ["flux"]
    assert str(apply_staged(kube, [cm("cli", namespace, a=1)])) == f"ConfigMap/{namespace}/cli unchanged"
    assert ApplyOptions().exclusions == {}, "the CLI honours none of the controller's annotations"
