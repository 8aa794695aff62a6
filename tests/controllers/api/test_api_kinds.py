"""The kinds registry: names, aliases, groups, components and capabilities (no cluster)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from controllers.api import kinds
from controllers.api.objects import dig
from controllers.api.kinds import (
    COMPONENTS, COMPONENTS_EXTRA, KINDS, UnknownKind, kind_by_name, kind_for, kinds_in_group, kinds_of_component,
    revision_of,
)
from tests.controllers.api.api_support import example_file

#: (Kind, apiVersion, plural, short names, canonical CLI name, cli group, controller)
EXPECTED = [
    ("OCIRepository", "source.toolkit.fluxcd.io/v1", "ocirepositories", ("ocirepo",), "source oci", "sources",
     "source-controller"),
    ("Bucket", "source.toolkit.fluxcd.io/v1", "buckets", (), "source bucket", "sources", "source-controller"),
    ("GitRepository", "source.toolkit.fluxcd.io/v1", "gitrepositories", ("gitrepo",), "source git", "sources",
     "source-controller"),
    ("HelmRepository", "source.toolkit.fluxcd.io/v1", "helmrepositories", ("helmrepo",), "source helm", "sources",
     "source-controller"),
    ("HelmChart", "source.toolkit.fluxcd.io/v1", "helmcharts", ("hc",), "source chart", "sources",
     "source-controller"),
    ("ExternalArtifact", "source.toolkit.fluxcd.io/v1", "externalartifacts", (), "source external", "sources",
     "source-controller"),
    ("ArtifactGenerator", "source.extensions.fluxcd.io/v1beta1", "artifactgenerators", ("ag",),
     "artifact generator", "", "source-watcher"),
    ("ImageRepository", "image.toolkit.fluxcd.io/v1", "imagerepositories", ("imgrepo", "imagerepo"),
     "image repository", "images", "image-reflector-controller"),
    ("ImagePolicy", "image.toolkit.fluxcd.io/v1", "imagepolicies", ("imgpol", "imagepol"), "image policy", "images",
     "image-reflector-controller"),
    ("ImageUpdateAutomation", "image.toolkit.fluxcd.io/v1", "imageupdateautomations", ("iua", "imgupd", "imgauto"),
     "image update", "images", "image-automation-controller"),
    ("HelmRelease", "helm.toolkit.fluxcd.io/v2", "helmreleases", ("hr",), "helmrelease", "", "helm-controller"),
    ("Kustomization", "kustomize.toolkit.fluxcd.io/v1", "kustomizations", ("ks",), "kustomization", "",
     "kustomize-controller"),
    ("Receiver", "notification.toolkit.fluxcd.io/v1", "receivers", (), "receiver", "", "notification-controller"),
    ("Provider", "notification.toolkit.fluxcd.io/v1beta3", "providers", (), "alert-provider", "",
     "notification-controller"),
    ("Alert", "notification.toolkit.fluxcd.io/v1beta3", "alerts", (), "alert", "", "notification-controller"),
]


def test_kinds_in_flux_order_with_coordinates():
    got = [(k.kind, k.api_version, k.plural, k.short_names, k.display, k.cli_group, k.controller) for k in KINDS]
    assert got == EXPECTED
    assert all(k.namespaced for k in KINDS)
    assert all(k.singular == k.kind.lower() for k in KINDS)
    assert all(k.categories == () for k in KINDS)  # Flux 2.7 CRDs declare none


@pytest.mark.parametrize("name,expected", [
    ("source git", "GitRepository"), ("sources git", "GitRepository"), ("gitrepository", "GitRepository"),
    ("GitRepositories", "GitRepository"), ("gitrepo", "GitRepository"), ("GitRepository", "GitRepository"),
    ("  Source   GIT ", "GitRepository"), ("gitrepositories.source.toolkit.fluxcd.io", "GitRepository"),
    ("source oci", "OCIRepository"), ("ocirepo", "OCIRepository"),
    ("source helm", "HelmRepository"), ("helmrepo", "HelmRepository"),
    ("source chart", "HelmChart"), ("hc", "HelmChart"),
    ("source bucket", "Bucket"), ("buckets", "Bucket"),
    ("source external", "ExternalArtifact"), ("externalartifacts", "ExternalArtifact"),
    ("artifact generator", "ArtifactGenerator"), ("artifacts generators", "ArtifactGenerator"), ("ag", "ArtifactGenerator"),
    ("kustomization", "Kustomization"), ("kustomizations", "Kustomization"), ("ks", "Kustomization"),
    ("helmrelease", "HelmRelease"), ("helmreleases", "HelmRelease"), ("hr", "HelmRelease"), ("HR", "HelmRelease"),
    ("alert-provider", "Provider"), ("alert-providers", "Provider"), ("provider", "Provider"),
    ("alert", "Alert"), ("alerts", "Alert"), ("receiver", "Receiver"), ("receivers", "Receiver"),
    ("image repository", "ImageRepository"), ("images repository", "ImageRepository"), ("imgrepo", "ImageRepository"),
    ("image policy", "ImagePolicy"), ("imagepol", "ImagePolicy"), ("imgpol", "ImagePolicy"),
    ("image update", "ImageUpdateAutomation"), ("iua", "ImageUpdateAutomation"), ("imgauto", "ImageUpdateAutomation"),
])
def test_kind_by_name(name, expected):
    assert kind_by_name(name).kind == expected


def test_every_declared_name_resolves_to_its_kind():
    for kind in KINDS:
        for name in (kind.kind, kind.plural, kind.singular, *kind.short_names, *kind.cli_names):
            assert kind_by_name(name) is kind, name


def test_aliases_unique_across_kinds():
    owner: dict[str, str] = {}
    for kind in KINDS:
        names = {n.lower() for n in (kind.kind, kind.plural, kind.singular, *kind.short_names, *kind.cli_names)}
        for name in names:
            assert owner.setdefault(name, kind.kind) == kind.kind, f"{name!r} used by {owner[name]} and {kind.kind}"


def test_unknown_kind():
    with pytest.raises(UnknownKind) as info:
        kind_by_name("source gti")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.name == "source gti"
    assert "source git" in err.suggestions
    message = str(err)
    assert "source gti" in message
    for kind in KINDS:
        assert kind.display in message
    with pytest.raises(UnknownKind) as info:
        kind_by_name("zzzz")
    assert info.value.suggestions == ()


def test_groups():
    assert [k.kind for k in kinds_in_group("sources")] == [
        "OCIRepository", "Bucket", "GitRepository", "HelmRepository", "HelmChart", "ExternalArtifact"]
    assert [k.kind for k in kinds_in_group("images")] == ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"]
    assert kinds_in_group("nothing") == ()


def test_kind_for():
    assert kind_for("source.toolkit.fluxcd.io/v1", "GitRepository") is kind_by_name("gitrepo")
    assert kind_for("source.toolkit.fluxcd.io/v1beta2", "GitRepository") is kind_by_name("gitrepo")
    assert kind_for("notification.toolkit.fluxcd.io/v1beta3", "Alert") is kind_by_name("alert")
    assert kind_for("apps/v1", "Deployment") is None
    assert kind_for("v1", "ConfigMap") is None


def test_components():
    assert COMPONENTS == ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
    assert COMPONENTS_EXTRA == ("image-reflector-controller", "image-automation-controller", "source-watcher")
    owned = [k for c in COMPONENTS + COMPONENTS_EXTRA for k in kinds_of_component(c)]
    assert sorted(k.kind for k in owned) == sorted(k.kind for k in KINDS)
    assert [k.kind for k in kinds_of_component("notification-controller")] == ["Receiver", "Provider", "Alert"]
    assert [k.kind for k in kinds_of_component("source-watcher")] == ["ArtifactGenerator"]
    with pytest.raises(ValueError, match="unknown component"):
        kinds_of_component("nope-controller")


@pytest.mark.parametrize("name,suspendable,reconcilable,source_ref,revision,reconciled", [
    ("source git", True, True, "", "status.artifact.revision", "fetched revision {revision}"),
    ("source oci", True, True, "", "status.artifact.revision", "fetched revision {revision}"),
    ("source helm", True, True, "", "status.artifact.revision", "fetched revision {revision}"),
    ("source chart", True, True, "spec.sourceRef", "status.artifact.revision", "fetched revision {revision}"),
    ("source bucket", True, True, "", "status.artifact.revision", "fetched revision {revision}"),
    ("source external", False, False, "", "status.artifact.revision", "fetched revision {revision}"),
    ("artifact generator", False, True, "", "status.observedSourcesDigest", "built revision {revision}"),
    ("kustomization", True, True, "spec.sourceRef", "status.lastAppliedRevision", "applied revision {revision}"),
    ("helmrelease", True, True, "spec.chart.spec.sourceRef", "status.history[0].chartVersion",
     "applied revision {revision}"),
    ("alert-provider", True, False, "", "", "applied revision {revision}"),
    ("alert", True, False, "", "", "applied revision {revision}"),
    ("receiver", True, True, "", "", "applied revision {revision}"),
    ("image repository", True, True, "", "status.lastScanResult.tagCount", "scan fetched {revision} tags"),
    ("image policy", True, True, "spec.imageRepositoryRef", "status.latestRef", "selected ref {revision}"),
    ("image update", True, True, "spec.sourceRef", "status.lastPushCommit", "{message}"),
])
def test_capabilities(name, suspendable, reconcilable, source_ref, revision, reconciled):
    kind = kind_by_name(name)
    assert (kind.suspendable, kind.reconcilable) == (suspendable, reconcilable)
    revision_path = kind.revision.paths[0] if kind.revision else ""
    assert (kind.source_ref_path, revision_path, kind.reconciled) == (source_ref, revision, reconciled)
    assert ("suspend" in kind.spec_schema["properties"]) == suspendable
    if kind.source_ref_path:
        node = kind.spec_schema
        for part in kind.source_ref_path.split(".")[1:]:
            node = node["properties"][part]
        assert "name" in node["properties"]


def test_revision_of():
    hr = kind_by_name("hr")
    assert revision_of(hr, {"status": {"history": [{"chartVersion": "6.0.1"}, {"chartVersion": "6.0.0"}]}}) == "6.0.1"
    assert revision_of(hr, {"status": {"lastAttemptedRevision": "1.2.3"}}) == "1.2.3"
    assert revision_of(hr, {}) == ""
    policy = kind_by_name("image policy")
    assert revision_of(policy, {"status": {"latestRef": {"name": "ghcr.io/a/b", "tag": "1.0"}}}) == "ghcr.io/a/b:1.0"
    assert revision_of(policy, {"status": {"latestRef": {"name": "a", "tag": "1", "digest": "sha256:x"}}}) \
        == "a:1@sha256:x"
    git = kind_by_name("source git")
    assert revision_of(git, {"status": {"artifact": {"revision": "main@sha1:abc"}}}) == "main@sha1:abc"
    assert revision_of(kind_by_name("alert"), {"status": {}}) == ""
    assert dig({"a": [{"b": 1}]}, "a[0].b") == 1
    assert dig({"a": []}, "a[0].b") is None
    assert dig({"a": "x"}, "a.b") is None


def test_printer_columns():
    for kind in KINDS:
        names = [c.name for c in kind.printer_columns]
        assert "Age" in names
        if kind.status_schema:
            assert {"Ready", "Status"} <= set(names)
    assert [c.name for c in kind_by_name("source chart").printer_columns] == [
        "Chart", "Version", "Source Kind", "Source Name", "Age", "Ready", "Status"]
    last_scan = [c for c in kind_by_name("image repository").printer_columns if c.name == "Last scan"][0]
    assert last_scan.priority == 1


def test_every_kind_has_examples():
    for kind in KINDS:
        assert example_file(kind).is_file(), kind.kind


def test_import_is_light():
    """The CLI imports the registry on every start: it must pull in nothing heavy."""
    code = ("import sys, controllers.api.kinds; "
            "bad = [m for m in ('yaml', 'kubernetes', 'jinja2', 'typer', 'rich', 'json', 'difflib') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=kinds.__file__.rsplit("/controllers/", 1)[0])
    assert out.stdout.strip() == ""


def test_get_columns_format_values_as_flux():
    from controllers.api.kinds import ready_of
    from controllers.api.types import Column, truncate_hex

    sha = "0123456789abcdef0123456789abcdef01234567"
    assert truncate_hex(f"main@sha1:{sha} and sha256:{'ab' * 32}") == "main@sha1:01234567 and sha256:abababab"
    assert truncate_hex("v1.2.3 deadbeef") == "v1.2.3 deadbeef"
    hr = {"metadata": {"namespace": "apps"}, "spec": {"chart": {"spec": {"sourceRef": {"kind": "HelmRepository",
                                                                                          "name": "podinfo"}}}},
          "status": {"lastAttemptedRevision": "6.5.4", "history": []}}
    release = kind_by_name("hr")
    assert [c.value(hr) for c in release.columns] == ["HelmRepository/apps/podinfo", "6.5.4", "False"]
    assert Column("X", ("status.latestRef",), "image").value(
        {"status": {"latestRef": {"name": "ghcr.io/a", "tag": "1", "digest": "sha256:x"}}}) == "ghcr.io/a:1@sha256:x"
    generator = kind_by_name("artifact generator")
    disabled = {"metadata": {"annotations": {"source.extensions.fluxcd.io/reconcile": "disabled"}}}
    assert [c.value(disabled) for c in generator.columns] == ["True"]
    assert ready_of(kind_by_name("source git"), {}) == ("False", "waiting to be reconciled")
    assert ready_of(kind_by_name("alert"), {}) == ("True", "Alert is Ready")
    helm_repo = kind_by_name("source helm")
    assert ready_of(helm_repo, {"spec": {"type": "oci"}}) == ("True", "Helm repository is Ready")
    failing = {"status": {"conditions": [{"type": "Ready", "status": "False", "message": f"fetch {sha} failed"}]}}
    assert ready_of(helm_repo, failing) == ("False", "fetch 01234567 failed")
    assert ready_of(release, failing) == ("False", f"fetch {sha} failed")  # flux keeps HelmRelease messages whole
    with pytest.raises(ValueError, match="unknown format"):
        Column("X", ("a",), "color")
