"""Golden files of what the CLI prints for every kind: ``get`` as a table, JSON and YAML, ``export``, and
``create ... --export`` for every kind that has a create command. Any change of output shows up as a diff of
tests/flux_cli/golden/ (``make golden`` regenerates them, on purpose only).

Each kind's object is the first of its documented examples (tests/controllers/api/examples), given a fixed
status, in a fixed namespace; what the apiserver makes up (uid, resourceVersion, creation time) is replaced
by placeholders before comparing.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from controllers.api.builtin import NAMESPACE
from controllers.api.kinds import KINDS
from controllers.runtime.kube import AlreadyExists
from tests.controllers.api.api_support import load_examples
from tests.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden"
NS = "golden"
WHEN = "2026-01-02T03:04:05Z"
SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


def _artifact(revision: str) -> dict:
    return {"revision": revision, "digest": DIGEST, "lastUpdateTime": WHEN, "path": "kind/golden/name/a.tar.gz",
            "url": "http://source-controller.flux-system.svc.cluster.local./kind/golden/name/a.tar.gz", "size": 1024}


#: a status as the controller would write it, by kind (the Ready condition is added to each)
STATUS = {
    "GitRepository": {"artifact": _artifact(f"master@sha1:{SHA}")},
    "OCIRepository": {"artifact": _artifact(f"latest@{DIGEST}")},
    "Bucket": {"artifact": _artifact(DIGEST)},
    "HelmRepository": {"artifact": _artifact(DIGEST)},
    "HelmChart": {"artifact": _artifact("6.5.4")},
    "ExternalArtifact": {"artifact": _artifact(f"main@sha1:{SHA}")},
    "ArtifactGenerator": {"observedSourcesDigest": DIGEST},
    "Kustomization": {"lastAppliedRevision": f"master@sha1:{SHA}", "lastAttemptedRevision": f"master@sha1:{SHA}"},
    "HelmRelease": {"lastAttemptedRevision": "6.5.4"},  # no history yet: flux falls back to it
    "ImageRepository": {"lastScanResult": {"scanTime": WHEN, "tagCount": 12, "latestTags": ["6.5.4", "6.5.3"]}},
    "ImagePolicy": {"latestRef": {"name": "ghcr.io/stefanprodan/podinfo", "tag": "6.5.4"}},
    "ImageUpdateAutomation": {"lastAutomationRunTime": WHEN, "lastPushCommit": SHA, "lastPushTime": WHEN},
    "Receiver": {"webhookPath": "/hook/" + "cd" * 32},
}

_VOLATILE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UID"),
    (re.compile(r"(resourceVersion\"?: )['\"]\d+['\"]"), r"\1'RESOURCE_VERSION'"),
    (re.compile(r"(creationTimestamp\"?: ['\"]?)[0-9TZ:-]+"), r"\1CREATED"),
]


def _stable(text: str) -> str:
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def _seed(kube, kind) -> dict:
    """The kind's first documented example in the golden namespace, with the fixed status."""
    obj = load_examples(kind)[0]
    obj["metadata"] = {**obj["metadata"], "namespace": NS}
    try:
        created = kube.create(kind, obj, NS)
    except AlreadyExists:
        created = kube.get(kind, obj["metadata"]["name"], NS)
    if kind.status_schema and kind.status_schema.get("properties"):
        status = dict(STATUS.get(kind.kind, {}))
        if "conditions" in kind.status_schema["properties"]:
            status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                     "message": f"Applied revision: master@sha1:{SHA}",
                                     "lastTransitionTime": WHEN, "observedGeneration": 1}]
        if "observedGeneration" in kind.status_schema["properties"]:
            status["observedGeneration"] = 1
        created["status"] = status
        created = kube.replace(kind, created, subresource="status")
    return created


@pytest.fixture(scope="module")
def seeded(kube, flux_crds):
    try:
        kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    except AlreadyExists:
        pass
    return {kind.kind: _seed(kube, kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_get_and_export_output(fluxpy, kubeconfig, seeded, kind):
    name = seeded[kind.kind]["metadata"]["name"]
    common = ("-n", NS, "--kubeconfig", str(kubeconfig))
    outputs = {
        "get.txt": fluxpy("get", *kind.display.split(), *common),
        "get-by-name.json": fluxpy("get", *kind.display.split(), name, "-o", "json", *common),
        "get.yaml": fluxpy("get", *kind.display.split(), "-o", "yaml", *common),
        "export.yaml": fluxpy("export", *kind.display.split(), name, *common),
    }
    if any(c.option == "show-source" for c in kind.columns):
        outputs["get-show-source.txt"] = fluxpy("get", *kind.display.split(), "--show-source", *common)
    for file, res in outputs.items():
        assert res.exit_code == 0, (file, res.stderr)
        assert_golden(GOLDEN / kind.kind.lower() / file, _stable(res.stdout))


CREATE = {
    "source-git": ["create", "source", "git", "podinfo", "--url=https://github.com/stefanprodan/podinfo",
                   "--branch=master", "--interval=1m"],
    "source-git-tag": ["create", "source", "git", "podinfo", "--url=ssh://git@github.com/org/app.git",
                       "--tag-semver=>=6.0.0", "--secret-ref=git-auth", "--ignore-paths=docs/,*.md"],
    "source-oci": ["create", "source", "oci", "podinfo", "--url=oci://ghcr.io/stefanprodan/manifests/podinfo",
                   "--tag=latest", "--interval=10m"],
    "source-bucket": ["create", "source", "bucket", "podinfo", "--bucket-name=podinfo",
                      "--endpoint=minio.minio.svc.cluster.local:9000", "--insecure", "--secret-ref=minio-auth"],
    "source-helm": ["create", "source", "helm", "podinfo", "--url=https://stefanprodan.github.io/podinfo"],
    "source-helm-oci": ["create", "source", "helm", "podinfo", "--url=oci://ghcr.io/stefanprodan/charts"],
    "source-chart": ["create", "source", "chart", "podinfo", "--source=HelmRepository/podinfo",
                     "--chart=podinfo", "--chart-version=6.x"],
    "kustomization": ["create", "kustomization", "podinfo", "--source=GitRepository/podinfo", "--path=./kustomize",
                      "--prune=true", "--interval=10m", "--target-namespace=default", "--wait"],
    "helmrelease": ["create", "helmrelease", "podinfo", "--source=HelmRepository/podinfo", "--chart=podinfo",
                    "--chart-version=>6.0.0", "--interval=10m", "--target-namespace=apps", "--values-from=Secret/vals"],
    "helmrelease-chart-ref": ["create", "hr", "podinfo", "--chart-ref=OCIRepository/podinfo.flux-system",
                              "--release-name=podinfo-dev", "--crds=CreateReplace"],
    "secret-git": ["create", "secret", "git", "git-auth", "--url=https://github.com/org/app.git",
                   "--username=git", "--password=s3cr3t"],
    "secret-helm": ["create", "secret", "helm", "helm-auth", "--username=user", "--password=s3cr3t"],
    "secret-oci": ["create", "secret", "oci", "ghcr-auth", "--url=ghcr.io", "--username=user",
                   "--password=s3cr3t"],
    "alert-provider": ["create", "alert-provider", "slack", "--type=slack", "--channel=general",
                       "--address=https://hooks.slack.com/services/x", "--secret-ref=webhook-url"],
    "alert": ["create", "alert", "flux-system", "--event-severity=info", "--provider-ref=slack",
              "--event-source=Kustomization/flux-system,GitRepository/*.apps", "--label=team=platform"],
    "receiver": ["create", "receiver", "github-receiver", "--type=github", "--event=ping", "--event=push",
                 "--secret-ref=webhook-token", "--resource=GitRepository/webapp,HelmRepository/webapp"],
    "image-repository": ["create", "image", "repository", "podinfo", "--image=ghcr.io/stefanprodan/podinfo",
                         "--interval=10m", "--secret-ref=ghcr-auth", "--cert-ref=ghcr-ca", "--scan-timeout=30s"],
    "image-policy": ["create", "image", "policy", "podinfo", "--image-ref=podinfo", "--select-numeric=asc",
                     "--filter-regex=^main-[a-f0-9]+-(?P<ts>[0-9]+)", "--filter-extract=$ts"],
    "image-policy-digest": ["create", "image", "policy", "podinfo-semver", "--image-ref=podinfo", "--interval=10m",
                            "--reflect-digest=Always", "--select-semver=5.0.x"],
    "image-update": ["create", "image", "update", "flux-system", "--git-repo-ref=flux-system",
                     "--git-repo-namespace=flux-system", "--git-repo-path=./clusters/my-cluster",
                     "--checkout-branch=main", "--push-branch=image-updates", "--author-name=flux",
                     "--author-email=flux@example.com",
                     "--commit-template={{range .Updated.Images}}{{println .}}{{end}}"],
}


@pytest.mark.parametrize("case", sorted(CREATE))
def test_create_export_output(fluxpy, case):
    res = fluxpy(*CREATE[case], "--export", "-n", NS)
    assert res.exit_code == 0, res.stderr
    assert_golden(GOLDEN / "create" / f"{case}.yaml", res.stdout)
