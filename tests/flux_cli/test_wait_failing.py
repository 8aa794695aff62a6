"""``create`` and ``reconcile`` on an object that fails: the CLI reports the controller's verdict as soon
as it is given (Ready=False for this request), says when the controller retries, and exits 1 — instead of
waiting for the whole ``--timeout`` as the Go flux CLI does. The real source-controller's GitRepository
reconciler runs in-process against the session control plane; the Git URL refuses connections."""
from __future__ import annotations

import argparse
import time

import pytest

from controllers.api.source import GIT_REPOSITORY
from controllers.localcluster.plane import free_port
from controllers.runtime.manager import Manager
from controllers.runtime.settings import ControllerSettings, LeaderElectionSettings, ManagerSettings, WatchSettings
from controllers.source.common import add_arguments
from controllers.source.git import new_reconciler
from servers.net import refused_endpoint

TIMEOUT = "120s"  # what the CLI would wait without the fix; the test asserts it ends long before


@pytest.fixture
def source_controller(kube, namespace, flux_crds, tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([f"--storage-path={tmp_path / 'data'}", f"--storage-addr=127.0.0.1:{free_port()}"])
    settings = ManagerSettings(
        component="source-controller", metrics_addr="", health_addr="",
        controller=ControllerSettings(concurrent=1),
        watch=WatchSettings(all_namespaces=False, namespace=namespace, timeout_seconds=20),
        leader_election=LeaderElectionSettings(enabled=False))
    manager = Manager(kube, settings, [new_reconciler(args)])
    manager.start()
    yield manager
    manager.stop()


def test_create_and_reconcile_end_on_the_failure(fluxpy, kubeconfig, kube, namespace, source_controller):
    url = f"http://{refused_endpoint()}/app.git"
    started = time.monotonic()
    res = fluxpy("create", "source", "git", "app", "--url", url, "--branch", "main", "-n", namespace,
                 "--timeout", TIMEOUT, "--kubeconfig", str(kubeconfig))
    took = time.monotonic() - started
    assert res.exit_code == 1, res.stderr
    assert took < 30, f"create waited {took:.0f}s for a failure the controller reported at once"
    assert "GitRepository" in res.stderr and "reconciliation failed" in res.stderr
    assert "connection refused" in res.stderr.lower() or "failed to" in res.stderr.lower(), res.stderr
    assert "source-controller keeps retrying with exponential backoff" in res.stderr
    assert "timed out" not in res.stderr and "Traceback" not in res.stderr

    started = time.monotonic()
    res = fluxpy("reconcile", "source", "git", "app", "-n", namespace, "--timeout", TIMEOUT,
                 "--kubeconfig", str(kubeconfig))
    took = time.monotonic() - started
    assert res.exit_code == 1, res.stderr
    assert took < 30, f"reconcile waited {took:.0f}s for a failure the controller reported at once"
    assert "reconciliation failed" in res.stderr and "keeps retrying" in res.stderr
    obj = kube.get(GIT_REPOSITORY, "app", namespace)
    assert obj["status"]["lastHandledReconcileAt"] == obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]


def test_retry_note_follows_the_kind():
    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.runtime.protocol import retry_note

    ks = {"metadata": {"generation": 1}, "spec": {"interval": "10m", "retryInterval": "2m"}}
    assert retry_note(KUSTOMIZATION, ks) == "the kustomize-controller retries it every 2m0s (spec.retryInterval)"
    del ks["spec"]["retryInterval"]
    assert retry_note(KUSTOMIZATION, ks) == "the kustomize-controller retries it every 10m0s (spec.interval)"
    stalled = {**ks, "status": {"conditions": [{"type": "Stalled", "status": "True"}]}}
    assert retry_note(KUSTOMIZATION, stalled) == "the kustomize-controller will not retry until the object changes"
    assert retry_note(GIT_REPOSITORY, {"metadata": {}}).startswith(
        "the source-controller keeps retrying with exponential backoff, 750ms doubling up to 15m0s")
