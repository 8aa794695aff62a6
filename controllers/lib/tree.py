"""The objects a Kustomization or a HelmRelease manages, as a tree (the data of ``fluxpy tree``).

:func:`kustomization_tree` reads ``status.inventory``: a Kustomization in it is expanded with its own
inventory (unless the parent applies to a remote cluster), a HelmRelease with the objects of its latest Helm
release (:func:`helm_release_objects`: read from the Helm storage Secret, plus the CRDs it installed).
``compact`` keeps only Flux objects (``*.toolkit.fluxcd.io``). :meth:`Node.to_dict` is flux's JSON shape.

Failures raise :class:`TreeError` with flux's messages; reading the root object is the caller's business.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controllers.runtime.apply import ObjectRef
    from controllers.runtime.kube import KubeClient

COMPACT_GROUP = "toolkit.fluxcd.io"


class TreeError(Exception):
    """An inventory entry that cannot be parsed, a nested Kustomization or a Helm storage object that cannot be
    read; the message says which."""


@dataclasses.dataclass
class Node:
    """One object of the tree and the objects it manages."""

    ref: "ObjectRef"
    children: list["Node"] = dataclasses.field(default_factory=list)

    def add(self, ref: "ObjectRef") -> "Node":
        node = Node(ref)
        self.children.append(node)
        return node

    def to_dict(self) -> dict:
        """flux's JSON shape (cli-utils ObjMetadata field names)."""
        out: dict = {"resource": {"Namespace": self.ref.namespace, "Name": self.ref.name,
                                  "GroupKind": {"Group": self.ref.group, "Kind": self.ref.kind}}}
        if self.children:
            out["resources"] = [c.to_dict() for c in self.children]
        return out


def kustomization_tree(kube: "KubeClient", kustomization: dict, compact: bool = False) -> Node:
    """The tree of a Kustomization object (see the module docstring)."""
    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.runtime.apply import ObjectRef

    meta = kustomization["metadata"]
    root = Node(ObjectRef(KUSTOMIZATION.group, KUSTOMIZATION.kind, meta["namespace"], meta["name"],
                          KUSTOMIZATION.version))
    _expand(kube, root, kustomization, compact, {root.ref})
    return root


def _keep(ref: "ObjectRef", compact: bool) -> bool:
    return not compact or COMPACT_GROUP in ref.group


def _expand(kube: "KubeClient", node: Node, kustomization: dict, compact: bool, path: set) -> None:
    from controllers.api.helm import HELM_RELEASE
    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.api.objects import dig
    from controllers.runtime.apply import ObjectRef
    from controllers.runtime.kube import KubeError

    for entry in dig(kustomization, "status.inventory.entries", []) or []:
        try:
            ref = ObjectRef.from_id(entry["id"], entry.get("v", ""))
        except ValueError as exc:
            raise TreeError(str(exc)) from None
        if not _keep(ref, compact) or ref == node.ref:
            continue
        child = node.add(ref)
        if (ref.group, ref.kind) == (HELM_RELEASE.group, HELM_RELEASE.kind):
            for obj_ref in helm_release_objects(kube, ref.namespace, ref.name):
                if _keep(obj_ref, compact):
                    child.add(obj_ref)
        elif (ref.group, ref.kind) == (KUSTOMIZATION.group, KUSTOMIZATION.kind) \
                and not dig(kustomization, "spec.kubeConfig") and ref not in path:
            try:
                nested = kube.get(KUSTOMIZATION, ref.name, ref.namespace)
            except KubeError as exc:
                raise TreeError(f"failed to find object: {exc.message}") from None
            _expand(kube, child, nested, compact, path | {ref})


def helm_release_objects(kube: "KubeClient", namespace: str, name: str) -> list["ObjectRef"]:
    """The objects of a HelmRelease's latest release, from Helm's storage (empty when there is none), plus the
    CRDs of its chart it installed. Reading the HelmRelease itself raises the client's KubeError (NotFound)."""
    from controllers.api.builtin import CRD
    from controllers.api.helm import HELM_RELEASE
    from controllers.api.objects import dig
    from controllers.lib.helm_release import RenderError, namespaced_in, release_objects
    from controllers.lib.helm_storage import ReleaseStorage, StorageError
    from controllers.runtime.apply import ObjectRef
    from controllers.runtime.kube import KubeError

    release = kube.get(HELM_RELEASE, name, namespace)
    if dig(release, "spec.kubeConfig"):
        return []
    storage_ns = dig(release, "status.storageNamespace")
    latest = (dig(release, "status.history") or [None])[0]
    if not storage_ns or not latest:
        return []
    where = f"{namespace}/{name}"
    try:
        stored = ReleaseStorage(kube, storage_ns).get(latest.get("name"), int(latest.get("version") or 0))
        if stored is None:
            return []
        objects = release_objects(stored.get("manifest") or "", latest.get("name"),
                                  latest.get("namespace") or namespace, namespaced_in(kube))
    except KubeError as exc:
        raise TreeError(f"failed to find the Helm storage object for HelmRelease '{where}': {exc.message}") from None
    except (StorageError, RenderError) as exc:
        raise TreeError(f"failed to decode the Helm storage object for HelmRelease '{where}': {exc}") from None
    refs = [ObjectRef.from_object(o, namespaced=bool(dig(o, "metadata.namespace"))) for o in objects
            if o.get("apiVersion") and o.get("kind") and dig(o, "metadata.name")]
    crd_policies = {dig(release, "spec.install.crds"), dig(release, "spec.upgrade.crds")} - {"Skip"}
    if crd_policies:
        selector = f"{HELM_RELEASE.group}/name={name},{HELM_RELEASE.group}/namespace={namespace}"
        try:
            crds = kube.list(CRD, label_selector=selector).get("items") or []
        except KubeError:
            crds = []
        known = {r.name for r in refs if r.kind == "CustomResourceDefinition"}
        refs += [ObjectRef(CRD.group, CRD.kind, "", c["metadata"]["name"], CRD.version)
                 for c in crds if c["metadata"]["name"] not in known]
    return refs
