"""The ArtifactGenerator reconciler against the real control plane.

Sources are a GitRepository whose artifact the test stores (and serves) through Storage/ArtifactServer, and
a Bucket reconciled by the real BucketReconciler from a versitygw bucket. Covers composition and
decomposition, ExternalArtifact objects (labels, sourceRef, artifact, Ready), revisions, no drift, new source
revisions reaching only the affected artifacts, garbage collection, validation and source failures, unsafe
source archives, the disabled annotation and deletion.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import time
from pathlib import Path

import pytest

from controllers.api.builtin import EVENT
from controllers.api.objects import dig, find_condition
from controllers.api.source import ARTIFACT_GENERATOR, BUCKET, EXTERNAL_ARTIFACT, GIT_REPOSITORY
from controllers.runtime.kube import NotFound
from controllers.source.bucket import BucketReconciler
from controllers.source.generator import GENERATOR_LABEL, ArtifactGeneratorReconciler
from controllers.source.storage import Storage
from servers.git import artifact_storage  # noqa: F401
from servers.objects import apply_secret, apply_source
from servers.s3 import s3_server  # noqa: F401
from servers.waiting import Waits, ready_with, until

TIMEOUT = 30.0
MANAGER = "fluxpy-tests"
GENERATORS = Waits(ARTIFACT_GENERATOR, TIMEOUT)
wait_generator, request_reconcile = GENERATORS.wait, GENERATORS.request_reconcile


@pytest.fixture
def storage(artifact_storage):
    return artifact_storage


@pytest.fixture
def generator(start_controller, storage, namespace, flux_crds):
    reconciler = ArtifactGeneratorReconciler(storage)
    start_controller(reconciler, namespace)
    return reconciler


def git_source(kube, storage: Storage, tmp_path: Path, namespace: str, name: str, files: dict[str, str],
               revision: str = "") -> dict:
    """A GitRepository whose status.artifact is a tarball of ``files`` in ``storage``."""
    content = tmp_path / f"git-{name}-{time.monotonic_ns()}"
    for rel, text in files.items():
        (content / rel).parent.mkdir(parents=True, exist_ok=True)
        (content / rel).write_text(text)
    sha = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
    artifact = storage.archive(storage.artifact_path("GitRepository", namespace, name, f"{sha}.tar.gz"), content)
    return store_source_status(kube, namespace, name, {**artifact, "revision": revision or f"main@sha1:{sha}"})


def store_source_status(kube, namespace: str, name: str, artifact: dict) -> dict:
    apply_source(kube, GIT_REPOSITORY, namespace, name, {"url": "https://example.com/repo.git", "interval": "1h"})
    return kube.patch(GIT_REPOSITORY, name, {"status": {"artifact": artifact}}, namespace, subresource="status")


def apply_generator(kube, namespace: str, name: str, sources: list[dict], artifacts: list[dict],
                    annotations: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, **({"annotations": annotations} if annotations else {})}
    return kube.apply({"apiVersion": ARTIFACT_GENERATOR.api_version, "kind": "ArtifactGenerator", "metadata": meta,
                       "spec": {"sources": sources, "artifacts": artifacts}}, field_manager=MANAGER)


def files_of(storage: Storage, artifact: dict) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(storage.local_path(artifact["path"]).read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}


def events(kube, namespace: str, reason: str) -> list[str]:
    return [e["message"] for e in kube.list(EVENT, namespace)["items"] if e["reason"] == reason]


MONOREPO = {
    "deploy/frontend/app.yaml": "kind: Deployment\nmetadata: {name: frontend}\n",
    "deploy/backend/app.yaml": "kind: Deployment\nmetadata: {name: backend}\n",
    "deploy/backend/sub/cm.yaml": "kind: ConfigMap\n",
    "deploy/backend/logo.png": "not an image\n",
    "README.md": "monorepo\n",
}
DECOMPOSE = [
    {"name": "frontend", "originRevision": "@repo", "copy": [{"from": "@repo/deploy/frontend/**", "to": "@artifact/"}]},
    {"name": "backend", "originRevision": "@repo", "copy": [{"from": "@repo/deploy/backend/**", "to": "@artifact/"}]},
]


def test_decomposition_external_artifacts_and_no_drift(kube, namespace, storage, generator, tmp_path):
    git = git_source(kube, storage, tmp_path, namespace, "mono", MONOREPO)
    generated = apply_generator(kube, namespace, "split", [{"alias": "repo", "kind": "GitRepository", "name": "mono"}],
                                DECOMPOSE)
    obj = wait_generator(kube, namespace, "split", ready_with(), "generator Ready")
    assert find_condition(obj, "Ready")["message"] == "reconciliation succeeded, generated 2 artifact(s)"
    assert meta_finalizers(obj) == ["source.extensions.fluxcd.io/finalizer"]

    eas = {ea["metadata"]["name"]: ea for ea in kube.list(EXTERNAL_ARTIFACT, namespace)["items"]}
    assert set(eas) == {"frontend", "backend"}
    backend = eas["backend"]
    assert backend["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "source-watcher",
                                             GENERATOR_LABEL: generated["metadata"]["uid"]}
    assert backend["spec"]["sourceRef"] == {"apiVersion": "source.extensions.fluxcd.io/v1beta1",
                                            "kind": "ArtifactGenerator", "name": "split", "namespace": namespace}
    artifact = backend["status"]["artifact"]
    assert artifact["revision"] == f"latest@{artifact['digest']}"
    assert artifact["metadata"] == {"org.opencontainers.image.revision": git["status"]["artifact"]["revision"]}
    assert artifact["path"].startswith(f"externalartifact/{namespace}/backend/") and storage.has(artifact)
    assert artifact["url"] == storage.url_for(artifact["path"])
    assert files_of(storage, artifact) == {"app.yaml": MONOREPO["deploy/backend/app.yaml"],
                                           "sub/cm.yaml": "kind: ConfigMap\n"}  # *.png: Flux's default exclusion
    assert find_condition(backend, "Ready")["message"] == "Artifact is ready"

    inventory = {i["name"]: i for i in obj["status"]["inventory"]}
    assert inventory["backend"] == {"name": "backend", "namespace": namespace, "digest": artifact["digest"],
                                    "filename": artifact["path"].rsplit("/", 1)[1]}
    assert obj["status"]["observedSourcesDigest"].startswith("sha256:")
    reconciled = f"ExternalArtifact/{namespace}/backend reconciled with revision {artifact['revision']}"
    until(lambda: reconciled in events(kube, namespace, "Ready"), f"the event {reconciled!r}", TIMEOUT)

    token = request_reconcile(kube, namespace, "split")
    again = wait_generator(kube, namespace, "split", lambda o: dig(o, "status.lastHandledReconcileAt") == token,
                           "reconcile handled")
    assert again["status"]["inventory"] == obj["status"]["inventory"]
    assert kube.get(EXTERNAL_ARTIFACT, "backend", namespace)["status"]["artifact"] == artifact
    until(lambda: "No drift detected, 2 artifact(s) up to date" in events(kube, namespace, "Ready"),
          "the no-drift event", TIMEOUT)

    # a new source revision that changes only the frontend files: the backend artifact keeps its revision
    changed = {**MONOREPO, "deploy/frontend/app.yaml": "kind: Deployment\nmetadata: {name: frontend-v2}\n"}
    git_source(kube, storage, tmp_path, namespace, "mono", changed)
    frontend_before = eas["frontend"]["status"]["artifact"]["revision"]

    def frontend_changed():
        ea = kube.get(EXTERNAL_ARTIFACT, "frontend", namespace)
        return dig(ea, "status.artifact.revision") != frontend_before
    until(frontend_changed, "frontend regenerated after the source changed", TIMEOUT)
    assert kube.get(EXTERNAL_ARTIFACT, "backend", namespace)["status"]["artifact"]["revision"] == artifact["revision"]

    # dropping an output artifact deletes its ExternalArtifact and files
    apply_generator(kube, namespace, "split", [{"alias": "repo", "kind": "GitRepository", "name": "mono"}],
                    DECOMPOSE[:1])
    obj = wait_generator(kube, namespace, "split", ready_with(), "generator Ready after removal")
    assert [i["name"] for i in obj["status"]["inventory"]] == ["frontend"]
    with pytest.raises(NotFound):
        kube.get(EXTERNAL_ARTIFACT, "backend", namespace)
    assert not storage.local_path(f"externalartifact/{namespace}/backend").exists()


def meta_finalizers(obj: dict) -> list[str]:
    return obj["metadata"].get("finalizers") or []


def test_composition_from_git_and_a_real_bucket(kube, namespace, storage, generator, start_controller, s3_server,
                                                tmp_path):
    start_controller(BucketReconciler(storage), namespace)
    bucket = s3_server.make_bucket({"envs/prod/values.yaml": "replicas: 3\nimage:\n  tag: prod\n",
                                    "envs/dev/values.yaml": "replicas: 1\n"})
    apply_secret(kube, namespace, "s3", s3_server.secret_data())
    apply_source(kube, BUCKET, namespace, "configs", {"bucketName": bucket, "endpoint": s3_server.endpoint,
                                                      "insecure": True, "interval": "1h", "secretRef": {"name": "s3"}})
    git_source(kube, storage, tmp_path, namespace, "chart", {
        "podinfo/Chart.yaml": "name: podinfo\nversion: 6.0.0\n",
        "podinfo/values.yaml": "replicas: 1\nimage:\n  repository: podinfo\n  tag: latest\n",
    }, revision="6.0.0@sha1:" + "a" * 40)
    apply_generator(kube, namespace, "app", [
        {"alias": "chart", "kind": "GitRepository", "name": "chart"},
        {"alias": "config", "kind": "Bucket", "name": "configs"},
    ], [{"name": "podinfo-prod", "revision": "@chart", "copy": [
        {"from": "@chart/", "to": "@artifact/"},
        {"from": "@config/envs/prod/values.yaml", "to": "@artifact/podinfo/values.yaml", "strategy": "Merge"},
    ]}])
    wait_generator(kube, namespace, "app", ready_with(), "generator Ready")
    ea = kube.get(EXTERNAL_ARTIFACT, "podinfo-prod", namespace)
    artifact = ea["status"]["artifact"]
    assert artifact["revision"] == "6.0.0@sha1:" + "a" * 40
    import yaml
    files = files_of(storage, artifact)
    assert set(files) == {"podinfo/Chart.yaml", "podinfo/values.yaml"}
    assert yaml.safe_load(files["podinfo/values.yaml"]) == {"replicas": 3,
                                                            "image": {"repository": "podinfo", "tag": "prod"}}

    # a change in the bucket reaches the generated artifact through the Bucket's new revision
    s3_server.put(bucket, {"envs/prod/values.yaml": "replicas: 5\n"})
    kube.patch(BUCKET, "configs", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "1"}}}, namespace)

    def merged_again():
        got = kube.get(EXTERNAL_ARTIFACT, "podinfo-prod", namespace)["status"]["artifact"]
        return got["digest"] != artifact["digest"] and storage.has(got) and \
            yaml.safe_load(files_of(storage, got)["podinfo/values.yaml"])["replicas"] == 5
    until(merged_again, "artifact regenerated after the bucket changed", TIMEOUT)


@pytest.mark.parametrize("case", ["duplicate-alias", "unknown-revision-alias", "duplicate-artifact"])
def test_invalid_spec_stalls(kube, namespace, storage, generator, tmp_path, case):
    git_source(kube, storage, tmp_path, namespace, "repo", {"a.yaml": "a: 1\n"})
    sources = [{"alias": "repo", "kind": "GitRepository", "name": "repo"}]
    artifacts = [{"name": "one", "copy": [{"from": "@repo/a.yaml", "to": "@artifact/"}]}]
    message = {"duplicate-alias": "duplicate source alias 'repo' found",
               "unknown-revision-alias": "artifact one revision source alias 'nope' not found",
               "duplicate-artifact": "duplicate artifact name 'one' found"}[case]
    if case == "duplicate-alias":
        sources = sources * 2
    elif case == "unknown-revision-alias":
        artifacts[0]["revision"] = "@nope"
    else:
        artifacts = artifacts * 2
    apply_generator(kube, namespace, "bad", sources, artifacts)
    obj = wait_generator(kube, namespace, "bad", ready_with("False"), "generator stalled")
    assert find_condition(obj, "Ready")["message"] == message
    assert find_condition(obj, "Stalled")["reason"] == "ValidationFailed"


def test_source_and_build_failures(kube, namespace, storage, generator, tmp_path):
    apply_generator(kube, namespace, "g", [{"alias": "repo", "kind": "GitRepository", "name": "missing"}],
                    [{"name": "out", "copy": [{"from": "@repo/a.yaml", "to": "@artifact/"}]}])
    obj = wait_generator(kube, namespace, "g", ready_with("False", "SourceFetchFailed"), "source missing")
    assert find_condition(obj, "Ready")["message"] == \
        'get sources failed: gitrepositories.source.toolkit.fluxcd.io "missing" not found'

    kube.apply({"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                "metadata": {"name": "missing", "namespace": namespace},
                "spec": {"url": "https://example.com/repo.git", "interval": "1h"}}, field_manager=MANAGER)
    wait_generator(kube, namespace, "g", lambda o: "is not ready" in (find_condition(o, "Ready") or {}).get(
        "message", ""), "source not ready")
    assert find_condition(kube.get(ARTIFACT_GENERATOR, "g", namespace), "Ready")["message"] == \
        f"get sources failed: source 'GitRepository/{namespace}/missing' is not ready"

    git_source(kube, storage, tmp_path, namespace, "missing", {"b.yaml": "b: 1\n"})
    obj = wait_generator(kube, namespace, "g", ready_with("False", "BuildFailed"), "build failing")
    assert find_condition(obj, "Ready")["message"] == (
        "out build failed: failed to apply copy operations: failed to apply copy operation from '@repo/a.yaml' "
        "to '@artifact/': source 'a.yaml' does not exist")


def test_unsafe_source_archive_is_rejected(kube, namespace, storage, generator):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.yaml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x: 1"[:3]))
    artifact = storage.store_bytes(storage.artifact_path("GitRepository", namespace, "evil", "evil.tar.gz"),
                                   data.getvalue())
    store_source_status(kube, namespace, "evil", {**artifact, "revision": "main@sha1:" + "b" * 40})
    apply_generator(kube, namespace, "g", [{"alias": "repo", "kind": "GitRepository", "name": "evil"}],
                    [{"name": "out", "copy": [{"from": "@repo/**", "to": "@artifact/"}]}])
    obj = wait_generator(kube, namespace, "g", ready_with("False", "SourceFetchFailed"), "unsafe archive")
    message = find_condition(obj, "Ready")["message"]
    assert message.startswith("fetch sources failed: failed to extract archive (check whether file size exceeds "
                              "max download size): ") and "../escape.yaml" in message
    assert not (storage.base_dir.parent / "escape.yaml").exists()


def test_disabled_generator_is_not_reconciled(kube, namespace, storage, generator, tmp_path):
    git_source(kube, storage, tmp_path, namespace, "repo", {"a.yaml": "a: 1\n"})
    apply_generator(kube, namespace, "off", [{"alias": "repo", "kind": "GitRepository", "name": "repo"}],
                    [{"name": "out", "copy": [{"from": "@repo/a.yaml", "to": "@artifact/"}]}],
                    annotations={"source.extensions.fluxcd.io/reconcile": "Disabled"})
    wait_generator(kube, namespace, "off", lambda o: meta_finalizers(o), "finalizer added")
    time.sleep(1.0)
    obj = kube.get(ARTIFACT_GENERATOR, "off", namespace)
    assert not dig(obj, "status.inventory") and not kube.list(EXTERNAL_ARTIFACT, namespace)["items"]


def test_deletion_removes_external_artifacts(kube, namespace, storage, generator, tmp_path):
    git_source(kube, storage, tmp_path, namespace, "mono", MONOREPO)
    apply_generator(kube, namespace, "split", [{"alias": "repo", "kind": "GitRepository", "name": "mono"}], DECOMPOSE)
    wait_generator(kube, namespace, "split", ready_with(), "generator Ready")
    assert len(kube.list(EXTERNAL_ARTIFACT, namespace)["items"]) == 2
    kube.delete(ARTIFACT_GENERATOR, "split", namespace)
    GENERATORS.gone(kube, namespace, "split")
    assert kube.list(EXTERNAL_ARTIFACT, namespace)["items"] == []
    assert not storage.local_path(f"externalartifact/{namespace}").exists() or \
        not any(storage.local_path(f"externalartifact/{namespace}").iterdir())
