"""``fluxpy tree``'s data without the CLI (:mod:`controllers.lib.tree`): a Kustomization's inventory with a nested
Kustomization and a HelmRelease's objects read from Helm's storage Secret, ``compact``, flux's JSON shape, and
:class:`~controllers.lib.tree.TreeError` where the CLI prints an error."""
from __future__ import annotations

import base64

import pytest

from controllers.api.builtin import SECRET
from controllers.api.kustomize import KUSTOMIZATION
from controllers.lib.tree import Node, TreeError, helm_release_objects, kustomization_tree
from servers.objects import stored_helm_release

MANIFEST = ("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n"
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: db-reader\n")


def _ks(kube, name: str, namespace: str, entries: list[str]) -> dict:
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": name, "namespace": namespace},
                                "spec": {"interval": "1h", "prune": True,
                                         "sourceRef": {"kind": "GitRepository", "name": "repo"}}}, namespace)
    inventory = [{"id": e, "v": "v2" if e.endswith("HelmRelease") else "v1"} for e in entries]
    return kube.patch(KUSTOMIZATION, name, {"status": {"inventory": {"entries": inventory}}}, namespace,
                      subresource="status")


def _release(kube, ns: str) -> None:
    stored_helm_release(kube, ns, "db", 1, MANIFEST)


def _names(node: Node, depth: int = 0) -> list[str]:
    return ["  " * depth + node.ref.subject] + [line for c in node.children for line in _names(c, depth + 1)]


def test_kustomization_tree_with_a_kube_client(kube, namespace, flux_crds):
    ns = namespace
    _ks(kube, "child", ns, [f"{ns}_db_helm.toolkit.fluxcd.io_HelmRelease", f"{ns}_web_apps_Deployment"])
    root_ks = _ks(kube, "root", ns, [f"{ns}_settings__ConfigMap", f"{ns}_child_kustomize.toolkit.fluxcd.io_Kustomization",
                                     f"{ns}_root_kustomize.toolkit.fluxcd.io_Kustomization"])
    _release(kube, ns)

    root = kustomization_tree(kube, root_ks)
    assert _names(root) == [f"Kustomization/{ns}/root", f"  ConfigMap/{ns}/settings", f"  Kustomization/{ns}/child",
                            f"    HelmRelease/{ns}/db", f"      Service/{ns}/db", "      ClusterRole/db-reader",
                            f"    Deployment/{ns}/web"]
    compact = kustomization_tree(kube, root_ks, compact=True)
    assert compact.to_dict() == {
        "resource": {"Namespace": ns, "Name": "root",
                     "GroupKind": {"Group": "kustomize.toolkit.fluxcd.io", "Kind": "Kustomization"}},
        "resources": [{"resource": {"Namespace": ns, "Name": "child",
                                    "GroupKind": {"Group": "kustomize.toolkit.fluxcd.io", "Kind": "Kustomization"}},
                       "resources": [{"resource": {"Namespace": ns, "Name": "db", "GroupKind": {
                           "Group": "helm.toolkit.fluxcd.io", "Kind": "HelmRelease"}}}]}]}
    assert [r.subject for r in helm_release_objects(kube, ns, "db")] == [f"Service/{ns}/db", "ClusterRole/db-reader"]


def test_tree_errors_are_typed(kube, namespace, flux_crds):
    ns = namespace
    missing_child = _ks(kube, "root", ns, [f"{ns}_gone_kustomize.toolkit.fluxcd.io_Kustomization"])
    with pytest.raises(TreeError, match="^failed to find object: .*gone.* not found"):
        kustomization_tree(kube, missing_child)
    bad = {**missing_child, "status": {"inventory": {"entries": [{"id": "not-an-id", "v": "v1"}]}}}
    with pytest.raises(TreeError):
        kustomization_tree(kube, bad)

    _release(kube, ns)
    kube.patch(SECRET, "sh.helm.release.v1.db.v1", {"data": {"release": base64.b64encode(b"garbage").decode()}}, ns)
    with pytest.raises(TreeError, match=f"^failed to decode the Helm storage object for HelmRelease '{ns}/db': "):
        helm_release_objects(kube, ns, "db")
