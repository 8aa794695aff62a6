"""The one reference index the controllers' watches use (kustomize, HelmChart, ArtifactGenerator)."""
from __future__ import annotations

import threading

from controllers.lib.index import ReferenceIndex

GIT = ("GitRepository", "flux-system", "podinfo")
OCI = ("OCIRepository", "flux-system", "podinfo")


def test_keys_follow_the_latest_references():
    index = ReferenceIndex()
    index.update("apps/b", {GIT})
    index.update("apps/a", {GIT, OCI}, note="main@sha1:1")
    assert index.keys_for(GIT) == ["apps/a", "apps/b"] and index.keys_for(OCI) == ["apps/a"]
    assert index.note("apps/a") == "main@sha1:1" and "apps/a" in index

    index.update("apps/a", {OCI}, note="main@sha1:2")  # the spec no longer names the Git source
    assert index.keys_for(GIT) == ["apps/b"] and index.note("apps/a") == "main@sha1:2"

    index.remove("apps/a")
    assert index.keys_for(OCI) == [] and "apps/a" not in index and index.note("apps/a") is None
    assert index.keys_for(("Bucket", "x", "y")) == []


def test_concurrent_updates_and_lookups_agree():
    index = ReferenceIndex()

    def writer(n: int) -> None:
        for i in range(200):
            index.update(f"ns/{n}-{i}", {GIT} if i % 2 else {OCI})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        index.keys_for(GIT)
    for t in threads:
        t.join()
    assert len(index.keys_for(GIT)) == 400 and len(index.keys_for(OCI)) == 400
