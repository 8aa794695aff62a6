"""Flux sources whose artifacts are served from a real Storage on loopback, without a source-controller.

For tests (and benchmarks) of artifact consumers (Kustomizations): :class:`ArtifactSources` packs a dict of
files as a source-controller does (:meth:`controllers.source.storage.Storage.archive`), stores it, and writes
the source object (GitRepository by default) with ``status.artifact`` pointing at the ArtifactServer::

    sources = ArtifactSources(kube, storage)
    sources.publish(namespace, "app", {"deploy/cm.yaml": "..."})          # revision main@sha1:<content hash>
    sources.publish(namespace, "app", {...}, revision="main@sha1:abc")    # a new commit

Fixture ``artifact_sources`` (uses ``artifact_storage`` from :mod:`servers.git`).
"""
from __future__ import annotations

import hashlib
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from controllers.api.objects import dig
from controllers.api.source import BUCKET, EXTERNAL_ARTIFACT, GIT_REPOSITORY, OCI_REPOSITORY
from controllers.runtime.conditions import now
from controllers.runtime.kube import NotFound

_SPECS = {
    GIT_REPOSITORY.kind: lambda name: {"url": f"https://git.example.invalid/{name}.git", "interval": "1h"},
    OCI_REPOSITORY.kind: lambda name: {"url": f"oci://registry.example.invalid/{name}", "interval": "1h"},
    BUCKET.kind: lambda name: {"bucketName": name, "endpoint": "s3.example.invalid", "interval": "1h"},
    EXTERNAL_ARTIFACT.kind: lambda name: {},
}
_KINDS = {k.kind: k for k in (GIT_REPOSITORY, OCI_REPOSITORY, BUCKET, EXTERNAL_ARTIFACT)}


class ArtifactSources:
    """Publishes artifacts of file trees as the status of source objects (see the module docstring)."""

    def __init__(self, kube, storage):
        self.kube, self.storage = kube, storage

    def publish(self, namespace: str, name: str, files: dict[str, str], *, revision: str | None = None,
                kind: str = GIT_REPOSITORY.kind, origin_revision: str | None = None,
                edit: Callable[[dict], None] | None = None) -> dict:
        """Store ``files`` (dedented) as the source's new artifact; return the artifact. ``edit(artifact)``,
        when given, changes the artifact before it is announced (e.g. a wrong digest)."""
        with tempfile.TemporaryDirectory(prefix="source-") as tmp:
            for rel, content in files.items():
                path = Path(tmp) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(textwrap.dedent(content).lstrip("\n"))
            digest = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
            artifact = self.storage.archive(
                self.storage.artifact_path(kind, namespace, name, f"{digest}.tar.gz"), tmp)
        if edit is not None:
            edit(artifact)
        return self._announce(namespace, name, kind, artifact, revision or f"main@sha1:{digest}", origin_revision)

    def publish_bytes(self, namespace: str, name: str, data: bytes, *, revision: str | None = None,
                      kind: str = GIT_REPOSITORY.kind) -> dict:
        """Store ``data`` as it is (e.g. a hand-made, hostile tarball) as the source's new artifact."""
        digest = hashlib.sha1(data).hexdigest()
        artifact = self.storage.store_bytes(self.storage.artifact_path(kind, namespace, name, f"{digest}.tar.gz"), data)
        return self._announce(namespace, name, kind, artifact, revision or f"main@sha1:{digest}", None)

    def _announce(self, namespace: str, name: str, kind: str, artifact: dict, revision: str,
                  origin_revision: str | None) -> dict:
        """Write ``artifact`` (at ``revision``) as the source's status, as a source-controller does."""
        artifact["revision"] = revision
        if origin_revision:
            artifact["metadata"] = {"org.opencontainers.image.revision": origin_revision}
        self.ensure(namespace, name, kind)
        self.set_status(namespace, name, kind, {
            "artifact": artifact,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                            "message": f"stored artifact for revision '{artifact['revision']}'",
                            "lastTransitionTime": now(), "observedGeneration": 1}],
            "observedGeneration": 1,
        })
        return artifact

    def ensure(self, namespace: str, name: str, kind: str = GIT_REPOSITORY.kind) -> dict:
        """The source object (created without status when missing)."""
        rt = _KINDS[kind]
        try:
            return self.kube.get(rt, name, namespace)
        except NotFound:
            return self.kube.create(rt, {"apiVersion": rt.api_version, "kind": rt.kind,
                                         "metadata": {"name": name, "namespace": namespace},
                                         "spec": _SPECS[kind](name)}, namespace)

    def set_status(self, namespace: str, name: str, kind: str, status: dict) -> None:
        rt = _KINDS[kind]
        self.kube.patch(rt, name, {"status": status}, namespace, subresource="status")

    def revision(self, namespace: str, name: str, kind: str = GIT_REPOSITORY.kind) -> str | None:
        return dig(self.kube.get(_KINDS[kind], name, namespace), "status.artifact.revision")


@pytest.fixture
def artifact_sources(kube, flux_crds, artifact_storage) -> ArtifactSources:
    """:class:`ArtifactSources` over the ``artifact_storage`` of :mod:`servers.git`."""
    return ArtifactSources(kube, artifact_storage)


__all__ = ["ArtifactSources", "artifact_sources"]
