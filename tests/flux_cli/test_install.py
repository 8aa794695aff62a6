"""install / check / version / uninstall end to end, with the real controllers running as local processes.

Uninstall removes the CRDs, so this module runs on a control plane of its own, not the session's.
"""
from __future__ import annotations

import sys
import time

import pytest
import yaml

from controllers.api.builtin import CRD, DEPLOYMENT, NAMESPACE, SECRET
from controllers.api.kinds import COMPONENTS, kind_by_name

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_plane(tmp_path_factory):
    from controllers.localcluster.plane import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("install-plane"), log=lambda m: print(m, file=sys.stderr))
    plane.start(timeout=90)
    yield plane
    plane.stop()


@pytest.fixture(scope="module")
def local_controllers(own_plane, tmp_path_factory):
    """The default components as local processes (as `fluxpy dev up` runs them)."""
    from controllers.localcluster import dev

    state = tmp_path_factory.mktemp("dev-state")
    procs = dev.start_controllers(state, COMPONENTS, kubeconfig=own_plane.kubeconfig)
    yield procs
    dev.stop_controllers(state)


def test_check_pre(fluxpy, own_plane):
    res = fluxpy("check", "--pre", "--kubeconfig", str(own_plane.kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert "✔ Kubernetes 1.36" in res.stderr and "prerequisites checks passed" in res.stderr


def test_check_before_install_fails_clearly(fluxpy, own_plane):
    res = fluxpy("check", "--kubeconfig", str(own_plane.kubeconfig))
    assert res.exit_code == 1 and "is fluxpy installed?" in res.stderr


def test_install_export_is_the_manifest(fluxpy):
    res = fluxpy("install", "--export", "--components-extra", "image-reflector-controller", "-n", "gitops")
    assert res.exit_code == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == set(COMPONENTS) | {"image-reflector-controller"}
    assert all(d["metadata"]["namespace"] == "gitops" for d in docs if d["kind"] == "Deployment")
    assert {d["kind"] for d in docs} >= {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                                         "ClusterRoleBinding", "Service", "Deployment", "NetworkPolicy"}


def test_install_rejects_unknown_component(fluxpy):
    res = fluxpy("install", "--export", "--components", "source-controller,nope-controller")
    assert res.exit_code == 1 and "nope-controller" in res.stderr and "Traceback" not in res.stderr


def test_install_export_with_the_ui(fluxpy):
    res = fluxpy("install", "--export", "--components-extra=ui", "--ui-actions")
    assert res.exit_code == 0, res.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(res.stdout) if d}
    container = docs[("Deployment", "ui")]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "flux_cli", "ui"] and "--allow-actions" in container["args"]
    assert docs[("ClusterRole", "ui-impersonate-flux-system")]["rules"] == [
        {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}]
    assert ("NetworkPolicy", "allow-ui") in docs and ("Service", "ui") in docs
    read_only = fluxpy("install", "--export", "--components-extra", "ui")
    assert read_only.exit_code == 0 and "--allow-actions" not in read_only.stdout


def test_ui_actions_need_the_ui(fluxpy):
    res = fluxpy("install", "--export", "--ui-actions")
    assert res.exit_code == 1 and "needs the ui component" in res.stderr and "Traceback" not in res.stderr


def test_only_check_accepts_the_ui_addon():
    from flux_cli.app import CLIError
    from flux_cli.flags import selected_components

    assert selected_components(None, ["ui"], addons=True) == [*COMPONENTS, "ui"]
    with pytest.raises(CLIError, match="ui is not a controller"):
        selected_components(None, ["ui"])  # dev up runs controllers only


def test_install_check_version_uninstall(fluxpy, own_plane, local_controllers):
    from controllers.runtime.kube import KubeClient

    kubeconfig = str(own_plane.kubeconfig)
    kube = KubeClient.from_kubeconfig(kubeconfig)

    res = fluxpy("install", "--timeout", "90s", "--kubeconfig", kubeconfig)
    assert res.exit_code == 0, res.stderr
    assert "CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io created" in res.stdout
    for name in COMPONENTS:
        assert f"✔ {name}: leader lease held" in res.stderr
        assert kube.get(DEPLOYMENT, name, "flux-system")
    assert "install finished" in res.stderr

    again = fluxpy("install", "--timeout", "60s", "--kubeconfig", kubeconfig)
    assert again.exit_code == 0, again.stderr
    assert again.stdout == "", "a second install with the same options changes nothing"

    res = fluxpy("check", "--kubeconfig", kubeconfig)
    assert res.exit_code == 0, res.stderr
    assert "✔ gitrepositories.source.toolkit.fluxcd.io/v1" in res.stderr and "all checks passed" in res.stderr

    res = fluxpy("version", "--kubeconfig", kubeconfig, "-o", "yaml")
    assert res.exit_code == 0, res.stderr
    versions = yaml.safe_load(res.stdout)
    assert versions["fluxpy"].startswith("v") and versions["distribution"].startswith("fluxpy-v")
    assert set(COMPONENTS) <= set(versions)

    # the ui add-on: install does not wait for it (no Lease, and no kubelet here); check reports its Secrets
    started = time.monotonic()
    res = fluxpy("install", "--components-extra=ui", "--timeout", "90s", "--kubeconfig", kubeconfig)
    assert res.exit_code == 0, res.stderr
    assert time.monotonic() - started < 60
    assert "ui: not waited for" in res.stdout + res.stderr and "install finished" in res.stderr
    assert kube.get(DEPLOYMENT, "ui", "flux-system")
    res = fluxpy("check", "--components-extra=ui", "--kubeconfig", kubeconfig)
    assert res.exit_code == 1
    assert "✗ ui: deployment not ready" in res.stderr
    assert "✗ secret flux-system/ui-tls: not found" in res.stderr
    assert "✗ secret flux-system/ui-proxy-ca: not found" in res.stderr
    assert "✔ kustomize-controller: leader lease held" in res.stderr
    for name, keys in {"ui-tls": ("tls.crt", "tls.key"), "ui-proxy-ca": ("ca.crt",)}.items():
        kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": name, "namespace": "flux-system"}, "data": {k: "cGVt" for k in keys}})
    res = fluxpy("check", "--components-extra=ui", "--kubeconfig", kubeconfig)
    assert "✔ secret flux-system/ui-tls: tls.crt, tls.key" in res.stderr
    assert "✔ secret flux-system/ui-proxy-ca: ca.crt" in res.stderr

    # a custom resource with a finalizer whose controller would normally finalize it
    ks = kind_by_name("ks")
    kube.create(ks, {"apiVersion": ks.api_version, "kind": ks.kind,
                     "metadata": {"name": "apps", "namespace": "flux-system", "finalizers": ["finalizers.fluxcd.io"]},
                     "spec": {"interval": "10m", "path": "./", "prune": True,
                              "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}})

    dry = fluxpy("uninstall", "--dry-run", "--kubeconfig", kubeconfig)
    assert dry.exit_code == 0, dry.stderr
    assert "Kustomization/flux-system/apps deleted (dry run)" in dry.stdout
    assert kube.get(ks, "apps", "flux-system")  # nothing deleted
    assert kube.get(CRD, ks.crd_name)

    res = fluxpy("uninstall", "--silent", "--kubeconfig", kubeconfig)
    assert res.exit_code == 0, res.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        remaining = kube.list(CRD, label_selector="app.kubernetes.io/part-of=fluxpy")["items"]
        if not remaining:
            break
        time.sleep(0.5)
    assert remaining == [], "CRDs are gone: the finalizer did not block deletion"
    assert kube.list(DEPLOYMENT, "flux-system", label_selector="app.kubernetes.io/part-of=fluxpy")["items"] == []
    assert kube.get(NAMESPACE, "flux-system")["metadata"].get("deletionTimestamp")
