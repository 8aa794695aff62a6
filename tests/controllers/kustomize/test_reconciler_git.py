"""End to end with the real git server and the real GitRepository reconciler: commits applied, a removed file
pruned, a broken commit leaving the previous state untouched, the fix applied, a direct edit reverted."""
from __future__ import annotations

import time

from controllers.api.builtin import CONFIGMAP
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig, find_condition
from controllers.api.source import GIT_REPOSITORY
from controllers.runtime.kube import NotFound
from controllers.runtime.protocol import request_reconcile
from servers.git import artifact_storage, git_server, git_source_controller  # noqa: F401 - fixtures
from servers.waiting import wait

from .test_reconciler import configmap, ks_controller, ks_object, ready  # noqa: F401 - fixture


def test_commits_flow_through_git_and_kustomize(kube, namespace, git_server, git_source_controller, ks_controller):
    repo = git_server.repo("fleet", {"apps/a.yaml": configmap("a", v="1"), "apps/b.yaml": configmap("b")})
    kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                 "metadata": {"name": "fleet", "namespace": namespace},
                                 "spec": {"url": git_server.url(repo), "interval": "1h", "ref": {"branch": "main"}}},
                namespace)
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("apps", namespace, source="fleet", path="./apps", targetNamespace=namespace,
                                         retryInterval="1s"), namespace)
    ks = ready(kube, "apps", namespace)
    assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{repo.head()}"

    def push(files: dict, message: str) -> str:
        commit = repo.commit(files, message)
        request_reconcile(kube, GIT_REPOSITORY, "fleet", namespace)
        return f"main@sha1:{commit}"

    def attempted(revision: str, reason: str = "ReconciliationSucceeded") -> dict:
        def done(o: dict) -> bool:
            return dig(o, "status.lastAttemptedRevision") == revision and \
                (find_condition(o, "Ready") or {}).get("reason") == reason
        return wait(kube, KUSTOMIZATION, namespace, "apps", done, f"revision {revision} attempted: {reason}")

    # a removed file is pruned
    removed = push({"apps/b.yaml": None}, "remove b")
    ks = attempted(removed)
    assert ks["status"]["lastAppliedRevision"] == removed
    try:
        kube.get(CONFIGMAP, "b", namespace)
        raise AssertionError("b was not pruned")
    except NotFound:
        pass

    # a broken commit: nothing applied, the previous state kept
    broken = push({"apps/a.yaml": configmap("a", v="2"), "apps/c.yaml": "kind: ConfigMap\nmetadata: [\n"}, "broken")
    ks = attempted(broken, "BuildFailed")
    assert "c.yaml" in find_condition(ks, "Ready")["message"]
    assert ks["status"]["lastAppliedRevision"] == removed
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "1"}

    fixed = push({"apps/c.yaml": configmap("c")}, "fix")
    ks = attempted(fixed)
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "2"}
    assert [e["id"] for e in ks["status"]["inventory"]["entries"]] == [
        f"{namespace}_a__ConfigMap", f"{namespace}_c__ConfigMap"]

    # a direct edit is reverted by the watch
    started = time.monotonic()
    kube.patch(CONFIGMAP, "a", {"data": {"v": "edited"}}, namespace)
    wait(kube, CONFIGMAP, namespace, "a", lambda c: c["data"] == {"v": "2"}, "the edit reverted", 10)
    print(f"direct edit reverted in {time.monotonic() - started:.2f}s")
