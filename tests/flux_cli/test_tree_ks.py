"""``fluxpy tree kustomization``: the inventory as a tree, nested Kustomizations expanded, a HelmRelease's
objects read from its Helm storage Secret, --compact, -o json|yaml in flux's shapes."""
from __future__ import annotations

import json

import pytest
import yaml

import flux_cli.commands.tree  # noqa: F401 - registers the command
from controllers.api.kustomize import KUSTOMIZATION
from servers.objects import stored_helm_release

RELEASE_MANIFEST = """\
---
apiVersion: v1
kind: Service
metadata:
  name: db
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: data
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: db-reader
"""


def _ks(kube, name: str, namespace: str, entries: list[str], **spec) -> None:
    body = {"interval": "1h", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "repo"}, **spec}
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": name, "namespace": namespace}, "spec": body}, namespace)
    versions = {"Kustomization": "v1", "HelmRelease": "v2", "Deployment": "v1"}
    inventory = [{"id": e, "v": versions.get(e.rsplit("_", 1)[1], "v1")} for e in entries]
    kube.patch(KUSTOMIZATION, name, {"status": {"inventory": {"entries": inventory}}}, namespace, subresource="status")


@pytest.fixture
def tree(kube, namespace, flux_crds):
    """root → (ConfigMap, Kustomization child → (HelmRelease db → its release objects, Deployment), a remote
    Kustomization whose children are not expanded, and root itself, which is skipped)."""
    ns = namespace
    _ks(kube, "root", ns, [f"{ns}_settings__ConfigMap", f"{ns}_child_kustomize.toolkit.fluxcd.io_Kustomization",
                           f"{ns}_root_kustomize.toolkit.fluxcd.io_Kustomization"])
    _ks(kube, "child", ns, [f"{ns}_db_helm.toolkit.fluxcd.io_HelmRelease", f"{ns}_web_apps_Deployment"])
    stored_helm_release(kube, ns, "db", 2, RELEASE_MANIFEST)
    return ns


def test_tree_text(fluxpy, kubeconfig, tree):
    ns = tree
    res = fluxpy("tree", "kustomization", "root", "-n", ns, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"Kustomization/{ns}/root",
        f"├── ConfigMap/{ns}/settings",
        f"└── Kustomization/{ns}/child",
        f"    ├── HelmRelease/{ns}/db",
        f"    │   ├── Service/{ns}/db",
        "    │   ├── StatefulSet/data/db",
        "    │   └── ClusterRole/db-reader",
        f"    └── Deployment/{ns}/web",
    ]


def test_tree_compact_and_structured_output(fluxpy, kubeconfig, tree):
    ns = tree
    res = fluxpy("tree", "ks", "root", "--compact", "-n", ns, "--kubeconfig", str(kubeconfig))
    assert res.stdout.splitlines() == [f"Kustomization/{ns}/root", f"└── Kustomization/{ns}/child",
                                       f"    └── HelmRelease/{ns}/db"]
    res = fluxpy("tree", "ks", "root", "--compact", "-o", "json", "-n", ns, "--kubeconfig", str(kubeconfig))
    node = lambda kind, name, group="kustomize.toolkit.fluxcd.io": {  # noqa: E731
        "Namespace": ns, "Name": name, "GroupKind": {"Group": group, "Kind": kind}}
    expected = {"resource": node("Kustomization", "root"), "resources": [
        {"resource": node("Kustomization", "child"), "resources": [
            {"resource": node("HelmRelease", "db", "helm.toolkit.fluxcd.io")}]}]}
    assert json.loads(res.stdout) == expected
    assert list(json.loads(res.stdout)["resource"]) == ["Namespace", "Name", "GroupKind"]
    res = fluxpy("tree", "ks", "root", "--compact", "-o", "yaml", "-n", ns, "--kubeconfig", str(kubeconfig))
    assert yaml.safe_load(res.stdout) == expected
    assert res.stdout.startswith("resource:\n  GroupKind:\n    Group: kustomize.toolkit.fluxcd.io\n")


def test_a_remote_kustomization_is_not_expanded(fluxpy, kube, kubeconfig, namespace, flux_crds):
    ns = namespace
    _ks(kube, "remote", ns, [f"{ns}_child_kustomize.toolkit.fluxcd.io_Kustomization"],
        kubeConfig={"secretRef": {"name": "kubeconfig"}})
    res = fluxpy("tree", "ks", "remote", "-n", ns, "--kubeconfig", str(kubeconfig))
    assert res.stdout.splitlines() == [f"Kustomization/{ns}/remote", f"└── Kustomization/{ns}/child"]


def test_tree_errors(fluxpy, kubeconfig, namespace, flux_crds):
    res = fluxpy("tree", "ks", "nope", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and '"nope" not found' in res.stderr
    res = fluxpy("tree", "ks", "nope", "-o", "table", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "unsupported output format 'table'" in res.stderr
