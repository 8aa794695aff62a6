"""Shared fixtures: one real control plane per test session (etcd + kube-apiserver), a client for it, a
fresh namespace per test, and fluxpy's CRDs.

Tests that use ``control_plane``, ``kube``, ``kubeconfig``, ``namespace`` or ``flux_crds`` are marked
``integration`` automatically; deselect them with ``-m "not integration"``. Missing etcd/kube-apiserver
binaries are built from Go modules on first use (minutes, once; see controllers.localcluster.tools).
"""
from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "tests"):  # tests/servers/* (real servers for fixtures) import as servers.*
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

#: bounds on waits in fixtures (seconds)
START_TIMEOUT = 90
CRD_TIMEOUT = 60


def pytest_configure(config):
    """Keep the session's log records for the secrets scan (:mod:`servers.leaks`)."""
    from servers import leaks

    leaks.install()


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs the control plane ``integration``; run the secrets scan
    (``test_zz_secrets.py``) after everything else, whatever the order of the paths given.

    ``fixturenames`` is the transitive closure, so ``kube``, ``kubeconfig``, ``namespace`` and ``flux_crds``
    all bring ``control_plane`` in, while a test module's own fixture that happens to be called
    ``kubeconfig`` (a file on disk, say) does not.
    """
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: "test_zz_secrets.py" in item.nodeid)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    """A started ControlPlane shared by the whole session (``.kubeconfig``, ``.kubeconfig_for(user)``)."""
    from controllers.localcluster.plane import ControlPlane, ControlPlaneError

    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), log=lambda m: print(m, file=sys.stderr))
    try:
        plane.start(timeout=START_TIMEOUT)
    except ControlPlaneError as exc:
        pytest.fail(f"local control plane did not start: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane) -> Path:
    """Path of the session control plane's admin kubeconfig."""
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kube(control_plane):
    """An admin KubeClient (group system:masters) for the session control plane."""
    from controllers.runtime.kube import KubeClient

    return KubeClient.from_kubeconfig(control_plane.kubeconfig)


@pytest.fixture
def namespace(kube, request) -> str:
    """A fresh namespace for one test, deleted afterwards (it stays Terminating: no controller-manager)."""
    from controllers.api.builtin import NAMESPACE

    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-") or "test"
    name = f"{base}-{uuid.uuid4().hex[:8]}"
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(NAMESPACE, name)


@pytest.fixture(scope="session")
def flux_crds(kube):
    """Apply every fluxpy CRD and wait until each is Established and its resource is served."""
    return install_flux_crds(kube)


def install_flux_crds(kube) -> list[dict]:
    """Apply every fluxpy CRD to the cluster of ``kube``; return them once Established and served."""
    from controllers.api.builtin import CRD
    from manifestgen.crds import crd_manifests

    crds = list(crd_manifests())
    for crd in crds:
        kube.apply(crd, field_manager="fluxpy")
    deadline = time.monotonic() + CRD_TIMEOUT
    pending = {c["metadata"]["name"]: c for c in crds}
    while pending:
        for name, crd in list(pending.items()):
            if _established(kube.get(CRD, name)) and _served(kube, crd):
                del pending[name]
        if not pending:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"CRDs not established and served within {CRD_TIMEOUT}s: {', '.join(sorted(pending))}",
                        pytrace=False)
        time.sleep(0.1)
    kube.forget_discovery()
    return crds


def _established(crd: dict) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _served(kube, crd: dict) -> bool:
    """Whether discovery lists the CRD's plural in every served version."""
    from controllers.runtime.kube import NotFound

    spec = crd["spec"]
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        try:
            doc = kube.request("GET", f"/apis/{spec['group']}/{version['name']}")
        except NotFound:
            return False
        if not any(r.get("name") == spec["names"]["plural"] for r in doc.get("resources") or []):
            return False
    return True


@pytest.fixture
def start_controller(kube):
    """Run reconcilers in-process against the session control plane, watching one namespace.

    ``start_controller(reconciler, namespace, **controller_settings)`` starts a Controller (with an event
    recorder) and waits until its watches are synced; every controller started is stopped after the test.
    Set ``start_controller.events_webhook`` (e.g. the notification-controller's events address) before
    starting controllers that should post their events there, as ``--events-addr`` does.
    """
    from controllers.runtime.controller import Controller
    from controllers.runtime.events import EventRecorder
    from controllers.runtime.settings import ControllerSettings, ManagerSettings, WatchSettings

    started = []

    def start(reconciler, namespace: str, **controller):
        settings = dict(concurrent=2, min_retry_delay=0.05, max_retry_delay=2.0, interval_jitter_percentage=0,
                        requeue_dependency=0.5)
        settings.update(controller)
        manager_settings = ManagerSettings(
            component="test-controller", metrics_addr="", health_addr="",
            controller=ControllerSettings(**settings),
            watch=WatchSettings(all_namespaces=False, namespace=namespace, timeout_seconds=20))
        recorder = EventRecorder(kube, "test-controller", webhook=start.events_webhook).start()
        ctl = Controller(reconciler, kube, manager_settings, events=recorder).start()
        assert ctl.wait_synced(30), "controller watches did not sync"
        started.append((ctl, recorder))
        return ctl

    start.events_webhook = ""
    yield start
    for ctl, recorder in started:
        ctl.stop(5)
        recorder.stop(2)
