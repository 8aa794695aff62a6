""""Reconcile with its source" as data (:mod:`controllers.runtime.protocol`): the source of an object, the chain of
sources read with a KubeClient (NotFound names the missing one), and a kind's reconcile-option annotations."""
from __future__ import annotations

import pytest

from controllers.api.kinds import kind_by_name
from controllers.runtime import protocol
from controllers.runtime.kube import NotFound

GIT, KS, HR = kind_by_name("source git"), kind_by_name("ks"), kind_by_name("hr")
CHART, HELM_REPO = kind_by_name("source chart"), kind_by_name("source helm")


def _meta(name, namespace="apps"):
    return {"name": name, "namespace": namespace}


def test_source_of():
    ks = {"metadata": _meta("apps"), "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo"}}}
    assert protocol.source_of(KS, ks) == (GIT, "repo", "apps")
    ks["spec"]["sourceRef"]["namespace"] = "flux-system"
    assert protocol.source_of(KS, ks) == (GIT, "repo", "flux-system")
    hr = {"metadata": _meta("web"), "spec": {"chart": {"spec": {
        "chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}}
    assert protocol.source_of(HR, hr) == (CHART, "apps-web", "apps")  # the HelmChart Flux makes for it
    assert protocol.source_of(GIT, {"metadata": _meta("repo"), "spec": {"url": "https://example.com"}}) is None


def test_request_annotations():
    assert protocol.request_annotations(HR, {"force": True, "reset": True}) == (
        "reconcile.fluxcd.io/forceAt", "reconcile.fluxcd.io/resetAt")
    assert protocol.request_annotations(HR, {"force": False, "reset": True}) == ("reconcile.fluxcd.io/resetAt",)
    assert protocol.request_annotations(KS, {"force": False}) == ()
    with pytest.raises(ValueError) as refused:
        protocol.request_annotations(KS, {"force": True})
    assert str(refused.value) == "--force does not apply to Kustomization (its reconcile options: none)"


def test_sources_of_reads_the_chain_with_a_kube_client(kube, flux_crds, namespace):
    def create(kind, name, spec):
        return kube.create(kind, {"apiVersion": kind.api_version, "kind": kind.kind,
                                  "metadata": _meta(name, namespace), "spec": spec})

    create(HELM_REPO, "charts", {"interval": "10m", "url": "https://charts.example.com"})
    hr = create(HR, "web", {"interval": "10m", "chart": {"spec": {
        "chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}})
    with pytest.raises(NotFound) as missing:  # the HelmChart is made by the helm-controller: none here
        protocol.sources_of(kube, HR, hr)
    assert missing.value.source == (CHART, f"{namespace}-web", namespace)

    create(CHART, f"{namespace}-web", {"interval": "10m", "chart": "web",
                                       "sourceRef": {"kind": "HelmRepository", "name": "charts"}})
    assert protocol.sources_of(kube, HR, hr) == [(CHART, f"{namespace}-web", namespace),
                                                 (HELM_REPO, "charts", namespace)]
    assert protocol.sources_of(kube, HR, hr, max_depth=1) == [(CHART, f"{namespace}-web", namespace)]
