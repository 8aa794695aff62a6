"""The OCIRepository reconciler against a real docker-registry on loopback and the real control plane.

Covers Flux's reference precedence (digest > semver (+ semverFilter) > tag > latest) and revision formats,
no new artifact when nothing changed, a new one for a new digest or changed ignore/layerSelector, the layer
selector (extract | copy, media type), dockerconfigjson secrets (basic and token auth), TLS (insecure,
certSecretRef), and bad input (missing secret, wrong credentials, unknown tag, no semver match, malformed
URL, unreachable or hanging registry, unsafe layers) that keeps the last artifact and never shows a secret.
"""
from __future__ import annotations

import io
import tarfile
import time

import pytest

from controllers.api.builtin import SECRET, SERVICE_ACCOUNT
from controllers.api.objects import find_condition
from controllers.api.source import OCI_REPOSITORY
from controllers.runtime.kube import Invalid, NotFound
from controllers.lib.oci import artifact as oci_artifact
from controllers.lib.oci import registry as oci_registry
from controllers.source.oci import OCIRepositoryReconciler
from controllers.source.storage import Storage
from servers.net import hanging_endpoint, refused_endpoint  # noqa: F401
from servers.objects import apply_secret, apply_source
from servers.registry import registry, registry_htpasswd, registry_tls, registry_token, tarball_with  # noqa: F401
from servers.waiting import Waits, ready_with, wait_event

TIMEOUT = 30.0
OCI_REPOSITORIES = Waits(OCI_REPOSITORY, TIMEOUT)
wait, reconcile_now = OCI_REPOSITORIES.wait, OCI_REPOSITORIES.reconcile_now


@pytest.fixture
def storage(tmp_path):
    return Storage(tmp_path / "storage", "127.0.0.1:1")


@pytest.fixture
def oci_controller(start_controller, storage, namespace, flux_crds):
    return start_controller(OCIRepositoryReconciler(storage), namespace)


# --------------------------------------------------------------------------- helpers


def apply_repo(kube, namespace: str, name: str, url: str, **spec) -> dict:
    return apply_source(kube, OCI_REPOSITORY, namespace, name, {"url": url, "interval": "10m", **spec})


def pull_secret(kube, namespace: str, name: str, server, password: str | None = None) -> None:
    apply_secret(kube, namespace, name, {
        ".dockerconfigjson": oci_registry.docker_config_json(server.host, server.username,
                                                             password or server.password)},
        "kubernetes.io/dockerconfigjson")


def files_of(storage: Storage, artifact: dict) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(storage.local_path(artifact["path"]).read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


# --------------------------------------------------------------------------- integration


def test_tag_reference_revision_artifact_and_event(kube, namespace, registry, oci_controller, storage):
    repository = registry.new_repository()
    digest = registry.push(repository, "v1.0.0", {"deploy.yaml": "kind: Deployment\n", "sub/cm.yaml": "kind: CM\n"})
    apply_repo(kube, namespace, "podinfo", registry.url(repository), ref={"tag": "v1.0.0"})
    obj = wait(kube, namespace, "podinfo", ready_with("True"), "OCIRepository Ready")

    artifact = obj["status"]["artifact"]
    revision = f"v1.0.0@{digest}"
    assert artifact["revision"] == revision
    assert artifact["path"] == f"ocirepository/{namespace}/podinfo/{digest}.tar.gz" and storage.has(artifact)
    assert files_of(storage, artifact) == {"deploy.yaml": b"kind: Deployment\n", "sub/cm.yaml": b"kind: CM\n"}
    assert artifact["metadata"][oci_artifact.REVISION_ANNOTATION] == "v1.0.0@sha1:abc"
    assert artifact["metadata"][oci_artifact.SOURCE_ANNOTATION] == "https://github.com/org/repo"
    assert obj["status"]["url"] == f"http://127.0.0.1:1/ocirepository/{namespace}/podinfo/latest.tar.gz"
    assert storage.local_path(f"ocirepository/{namespace}/podinfo/latest.tar.gz").read_bytes() == \
        storage.local_path(artifact["path"]).read_bytes()
    ready = find_condition(obj, "Ready")
    assert (ready["reason"], ready["message"]) == ("Succeeded", f"stored artifact for digest '{revision}'")
    assert find_condition(obj, "ArtifactInStorage")["message"] == ready["message"]
    assert find_condition(obj, "FetchFailed") is None and "observedLayerSelector" not in obj["status"]
    event = wait_event(kube, namespace, "podinfo", "NewArtifact")  # events are posted in the background
    assert event["message"] == (f"stored artifact with revision '{revision}' from '{registry.url(repository)}', "
                                "origin source 'https://github.com/org/repo', origin revision 'v1.0.0@sha1:abc'")


def test_unchanged_digest_gives_no_new_artifact_and_a_new_push_does(kube, namespace, registry, oci_controller,
                                                                    storage):
    repository = registry.new_repository()
    registry.push(repository, "latest", {"a.yaml": "a: 1\n"})
    apply_repo(kube, namespace, "app", registry.url(repository))  # no ref: the 'latest' tag
    first = wait(kube, namespace, "app", ready_with("True"), "Ready")["status"]["artifact"]
    assert first["revision"].startswith("latest@sha256:")

    assert reconcile_now(kube, namespace, "app")["status"]["artifact"] == first

    digest = registry.push(repository, "latest", {"a.yaml": "a: 2\n"})
    obj = reconcile_now(kube, namespace, "app")
    second = obj["status"]["artifact"]
    assert second["revision"] == f"latest@{digest}" != first["revision"]
    assert files_of(storage, second) == {"a.yaml": b"a: 2\n"}
    assert storage.has(first) and storage.has(second)
    assert find_condition(obj, "ArtifactOutdated") is None


def test_reference_precedence_semver_filter_and_digest(kube, namespace, registry, oci_controller):
    repository = registry.new_repository()
    digests = {tag: registry.push(repository, tag, {"v": tag}) for tag in
               ("6.0.0", "6.1.0", "6.2.0-rc.1", "7.0.0", "6.1.5-prod", "latest")}
    url = registry.url(repository)
    apply_repo(kube, namespace, "semver", url, ref={"semver": ">=6.0.0 <7.0.0", "tag": "7.0.0"})
    apply_repo(kube, namespace, "filtered", url, ref={"semver": ">=6.0.0-0", "semverFilter": ".*-prod$"})
    apply_repo(kube, namespace, "digest", url, ref={"digest": digests["6.0.0"], "semver": "*", "tag": "7.0.0"})
    apply_repo(kube, namespace, "tag", url, ref={"tag": "7.0.0"})
    expected = {"semver": f"6.1.0@{digests['6.1.0']}", "filtered": f"6.1.5-prod@{digests['6.1.5-prod']}",
                "digest": digests["6.0.0"], "tag": f"7.0.0@{digests['7.0.0']}"}
    for name, revision in expected.items():
        obj = wait(kube, namespace, name, ready_with("True"), f"{name} Ready")
        assert obj["status"]["artifact"]["revision"] == revision, name


def test_layer_selector_copy_and_extract_and_ignore(kube, namespace, registry, oci_controller, storage):
    repository = registry.new_repository()
    digest = registry.push(repository, "v1", {"app.yaml": "app\n", "docs/readme.md": "readme\n",
                                               "logo.png": "png"})
    url = registry.url(repository)
    apply_repo(kube, namespace, "copy", url, ref={"tag": "v1"},
               layerSelector={"mediaType": oci_artifact.FLUX_CONTENT_MEDIA_TYPE, "operation": "copy"})
    obj = wait(kube, namespace, "copy", ready_with("True"), "copy Ready")
    artifact = obj["status"]["artifact"]
    with registry.client() as client:
        layer = client.image_manifest(oci_registry.Reference(registry.host, repository, "v1")).layers[0]
    assert artifact["digest"] == layer.digest  # the layer itself, byte for byte
    assert obj["status"]["observedLayerSelector"] == {"mediaType": oci_artifact.FLUX_CONTENT_MEDIA_TYPE,
                                                      "operation": "copy"}

    # extract (the default) applies the default excludes, .sourceignore and spec.ignore
    apply_repo(kube, namespace, "extract", url, ref={"tag": "v1"}, ignore="docs/\n")
    obj = wait(kube, namespace, "extract", ready_with("True"), "extract Ready")
    assert files_of(storage, obj["status"]["artifact"]) == {"app.yaml": b"app\n", "logo.png": b"png"}
    assert obj["status"]["observedIgnore"] == "docs/\n"

    # a changed ignore makes a new artifact of the same revision
    first = obj["status"]["artifact"]
    apply_repo(kube, namespace, "extract", url, ref={"tag": "v1"}, ignore="*.png\n")
    obj = wait(kube, namespace, "extract", lambda o: ready_with("True")(o)
               and o["status"].get("observedIgnore") == "*.png\n", "new ignore applied")
    assert obj["status"]["artifact"]["revision"] == first["revision"] == f"v1@{digest}"
    assert files_of(storage, obj["status"]["artifact"]) == {"app.yaml": b"app\n", "docs/readme.md": b"readme\n"}

    apply_repo(kube, namespace, "nolayer", url, ref={"tag": "v1"}, layerSelector={"mediaType": "application/x-none"})
    obj = wait(kube, namespace, "nolayer", ready_with("False"), "missing layer")
    ready = find_condition(obj, "Ready")
    assert ready["reason"] == "OCIArtifactLayerOperationFailed"
    assert ready["message"] == "failed to find layer with media type 'application/x-none' in artifact"


@pytest.mark.parametrize("server_fixture", ["registry_htpasswd", "registry_token"])
def test_dockerconfigjson_secret_and_wrong_credentials(request, kube, namespace, oci_controller, storage,
                                                       server_fixture):
    server = request.getfixturevalue(server_fixture)
    repository = server.new_repository()
    digest = server.push(repository, "v1", {"a.yaml": "a\n"})
    url = server.url(repository)

    apply_repo(kube, namespace, "anonymous", url, ref={"tag": "v1"})
    obj = wait(kube, namespace, "anonymous", ready_with("False"), "anonymous refused")
    assert find_condition(obj, "Ready")["reason"] == "OCIArtifactPullFailed"
    assert "UNAUTHORIZED" in find_condition(obj, "Ready")["message"]

    pull_secret(kube, namespace, "creds", server)
    apply_repo(kube, namespace, "app", url, ref={"tag": "v1"}, secretRef={"name": "creds"})
    good = wait(kube, namespace, "app", ready_with("True"), "Ready with credentials")["status"]["artifact"]
    assert good["revision"] == f"v1@{digest}"

    pull_secret(kube, namespace, "creds", server, password="wrong-password-123")
    server.push(repository, "v1", {"a.yaml": "changed\n"})
    obj = reconcile_now(kube, namespace, "app")
    ready = find_condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "OCIArtifactPullFailed"
    assert ready["message"].startswith("failed to determine artifact digest: ") and "UNAUTHORIZED" in ready["message"]
    assert "wrong-password-123" not in str(obj) and server.password not in str(obj)
    assert find_condition(obj, "FetchFailed")["message"] == ready["message"]
    assert obj["status"]["artifact"] == good and storage.has(good)


def test_service_account_image_pull_secrets(kube, namespace, registry_htpasswd, oci_controller):
    server = registry_htpasswd
    repository = server.new_repository()
    server.push(repository, "v1", {"a.yaml": "a\n"})
    pull_secret(kube, namespace, "pull", server)
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller", "namespace": namespace},
                "imagePullSecrets": [{"name": "pull"}]}, field_manager="fluxpy-tests")
    apply_repo(kube, namespace, "app", server.url(repository), ref={"tag": "v1"}, serviceAccountName="puller")
    wait(kube, namespace, "app", ready_with("True"), "Ready with the service account's pull secret")
    kube.delete(SERVICE_ACCOUNT, "puller", namespace)


def test_tls_registry_insecure_and_cert_secret_ref(kube, namespace, registry_tls, oci_controller):
    repository = registry_tls.new_repository()
    digest = registry_tls.push(repository, "v1", {"a.yaml": "a\n"})
    url = registry_tls.url(repository)
    apply_repo(kube, namespace, "untrusted", url, ref={"tag": "v1"})
    obj = wait(kube, namespace, "untrusted", ready_with("False"), "untrusted certificate")
    assert find_condition(obj, "Ready")["reason"] == "OCIArtifactPullFailed"
    assert "tls: failed to verify certificate" in find_condition(obj, "Ready")["message"]

    apply_repo(kube, namespace, "insecure", url, ref={"tag": "v1"}, insecure=True)
    apply_secret(kube, namespace, "ca", {"ca.crt": registry_tls.ca_pem.decode()})
    apply_repo(kube, namespace, "trusted", url, ref={"tag": "v1"}, certSecretRef={"name": "ca"})
    for name in ("insecure", "trusted"):
        obj = wait(kube, namespace, name, ready_with("True"), f"{name} Ready")
        assert obj["status"]["artifact"]["revision"] == f"v1@{digest}"


def test_proxy_secret_ref_tunnels_through_the_proxy(kube, namespace, registry, oci_controller):
    from servers.kubeconfigs import ConnectProxy

    proxy = ConnectProxy()
    try:
        repository = registry.new_repository()
        registry.push(repository, "v1", {"a.yaml": "a: 1\n"})
        apply_secret(kube, namespace, "proxy", {"address": proxy.url})
        apply_repo(kube, namespace, "proxied", registry.url(repository), ref={"tag": "v1"},
                   proxySecretRef={"name": "proxy"})
        wait(kube, namespace, "proxied", ready_with("True"), "pulled through the proxy")
        assert registry.host in proxy.tunnels
        apply_repo(kube, namespace, "no-address", registry.url(repository), proxySecretRef={"name": "absent"})
        failed = wait(kube, namespace, "no-address", ready_with("False", "AuthenticationFailed"), "missing proxy")
        assert find_condition(failed, "Ready")["message"].startswith(
            f"failed to get proxy address: failed to get secret '{namespace}/absent'")
    finally:
        proxy.close()


@pytest.mark.parametrize("case", ["dotdot", "absolute", "escaping-symlink"])
def test_unsafe_layers_are_rejected_and_the_last_artifact_kept(kube, namespace, registry, oci_controller, storage,
                                                               case):
    repository = registry.new_repository()
    registry.push(repository, "v1", {"ok.yaml": "ok\n"})
    apply_repo(kube, namespace, "app", registry.url(repository), ref={"tag": "v1"})
    good = wait(kube, namespace, "app", ready_with("True"), "Ready")["status"]["artifact"]
    bad = {"dotdot": [("ok.yaml", "file", "x"), ("../evil.yaml", "file", "evil")],
           "absolute": [("/etc/evil.yaml", "file", "evil")],
           "escaping-symlink": [("link", "symlink", "../../../../etc"), ("link/evil", "file", "evil")]}[case]
    registry.push(repository, "v1", {}, tarball=tarball_with(bad))
    obj = reconcile_now(kube, namespace, "app")
    ready = find_condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "OCIArtifactLayerOperationFailed"
    assert ready["message"].startswith("failed to extract layer contents from artifact: ")
    assert obj["status"]["artifact"] == good and storage.has(good)
    assert not (storage.base_dir.parent / "evil.yaml").exists()


@pytest.mark.parametrize("case", ["missing-secret", "unknown-tag", "no-semver-match", "tag-in-url", "not-oci",
                                  "unreachable", "bad-digest"])
def test_bad_input_reasons_and_messages(kube, namespace, registry, oci_controller, case):
    repository = registry.new_repository()
    registry.push(repository, "1.0.0", {"a": "a"})
    url = registry.url(repository)
    spec: dict = {"ref": {"tag": "1.0.0"}}
    expected = {
        "missing-secret": ("AuthenticationFailed", f"failed to get credential: failed to get secret '{namespace}/nope'"),
        "unknown-tag": ("OCIArtifactPullFailed", "failed to determine artifact digest: GET "),
        "no-semver-match": ("ReadOperationFailed",
                            f"failed to determine the artifact tag for '{url}': no match found for semver: >=2.0.0"),
        "tag-in-url": ("URLInvalid", f"URL validation failed for '{url}:1.0.0': URL must not contain a tag; "
                                     "remove ':1.0.0'"),
        "not-oci": ("", ""),
        "unreachable": ("OCIArtifactPullFailed", "connection refused"),
        "bad-digest": ("OCIArtifactPullFailed", 'failed to determine artifact digest: cannot parse hash: "sha256:xyz"'),
    }[case]
    if case == "missing-secret":
        spec["secretRef"] = {"name": "nope"}
    elif case == "unknown-tag":
        spec["ref"] = {"tag": "9.9.9"}
    elif case == "no-semver-match":
        spec["ref"] = {"semver": ">=2.0.0"}
    elif case == "tag-in-url":
        url += ":1.0.0"
    elif case == "unreachable":
        url = f"oci://{refused_endpoint()}/a/b"
    elif case == "bad-digest":
        spec["ref"] = {"digest": "sha256:xyz"}
    if case == "not-oci":  # the CRD's pattern refuses it before any controller sees it
        with pytest.raises(Invalid, match=r"oci://"):
            apply_repo(kube, namespace, "app", url.replace("oci://", "https://"), **spec)
        return
    apply_repo(kube, namespace, "app", url, **spec)
    obj = wait(kube, namespace, "app", ready_with("False"), f"failing ({case})")
    ready, fetch = find_condition(obj, "Ready"), find_condition(obj, "FetchFailed")
    assert (ready["reason"], fetch["reason"]) == (expected[0], expected[0])
    assert expected[1] in ready["message"] and ready["message"] == fetch["message"]
    if case == "unknown-tag":
        assert "MANIFEST_UNKNOWN" in ready["message"]
    if case == "tag-in-url":
        assert find_condition(obj, "Stalled")["reason"] == "URLInvalid"


def test_timeout_is_honoured(kube, namespace, oci_controller, hanging_endpoint):
    """A registry that accepts connections and never answers: the fetch fails after spec.timeout."""
    started = time.monotonic()
    apply_repo(kube, namespace, "slow", f"oci://{hanging_endpoint}/a/b", timeout="2s")
    obj = wait(kube, namespace, "slow", ready_with("False"), "timing out")
    elapsed = time.monotonic() - started
    assert "context deadline exceeded" in find_condition(obj, "Ready")["message"]
    assert find_condition(obj, "Ready")["reason"] == "OCIArtifactPullFailed"
    assert 1.5 < elapsed < 15


def test_deletion_removes_the_artifacts(kube, namespace, registry, oci_controller, storage):
    repository = registry.new_repository()
    registry.push(repository, "v1", {"a": "a"})
    apply_repo(kube, namespace, "app", registry.url(repository), ref={"tag": "v1"})
    artifact = wait(kube, namespace, "app", ready_with("True"), "Ready")["status"]["artifact"]
    assert storage.has(artifact)
    kube.delete(OCI_REPOSITORY, "app", namespace)
    OCI_REPOSITORIES.gone(kube, namespace, "app")
    assert not storage.local_path(f"ocirepository/{namespace}/app").exists()
    with pytest.raises(NotFound):
        kube.get(SECRET, "nope", namespace)
