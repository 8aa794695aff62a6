"""``fluxpy create kustomization``: flux's flags and validation, --export, and the whole flow against the
control plane with the real Kustomization reconciler (artifact served from a Storage on loopback)."""
from __future__ import annotations

import pytest
import yaml

import flux_cli.commands.create_kustomization  # noqa: F401 - registers the command
from controllers.api.builtin import CONFIGMAP
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import find_condition
from controllers.kustomize.reconciler import KustomizationReconciler, Options
from flux_cli.commands.create_kustomization import parse_source, safe_relative_path
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture


def test_export_kustomization(fluxpy):
    res = fluxpy("create", "kustomization", "podinfo", "--source", "GitRepository/podinfo.flux-system",
                 "--path", "kustomize/../deploy//prod/", "--prune", "--interval", "5m", "--wait",
                 "--health-check-timeout", "3m", "--depends-on", "infra,apps/db", "--service-account", "deployer",
                 "--decryption-provider", "sops", "--decryption-secret", "sops-age", "--target-namespace", "apps",
                 "--kubeconfig-secret-ref", "prod-kubeconfig", "--retry-interval", "30s", "--label", "team=a",
                 "-n", "apps", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "podinfo", "namespace": "apps", "labels": {"team": "a"}},
        "spec": {"interval": "5m0s", "path": "./deploy/prod", "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": "podinfo", "namespace": "flux-system"},
                 "targetNamespace": "apps", "dependsOn": [{"name": "infra"}, {"name": "db", "namespace": "apps"}],
                 "kubeConfig": {"secretRef": {"name": "prod-kubeconfig"}}, "wait": True, "timeout": "3m0s",
                 "serviceAccountName": "deployer",
                 "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}}, "retryInterval": "30s"},
    }
    assert res.stderr == ""


def test_export_health_checks_and_defaults(fluxpy):
    res = fluxpy("create", "ks", "app", "--source", "oci", "--health-check", "Deployment/web.apps",
                 "--health-check", "HelmRelease/db.data", "--export")
    spec = yaml.safe_load(res.stdout)["spec"]
    assert spec == {"interval": "1m0s", "path": "./", "prune": False,
                    "sourceRef": {"kind": "GitRepository", "name": "oci"},
                    "healthChecks": [{"kind": "Deployment", "name": "web", "namespace": "apps"},
                                     {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db",
                                      "namespace": "data"}],
                    "timeout": "2m0s"}
    assert yaml.safe_load(res.stdout)["metadata"]["namespace"] == "flux-system"


def test_source_and_path_flags_parse_as_flux():
    assert parse_source("podinfo") == {"kind": "GitRepository", "name": "podinfo"}
    assert parse_source("ocirepository/podinfo.flux-system") == {"kind": "OCIRepository", "name": "podinfo",
                                                                 "namespace": "flux-system"}
    assert parse_source("Bucket/b") == {"kind": "Bucket", "name": "b"}
    assert safe_relative_path("") == safe_relative_path(".") == safe_relative_path("./") == "./"
    assert safe_relative_path("../../etc/passwd") == "./etc/passwd"
    assert safe_relative_path("/abs/dir/") == "./abs/dir"


@pytest.mark.parametrize("args, message", [
    ([], "source is required"),
    (["--source", "HelmRepository/x"], "source kind 'HelmRepository' is not supported, must be one of: "
                                       "OCIRepository, GitRepository, Bucket"),
    (["--source", "GitRepository"], "no kind specified for source 'GitRepository'"),
    (["--source", "Bucket/"], "no name given for source of kind 'Bucket'"),
    (["--source", "x", "--health-check", "Pod/web.apps"],
     "invalid health check kind 'Pod' can be HelmRelease, Deployment, DaemonSet or StatefulSet"),
    (["--source", "x", "--health-check", "Deployment/web"],
     "invalid health check 'Deployment/web' must be in the format 'kind/name.namespace'"),
    (["--source", "x", "--decryption-provider", "vault"],
     "decryption provider 'vault' is not supported, must be one of: sops"),
    (["--source", "x", "--interval", "often"], "often"),
])
def test_flag_errors(fluxpy, args, message):
    res = fluxpy("create", "kustomization", "app", *args, "--export")
    assert res.exit_code == 1 and message in res.stderr, res.stderr


def test_create_waits_for_the_applied_revision(fluxpy, kube, kubeconfig, namespace, flux_crds, start_controller,
                                               artifact_sources):
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
    artifact = artifact_sources.publish(namespace, "app", {"deploy/cm.yaml": manifest})
    reconciler = KustomizationReconciler(Options())
    start_controller(reconciler, namespace)
    try:
        res = fluxpy("create", "kustomization", "app", "--source", "app", "--path", "./deploy", "--prune",
                     "--target-namespace", namespace, "-n", namespace, "--kubeconfig", str(kubeconfig),
                     "--timeout", "60s")
        assert res.exit_code == 0, res.stderr
        assert res.stderr.splitlines() == [
            "✚ generating Kustomization", f"► applying Kustomization '{namespace}/app'",
            "✔ Kustomization created",
            "◎ waiting for Kustomization reconciliation", "✔ Kustomization reconciliation completed",
            f"✔ applied revision {artifact['revision']}"]
        assert kube.get(CONFIGMAP, "settings", namespace)["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] \
            == "app"

        # an update to a path that does not exist: the CLI ends on the controller's verdict and its retry period
        res = fluxpy("create", "kustomization", "app", "--source", "app", "--path", "./nowhere", "-n", namespace,
                     "--kubeconfig", str(kubeconfig), "--timeout", "30s")
        assert res.exit_code == 1 and "timed out" not in res.stderr, res.stderr
        assert "nowhere: no such file or directory; the kustomize-controller retries it every 1m0s (spec.interval)" \
            in res.stderr
        assert "✔ Kustomization updated" in res.stderr
        ks = kube.get(KUSTOMIZATION, "app", namespace)
        assert ks["spec"]["path"] == "./nowhere"
        assert find_condition(ks, "Ready")["message"].startswith("kustomization path not found")
    finally:
        reconciler.stop()
