"""Older API versions on a real kube-apiserver: Flux 2.7's deprecated versions are served next to the
storage version, objects written in them (as Flux's older docs and many repositories do) are accepted,
read back at the storage version, and the apiserver warns their clients."""
from __future__ import annotations

import pytest

from controllers.api.builtin import CRD
from controllers.api.kinds import KINDS, kind_by_name
from controllers.runtime.kube import KubeClient, KubeError

pytestmark = pytest.mark.integration

OLDER = [(kind, older) for kind in KINDS for older in kind.older_versions]


def _object(kind, version: str, name: str, namespace: str, spec: dict) -> dict:
    return {"apiVersion": f"{kind.group}/{version}", "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _create_strict(kube: KubeClient, kind, version: str, obj: dict) -> dict:
    return kube.request("POST", kind.at(version).path(obj["metadata"]["namespace"]),
                        params={"fieldValidation": "Strict"}, body=obj)


def test_every_flux_27_older_version_is_served_and_deprecated(kube, flux_crds):
    served = {(k.kind, o.name) for k, o in OLDER}
    assert {("GitRepository", "v1beta2"), ("Kustomization", "v1beta2"), ("HelmRelease", "v2beta2"),
            ("Provider", "v1beta2"), ("ImagePolicy", "v1beta2")} <= served
    for kind, older in OLDER:
        crd = kube.get(CRD, kind.crd_name)
        versions = {v["name"]: v for v in crd["spec"]["versions"]}
        assert versions[kind.version]["storage"] is True and versions[older.name]["storage"] is False
        assert versions[older.name]["served"] is True and versions[older.name]["deprecated"] is True
        assert versions[older.name]["deprecationWarning"] == kind.deprecation_warning(older)
        resources = kube.request("GET", f"/apis/{kind.group}/{older.name}")["resources"]
        assert kind.plural in {r["name"] for r in resources}, (kind.kind, older.name)


def test_a_v1beta2_git_repository_is_stored_as_v1_and_its_client_warned(control_plane, kube, flux_crds, namespace):
    git = kind_by_name("GitRepository")
    warnings: list[str] = []
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
    client.on_warning = warnings.append
    spec = {"interval": "1m", "url": "https://github.com/stefanprodan/podinfo", "ref": {"branch": "master"},
            "gitImplementation": "go-git", "timeout": "60s"}
    _create_strict(client, git, "v1beta2", _object(git, "v1beta2", "podinfo", namespace, spec))
    assert warnings == ["v1beta2 GitRepository is deprecated, upgrade to v1"]

    stored = kube.get(git, "podinfo", namespace)
    assert stored["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert stored["spec"]["url"] == spec["url"] and stored["spec"]["ref"] == {"branch": "master"}
    old = kube.request("GET", git.at("v1beta2").path(namespace, "podinfo"))
    assert old["apiVersion"] == "source.toolkit.fluxcd.io/v1beta2" and old["spec"]["interval"] == "1m"


def test_fields_of_one_version_are_refused_in_the_other(kube, flux_crds, namespace):
    git = kind_by_name("GitRepository")
    base = {"interval": "1m", "url": "https://example.com/repo.git"}
    with pytest.raises(KubeError) as err:  # v1 added spec.provider; v1beta2 never had it
        _create_strict(kube, git, "v1beta2", _object(git, "v1beta2", "a", namespace, {**base, "provider": "azure"}))
    assert 'unknown field "spec.provider"' in err.value.message
    with pytest.raises(KubeError) as err:  # v1 dropped gitImplementation
        _create_strict(kube, git, "v1", _object(git, "v1", "b", namespace, {**base, "gitImplementation": "go-git"}))
    assert 'unknown field "spec.gitImplementation"' in err.value.message


def test_flux_docs_v1beta2_kustomization_and_v2beta2_helm_release_are_accepted(kube, flux_crds, namespace):
    ks = kind_by_name("Kustomization")
    _create_strict(kube, ks, "v1beta2", _object(ks, "v1beta2", "apps", namespace, {
        "interval": "10m", "path": "./deploy", "prune": True, "validation": "client",
        "sourceRef": {"kind": "GitRepository", "name": "podinfo"},
        "patchesStrategicMerge": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": "podinfo"}, "spec": {"replicas": 2}}],
        "patchesJson6902": [{"target": {"kind": "Deployment", "name": "podinfo"},
                             "patch": [{"op": "replace", "path": "/spec/replicas", "value": 3}]}]}))
    assert kube.get(ks, "apps", namespace)["spec"]["path"] == "./deploy"

    hr = kind_by_name("HelmRelease")
    _create_strict(kube, hr, "v2beta2", _object(hr, "v2beta2", "podinfo", namespace, {
        "interval": "5m",
        "chart": {"spec": {"chart": "podinfo", "version": "6.x", "valuesFile": "values-prod.yaml",
                           "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}},
        "install": {"remediation": {"retries": 3}},
        "values": {"replicaCount": 2}}))
    stored = kube.get(hr, "podinfo", namespace)
    assert stored["apiVersion"] == "helm.toolkit.fluxcd.io/v2" and stored["spec"]["values"] == {"replicaCount": 2}
    with pytest.raises(KubeError) as err:  # v2 added commonMetadata
        _create_strict(kube, hr, "v2beta2", _object(hr, "v2beta2", "other", namespace, {
            "interval": "5m", "chartRef": {"kind": "OCIRepository", "name": "podinfo"},
            "commonMetadata": {"labels": {"a": "b"}}}))
    assert 'unknown field "spec.commonMetadata"' in err.value.message


@pytest.mark.parametrize("kind,older", OLDER, ids=lambda x: getattr(x, "kind", getattr(x, "name", "")))
def test_older_version_schemas_accept_the_storage_examples_they_share(kube, flux_crds, namespace, kind, older):
    """Each kind's documented v1 examples, written at the older version, pass a strict dry run unless they
    use a field the older version lacks (then the error names that field)."""
    from tests.controllers.api.api_support import load_examples

    for example in load_examples(kind):
        obj = {**example, "apiVersion": f"{kind.group}/{older.name}",
               "metadata": {**example["metadata"], "namespace": namespace}}
        try:
            kube.request("POST", kind.at(older.name).path(namespace),
                         params={"fieldValidation": "Strict", "dryRun": "All"}, body=obj)
        except KubeError as exc:
            assert "unknown field" in exc.message, (example["metadata"]["name"], exc.message)
