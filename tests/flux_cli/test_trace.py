"""fluxpy trace: from an applied object to the Kustomization that applied it and its source."""
from __future__ import annotations

from controllers.api.builtin import CONFIGMAP
from controllers.api.kinds import kind_by_name

GIT = kind_by_name("source git")
KS = kind_by_name("ks")
REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"


def test_trace_names_the_kustomization_its_source_and_revision(fluxpy, kube, kubeconfig, flux_crds, namespace):
    kube.create(GIT, {"apiVersion": GIT.api_version, "kind": GIT.kind, "metadata": {"name": "repo", "namespace": namespace},
                      "spec": {"interval": "1m", "url": "https://example.com/repo", "ref": {"branch": "main"}}})
    kube.patch(GIT, "repo", {"status": {
        "artifact": {"path": "p", "url": "http://x/p", "revision": REVISION, "digest": "sha256:" + "0" * 64,
                     "lastUpdateTime": "2026-01-01T00:00:00Z"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                        "message": f"stored artifact for revision '{REVISION}'", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        namespace, subresource="status")
    kube.create(KS, {"apiVersion": KS.api_version, "kind": KS.kind, "metadata": {"name": "apps", "namespace": namespace},
                     "spec": {"interval": "10m", "path": "./deploy", "prune": True,
                              "sourceRef": {"kind": "GitRepository", "name": "repo"}}})
    kube.patch(KS, "apps", {"status": {"lastAppliedRevision": REVISION, "conditions": [{
        "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
        "message": f"Applied revision: {REVISION}", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        namespace, subresource="status")
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "demo", "namespace": namespace,
        "labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": namespace}}})

    res = fluxpy("trace", "configmap", "demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    blocks = [dict(line.split(":", 1) for line in block.strip().splitlines()) for block in res.stdout.split("---")]
    blocks = [{k.strip(): v.strip() for k, v in b.items()} for b in blocks]
    assert blocks[0] == {"Object": "ConfigMap/demo", "Namespace": namespace, "Status": "Managed by fluxpy"}
    assert blocks[1]["Kustomization"] == "apps" and blocks[1]["Path"] == "./deploy"
    assert blocks[1]["Revision"] == REVISION and blocks[1]["Status"].startswith("Last reconciled at")
    assert blocks[2]["GitRepository"] == "repo" and blocks[2]["URL"] == "https://example.com/repo"
    assert blocks[2]["Branch"] == "main" and blocks[2]["Revision"] == REVISION

    slash = fluxpy("trace", "ConfigMap/demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert slash.stdout == res.stdout


def test_trace_of_an_unmanaged_or_missing_object(fluxpy, kube, kubeconfig, flux_crds, namespace):
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "loose", "namespace": namespace}})
    res = fluxpy("trace", "cm", "loose", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "not managed by fluxpy" in res.stderr
    res = fluxpy("trace", "deployment", "ghost", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "Deployment" in res.stderr and "not found" in res.stderr
    res = fluxpy("trace", "nosuchkind", "x", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "no resource of kind 'nosuchkind'" in res.stderr
