"""The Bucket reconciler against a real S3 server (versitygw on loopback) and the real control plane.

Covers the revision over the object listing (Flux's etag index digest), prefix / .sourceignore / spec.ignore,
no new artifact for an unchanged bucket, a new one after a change, TLS with a CA from certSecretRef,
and bad input (wrong or missing credentials, unknown bucket, unreachable or hanging endpoint, malformed
endpoint) that keeps the last artifact served and never shows a secret.
"""
from __future__ import annotations

import datetime
import io
import tarfile
import time

import pytest

from controllers.api.builtin import SECRET
from controllers.api.objects import dig, find_condition
from controllers.api.source import BUCKET
from controllers.source.bucket import BucketReconciler, UnsafeObjectKey, index_digest, object_path
from controllers.source.s3client import S3Client, S3Error, sign_v4
from controllers.source.storage import Storage
from servers.git import artifact_storage  # noqa: F401
from servers.net import hanging_endpoint, refused_endpoint  # noqa: F401
from servers.objects import apply_secret, apply_source
from servers.s3 import s3_server, s3_tls_server  # noqa: F401
from servers.waiting import Waits, ready_with, wait_event

TIMEOUT = 30.0
#: A reconciliation is handled once Reconciling is gone (whatever Ready says).
BUCKETS = Waits(BUCKET, TIMEOUT, settled=lambda obj: find_condition(obj, "Reconciling") is None)
wait_bucket, request_reconcile, handled = BUCKETS.wait, BUCKETS.request_reconcile, BUCKETS.handled


# --------------------------------------------------------------------------- units


def test_index_digest_is_sha256_of_sorted_key_etag_lines():
    import hashlib

    index = {"b/c.yaml": "e2", "a.yaml": "e1"}
    assert index_digest(index) == "sha256:" + hashlib.sha256(b"a.yaml e1\nb/c.yaml e2\n").hexdigest()
    assert index_digest({}) == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_object_keys_that_escape_are_rejected(tmp_path):
    assert object_path(tmp_path, "a/b.yaml") == tmp_path / "a" / "b.yaml"
    assert object_path(tmp_path, "/abs/c.yaml") == tmp_path / "abs" / "c.yaml"
    for key in ("../x.yaml", "a/../../x.yaml", "a/..", "..\\x"):
        with pytest.raises(UnsafeObjectKey):
            object_path(tmp_path, key)


def test_signature_v4_matches_the_aws_example():
    """The GET Object example of the S3 SigV4 documentation ("Examples: Signature Calculations")."""
    headers = sign_v4("GET", "/test.txt", {}, {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"},
                      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                      access_key="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                      region="us-east-1", now=datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc))
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_client_lists_with_pagination_and_reports_s3_errors(s3_server):
    bucket = s3_server.make_bucket({f"dir/f{i}.yaml": f"n: {i}" for i in range(5)} | {"top.txt": "t"})
    client = s3_server.client()
    assert [o.key for o in client.list_objects(bucket, page_size=2)] == [f"dir/f{i}.yaml" for i in range(5)] + [
        "top.txt"]
    assert [o.key for o in client.list_objects(bucket, "dir/f3")] == ["dir/f3.yaml"]
    body, etag = client.get_object(bucket, "top.txt")
    assert body == b"t" and etag == next(o.etag for o in client.list_objects(bucket, "top"))
    assert client.bucket_exists(bucket) and not client.bucket_exists("no-such-bucket")
    with pytest.raises(S3Error) as missing:
        client.get_object(bucket, "nope")
    assert missing.value.code == "NoSuchKey"
    wrong = s3_server.client(secret_key="wrong-secret")
    with pytest.raises(S3Error) as denied:
        list(wrong.list_objects(bucket))
    assert denied.value.code == "SignatureDoesNotMatch" and "wrong-secret" not in str(denied.value)
    for endpoint in ("http://127.0.0.1:9000", "127.0.0.1:9000/path", "bad_host:1"):
        with pytest.raises(S3Error):
            S3Client(endpoint)


# --------------------------------------------------------------------------- integration helpers


@pytest.fixture
def storage(artifact_storage):
    return artifact_storage


@pytest.fixture
def bucket_controller(start_controller, storage, namespace, flux_crds):
    return start_controller(BucketReconciler(storage), namespace)


def make_bucket_object(kube, namespace: str, name: str, server, bucket: str, **spec) -> dict:
    return apply_source(kube, BUCKET, namespace, name, {"bucketName": bucket, "endpoint": server.endpoint,
                                                         "interval": "10m", "insecure": not server.tls, **spec})


def ready_bucket(kube, namespace: str, name: str, server, files: dict[str, str], **spec) -> tuple[str, dict]:
    """A bucket holding ``files``, a credentials Secret and a Bucket for it, once Ready: (bucket, object)."""
    bucket = server.make_bucket(files)
    apply_secret(kube, namespace, "creds", server.secret_data())
    make_bucket_object(kube, namespace, name, server, bucket, secretRef={"name": "creds"}, **spec)
    return bucket, wait_bucket(kube, namespace, name, ready_with("True"), f"Bucket {name} Ready")


def artifact_files(storage: Storage, artifact: dict) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(storage.local_path(artifact["path"]).read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def expected_revision(server, bucket: str, keys: list[str]) -> str:
    etags = {o.key: o.etag for o in server.client().list_objects(bucket)}
    return index_digest({k: etags[k] for k in keys})


# --------------------------------------------------------------------------- integration


def test_bucket_artifact_revision_ignore_and_prefix(kube, namespace, s3_server, bucket_controller, storage):
    bucket = s3_server.make_bucket({
        ".sourceignore": "*.md\n",
        "apps/deploy.yaml": "kind: Deployment\n",
        "apps/README.md": "readme\n",
        "apps/skip/secret.txt": "ignored by spec.ignore\n",
        "apps/sub/cm.yaml": "kind: ConfigMap\n",
        "other/x.yaml": "outside the prefix\n",
    })
    apply_secret(kube, namespace, "creds", s3_server.secret_data())
    make_bucket_object(kube, namespace, "podinfo", s3_server, bucket, prefix="apps/", ignore="skip/\n",
                       secretRef={"name": "creds"})
    obj = wait_bucket(kube, namespace, "podinfo", ready_with("True"), "Bucket Ready")

    revision = expected_revision(s3_server, bucket, ["apps/deploy.yaml", "apps/sub/cm.yaml"])
    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == revision
    assert artifact["path"] == f"bucket/{namespace}/podinfo/{revision.split(':')[1]}.tar.gz"
    assert artifact["url"] == storage.url_for(artifact["path"]) and storage.has(artifact)
    assert find_condition(obj, "Ready")["message"] == f"stored artifact: revision '{revision}'"
    assert find_condition(obj, "ArtifactInStorage")["reason"] == "Succeeded"
    assert obj["status"]["observedIgnore"] == "skip/\n"
    assert artifact_files(storage, artifact) == {".sourceignore": b"*.md\n", "apps/deploy.yaml": b"kind: Deployment\n",
                                                 "apps/sub/cm.yaml": b"kind: ConfigMap\n"}
    event = wait_event(kube, namespace, "podinfo", "NewArtifact")  # events are posted in the background
    assert event["message"] == f"stored artifact with 2 fetched files from '{bucket}' bucket"


def test_unchanged_bucket_gives_no_new_artifact_and_a_change_does(kube, namespace, s3_server, bucket_controller,
                                                                  storage):
    bucket, obj = ready_bucket(kube, namespace, "b", s3_server, {"a.yaml": "a: 1\n"})
    first = obj["status"]["artifact"]

    token = request_reconcile(kube, namespace, "b")
    again = wait_bucket(kube, namespace, "b", handled(token), "reconcile handled")["status"]["artifact"]
    assert again == first
    assert len(list(storage.local_path(f"bucket/{namespace}/b").iterdir())) == 1

    s3_server.put(bucket, {"a.yaml": "a: 2\n", "new/b.yaml": "b: 1\n"})
    token = request_reconcile(kube, namespace, "b")
    obj = wait_bucket(kube, namespace, "b", handled(token), "reconcile handled")
    second = obj["status"]["artifact"]
    assert second["revision"] == expected_revision(s3_server, bucket, ["a.yaml", "new/b.yaml"]) != first["revision"]
    assert artifact_files(storage, second) == {"a.yaml": b"a: 2\n", "new/b.yaml": b"b: 1\n"}
    assert storage.has(first) and storage.has(second)  # the previous one is kept (retention of 2)
    assert find_condition(obj, "ArtifactOutdated") is None


def test_tls_endpoint_with_ca_from_cert_secret_ref(kube, namespace, s3_tls_server, bucket_controller):
    bucket = s3_tls_server.make_bucket({"a.yaml": "a: 1\n"})
    apply_secret(kube, namespace, "creds", s3_tls_server.secret_data())
    make_bucket_object(kube, namespace, "untrusted", s3_tls_server, bucket, secretRef={"name": "creds"})
    failed = wait_bucket(kube, namespace, "untrusted", ready_with("False"), "Bucket failing")
    assert find_condition(failed, "FetchFailed")["reason"] == "BucketOperationFailed"
    assert "certificate" in find_condition(failed, "Ready")["message"]

    apply_secret(kube, namespace, "ca", {"ca.crt": s3_tls_server.ca_pem.decode()})
    make_bucket_object(kube, namespace, "trusted", s3_tls_server, bucket, secretRef={"name": "creds"},
                       certSecretRef={"name": "ca"})
    obj = wait_bucket(kube, namespace, "trusted", ready_with("True"), "Bucket Ready over TLS")
    assert obj["status"]["artifact"]["revision"] == expected_revision(s3_tls_server, bucket, ["a.yaml"])


def test_bad_credentials_keep_the_last_artifact_and_hide_the_secret(kube, namespace, s3_server, bucket_controller,
                                                                     storage):
    bucket, obj = ready_bucket(kube, namespace, "b", s3_server, {"a.yaml": "a: 1\n"})
    good = obj["status"]["artifact"]

    apply_secret(kube, namespace, "creds", {"accesskey": s3_server.access_key, "secretkey": "not-the-secret-123"})
    s3_server.put(bucket, {"a.yaml": "a: 2\n"})
    token = request_reconcile(kube, namespace, "b")
    obj = wait_bucket(kube, namespace, "b", lambda o: dig(o, "status.lastHandledReconcileAt") == token,
                      "failure recorded")
    ready = find_condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "BucketOperationFailed"
    assert ready["message"].startswith(f"failed to confirm existence of '{bucket}' bucket: ")
    assert "signature" in ready["message"] and "not-the-secret-123" not in str(obj["status"])
    assert find_condition(obj, "FetchFailed")["status"] == "True"
    assert obj["status"]["artifact"] == good and storage.has(good)


@pytest.mark.parametrize("case", ["missing-secret", "incomplete-secret", "unknown-bucket", "unreachable",
                                  "malformed-endpoint"])
def test_bad_input_reasons_and_messages(kube, namespace, s3_server, bucket_controller, case):
    bucket = s3_server.make_bucket({"a.yaml": "a: 1\n"})
    apply_secret(kube, namespace, "creds", s3_server.secret_data())
    apply_secret(kube, namespace, "half", {"accesskey": s3_server.access_key})
    spec = {"secretRef": {"name": "creds"}}
    expected = {
        "missing-secret": ("AuthenticationFailed", f"failed to get secret '{namespace}/nope': "),
        "incomplete-secret": ("AuthenticationFailed",
                              "invalid 'half' secret data: required fields 'accesskey' and 'secretkey'"),
        "unknown-bucket": ("BucketOperationFailed", "bucket 'no-such-bucket' not found"),
        "unreachable": ("BucketOperationFailed", "failed to confirm existence of"),
        "malformed-endpoint": ("AuthenticationFailed", "Endpoint url cannot have fully qualified paths."),
    }[case]
    if case == "missing-secret":
        spec["secretRef"] = {"name": "nope"}
    elif case == "incomplete-secret":
        spec["secretRef"] = {"name": "half"}
    elif case == "unknown-bucket":
        bucket = "no-such-bucket"
    elif case == "unreachable":
        spec["endpoint"] = refused_endpoint()
    elif case == "malformed-endpoint":
        spec["endpoint"] = f"http://{s3_server.endpoint}"
    make_bucket_object(kube, namespace, "b", s3_server, bucket, **spec)
    obj = wait_bucket(kube, namespace, "b", ready_with("False"), f"Bucket failing ({case})")
    ready, fetch = find_condition(obj, "Ready"), find_condition(obj, "FetchFailed")
    assert (ready["reason"], fetch["reason"]) == (expected[0], expected[0])
    assert expected[1] in ready["message"] and ready["message"] == fetch["message"]
    assert s3_server.secret_key not in ready["message"]
    if case == "unreachable":
        assert "connection refused" in ready["message"]


def test_timeout_is_honoured(kube, namespace, s3_server, bucket_controller, hanging_endpoint):
    """An endpoint that accepts connections and never answers: the fetch fails after spec.timeout."""
    apply_secret(kube, namespace, "creds", s3_server.secret_data())
    started = time.monotonic()
    make_bucket_object(kube, namespace, "slow", s3_server, "some-bucket", secretRef={"name": "creds"},
                       endpoint=hanging_endpoint, timeout="2s")
    obj = wait_bucket(kube, namespace, "slow", ready_with("False"), "Bucket timing out")
    assert "context deadline exceeded" in find_condition(obj, "Ready")["message"]
    assert 1.5 < time.monotonic() - started < 15


def test_deletion_removes_the_artifacts(kube, namespace, s3_server, bucket_controller, storage):
    _, obj = ready_bucket(kube, namespace, "b", s3_server, {"a.yaml": "a: 1\n"})
    artifact = obj["status"]["artifact"]
    assert storage.has(artifact)
    kube.delete(BUCKET, "b", namespace)
    BUCKETS.gone(kube, namespace, "b")
    assert not storage.local_path(f"bucket/{namespace}/b").exists()
    kube.delete(SECRET, "creds", namespace)
