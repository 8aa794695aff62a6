"""kube-apiserver and etcd killed (SIGKILL) and restarted while kustomize-controller applies a new revision:
the controller must re-list, resume and converge, and its watches must come back (a drift made after the
restart is still corrected).

It runs on a control plane of its own (the session's stays untouched), with the controller as a process.
Short: 10 Kustomizations x 5 objects, each component restarted once; full: 50, each restarted 3 times.
"""
from __future__ import annotations

import time

import pytest

from controllers.api.builtin import CONFIGMAP, NAMESPACE
from controllers.localcluster.plane import ControlPlane
from controllers.runtime.kube import KubeClient
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import ArtifactSources
from servers.waiting import until

from ..conftest import install_flux_crds
from .conftest import record, scale
from .processes import ControllerProcess
from .test_controller_kills import converged, create_kustomizations, revision_files

NAMESPACE_NAME = "restarts"
CONVERGE_TIMEOUT = 120


@pytest.fixture
def own_plane(tmp_path):
    plane = ControlPlane(tmp_path / "plane").start(timeout=90)
    try:
        yield plane
    finally:
        plane.stop()


def test_controllers_converge_after_apiserver_and_etcd_restarts(own_plane, artifact_storage, tmp_path):
    kube = KubeClient.from_kubeconfig(own_plane.kubeconfig)
    install_flux_crds(kube)
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE_NAME}})
    sources = ArtifactSources(kube, artifact_storage)
    generation = 0
    revision = sources.publish(NAMESPACE_NAME, "app", revision_files(generation))["revision"]
    names = create_kustomizations(kube, NAMESPACE_NAME, scale(10, 50))
    controller = ControllerProcess("kustomize-controller", own_plane.kubeconfig, NAMESPACE_NAME,
                                   tmp_path / "kustomize.log").start()
    restarts = [component for _ in range(scale(1, 3)) for component in ("kube-apiserver", "etcd")]
    try:
        until(lambda: not converged(kube, NAMESPACE_NAME, names, revision, generation), "the first apply",
              CONVERGE_TIMEOUT)
        for component in restarts:
            generation += 1
            revision = sources.publish(NAMESPACE_NAME, "app", revision_files(generation))["revision"]
            time.sleep(0.5)  # the controller is mid-way through the new revision
            own_plane.restart(component, down=3.0, kill=True)
            began = time.monotonic()
            problems: list[str] = []

            def done():
                problems[:] = converged(kube, NAMESPACE_NAME, names, revision, generation)
                return not problems

            until(done, f"convergence after the {component} restart", CONVERGE_TIMEOUT, fail=False)
            assert not problems, f"not converged {CONVERGE_TIMEOUT}s after the {component} restart: {problems[:10]}"
            record(f"time to converge after a {component} restart", time.monotonic() - began)
            # the watches came back: a drift made now is corrected
            target = f"{names[0]}-cm0"
            kube.patch(CONFIGMAP, target, {"data": {"generation": "edited"}}, NAMESPACE_NAME)
            until(lambda: kube.get(CONFIGMAP, target, NAMESPACE_NAME)["data"]["generation"] == str(generation),
                  f"the drift after the {component} restart is corrected", timeout=60)
        assert controller.running(), "the controller exited instead of waiting for the apiserver"
        record("control plane restarts survived / tried", (len(restarts), len(restarts)))
    finally:
        controller.stop()
