"""``fluxpy create source bucket`` and ``fluxpy create secret tls``: flags, --export, and the whole flow against
the control plane with the real Bucket reconciler and a versitygw bucket."""
from __future__ import annotations

import base64

import pytest
import yaml

import flux_cli.commands.create_secret_tls  # noqa: F401 - registers the command
import flux_cli.commands.create_source_bucket  # noqa: F401 - registers the command
from controllers.api.builtin import SECRET
from controllers.api.objects import find_condition
from controllers.api.source import BUCKET
from controllers.source.bucket import BucketReconciler, index_digest
from controllers.source.storage import Storage
from servers.s3 import s3_server  # noqa: F401
from servers.tls import issue, new_ca, new_key_pem


def test_export_bucket(fluxpy):
    res = fluxpy("create", "source", "bucket", "podinfo", "--bucket-name", "podinfo", "--endpoint",
                 "minio.minio.svc:9000", "--insecure", "--region", "eu-west-1", "--ignore-paths", "a/,*.md",
                 "--access-key", "ak", "--secret-key", "sk", "--interval", "10m", "--fetch-timeout", "2m",
                 "--label", "team=a", "-n", "apps", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket",
        "metadata": {"name": "podinfo", "namespace": "apps", "labels": {"team": "a"}},
        "spec": {"bucketName": "podinfo", "endpoint": "minio.minio.svc:9000", "insecure": True, "interval": "10m0s",
                 "provider": "generic", "region": "eu-west-1", "ignore": "a/\n*.md", "timeout": "2m0s"},
    }
    assert "sk" not in res.stdout.split()


@pytest.mark.parametrize("args, message", [
    (["--endpoint", "e:1"], "bucket-name is required"),
    (["--bucket-name", "b"], "endpoint is required"),
    (["--bucket-name", "b", "--endpoint", "e:1", "--provider", "ibm"],
     "source bucket provider 'ibm' is not supported, must be one of: generic, aws, gcp, azure"),
    (["--bucket-name", "b", "--endpoint", "e:1", "--interval", "soon"], "soon"),
])
def test_bucket_flag_errors(fluxpy, args, message):
    res = fluxpy("create", "source", "bucket", "x", *args, "--export")
    assert res.exit_code == 1 and message in res.stderr


def test_create_bucket_waits_for_the_fetched_revision(fluxpy, kube, kubeconfig, namespace, flux_crds,
                                                      start_controller, s3_server, tmp_path):
    start_controller(BucketReconciler(Storage(tmp_path / "storage", "127.0.0.1:1")), namespace)
    bucket = s3_server.make_bucket({"deploy/app.yaml": "kind: Deployment\n"})
    res = fluxpy("create", "source", "bucket", "podinfo", "--bucket-name", bucket, "--endpoint", s3_server.endpoint,
                 "--insecure", "--access-key", s3_server.access_key, "--secret-key", s3_server.secret_key,
                 "-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "60s")
    assert res.exit_code == 0, res.stderr
    etag = next(s3_server.client().list_objects(bucket)).etag
    revision = index_digest({"deploy/app.yaml": etag})
    assert f"fetched revision {revision}" in res.stderr
    assert "authentication configured" in res.stderr and s3_server.secret_key not in res.stderr
    secret = kube.get(SECRET, "bucket-podinfo", namespace)
    assert base64.b64decode(secret["data"]["secretkey"]).decode() == s3_server.secret_key
    assert kube.get(BUCKET, "podinfo", namespace)["spec"]["secretRef"] == {"name": "bucket-podinfo"}

    # a wrong bucket name: the CLI ends on the controller's failure for this generation, not at its timeout
    res = fluxpy("create", "source", "bucket", "podinfo", "--bucket-name", "missing-bucket", "--endpoint",
                 s3_server.endpoint, "--insecure", "--secret-ref", "bucket-podinfo", "-n", namespace,
                 "--kubeconfig", str(kubeconfig), "--timeout", "30s")
    assert res.exit_code == 1 and "timed out" not in res.stderr, res.stderr
    assert "bucket 'missing-bucket' not found; the source-controller keeps retrying" in res.stderr
    ready = find_condition(kube.get(BUCKET, "podinfo", namespace), "Ready")
    assert ready["status"] == "False" and ready["message"] == "bucket 'missing-bucket' not found"


@pytest.fixture
def pki(tmp_path):
    ca = new_ca("test-ca")
    client = issue(ca, "client", client=True)
    files = {"ca.crt": ca.cert_pem, "tls.crt": client.cert_pem, "tls.key": client.key_pem, "other.key": new_key_pem()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path, files


def test_secret_tls_export_and_apply(fluxpy, kube, kubeconfig, namespace, pki):
    d, files = pki
    res = fluxpy("create", "secret", "tls", "certs", "--tls-crt-file", str(d / "tls.crt"), "--tls-key-file",
                 str(d / "tls.key"), "--ca-crt-file", str(d / "ca.crt"), "-n", namespace, "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "certs", "namespace": namespace},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": files["tls.crt"].decode(), "tls.key": files["tls.key"].decode(),
                       "ca.crt": files["ca.crt"].decode()},
    }
    ca_only = fluxpy("create", "secret", "tls", "ca", "--ca-crt-file", str(d / "ca.crt"), "--export")
    assert yaml.safe_load(ca_only.stdout)["type"] == "Opaque"

    res = fluxpy("create", "secret", "tls", "certs", "--tls-crt-file", str(d / "tls.crt"), "--tls-key-file",
                 str(d / "tls.key"), "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert f"tls secret 'certs' created in '{namespace}' namespace" in res.stderr
    secret = kube.get(SECRET, "certs", namespace)
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]) == files["tls.crt"]


@pytest.mark.parametrize("args, message", [
    ([], "no CA certificate or client certificate pair found"),
    (["--tls-crt-file", "{d}/tls.crt"], "found certificate but missing private key"),
    (["--tls-crt-file", "{d}/tls.crt", "--tls-key-file", "{d}/other.key"],
     "invalid TLS certificate and key pair: tls: private key does not match public key"),
    (["--tls-crt-file", "{d}/nope.crt", "--tls-key-file", "{d}/tls.key"], "failed to read cert file: open"),
])
def test_secret_tls_errors(fluxpy, pki, args, message):
    d, _ = pki
    res = fluxpy("create", "secret", "tls", "bad", *[a.format(d=d) for a in args], "--export")
    assert res.exit_code == 1 and message in res.stderr
    assert "PRIVATE KEY" not in res.stderr
