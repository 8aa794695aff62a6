"""The HelmRepository reconciler against Helm repositories served on loopback (charts packaged and indexed
by the real helm) and the real control plane.

Covers the index artifact (revision = digest of the downloaded index, content = Flux's normalised JSON,
``index.yaml`` link and ``status.url``, the NewArtifact event), no new artifact for an unchanged index, basic
auth and TLS secrets, ``type: oci`` (no artifact), and bad input (wrong or missing credentials, malformed
secret, unreachable host, a timeout, a document that is no index, an ``oci://`` URL with the default type)
that keeps the last artifact and never shows a secret.
"""
from __future__ import annotations

import hashlib
import json
import urllib.request

import pytest

from controllers.api.objects import find_condition
from controllers.api.source import HELM_REPOSITORY
from controllers.source import helm_index
from controllers.source.helmrepo import HelmRepositoryReconciler
from servers.git import artifact_storage  # noqa: F401
from servers.helmrepo import helm_repo, helm_repo_auth, helm_repo_tls, make_chart  # noqa: F401
from servers.objects import apply_secret, apply_source
from servers.waiting import ready_with, reconcile_now, wait, wait_event

KIND = HELM_REPOSITORY


@pytest.fixture
def storage(artifact_storage):
    return artifact_storage


@pytest.fixture
def controller(start_controller, storage, namespace, flux_crds):
    return start_controller(HelmRepositoryReconciler(storage), namespace)


@pytest.fixture
def podinfo_repo(helm_repo, tmp_path):
    """The unauthenticated repository with podinfo 6.0.0 and 6.1.0."""
    chart = make_chart(tmp_path / "src", "podinfo", "6.0.0")
    helm_repo.add_chart(chart, reindex=False)
    helm_repo.add_chart(chart, "6.1.0")
    return helm_repo


def test_index_artifact_revision_and_event(kube, namespace, controller, storage, podinfo_repo):
    apply_source(kube, KIND, namespace, "podinfo", {"url": podinfo_repo.url, "interval": "10m"})
    obj = wait(kube, KIND, namespace, "podinfo", ready_with("True", "Succeeded"), "HelmRepository Ready")

    served = (podinfo_repo.root / "index.yaml").read_bytes()
    revision = "sha256:" + hashlib.sha256(served).hexdigest()
    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == revision
    assert artifact["path"] == f"helmrepository/{namespace}/podinfo/index-{revision[7:]}.yaml"
    stored = storage.local_path(artifact["path"]).read_bytes()
    assert stored == helm_index.index_json(helm_index.load_index(served))
    assert artifact["digest"] == "sha256:" + hashlib.sha256(stored).hexdigest() and artifact["size"] == len(stored)
    assert [cv["version"] for cv in json.loads(stored)["entries"]["podinfo"]] == ["6.1.0", "6.0.0"]

    url = obj["status"]["url"]
    assert url == storage.url_for(f"helmrepository/{namespace}/podinfo/index.yaml")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == stored
    with urllib.request.urlopen(artifact["url"], timeout=10) as resp:
        assert resp.read() == stored

    ready = find_condition(obj, "Ready")
    assert ready["message"] == f"stored artifact: revision '{revision}'"
    assert find_condition(obj, "ArtifactInStorage")["message"] == ready["message"]
    assert find_condition(obj, "Reconciling") is None and find_condition(obj, "FetchFailed") is None
    new = wait_event(kube, namespace, "podinfo", "NewArtifact", kind=KIND.kind)  # events are posted in the background
    assert new["message"].startswith("stored fetched index of size ")
    assert new["message"].endswith(f" from '{podinfo_repo.url}'")
    assert new["metadata"]["annotations"]["source.toolkit.fluxcd.io/revision"] == revision


def test_unchanged_index_keeps_the_artifact_new_chart_makes_a_new_one(kube, namespace, controller, storage,
                                                                      podinfo_repo, tmp_path):
    apply_source(kube, KIND, namespace, "podinfo", {"url": podinfo_repo.url, "interval": "10m"})
    first = wait(kube, KIND, namespace, "podinfo", ready_with("True"), "Ready")["status"]["artifact"]
    again = reconcile_now(kube, KIND, namespace, "podinfo")
    assert again["status"]["artifact"] == first

    podinfo_repo.add_chart(make_chart(tmp_path / "src2", "other", "1.0.0"))
    newer = reconcile_now(kube, KIND, namespace, "podinfo")["status"]["artifact"]
    assert newer["revision"] != first["revision"] and storage.has(newer)
    assert "other" in json.loads(storage.local_path(newer["path"]).read_bytes())["entries"]


def test_basic_auth_and_wrong_credentials(kube, namespace, controller, storage, helm_repo_auth, tmp_path):
    helm_repo_auth.add_chart(make_chart(tmp_path / "src", "app", "1.0.0"))
    apply_secret(kube, namespace, "creds", {"username": helm_repo_auth.username,
                                            "password": helm_repo_auth.password})
    apply_source(kube, KIND, namespace, "private", {"url": helm_repo_auth.url, "interval": "10m",
                                                    "secretRef": {"name": "creds"}})
    good = wait(kube, KIND, namespace, "private", ready_with("True"), "Ready")["status"]["artifact"]
    assert all(r.authorized for r in helm_repo_auth.requests)

    apply_secret(kube, namespace, "creds", {"username": helm_repo_auth.username, "password": "wrong-s3cret"})
    failed = reconcile_now(kube, KIND, namespace, "private")
    ready = find_condition(failed, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Failed")
    assert ready["message"] == (f"failed to fetch Helm repository index: failed to cache index to temporary file: "
                                f"failed to fetch {helm_repo_auth.url}/index.yaml : 401 Unauthorized")
    assert find_condition(failed, "FetchFailed")["reason"] == "Failed"
    assert "wrong-s3cret" not in json.dumps(failed) and helm_repo_auth.password not in json.dumps(failed)
    assert failed["status"]["artifact"] == good and storage.has(good)  # the last artifact stays served


def test_secret_problems_are_authentication_failures(kube, namespace, controller, podinfo_repo):
    apply_source(kube, KIND, namespace, "nosecret", {"url": podinfo_repo.url, "interval": "10m",
                                                     "secretRef": {"name": "absent"}})
    obj = wait(kube, KIND, namespace, "nosecret", ready_with("False", "AuthenticationFailed"), "AuthenticationFailed")
    assert find_condition(obj, "Ready")["message"] == \
        f"failed to get authentication secret '{namespace}/absent': secrets \"absent\" not found"

    apply_secret(kube, namespace, "half", {"username": "me"})
    apply_source(kube, KIND, namespace, "half", {"url": podinfo_repo.url, "interval": "10m",
                                                 "secretRef": {"name": "half"}})
    obj = wait(kube, KIND, namespace, "half", ready_with("False", "AuthenticationFailed"), "malformed secret")
    assert find_condition(obj, "Ready")["message"] == (
        f"failed to detect authentication methods: secret '{namespace}/half': malformed basic auth - has "
        "'username' but missing 'password'")


def test_tls_with_ca_from_cert_secret(kube, namespace, controller, helm_repo_tls, tmp_path):
    helm_repo_tls.add_chart(make_chart(tmp_path / "src", "app", "1.0.0"))
    apply_source(kube, KIND, namespace, "tls", {"url": helm_repo_tls.url, "interval": "10m"})
    obj = wait(kube, KIND, namespace, "tls", ready_with("False", "Failed"), "untrusted certificate")
    assert "certificate verify failed" in find_condition(obj, "Ready")["message"] or \
        "failed to verify certificate" in find_condition(obj, "Ready")["message"]

    apply_secret(kube, namespace, "ca", {"ca.crt": helm_repo_tls.ca_pem.decode()})
    apply_source(kube, KIND, namespace, "tls", {"url": helm_repo_tls.url, "interval": "10m",
                                                "certSecretRef": {"name": "ca"}})
    wait(kube, KIND, namespace, "tls", ready_with("True"), "Ready over TLS")


def test_unreachable_host_timeout_and_not_an_index(kube, namespace, controller, podinfo_repo):
    from controllers.localcluster.plane import free_port

    url = f"http://127.0.0.1:{free_port()}"
    apply_source(kube, KIND, namespace, "down", {"url": url, "interval": "10m"})
    obj = wait(kube, KIND, namespace, "down", ready_with("False", "Failed"), "unreachable")
    assert find_condition(obj, "Ready")["message"].endswith(
        f'Get "{url}/index.yaml": dial tcp 127.0.0.1:{url.rsplit(":", 1)[1]}: connect: connection refused')

    podinfo_repo.delay = 3
    apply_source(kube, KIND, namespace, "slow", {"url": podinfo_repo.url, "interval": "10m", "timeout": "1s"})
    obj = wait(kube, KIND, namespace, "slow", ready_with("False", "Failed"), "timeout")
    assert "context deadline exceeded" in find_condition(obj, "Ready")["message"]
    podinfo_repo.delay = 0

    (podinfo_repo.root / "index.yaml").write_text("<html>login page</html>\n")
    apply_source(kube, KIND, namespace, "garbage", {"url": podinfo_repo.url, "interval": "10m"})
    obj = wait(kube, KIND, namespace, "garbage", ready_with("False", "IndexationFailed"), "IndexationFailed")
    assert find_condition(obj, "Ready")["message"].startswith(
        "failed to load Helm repository from index YAML: failed to load index: ")
    assert find_condition(obj, "FetchFailed")["reason"] == "IndexationFailed"


def test_oci_url_needs_type_oci(kube, namespace, controller):
    apply_source(kube, KIND, namespace, "wrongtype", {"url": "oci://127.0.0.1:5000/charts", "interval": "10m"})
    obj = wait(kube, KIND, namespace, "wrongtype", ready_with("False", "URLInvalid"), "URLInvalid")
    assert find_condition(obj, "Stalled")["reason"] == "URLInvalid"
    assert find_condition(obj, "Ready")["message"] == (
        "invalid Helm repository URL: 'oci' URL scheme cannot be used with 'default' HelmRepository type")


def test_type_oci_has_no_artifact(kube, namespace, controller, storage):
    apply_source(kube, KIND, namespace, "charts", {"url": "oci://127.0.0.1:5000/charts", "type": "oci",
                                                   "interval": "10m"})

    def settled(obj: dict) -> bool:  # Flux: released (no finalizer, empty status); else a static Ready
        released = not obj["metadata"].get("finalizers") and not (obj.get("status") or {}).get("conditions")
        return released or ready_with("True")(obj)
    obj = wait(kube, KIND, namespace, "charts", settled, "OCI HelmRepository settled")
    assert "artifact" not in (obj.get("status") or {}) and "url" not in (obj.get("status") or {})
    assert not (storage.base_dir / "helmrepository" / namespace / "charts").exists()
