"""The HelmChart reconciler with real Helm repositories on loopback (HTTP, and OCI in Debian's
docker-registry, charts packaged and pushed by the real helm), source artifacts in the real Storage and the
real control plane.

Covers charts from a HelmRepository (semver ranges, a new version followed through the HelmRepository's
new index, OCI tags, basic auth), from a GitRepository or Bucket artifact (packaged with helm, local and
remote dependencies, ``reconcileStrategy: Revision``), ``valuesFiles`` (Flux's merge, build metadata,
``ignoreMissingValuesFiles``), and bad input (no matching version, a missing values file, a missing or
artifact-less source, a chart path outside the source, wrong registry credentials) keeping the last
artifact and never showing a secret.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from controllers.api.objects import dig, find_condition
from controllers.api.source import BUCKET, GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from controllers.source.helmchart import HelmChartReconciler
from controllers.source.helmrepo import HelmRepositoryReconciler
from controllers.source.storage import Storage
from servers.helmrepo import helm_repo, helm_repo_auth, make_chart, package, push_oci  # noqa: F401
from servers.objects import apply_secret, apply_source
from servers.registry import registry, registry_htpasswd  # noqa: F401
from servers.waiting import ready_with, reconcile_now, wait, wait_event

KIND = HELM_CHART


@pytest.fixture
def storage(tmp_path):
    return Storage(tmp_path / "storage", "127.0.0.1:1")


@pytest.fixture
def controllers(start_controller, storage, namespace, flux_crds):
    """The HelmChart and HelmRepository reconcilers, sharing one storage (as in one source-controller)."""
    start_controller(HelmRepositoryReconciler(storage), namespace)
    return start_controller(HelmChartReconciler(storage), namespace)


def chart_files(storage: Storage, artifact: dict) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(storage.local_path(artifact["path"]).read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"].get("conditions") or []}


def with_artifact(kube, storage: Storage, kind, namespace: str, name: str, spec: dict, source_dir: Path,
                  revision: str) -> dict:
    """A source object (GitRepository/Bucket) whose artifact is ``source_dir`` archived into the storage."""
    apply_source(kube, kind, namespace, name, spec)
    artifact = storage.archive(storage.artifact_path(kind.kind, namespace, name, "src.tar.gz"), source_dir)
    artifact["revision"] = revision
    return kube.patch(kind, name, {"status": {"artifact": artifact}}, namespace, subresource="status")


# --------------------------------------------------------------------------- from a HelmRepository


def test_chart_from_http_repository_follows_new_versions(kube, namespace, controllers, storage, helm_repo, tmp_path):
    chart = make_chart(tmp_path / "src", "podinfo", "6.0.0")
    helm_repo.add_chart(chart, reindex=False)
    helm_repo.add_chart(chart, "7.0.0")
    apply_source(kube, HELM_REPOSITORY, namespace, "podinfo", {"url": helm_repo.url, "interval": "10m"})
    apply_source(kube, KIND, namespace, "podinfo", {
        "chart": "podinfo", "version": "6.x", "interval": "10m",
        "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}})
    obj = wait(kube, KIND, namespace, "podinfo", ready_with("True", "ChartPullSucceeded"), "HelmChart Ready")

    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == "6.0.0"
    assert artifact["path"] == f"helmchart/{namespace}/podinfo/podinfo-6.0.0.tgz"
    assert storage.local_path(artifact["path"]).read_bytes() == (helm_repo.root / "podinfo-6.0.0.tgz").read_bytes()
    assert obj["status"]["url"] == f"http://127.0.0.1:1/helmchart/{namespace}/podinfo/latest.tar.gz"
    assert obj["status"]["observedChartName"] == "podinfo"
    repo = kube.get(HELM_REPOSITORY, "podinfo", namespace)
    assert obj["status"]["observedSourceArtifactRevision"] == repo["status"]["artifact"]["revision"]
    assert find_condition(obj, "Ready")["message"] == "pulled 'podinfo' chart with version '6.0.0'"
    assert conditions(obj)["ArtifactInStorage"] == ("True", "ChartPullSucceeded")
    event = wait_event(kube, namespace, "podinfo", "ChartPullSucceeded", kind="HelmChart")
    assert event["metadata"]["annotations"]["source.toolkit.fluxcd.io/revision"] == "6.0.0"

    helm_repo.add_chart(chart, "6.1.0")  # a new index: the HelmRepository's new artifact wakes the chart up
    reconcile_now(kube, HELM_REPOSITORY, namespace, "podinfo")
    obj = wait(kube, KIND, namespace, "podinfo", lambda o: dig(o, "status.artifact.revision") == "6.1.0",
               "new chart version")
    assert storage.has(obj["status"]["artifact"])

    apply_source(kube, KIND, namespace, "podinfo", {
        "chart": "podinfo", "version": "9.x", "interval": "10m",
        "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}})
    obj = wait(kube, KIND, namespace, "podinfo", ready_with("False", "InvalidChartReference"), "no match")
    assert find_condition(obj, "Ready")["message"] == ("invalid chart reference: failed to get chart version for "
                                                       "remote reference: no 'podinfo' chart with version "
                                                       "matching '9.x' found")
    assert conditions(obj)["Stalled"] == ("True", "InvalidChartReference")
    assert conditions(obj)["FetchFailed"] == ("True", "InvalidChartReference")
    assert obj["status"]["artifact"]["revision"] == "6.1.0" and storage.has(obj["status"]["artifact"])


def test_values_files_from_repository_chart(kube, namespace, controllers, storage, helm_repo, tmp_path):
    chart = make_chart(tmp_path / "src", "app", "1.0.0", values={"replicas": 1, "image": {"tag": "a", "pull": "x"}},
                       files={"values-prod.yaml": "replicas: 3\nimage:\n  tag: b\n"})
    helm_repo.add_chart(chart)
    apply_source(kube, HELM_REPOSITORY, namespace, "repo", {"url": helm_repo.url, "interval": "10m"})
    spec = {"chart": "app", "interval": "10m", "sourceRef": {"kind": "HelmRepository", "name": "repo"},
            "valuesFiles": ["values.yaml", "values-prod.yaml"]}
    apply_source(kube, KIND, namespace, "app", spec)
    obj = wait(kube, KIND, namespace, "app", ready_with("True", "ChartPackageSucceeded"), "packaged")
    generation = obj["metadata"]["generation"]
    assert obj["status"]["artifact"]["revision"] == f"1.0.0+{generation}"
    assert find_condition(obj, "Ready")["message"] == (
        f"packaged 'app' chart with version '1.0.0+{generation}' and merged values files "
        "[values.yaml values-prod.yaml]")
    files = chart_files(storage, obj["status"]["artifact"])
    assert yaml.safe_load(files["app/values.yaml"]) == {"replicas": 3, "image": {"tag": "b", "pull": "x"}}
    assert yaml.safe_load(files["app/Chart.yaml"])["version"] == f"1.0.0+{generation}"
    assert "observedValuesFiles" not in obj["status"]

    apply_source(kube, KIND, namespace, "app", {**spec, "valuesFiles": ["values-prod.yaml", "missing.yaml"],
                                                "ignoreMissingValuesFiles": True})
    obj = wait(kube, KIND, namespace, "app", ready_with("True"), "missing file ignored")
    assert obj["status"]["observedValuesFiles"] == ["values-prod.yaml"]

    apply_source(kube, KIND, namespace, "app", {**spec, "valuesFiles": ["missing.yaml"]})
    obj = wait(kube, KIND, namespace, "app", ready_with("False", "ValuesFilesError"), "missing values file")
    assert find_condition(obj, "Ready")["message"] == ("values files merge error: failed to merge chart values: "
                                                       "no values file found at path 'missing.yaml'")
    assert conditions(obj)["BuildFailed"] == ("True", "ValuesFilesError") and "FetchFailed" not in conditions(obj)
    assert conditions(obj)["Stalled"] == ("True", "ValuesFilesError") and storage.has(obj["status"]["artifact"])


def test_chart_from_oci_repository(kube, namespace, controllers, storage, registry, tmp_path):
    chart = make_chart(tmp_path / "src", "ocichart", "1.0.0")
    repository = registry.new_repository("charts")
    for version in ("1.0.0", "1.0.1", "2.0.0"):
        push_oci(registry, package(chart, tmp_path / "pkg", version), repository)
    apply_source(kube, HELM_REPOSITORY, namespace, "oci", {"url": f"oci://{registry.host}/{repository}",
                                                          "type": "oci", "insecure": True, "interval": "10m"})
    apply_source(kube, KIND, namespace, "ocichart", {
        "chart": "ocichart", "version": "1.0.x", "interval": "10m",
        "sourceRef": {"kind": "HelmRepository", "name": "oci"}})
    obj = wait(kube, KIND, namespace, "ocichart", ready_with("True", "ChartPullSucceeded"), "OCI chart Ready")
    assert obj["status"]["artifact"]["revision"] == "1.0.1"
    assert storage.local_path(obj["status"]["artifact"]["path"]).read_bytes() == \
        (tmp_path / "pkg" / "ocichart-1.0.1.tgz").read_bytes()
    assert "observedSourceArtifactRevision" not in obj["status"]

    apply_source(kube, KIND, namespace, "ocichart", {
        "chart": "ocichart", "version": "3.x", "interval": "10m",
        "sourceRef": {"kind": "HelmRepository", "name": "oci"}})
    obj = wait(kube, KIND, namespace, "ocichart", ready_with("False", "ChartPullError"), "no tag")
    assert find_condition(obj, "Ready")["message"].endswith(
        "could not locate a version matching provided version string 3.x")


def test_oci_repository_credentials(kube, namespace, controllers, storage, registry_htpasswd, tmp_path):
    chart = make_chart(tmp_path / "src", "private", "0.2.0")
    repository = registry_htpasswd.new_repository("charts")
    push_oci(registry_htpasswd, package(chart, tmp_path / "pkg"), repository)
    apply_secret(kube, namespace, "regcreds", {"username": registry_htpasswd.username,
                                               "password": registry_htpasswd.password})
    apply_source(kube, HELM_REPOSITORY, namespace, "oci", {
        "url": f"oci://{registry_htpasswd.host}/{repository}", "type": "oci", "insecure": True, "interval": "10m",
        "secretRef": {"name": "regcreds"}})
    apply_source(kube, KIND, namespace, "private", {
        "chart": "private", "interval": "10m", "sourceRef": {"kind": "HelmRepository", "name": "oci"}})
    obj = wait(kube, KIND, namespace, "private", ready_with("True"), "private OCI chart")
    assert obj["status"]["artifact"]["revision"] == "0.2.0"

    apply_secret(kube, namespace, "regcreds", {"username": registry_htpasswd.username, "password": "n0t-it"})
    obj = reconcile_now(kube, KIND, namespace, "private")
    ready = find_condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AuthenticationFailed")
    assert ready["message"].startswith("failed to login to OCI registry: ")
    assert "n0t-it" not in json.dumps(obj) and registry_htpasswd.password not in json.dumps(obj)
    assert obj["status"]["artifact"]["revision"] == "0.2.0"


# --------------------------------------------------------------------------- from a GitRepository or Bucket


def _source_tree(root: Path, helm_repo_url: str) -> Path:
    """A repository with charts/app depending on a local library chart and a remote chart."""
    make_chart(root / "charts", "lib", "0.3.0", values={"lib": True})
    make_chart(root / "charts", "app", "0.1.0", values={"replicas": 1}, dependencies=[
        {"name": "lib", "version": "0.3.x", "repository": "file://../lib"},
        {"name": "remote", "version": "^1.0.0", "repository": helm_repo_url},
    ])
    (root / "env").mkdir()
    (root / "env" / "prod.yaml").write_text("replicas: 5\n")
    return root


def test_chart_from_git_repository_with_dependencies(kube, namespace, controllers, storage, helm_repo_auth,
                                                     tmp_path):
    helm_repo_auth.add_chart(make_chart(tmp_path / "remote-src", "remote", "1.2.0"))
    apply_secret(kube, namespace, "helm-creds", {"username": helm_repo_auth.username,
                                                 "password": helm_repo_auth.password})
    apply_source(kube, HELM_REPOSITORY, namespace, "remote", {"url": helm_repo_auth.url, "interval": "10m",
                                                             "secretRef": {"name": "helm-creds"}})
    commit = hashlib.sha1(b"commit").hexdigest()
    with_artifact(kube, storage, GIT_REPOSITORY, namespace, "repo", {"url": "https://example.com/repo.git",
                                                                     "interval": "10m"},
                  _source_tree(tmp_path / "git", helm_repo_auth.url), f"main@sha1:{commit}")
    spec = {"chart": "./charts/app", "interval": "10m", "reconcileStrategy": "Revision",
            "sourceRef": {"kind": "GitRepository", "name": "repo"}, "valuesFiles": ["env/prod.yaml"]}
    apply_source(kube, KIND, namespace, "app", spec)
    obj = wait(kube, KIND, namespace, "app", ready_with("True", "ChartPackageSucceeded"), "packaged from git")

    generation = obj["metadata"]["generation"]
    version = f"0.1.0+{commit[:12]}.{generation}"
    assert obj["status"]["artifact"]["revision"] == version
    assert obj["status"]["observedSourceArtifactRevision"] == f"main@sha1:{commit}"
    files = chart_files(storage, obj["status"]["artifact"])
    assert "app/charts/lib/Chart.yaml" in files and "app/charts/remote/Chart.yaml" in files
    assert yaml.safe_load(files["app/values.yaml"]) == {"replicas": 5}
    assert find_condition(obj, "Ready")["message"] == (f"packaged 'app' chart with version '{version}' and merged "
                                                       "values files [env/prod.yaml]")
    assert any(r.authorized and r.path.endswith(".tgz") for r in helm_repo_auth.requests)

    commit2 = hashlib.sha1(b"commit2").hexdigest()  # a new source revision: a new chart version
    with_artifact(kube, storage, GIT_REPOSITORY, namespace, "repo", {"url": "https://example.com/repo.git",
                                                                     "interval": "10m"},
                  tmp_path / "git", f"main@sha1:{commit2}")
    obj = wait(kube, KIND, namespace, "app", lambda o: dig(o, "status.artifact.revision") ==
               f"0.1.0+{commit2[:12]}.{generation}", "new revision")


def test_chart_from_bucket_and_chart_version_strategy(kube, namespace, controllers, storage, tmp_path):
    root = tmp_path / "bucket"
    make_chart(root, "simple", "2.0.0")
    digest = "sha256:" + hashlib.sha256(b"listing").hexdigest()
    with_artifact(kube, storage, BUCKET, namespace, "bucket", {"bucketName": "b", "endpoint": "127.0.0.1:9",
                                                               "interval": "10m"}, root, digest)
    apply_source(kube, KIND, namespace, "simple", {"chart": "simple", "interval": "10m",
                                                   "sourceRef": {"kind": "Bucket", "name": "bucket"}})
    obj = wait(kube, KIND, namespace, "simple", ready_with("True", "ChartPackageSucceeded"), "bucket chart")
    assert obj["status"]["artifact"]["revision"] == "2.0.0"  # ChartVersion: no revision metadata
    first = obj["status"]["artifact"]
    again = reconcile_now(kube, KIND, namespace, "simple")
    assert again["status"]["artifact"] == first  # same name and version: nothing rebuilt


def test_bad_sources_and_paths(kube, namespace, controllers, storage, tmp_path):
    apply_source(kube, KIND, namespace, "nosource", {"chart": "./c", "interval": "10m",
                                                     "sourceRef": {"kind": "GitRepository", "name": "absent"}})
    obj = wait(kube, KIND, namespace, "nosource", ready_with("False", "SourceUnavailable"), "no source")
    assert find_condition(obj, "Ready")["message"] == \
        'failed to get source: gitrepositories.source.toolkit.fluxcd.io "absent" not found'

    apply_source(kube, GIT_REPOSITORY, namespace, "empty", {"url": "https://example.com/r.git", "interval": "10m"})
    apply_source(kube, KIND, namespace, "noartifact", {"chart": "./c", "interval": "10m",
                                                       "sourceRef": {"kind": "GitRepository", "name": "empty"}})
    obj = wait(kube, KIND, namespace, "noartifact", ready_with("False", "NoSourceArtifact"), "no artifact")
    assert find_condition(obj, "Ready")["message"] == "no artifact available for GitRepository source 'empty'"

    make_chart(tmp_path / "git", "app", "1.0.0")
    with_artifact(kube, storage, GIT_REPOSITORY, namespace, "repo", {"url": "https://example.com/r.git",
                                                                     "interval": "10m"},
                  tmp_path / "git", "main@sha1:" + "a" * 40)
    apply_source(kube, KIND, namespace, "escape", {"chart": "../../../etc", "interval": "10m",
                                                   "sourceRef": {"kind": "GitRepository", "name": "repo"}})
    obj = wait(kube, KIND, namespace, "escape", ready_with("False", "InvalidChartReference"), "escaping path")
    assert find_condition(obj, "Ready")["message"] == "invalid chart reference: stat /etc: no such file or directory"

    raw = io.BytesIO()  # an artifact with a link out of the source is refused
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("app/templates/leak.yaml")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/hostname"
        tar.addfile(info)
    artifact = storage.store_bytes(storage.artifact_path("GitRepository", namespace, "evil", "e.tar.gz"),
                                   raw.getvalue())
    apply_source(kube, GIT_REPOSITORY, namespace, "evil", {"url": "https://example.com/r.git", "interval": "10m"})
    kube.patch(GIT_REPOSITORY, "evil", {"status": {"artifact": {**artifact, "revision": "sha1:" + "b" * 40}}},
               namespace, subresource="status")
    apply_source(kube, KIND, namespace, "symlink", {"chart": "app", "interval": "10m",
                                                    "sourceRef": {"kind": "GitRepository", "name": "evil"}})
    obj = wait(kube, KIND, namespace, "symlink", ready_with("False", "Failed"), "unsafe artifact")
    assert find_condition(obj, "Ready")["message"].startswith("artifact untar error: ")


def test_credentials_reach_other_hosts_only_with_pass_credentials(kube, namespace, controllers, storage,
                                                                  helm_repo_auth, tmp_path):
    helm_repo_auth.add_chart(make_chart(tmp_path / "src", "app", "1.0.0"), reindex=False)
    port = helm_repo_auth.url.rsplit(":", 1)[1]
    helm_repo_auth.index(f"http://localhost:{port}")  # the index sends chart downloads to another host name
    apply_secret(kube, namespace, "creds", {"username": helm_repo_auth.username, "password": helm_repo_auth.password})
    repo_spec = {"url": helm_repo_auth.url, "interval": "10m", "secretRef": {"name": "creds"}}
    apply_source(kube, HELM_REPOSITORY, namespace, "repo", repo_spec)
    apply_source(kube, KIND, namespace, "app", {"chart": "app", "interval": "10m",
                                                "sourceRef": {"kind": "HelmRepository", "name": "repo"}})
    obj = wait(kube, KIND, namespace, "app", ready_with("False", "ChartPullError"), "credentials withheld")
    assert find_condition(obj, "Ready")["message"] == (
        "chart pull error: failed to download chart for remote reference: failed to fetch "
        f"http://localhost:{port}/app-1.0.0.tgz : 401 Unauthorized")
    assert not any(r.credentials_sent for r in helm_repo_auth.requests if r.path.endswith(".tgz"))

    apply_source(kube, HELM_REPOSITORY, namespace, "repo", {**repo_spec, "passCredentials": True})
    wait(kube, KIND, namespace, "app", ready_with("True", "ChartPullSucceeded"), "credentials passed")
    assert any(r.authorized for r in helm_repo_auth.requests if r.path.endswith(".tgz"))
