"""``fluxpy create secret oci`` and ``fluxpy create source oci``: flux's flags, validation and --export YAML,
and the whole flow against a real registry with the OCIRepository reconciler running in-process."""
from __future__ import annotations

import base64
import json

import pytest
import yaml

import flux_cli.commands.create_secret_oci  # noqa: F401 - registers the commands (flux_cli.main imports them too)
import flux_cli.commands.create_source_oci  # noqa: F401
from controllers.api.builtin import SECRET
from controllers.api.source import OCI_REPOSITORY
from controllers.source.oci import OCIRepositoryReconciler
from controllers.source.storage import Storage
from servers.registry import registry_htpasswd  # noqa: F401


def test_secret_export_is_a_dockerconfigjson_secret(fluxpy):
    res = fluxpy("create", "secret", "oci", "ghcr", "--url", "ghcr.io", "--username", "stefanprodan",
                 "--password", "password", "-n", "my-namespace", "--export")
    assert res.exit_code == 0, res.stderr
    secret = yaml.safe_load(res.stdout)
    assert secret == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ghcr", "namespace": "my-namespace"},
                      "stringData": {".dockerconfigjson": secret["stringData"][".dockerconfigjson"]},
                      "type": "kubernetes.io/dockerconfigjson"}
    assert secret["stringData"][".dockerconfigjson"] == (
        '{\n  "auths": {\n    "ghcr.io": {\n      "username": "stefanprodan",\n      "password": "password",\n'
        '      "auth": "c3RlZmFucHJvZGFuOnBhc3N3b3Jk"\n    }\n  }\n}')


@pytest.mark.parametrize("args, message", [
    (["--username", "u", "--password", "p"], "--url is required"),
    (["--url", "ghcr.io", "--password", "p"], "--username is required"),
    (["--url", "ghcr.io", "--username", "u"], "--password is required"),
    (["--url", "ghcr.io/UPPER", "--username", "u", "--password", "p"], "error parsing url: 'repository can only"),
])
def test_secret_flags_are_validated(fluxpy, args, message):
    res = fluxpy("create", "secret", "oci", "s", *args, "--export")
    assert res.exit_code == 1 and res.stderr.startswith(f"✗ {message}"), res.stderr


def test_source_export_matches_flux(fluxpy):
    res = fluxpy("create", "source", "oci", "podinfo", "--url", "oci://ghcr.io/stefanprodan/manifests/podinfo",
                 "--tag", "6.3.5", "--interval", "10m", "--secret-ref", "creds", "--export")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == (
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: podinfo\n"
        "  namespace: flux-system\nspec:\n  interval: 10m0s\n  provider: generic\n  ref:\n    tag: 6.3.5\n"
        "  secretRef:\n    name: creds\n  url: oci://ghcr.io/stefanprodan/manifests/podinfo\n")
    res = fluxpy("create", "source", "oci", "podinfo", "--url", "oci://ghcr.io/org/app", "--tag-semver", ">=1.0.0",
                 "--digest", "sha256:" + "a" * 64, "--insecure", "--ignore-paths", "docs/,*.md",
                 "--fetch-timeout", "30s", "--cert-ref", "ca", "--service-account", "puller",
                 "--verify-provider", "cosign", "--verify-issuer", "github", "--export")
    spec = yaml.safe_load(res.stdout)["spec"]
    assert spec == {"certSecretRef": {"name": "ca"}, "ignore": "docs/\n*.md", "insecure": True, "interval": "1m0s",
                    "provider": "generic", "ref": {"digest": "sha256:" + "a" * 64, "semver": ">=1.0.0"},
                    "serviceAccountName": "puller", "timeout": "30s", "url": "oci://ghcr.io/org/app",
                    "verify": {"matchOIDCIdentity": [{"issuer": "github", "subject": ""}], "provider": "cosign"}}


@pytest.mark.parametrize("args, message", [
    ([], "url is required"),
    (["--url", "oci://ghcr.io/a"], "--tag, --tag-semver or --digest is required"),
    (["--url", "oci://ghcr.io/a", "--tag", "1", "--verify-secret-ref", "pub"],
     "a verification provider must be specified when a secret is specified"),
    (["--url", "oci://ghcr.io/a", "--tag", "1", "--verify-subject", "dev"],
     "a verification provider must be specified when OIDC issuer/subject is specified"),
    (["--url", "oci://ghcr.io/a", "--tag", "1", "--provider", "ibm"],
     "invalid argument \"ibm\" for \"--provider\" flag: source OCI provider 'ibm' is not supported"),
])
def test_source_flags_are_validated(fluxpy, args, message):
    res = fluxpy("create", "source", "oci", "podinfo", *args, "--export")
    assert res.exit_code == 1 and res.stderr.startswith(f"✗ {message}"), res.stderr


def test_create_secret_and_source_then_fetch(fluxpy, kube, kubeconfig, namespace, flux_crds, start_controller,
                                             registry_htpasswd, tmp_path):
    server = registry_htpasswd
    repository = server.new_repository()
    digest = server.push(repository, "v1", {"app.yaml": "kind: ConfigMap\n"})
    start_controller(OCIRepositoryReconciler(Storage(tmp_path / "storage", "127.0.0.1:1")), namespace)
    common = ["-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "60s"]

    res = fluxpy("create", "secret", "oci", "regcred", "--url", server.host, "-u", server.username,
                 "-p", server.password, *common)
    assert res.exit_code == 0, res.stderr
    assert res.stderr == f"► oci secret 'regcred' created in '{namespace}' namespace\n"
    secret = kube.get(SECRET, "regcred", namespace)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"][server.host]["username"] == server.username

    res = fluxpy("create", "source", "oci", "app", "--url", server.url(repository), "--tag", "v1",
                 "--secret-ref", "regcred", *common)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines()[-1] == f"✔ fetched revision v1@{digest}"
    obj = kube.get(OCI_REPOSITORY, "app", namespace)
    assert obj["spec"]["secretRef"] == {"name": "regcred"} and obj["status"]["artifact"]["revision"] == f"v1@{digest}"

    # a failure the controller retries: the CLI ends on its verdict for this generation, and says it retries
    res = fluxpy("create", "source", "oci", "app", "--url", server.url(repository), "--tag", "v2",
                 "--secret-ref", "regcred", *common[:-1], "30s")
    assert res.exit_code == 1 and "timed out" not in res.stderr, res.stderr
    assert "MANIFEST_UNKNOWN" in res.stderr and "source-controller keeps retrying" in res.stderr
    ready = next(c for c in kube.get(OCI_REPOSITORY, "app", namespace)["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "OCIArtifactPullFailed" and "MANIFEST_UNKNOWN" in ready["message"]
    assert server.password not in ready["message"]
