"""What the next reconciliation would change, as data (:mod:`controllers.lib.preview`), with a KubeClient and no
CLI: a Kustomization's next apply from its source's artifact (served by a real Storage on loopback; created,
drifted with postBuild substitutions, pruned; ``$SOURCE_CONTROLLER_LOCALHOST``), a HelmRelease's next upgrade
(a real Helm repository and fluxpy's source and helm controllers), and the PreviewError of each failure."""
from __future__ import annotations

import urllib.parse

import pytest

from controllers.api.builtin import CONFIGMAP
from controllers.api.helm import HELM_RELEASE
from controllers.api.kustomize import KUSTOMIZATION
from controllers.lib.preview import HelmReleaseDiff, PreviewError, helm_release_diff, kustomization_next_apply
from controllers.runtime.kube import NotFound
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.helmrepo import helm_controllers, helm_repo, install_app_release  # noqa: F401 - fixtures
from servers.sources import artifact_sources  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

OWNER = "kustomize.toolkit.fluxcd.io"


def cm(name: str, **data: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n" + "".join(
        f"  {k}: \"{v}\"\n" for k, v in data.items())


def _kustomization(kube, namespace: str, *, source: str = "app", path: str = "./deploy", **spec) -> dict:
    body = {"interval": "1h", "path": path, "prune": True, "targetNamespace": namespace,
            "sourceRef": {"kind": "GitRepository", "name": source}, **spec}
    return kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                       "metadata": {"name": "app", "namespace": namespace}, "spec": body}, namespace)


def _configmap(kube, namespace: str, name: str, data: dict, labels: dict | None = None) -> None:
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                            "data": data}, namespace)


def test_kustomization_next_apply(kube, namespace, artifact_sources, tmp_path):
    artifact_sources.publish(namespace, "app", {"deploy/a.yaml": cm("a", color="${color}"),
                                                "deploy/b.yaml": cm("b", size="small")})
    ks = _kustomization(kube, namespace, postBuild={"substitute": {"color": "red"}})
    _configmap(kube, namespace, "b", {"size": "large"})  # b drifts from what the next apply would write
    owned = {f"{OWNER}/name": "app", f"{OWNER}/namespace": namespace}
    _configmap(kube, namespace, "old", {"k": "v"}, owned)  # applied before, gone from the artifact: pruned
    ks = kube.patch(KUSTOMIZATION, "app", {"status": {"inventory": {"entries": [
        {"id": f"{namespace}_old__ConfigMap", "v": "v1"}, {"id": f"{namespace}_b__ConfigMap", "v": "v1"}]}}},
        namespace, subresource="status")

    diff = kustomization_next_apply(kube, ks, str(tmp_path))
    assert diff.changed and diff.errors == []
    actions = {o.ref.subject: o.action for o in diff.objects}
    assert actions == {f"ConfigMap/{namespace}/a": "created", f"ConfigMap/{namespace}/b": "drifted",
                       f"ConfigMap/{namespace}/old": "deleted"}
    drifted = next(o for o in diff.objects if o.action == "drifted")
    assert '-  size: large' in drifted.unified() and '+  size: small' in drifted.unified()
    assert kube.get(CONFIGMAP, "b", namespace)["data"] == {"size": "large"}  # a dry run: nothing written
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "a", namespace)

    # the substitution happened in the build: once a is applied as built, nothing is left to create
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": namespace,
                                                                      "labels": owned},
                "data": {"color": "red"}}, field_manager="kustomize-controller")
    again = kustomization_next_apply(kube, ks, str(tmp_path / "again"))
    assert {o.ref.subject: o.action for o in again.objects}[f"ConfigMap/{namespace}/a"] == "unchanged"


def test_the_artifact_host_is_replaced_by_source_controller_localhost(kube, namespace, artifact_sources, tmp_path,
                                                                      monkeypatch):
    served = {}

    def in_cluster_url(artifact: dict) -> None:  # as an in-cluster source-controller advertises it
        url = urllib.parse.urlsplit(artifact["url"])
        served["netloc"] = url.netloc
        artifact["url"] = url._replace(netloc="source-controller.flux-system.invalid").geturl()

    artifact_sources.publish(namespace, "app", {"deploy/a.yaml": cm("a", k="v")}, edit=in_cluster_url)
    ks = _kustomization(kube, namespace)
    monkeypatch.delenv("SOURCE_CONTROLLER_LOCALHOST", raising=False)
    with pytest.raises(PreviewError) as unreachable:
        kustomization_next_apply(kube, ks, str(tmp_path / "1"), timeout=2)
    assert str(unreachable.value).startswith(
        f"Kustomization {namespace}/app: artifact of GitRepository '{namespace}/app' (revision main@sha1:")
    assert "source-controller.flux-system.invalid" in str(unreachable.value)

    monkeypatch.setenv("SOURCE_CONTROLLER_LOCALHOST", served["netloc"])
    diff = kustomization_next_apply(kube, ks, str(tmp_path / "2"))
    assert [(o.ref.subject, o.action) for o in diff.objects] == [(f"ConfigMap/{namespace}/a", "created")]


def test_kustomization_preview_errors(kube, namespace, artifact_sources, tmp_path):
    def fails(ks: dict) -> str:
        with pytest.raises(PreviewError) as failed:
            kustomization_next_apply(kube, ks, str(tmp_path / str(len(seen))))
        seen.append(str(failed.value))
        return seen[-1]

    seen: list[str] = []
    where = f"Kustomization {namespace}/app"
    ks = _kustomization(kube, namespace, source="nope")
    assert fails(ks) == f"{where}: source GitRepository '{namespace}/nope' not found"
    artifact_sources.ensure(namespace, "nope")  # exists, no artifact yet
    assert fails(ks) == f"{where}: source GitRepository '{namespace}/nope' has no artifact yet"

    artifact_sources.publish(namespace, "app", {"deploy/a.yaml": cm("a", k="v")})
    moved = {**ks, "spec": {**ks["spec"], "sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./gone"}}
    message = fails(moved)
    assert message.startswith(f"{where}: build of revision main@sha1:") and "gone" in message
    remote = {**moved, "spec": {**moved["spec"], "kubeConfig": {"secretRef": {"name": "remote"}}}}
    assert "remote cluster" in fails(remote)
    unsupported = {**moved, "spec": {**moved["spec"], "sourceRef": {"kind": "HelmChart", "name": "x"}}}
    assert fails(unsupported) == f"{where}: source kind 'HelmChart' not supported"


def test_helm_release_diff(kube, namespace, helm_controllers, helm_repo, tmp_path):
    hr = install_app_release(kube, namespace, helm_repo, tmp_path)

    same = helm_release_diff(kube, hr, str(tmp_path / "1"))
    assert isinstance(same, HelmReleaseDiff)
    assert (same.changed, same.diff, same.objects, same.errors) == (False, "", [], [])

    upgrade = helm_release_diff(kube, hr, str(tmp_path / "2"), extra_values=[{"message": "next", "extra": False}])
    assert upgrade.changed and upgrade.errors == []
    assert upgrade.objects == [f"ConfigMap/{namespace}/app-app", f"ConfigMap/{namespace}/app-extra"]
    assert upgrade.diff.startswith(f"► ConfigMap/{namespace}/app-app drifted\n")
    assert f"► ConfigMap/{namespace}/app-extra deleted\n" in upgrade.diff and "next" in upgrade.diff
    assert "\x1b[" not in upgrade.diff
    assert [o.action for o in upgrade.result.objects] == ["drifted", "deleted"]


def test_helm_release_preview_error(kube, namespace, flux_crds, tmp_path):
    hr = {"apiVersion": HELM_RELEASE.api_version, "kind": "HelmRelease",
          "metadata": {"name": "ghost", "namespace": namespace},
          "spec": {"interval": "10m", "chart": {"spec": {"chart": "app",
                                                         "sourceRef": {"kind": "HelmRepository", "name": "none"}}}}}
    with pytest.raises(PreviewError) as failed:
        helm_release_diff(kube, hr, str(tmp_path))
    assert str(failed.value).startswith(f"HelmRelease {namespace}/ghost: chart source: ")
    assert f"{namespace}-ghost" in str(failed.value)
