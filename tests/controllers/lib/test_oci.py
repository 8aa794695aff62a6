"""The OCI distribution client (``controllers.lib.oci.registry``) and Flux's artifact format
(``controllers.lib.oci.artifact``), against a real docker-registry on loopback
(no auth, htpasswd basic auth, token/Bearer auth, TLS), plus the pure parts (references, Docker config
matching, tag selection, the tarball and manifest layout ``flux push artifact`` produces)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
import time

import pytest

from controllers.lib.oci import artifact as oci_artifact
from controllers.lib.oci import registry as oci_registry
from controllers.source.oci import select_tag
from servers.net import hanging_endpoint, refused_endpoint  # noqa: F401
from servers.registry import registry, registry_htpasswd, registry_tls, registry_token, tarball_with  # noqa: F401

# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("text, expected", [
    ("ghcr.io/org/app:v1", ("ghcr.io", "org/app", "v1", "")),
    ("127.0.0.1:5000/a/b", ("127.0.0.1:5000", "a/b", "latest", "")),
    ("localhost/app:1.0", ("localhost", "app", "1.0", "")),
    ("podinfo", ("index.docker.io", "library/podinfo", "latest", "")),
    ("docker.io/stefan/podinfo:6", ("index.docker.io", "stefan/podinfo", "6", "")),
    ("reg.io/app@sha256:" + "a" * 64, ("reg.io", "app", "", "sha256:" + "a" * 64)),
])
def test_references_parse_like_go_containerregistry(text, expected):
    ref = oci_registry.Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


def test_reference_strings_and_invalid_references():
    assert str(oci_registry.Reference.parse("reg.io/a/b:v1")) == "reg.io/a/b:v1"
    assert str(oci_registry.Reference.parse("reg.io/a/b")) == "reg.io/a/b:latest"
    assert str(oci_registry.Reference.repository_of("reg.io/a/b")) == "reg.io/a/b"
    assert str(oci_registry.Reference.parse("reg.io/a/b:v1").with_digest("sha256:" + "b" * 64)) == \
        "reg.io/a/b@sha256:" + "b" * 64
    for bad in ("reg.io/UPPER/case", "reg.io/app:bad tag", "reg.io/app@sha256:short", "reg.io/"):
        with pytest.raises(oci_registry.InvalidReference):
            oci_registry.Reference.parse(bad)


def test_repository_urls_must_be_oci_without_tag_or_digest():
    assert oci_registry.parse_repository_url("oci://127.0.0.1:5000/org/app").name == "127.0.0.1:5000/org/app"
    with pytest.raises(oci_registry.InvalidReference, match=r"URL must be in format 'oci://<domain>/<org>/<repo>'"):
        oci_registry.parse_repository_url("https://ghcr.io/org/app")
    with pytest.raises(oci_registry.InvalidReference, match=r"URL must not contain a tag; remove ':v1'"):
        oci_registry.parse_repository_url("oci://ghcr.io/org/app:v1")
    with pytest.raises(oci_registry.InvalidReference, match=r"must not contain a digest"):
        oci_registry.parse_repository_url("oci://ghcr.io/org/app@sha256:" + "c" * 64)
    assert oci_registry.parse_artifact_url("oci://ghcr.io/org/app").tag == "latest"


def test_plain_http_only_for_local_registries():
    for local in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000", "10.1.2.3", "192.168.0.2:80", "reg.local:5000"):
        assert oci_registry.http_allowed(local), local
    for remote in ("ghcr.io", "8.8.8.8:5000", "registry.example.com:5000"):
        assert not oci_registry.http_allowed(remote), remote


# --------------------------------------------------------------------------- credentials


def test_docker_config_matching_picks_the_most_specific_entry():
    def entry(user: str) -> dict:
        return {"auth": base64.b64encode(f"{user}:pw-{user}".encode()).decode()}

    config = json.dumps({"auths": {
        "https://ghcr.io": entry("host"),
        "ghcr.io/org": entry("org"),
        "*.example.com": entry("wildcard"),
        "https://index.docker.io/v1/": entry("hub"),
        "other.io": {"username": "plain", "password": "pw-plain"},
    }})

    def lookup(text):
        return oci_registry.credentials_from_docker_config(config, oci_registry.Reference.parse(text))
    assert lookup("ghcr.io/org/app").username == "org"
    assert lookup("ghcr.io/orgs/app").username == "host"
    assert lookup("reg.example.com/x/y").username == "wildcard"
    assert lookup("stefan/podinfo") == oci_registry.Credentials("hub", "pw-hub")
    assert lookup("other.io/a") == oci_registry.Credentials("plain", "pw-plain")
    assert lookup("quay.io/a") is None
    assert "pw-" not in repr(lookup("other.io/a"))
    with pytest.raises(ValueError) as bad:
        oci_registry.credentials_from_docker_config(b"{not json", oci_registry.Reference.parse("ghcr.io/a"))
    assert "not json" not in str(bad.value)


def test_docker_config_json_is_formatted_like_flux():
    assert oci_registry.docker_config_json("ghcr.io", "stefanprodan", "password") == (
        '{\n  "auths": {\n    "ghcr.io": {\n      "username": "stefanprodan",\n      "password": "password",\n'
        '      "auth": "c3RlZmFucHJvZGFuOnBhc3N3b3Jk"\n    }\n  }\n}')
    assert oci_registry.parse_creds("user:pa:ss") == oci_registry.Credentials("user", "pa:ss")
    with pytest.raises(ValueError):
        oci_registry.parse_creds(":nouser")


# --------------------------------------------------------------------------- tags


def test_semver_tag_selection_with_filter_and_helm_tags():
    tags = ["latest", "1.0.0", "v1.2.0", "1.3.0-rc.1", "2.0.0", "1.1", "1.2.1-dev"]
    assert select_tag(tags, "<2.0.0") == "v1.2.0"
    assert select_tag(tags, ">=1.0.0-0 <2.0.0") == "1.3.0-rc.1"
    assert select_tag(tags, "*", tag_filter=r"^1\.0") == "1.0.0"
    assert select_tag(["1.0.0_build.1", "0.9.0"], ">=0.1",
                      media_type="application/vnd.cncf.helm.chart.content.v1.tar+gzip") == "1.0.0_build.1"
    with pytest.raises(ValueError, match="no match found for semver: >=3.0.0"):
        select_tag(tags, ">=3.0.0")
    with pytest.raises(ValueError, match="semver 'not a range' parse error"):
        select_tag(tags, "not a range")


# --------------------------------------------------------------------------- the artifact format


def test_build_tarball_keeps_modes_and_walk_order_and_applies_ignore_paths(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "b.yaml").write_text("b")
    (src / "a.sh").write_text("#!/bin/sh")
    os.chmod(src / "a.sh", 0o755)
    os.chmod(src / "b.yaml", 0o644)
    os.chmod(src / "sub", 0o750)
    (src / "sub" / "c.png").write_bytes(b"png")
    (src / "link").symlink_to("b.yaml")
    digest = oci_artifact.build_tarball(src, tmp_path / "out.tgz", oci_artifact.DEFAULT_IGNORE_PATHS)
    data = (tmp_path / "out.tgz").read_bytes()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert oct(os.stat(tmp_path / "out.tgz").st_mode & 0o777) == "0o640"
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, zero mtime
    with tarfile.open(tmp_path / "out.tgz") as tar:
        members = [(m.name, m.mode, m.mtime, m.uid, m.uname) for m in tar]
    assert members == [(".", os.stat(src).st_mode & 0o7777, 0, 0, ""), ("a.sh", 0o755, 0, 0, ""),
                       ("b.yaml", 0o644, 0, 0, ""), ("sub", 0o750, 0, 0, "")]
    # same content, same bytes; a single file becomes one entry named after it
    assert oci_artifact.build_tarball(src, tmp_path / "again.tgz", oci_artifact.DEFAULT_IGNORE_PATHS) == digest
    oci_artifact.build_tarball(src / "b.yaml", tmp_path / "one.tgz")
    with tarfile.open(tmp_path / "one.tgz") as tar:
        assert tar.getnames() == ["b.yaml"]


def test_manifest_and_config_have_go_containerregistrys_layout():
    config = oci_artifact.artifact_config("sha256:" + "d" * 64)
    assert config == (b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":'
                      b'"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:'
                      + b"d" * 64 + b'"]},"config":{}}')
    annotations = oci_artifact.artifact_annotations("https://git/<r>&", "main@sha1:1", {"x": "y"},
                                                    created="2025-01-02T03:04:05Z")
    config_descriptor = oci_registry.Descriptor(oci_artifact.FLUX_CONFIG_MEDIA_TYPE, "sha256:" + "e" * 64, 233)
    layer_descriptor = oci_registry.Descriptor(oci_artifact.FLUX_CONTENT_MEDIA_TYPE, "sha256:" + "f" * 64, 10)
    manifest = oci_artifact.artifact_manifest(config_descriptor, [layer_descriptor], annotations)
    assert manifest.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                               b'"config":{"mediaType":"application/vnd.cncf.flux.config.v1+json","size":233,')
    assert b'"annotations":{"org.opencontainers.image.created":"2025-01-02T03:04:05Z",' \
           b'"org.opencontainers.image.revision":"main@sha1:1",' \
           b'"org.opencontainers.image.source":"https://git/\\u003cr\\u003e\\u0026","x":"y"}}' in manifest


# --------------------------------------------------------------------------- against the registry


@pytest.mark.parametrize("server_fixture", ["registry", "registry_htpasswd", "registry_token"])
def test_push_list_pull_with_each_kind_of_auth(request, tmp_path, server_fixture):
    server = request.getfixturevalue(server_fixture)
    repository = server.new_repository()
    digests = {tag: server.push(repository, tag, {"a.yaml": f"tag: {tag}\n"}) for tag in ("1.0.0", "1.1.0", "2.0.0")}
    with server.client() as client:
        assert sorted(client.list_tags(repository)) == ["1.0.0", "1.1.0", "2.0.0"]
        assert client.list_tags(repository, page_size=1) == client.list_tags(repository)
        ref = oci_registry.Reference(server.host, repository, "1.1.0")
        assert client.resolve_digest(ref) == digests["1.1.0"]
        manifest = client.image_manifest(ref)
        assert manifest.digest == digests["1.1.0"] and manifest.media_type == oci_registry.OCI_MANIFEST
        assert manifest.config.media_type == oci_artifact.FLUX_CONFIG_MEDIA_TYPE
        assert manifest.annotations[oci_artifact.REVISION_ANNOTATION] == "1.1.0@sha1:abc"
        layer = oci_artifact.select_layer(manifest)
        assert layer.media_type == oci_artifact.FLUX_CONTENT_MEDIA_TYPE
        client.download_blob(repository, layer.digest, tmp_path / "layer.tgz")
        assert [e[0] for e in oci_artifact.tar_entries(tmp_path / "layer.tgz")] == [".", "a.yaml"]
        config = json.loads(client.get_blob(repository, manifest.config.digest))
        assert config["rootfs"]["diff_ids"] == [oci_artifact.uncompressed_digest(tmp_path / "layer.tgz")]
        with pytest.raises(oci_registry.RegistryError) as missing:
            client.get_manifest(oci_registry.Reference(server.host, repository, "nope"))
        assert missing.value.not_found and "MANIFEST_UNKNOWN" in str(missing.value)


@pytest.mark.parametrize("server_fixture", ["registry_htpasswd", "registry_token"])
def test_missing_or_wrong_credentials_are_refused_without_leaking(request, tmp_path, server_fixture):
    server = request.getfixturevalue(server_fixture)
    repository = server.new_repository()
    server.push(repository, "v1", {"a": "a"})
    for creds in (None, oci_registry.Credentials(server.username, "wrong-password-123")):
        with oci_registry.RegistryClient(server.host, credentials=creds, timeout=30) as client:
            with pytest.raises(oci_registry.AuthenticationError) as refused:
                client.resolve_digest(oci_registry.Reference(server.host, repository, "v1"))
        assert "UNAUTHORIZED" in str(refused.value)
        assert "wrong-password-123" not in str(refused.value) and server.password not in str(refused.value)


def test_tls_registry_needs_its_ca_or_insecure(registry_tls):
    host = registry_tls.host
    with oci_registry.RegistryClient(host, timeout=30) as client:
        with pytest.raises(oci_registry.OCIError, match=r'Get "https://.*/v2/": tls: failed to verify certificate'):
            client.list_tags("any/repo")
    repository = registry_tls.new_repository()
    ref = oci_registry.Reference(host, repository, "v1")
    digest = registry_tls.push(repository, "v1", {"a": "a"})  # trusting the registry's CA
    with oci_registry.RegistryClient(host, insecure=True, timeout=30) as client:
        assert client.resolve_digest(ref) == digest


def test_unreachable_and_hanging_registries_fail_within_the_deadline(hanging_endpoint):
    with oci_registry.RegistryClient(refused_endpoint(), timeout=10) as client:
        with pytest.raises(oci_registry.OCIError, match="connection refused"):
            client.list_tags("a/b")
    started = time.monotonic()
    with oci_registry.RegistryClient(hanging_endpoint, timeout=1.5) as client:
        with pytest.raises(oci_registry.OCIError, match="context deadline exceeded"):
            client.list_tags("a/b")
    assert time.monotonic() - started < 5


def test_gzip_and_tar_helpers(tmp_path):
    (tmp_path / "t.tgz").write_bytes(tarball_with([("./dir/f.txt", "file", "hi")]))
    (tmp_path / "plain").write_bytes(b"not gzip")
    assert oci_artifact.is_gzip(tmp_path / "t.tgz") and not oci_artifact.is_gzip(tmp_path / "plain")
    assert list(oci_artifact.tar_entries(tmp_path / "t.tgz")) == [("dir/f.txt", "file", 0o644,
                                                                   hashlib.sha256(b"hi").hexdigest())]
