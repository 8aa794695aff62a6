"""``fluxpy push|pull|tag artifact``, ``list artifacts``, ``build|diff artifact`` against a real docker-registry
(without and with htpasswd auth), checking the OCI layout flux reads: media types and annotations."""
from __future__ import annotations

import json
import tarfile

import pytest
import yaml

import flux_cli.commands.artifact  # noqa: F401 - registers the commands (flux_cli.main imports it too)
from controllers.lib.oci import artifact as oci_artifact
from controllers.lib.oci import registry as oci_registry
from servers.registry import registry, registry_htpasswd, tarball_with  # noqa: F401


@pytest.fixture
def manifests(tmp_path):
    src = tmp_path / "manifests"
    (src / "apps").mkdir(parents=True)
    (src / "apps" / "deploy.yaml").write_text("kind: Deployment\n")
    (src / "cm.yaml").write_text("kind: ConfigMap\n")
    (src / "logo.png").write_bytes(b"png")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: main\n")
    return src


@pytest.fixture(autouse=True)
def no_docker_config(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def remote_manifest(server, repository: str, tag: str) -> oci_registry.Manifest:
    with server.client() as client:
        return client.image_manifest(oci_registry.Reference(server.host, repository, tag))


def test_push_then_pull_round_trip_with_flux_media_types(fluxpy, registry, manifests, tmp_path):
    repository = registry.new_repository()
    url = f"{registry.url(repository)}:v1.0.0"
    res = fluxpy("push", "artifact", url, "--path", str(manifests), "--source", "https://github.com/org/repo",
                 "--revision", "main@sha1:0123abc", "-a", "org.opencontainers.image.licenses=Apache-2.0")
    assert res.exit_code == 0, res.stderr
    manifest = remote_manifest(registry, repository, "v1.0.0")
    assert res.stderr.splitlines() == [f"► pushing artifact to {registry.host}/{repository}:v1.0.0",
                                       f"✔ artifact successfully pushed to {registry.host}/{repository}@{manifest.digest}"]
    assert manifest.media_type == oci_registry.OCI_MANIFEST
    assert manifest.config.media_type == "application/vnd.cncf.flux.config.v1+json"
    assert [layer.media_type for layer in manifest.layers] == ["application/vnd.cncf.flux.content.v1.tar+gzip"]
    annotations = manifest.annotations
    assert annotations["org.opencontainers.image.source"] == "https://github.com/org/repo"
    assert annotations["org.opencontainers.image.revision"] == "main@sha1:0123abc"
    assert annotations["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert annotations["org.opencontainers.image.created"].endswith("Z")

    out = tmp_path / "pulled"
    out.mkdir()
    res = fluxpy("pull", "artifact", url, "--output", str(out))
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [f"► pulling artifact from {registry.host}/{repository}:v1.0.0",
                                       "✔ source https://github.com/org/repo", "✔ revision main@sha1:0123abc",
                                       f"✔ digest {registry.host}/{repository}@{manifest.digest}",
                                       f"✔ artifact content extracted to {out}"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["apps", "apps/deploy.yaml", "cm.yaml"]


def test_reproducible_push_json_and_yaml_output(fluxpy, registry, manifests):
    repository = registry.new_repository()
    args = ["--path", str(manifests), "--source", "src", "--revision", "v1@sha1:1", "--reproducible"]
    first = fluxpy("push", "artifact", f"{registry.url(repository)}:a", *args, "-o", "json")
    second = fluxpy("push", "artifact", f"{registry.url(repository)}:b", *args, "--output", "yaml")
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    info = json.loads(first.stdout)
    assert info == yaml.safe_load(second.stdout) | {"tag": "a"}
    assert info == {"url": f"oci://{registry.host}/{repository}@{info['digest']}",
                    "repository": f"{registry.host}/{repository}", "tag": "a", "digest": info["digest"]}
    assert first.stderr == ""  # no progress lines with --output
    manifest = remote_manifest(registry, repository, "a")
    assert manifest.annotations["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    assert manifest.digest == info["digest"]


def test_push_needs_source_revision_and_a_path(fluxpy, registry, manifests):
    url = registry.url()
    cases = [
        ((url, "--path", str(manifests), "--revision", "r"), "✗ --source is required"),
        ((url, "--path", str(manifests), "--source", "s"), "✗ --revision is required"),
        ((url, "--source", "s", "--revision", "r"), '✗ invalid path ""'),
        ((url, "--path", "/no/such", "--source", "s", "--revision", "r"),
         "✗ invalid path '/no/such', must point to an existing directory or file"),
        (("https://x.io/a", "--path", str(manifests), "--source", "s", "--revision", "r"),
         "✗ URL must be in format 'oci://<domain>/<org>/<repo>'"),
        ((url, "--path", str(manifests), "--source", "s", "--revision", "r", "-a", "novalue"),
         "✗ invalid annotation novalue, must be in the format key=value"),
    ]
    for args, message in cases:
        res = fluxpy("push", "artifact", *args)
        assert res.exit_code == 1 and res.stderr.startswith(message), (args, res.stderr)


def test_push_from_stdin(fluxpy, registry, tmp_path):
    repository = registry.new_repository()
    res = fluxpy("push", "artifact", f"{registry.url(repository)}:v1", "-f", "-", "--source", "s",
                 "--revision", "r", input="kind: ConfigMap\n\n")
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "out"
    out.mkdir()
    assert fluxpy("pull", "artifact", f"{registry.url(repository)}:v1", "-o", str(out)).exit_code == 0
    [pulled] = list(out.iterdir())
    assert pulled.suffix == ".yaml" and pulled.read_text() == "kind: ConfigMap"


def test_tag_and_list_with_filters(fluxpy, registry, manifests):
    repository = registry.new_repository()
    for tag in ("1.0.0", "1.1.0", "2.0.0-rc.1"):
        res = fluxpy("push", "artifact", f"{registry.url(repository)}:{tag}", "--path", str(manifests),
                     "--source", "https://git/repo", "--revision", f"{tag}@sha1:abc")
        assert res.exit_code == 0, res.stderr
    res = fluxpy("tag", "artifact", f"{registry.url(repository)}:1.1.0", "--tag", "latest,stable")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == ["► tagging artifact",
                                       f"✔ artifact tagged as {registry.host}/{repository}:latest",
                                       f"✔ artifact tagged as {registry.host}/{repository}:stable"]
    assert remote_manifest(registry, repository, "stable").digest == \
        remote_manifest(registry, repository, "1.1.0").digest

    res = fluxpy("list", "artifacts", registry.url(repository))
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ARTIFACT", "DIGEST", "SOURCE", "REVISION"]
    assert [line.split()[0].rsplit(":", 1)[1] for line in lines[1:]] == ["stable", "latest", "2.0.0-rc.1", "1.1.0",
                                                                         "1.0.0"]
    stable = next(line.split() for line in lines if line.split()[0].endswith(":stable"))
    assert stable[1:] == [remote_manifest(registry, repository, "1.1.0").digest, "https://git/repo", "1.1.0@sha1:abc"]

    res = fluxpy("list", "artifacts", registry.url(repository), "--filter-semver", ">=1.0.0")
    assert [line.split()[0].rsplit(":", 1)[1] for line in res.stdout.splitlines()[1:]] == ["1.1.0", "1.0.0"]
    res = fluxpy("list", "artifacts", registry.url(repository), "--filter-regex", "^st")
    assert [line.split()[0].rsplit(":", 1)[1] for line in res.stdout.splitlines()[1:]] == ["stable"]
    assert fluxpy("tag", "artifact", f"{registry.url(repository)}:1.1.0").stderr.startswith("✗ --tag is required")


def test_build_and_diff(fluxpy, registry, manifests, tmp_path):
    output = tmp_path / "artifact.tgz"
    res = fluxpy("build", "artifact", "--path", str(manifests), "--output", str(output))
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [f"► building artifact from {manifests}", f"✔ artifact created at {output}"]
    with tarfile.open(output) as tar:
        assert tar.getnames() == [".", "apps", "apps/deploy.yaml", "cm.yaml"]  # .git and *.png left out

    repository = registry.new_repository()
    url = f"{registry.url(repository)}:v1"
    assert fluxpy("push", "artifact", url, "--path", str(manifests), "--source", "s", "--revision", "r").exit_code == 0
    res = fluxpy("diff", "artifact", url, "--path", str(manifests))
    assert (res.exit_code, res.stderr) == (0, "✔ no changes detected\n")
    (manifests / "cm.yaml").write_text("kind: ConfigMap\ndata: {}\n")
    res = fluxpy("diff", "artifact", url, "--path", str(manifests))
    assert (res.exit_code, res.stderr) == (1, "✗ the remote artifact contents differs from the local one\n")
    res = fluxpy("diff", "artifact", url, "--path", "")
    assert res.exit_code == 1 and res.stderr == '✗ invalid path ""\n'


def test_diff_compares_entries_of_layers_gzipped_elsewhere(fluxpy, registry, manifests, tmp_path):
    """A layer with the same entries but other gzip bytes (as Go's gzip writes) counts as unchanged."""
    import gzip

    oci_artifact.build_tarball(manifests, tmp_path / "ours.tgz", oci_artifact.DEFAULT_IGNORE_PATHS)
    raw = gzip.decompress((tmp_path / "ours.tgz").read_bytes())
    (tmp_path / "theirs.tgz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    repository = registry.new_repository()
    registry.push(repository, "v1", tarball=(tmp_path / "theirs.tgz").read_bytes())
    res = fluxpy("diff", "artifact", f"{registry.url(repository)}:v1", "--path", str(manifests))
    assert (res.exit_code, res.stderr) == (0, "✔ no changes detected\n")


def test_credentials_from_flag_or_docker_config(fluxpy, registry_htpasswd, manifests, tmp_path, monkeypatch):
    server = registry_htpasswd
    repository = server.new_repository()
    url = f"{server.url(repository)}:v1"
    args = ["--path", str(manifests), "--source", "s", "--revision", "r"]
    res = fluxpy("push", "artifact", url, *args)
    assert res.exit_code == 1 and "401 Unauthorized" in res.stderr  # the blob HEAD, which has no body

    res = fluxpy("push", "artifact", url, *args, "--creds", f"{server.username}:wrong-pass-123")
    assert res.exit_code == 1 and "401 Unauthorized" in res.stderr and "wrong-pass-123" not in res.stderr

    res = fluxpy("push", "artifact", url, *args, "--creds", server.creds)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines()[0] == "► logging in to registry with credentials"

    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(oci_registry.docker_config_json(server.host, server.username, server.password))
    out = tmp_path / "out"
    out.mkdir()
    res = fluxpy("pull", "artifact", url, "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert (out / "cm.yaml").read_text() == "kind: ConfigMap\n"
    res = fluxpy("list", "artifacts", server.url(repository))
    assert res.exit_code == 0 and f"{server.host}/{repository}:v1" in res.stdout


def test_pull_rejects_unsafe_layers(fluxpy, registry, tmp_path):
    repository = registry.new_repository()
    registry.push(repository, "v1", tarball=tarball_with([("../escape.yaml", "file", "x")]))
    out = tmp_path / "out"
    out.mkdir()
    res = fluxpy("pull", "artifact", f"{registry.url(repository)}:v1", "-o", str(out))
    assert res.exit_code == 1 and "invalid name" in res.stderr
    assert not (tmp_path / "escape.yaml").exists()
    res = fluxpy("pull", "artifact", f"{registry.url(repository)}:v1")
    assert (res.exit_code, res.stderr) == (1, "✗ output path cannot be empty\n")
