"""fluxpy trace: from an applied object to the Kustomization that applied it and its source."""
from __future__ import annotations

from controllers.api.builtin import CONFIGMAP, DEPLOYMENT
from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY, IMAGE_UPDATE_AUTOMATION
from controllers.api.kinds import kind_by_name

GIT = kind_by_name("source git")
KS = kind_by_name("ks")
REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"


def source_and_kustomization(kube, namespace: str) -> dict:
    """A Ready GitRepository ``repo`` and Kustomization ``apps`` in ``namespace``; the labels of what it applies."""
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
    return {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": namespace}


def parse_blocks(stdout: str) -> list[dict]:
    blocks = [dict(line.split(":", 1) for line in block.strip().splitlines()) for block in stdout.split("---")]
    return [{k.strip(): v.strip() for k, v in b.items()} for b in blocks]


def test_trace_names_the_kustomization_its_source_and_revision(fluxpy, kube, kubeconfig, flux_crds, namespace):
    labels = source_and_kustomization(kube, namespace)
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "demo", "namespace": namespace, "labels": labels}})

    res = fluxpy("trace", "configmap", "demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    blocks = parse_blocks(res.stdout)
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


def test_trace_follows_an_image_back_to_its_policy_repository_and_automation(fluxpy, kube, kubeconfig, flux_crds,
                                                                           namespace):
    labels = source_and_kustomization(kube, namespace)
    image = "registry.example.com/team/web"

    def create(kind, name, spec, status):
        kube.create(kind, {"apiVersion": kind.api_version, "kind": kind.kind,
                           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
        kube.patch(kind, name, {"status": status}, namespace, subresource="status")

    ready = [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok",
              "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    create(IMAGE_REPOSITORY, "web", {"image": image, "interval": "5m"}, {
        "conditions": ready, "lastScanResult": {"tagCount": 3, "scanTime": "2026-01-01T00:00:00Z"}})
    for name, tag in (("web", "1.2.3"), ("other", "9.9.9")):
        create(IMAGE_POLICY, name, {"imageRepositoryRef": {"name": "web"}, "policy": {"semver": {"range": "1.x"}}},
               {"conditions": ready, "latestRef": {"name": image, "tag": tag}})
    create(IMAGE_UPDATE_AUTOMATION, "fleet", {
        "interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "repo"},
        "git": {"commit": {"author": {"email": "bot@example.com"}}, "push": {"branch": "main"}},
        "update": {"path": "./deploy", "strategy": "Setters"}}, {
        "conditions": ready, "lastPushCommit": "c0ffee" * 6 + "c0ff", "lastPushTime": "2026-01-01T00:00:01Z",
        "observedPolicies": {"web": {"name": image, "tag": "1.2.3"}, "other": {"name": image, "tag": "9.9.9"}}})
    kube.create(DEPLOYMENT, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": namespace, "labels": labels}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "web", "image": f"{image}:1.2.3"}]}}}})

    res = fluxpy("trace", "deployment/web", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    blocks = parse_blocks(res.stdout)
    assert [next(iter(b)) for b in blocks] == ["Object", "Kustomization", "GitRepository", "ImagePolicy",
                                               "ImageRepository", "ImageUpdateAutomation"]
    policy, repository, automation = blocks[3:]
    assert policy["ImagePolicy"] == "web" and policy["Revision"] == f"{image}:1.2.3"  # not 'other' (9.9.9)
    assert repository["ImageRepository"] == "web" and repository["Image"] == image and repository["Revision"] == "3"
    assert automation["ImageUpdateAutomation"] == "fleet" and automation["Revision"] == "c0ffee" * 6 + "c0ff"
    assert automation["Push branch"] == "main" and automation["Status"].startswith("Last reconciled at")

    # an image no policy selected: the trace stops at the source, as flux's
    kube.patch(DEPLOYMENT, "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": f"{image}:0.1.0"}]}}}}, namespace)
    res = fluxpy("trace", "deployment/web", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0 and [next(iter(b)) for b in parse_blocks(res.stdout)][-1] == "GitRepository"
