"""``fluxpy create secret helm``, ``create source helm`` and ``create source chart``: flux's flags, validation
and --export YAML, and the whole flow against a real Helm repository with the HelmRepository and HelmChart
reconcilers running in-process."""
from __future__ import annotations

import base64

import pytest
import yaml

import flux_cli.commands.create_secret_helm  # noqa: F401 - registers the commands (flux_cli.main imports them too)
import flux_cli.commands.create_source_chart  # noqa: F401
import flux_cli.commands.create_source_helm  # noqa: F401
from controllers.api.builtin import SECRET
from controllers.api.source import HELM_CHART, HELM_REPOSITORY
from controllers.source.helmchart import HelmChartReconciler
from controllers.source.helmrepo import HelmRepositoryReconciler
from controllers.source.storage import Storage
from servers.helmrepo import helm_repo_auth, make_chart  # noqa: F401
from servers.tls import new_ca


def test_secret_export_basic_auth_with_ca(fluxpy, tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    res = fluxpy("create", "secret", "helm", "repo-auth", "--username", "my-username", "--password", "my-password",
                 "--ca-crt-file", str(ca), "-n", "my-namespace", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "repo-auth", "namespace": "my-namespace"},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": "my-username", "password": "my-password", "ca.crt": ca.read_text()}}


def test_secret_export_client_certificate_wins(fluxpy, tmp_path):
    client = new_ca("client")  # self-signed
    (tmp_path / "tls.crt").write_bytes(client.cert_pem)
    (tmp_path / "tls.key").write_bytes(client.key_pem)
    res = fluxpy("create", "secret", "helm", "mtls", "-u", "ignored", "-p", "ignored", "--tls-crt-file",
                 str(tmp_path / "tls.crt"), "--tls-key-file", str(tmp_path / "tls.key"), "--export")
    assert res.exit_code == 0, res.stderr
    secret = yaml.safe_load(res.stdout)
    assert secret["type"] == "kubernetes.io/tls" and sorted(secret["stringData"]) == ["tls.crt", "tls.key"]


@pytest.mark.parametrize("args, message", [
    (["--username", "u"], "password is required"),
    (["--password", "p"], "username is required"),
    (["--tls-crt-file", "/nonexistent/tls.crt"], "failed to read cert file: open /nonexistent/tls.crt: "),
])
def test_secret_flags_are_validated(fluxpy, args, message):
    res = fluxpy("create", "secret", "helm", "s", *args, "--export")
    assert res.exit_code == 1 and res.stderr.startswith(f"✗ {message}"), res.stderr


def test_source_helm_export_matches_flux(fluxpy):
    res = fluxpy("create", "source", "helm", "podinfo", "--url", "https://stefanprodan.github.io/podinfo",
                 "--interval", "10m", "--export")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == (
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: podinfo\n"
        "  namespace: flux-system\nspec:\n  interval: 10m0s\n  url: https://stefanprodan.github.io/podinfo\n")
    res = fluxpy("create", "source", "helm", "podinfo", "--url", "oci://ghcr.io/stefanprodan/charts",
                 "--secret-ref", "docker-config", "--pass-credentials", "--fetch-timeout", "30s", "--export")
    assert yaml.safe_load(res.stdout)["spec"] == {
        "interval": "1m0s", "passCredentials": True, "secretRef": {"name": "docker-config"}, "timeout": "30s",
        "type": "oci", "url": "oci://ghcr.io/stefanprodan/charts"}


@pytest.mark.parametrize("args, message", [
    ([], "url is required"),
    (["--url", "ftp://example.com"], "url scheme 'ftp' not supported, can be: http, https and oci"),
    (["--url", "https://"], "url host is required"),
    (["--url", "oci://ghcr.io/charts", "--oci-provider", "ibm"],
     "invalid argument \"ibm\" for \"--oci-provider\" flag: source OCI provider 'ibm' is not supported, must be "
     "one of: generic, aws, azure, gcp"),
])
def test_source_helm_flags_are_validated(fluxpy, args, message):
    res = fluxpy("create", "source", "helm", "podinfo", *args, "--export")
    assert res.exit_code == 1 and res.stderr.startswith(f"✗ {message}"), res.stderr


def test_source_chart_export_matches_flux(fluxpy):
    res = fluxpy("create", "source", "chart", "podinfo", "--source", "HelmRepository/podinfo", "--chart", "podinfo",
                 "--chart-version", "6.x", "--export")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == (
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmChart\nmetadata:\n  name: podinfo\n"
        "  namespace: flux-system\nspec:\n  chart: podinfo\n  interval: 1m0s\n  reconcileStrategy: ChartVersion\n"
        "  sourceRef:\n    kind: HelmRepository\n    name: podinfo\n  version: 6.x\n")
    res = fluxpy("create", "source", "chart", "app", "--source", "gitrepository/repo", "--chart", "./charts/app",
                 "--reconcile-strategy", "Revision", "--verify-provider", "cosign", "--verify-issuer", "gh",
                 "--export")
    assert yaml.safe_load(res.stdout)["spec"] == {
        "chart": "./charts/app", "interval": "1m0s", "reconcileStrategy": "Revision",
        "sourceRef": {"kind": "GitRepository", "name": "repo"},
        "verify": {"matchOIDCIdentity": [{"issuer": "gh", "subject": ""}], "provider": "cosign"}}


@pytest.mark.parametrize("args, message", [
    (["--chart", "podinfo"], "chart source is required"),
    (["--source", "HelmRepository/podinfo"], "chart name or path is required"),
    (["--source", "OCIRepository/x", "--chart", "c"], "invalid argument \"OCIRepository/x\" for \"--source\""),
    (["--source", "HelmRepository/x", "--chart", "c", "--verify-secret-ref", "k"],
     "a verification provider must be specified when a secret is specified"),
    (["--source", "HelmRepository/x", "--chart", "c", "--reconcile-strategy", "Always"],
     "invalid argument \"Always\" for \"--reconcile-strategy\" flag: reconcile strategy 'Always' is not supported, "
     "must be one of: ChartVersion, Revision"),
    (["--source", "HelmRepository/x", "--chart", "c", "--verify-provider", "gpg"],
     "invalid argument \"gpg\" for \"--verify-provider\" flag: source OCI verify provider 'gpg' is not supported"),
])
def test_source_chart_flags_are_validated(fluxpy, args, message):
    res = fluxpy("create", "source", "chart", "podinfo", *args, "--export")
    assert res.exit_code == 1 and res.stderr.startswith(f"✗ {message}"), res.stderr


def test_create_helm_repository_and_chart_then_fetch(fluxpy, kube, kubeconfig, namespace, flux_crds,
                                                     start_controller, helm_repo_auth, tmp_path):
    helm_repo_auth.add_chart(make_chart(tmp_path / "src", "podinfo", "6.2.0"))
    storage = Storage(tmp_path / "storage", "127.0.0.1:1")
    start_controller(HelmRepositoryReconciler(storage), namespace)
    start_controller(HelmChartReconciler(storage), namespace)
    common = ["-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "60s"]

    res = fluxpy("create", "source", "helm", "podinfo", "--url", helm_repo_auth.url, "-u", helm_repo_auth.username,
                 "-p", helm_repo_auth.password, *common)
    assert res.exit_code == 0, res.stderr
    repo = kube.get(HELM_REPOSITORY, "podinfo", namespace)
    assert repo["spec"]["secretRef"] == {"name": "helm-podinfo"}
    assert res.stderr.splitlines()[-1] == f"✔ fetched revision {repo['status']['artifact']['revision']}"
    secret = kube.get(SECRET, "helm-podinfo", namespace)
    assert base64.b64decode(secret["data"]["username"]).decode() == helm_repo_auth.username
    assert helm_repo_auth.password not in res.stderr + res.stdout

    res = fluxpy("create", "source", "chart", "podinfo", "--source", "HelmRepository/podinfo", "--chart", "podinfo",
                 "--chart-version", "6.x", *common)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines()[-1] == "✔ fetched revision 6.2.0"
    assert kube.get(HELM_CHART, "podinfo", namespace)["status"]["observedChartName"] == "podinfo"

    res = fluxpy("create", "source", "chart", "podinfo", "--source", "HelmRepository/podinfo", "--chart", "podinfo",
                 "--chart-version", "7.x", *common)
    assert res.exit_code == 1
    assert "no 'podinfo' chart with version matching '7.x' found" in res.stderr
