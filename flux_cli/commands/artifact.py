"""``fluxpy push|pull|tag artifact``, ``list artifacts``, ``build|diff artifact``: Flux OCI artifacts.

The artifacts are the ones ``flux push artifact`` makes (fluxcd/pkg/oci): one gzip tarball layer
(``application/vnd.cncf.flux.content.v1.tar+gzip``), a ``application/vnd.cncf.flux.config.v1+json`` config
and the ``org.opencontainers.image.created|source|revision`` annotations, so flux and fluxpy read each
other's artifacts. Credentials come from ``--creds <username>[:<password>]``, else ``~/.docker/config.json``
(``$DOCKER_CONFIG``); ``--insecure-registry`` allows plain HTTP and untrusted certificates; the global
``--timeout`` bounds the registry operations.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.groups import build_app, diff_app, list_app, pull_app, push_app, tag_app
from flux_cli.flags import OCI_PROVIDER

if TYPE_CHECKING:
    from controllers.lib.oci.registry import Reference, RegistryClient

#: Options every registry command takes.
CREDS_OPTION = typer.Option("", "--creds", help="Credentials for the OCI registry in the format "
                                                "<username>[:<password>] if --provider is generic.")
PROVIDER_OPTION = OCI_PROVIDER.option("generic", "--provider", "The OCI provider name.")
IGNORE_OPTION = typer.Option(None, "--ignore-paths", help="Paths to ignore in .gitignore format (replaces the "
                                                           "defaults; comma-separated or repeated).")


def insecure_option(action: str) -> Any:
    """``--insecure-registry``: plain HTTP and untrusted certificates allowed for ``action`` (``pushing``, ...)."""
    return typer.Option(False, "--insecure-registry", help=f"Allow {action} without TLS.")


@contextlib.contextmanager
def _failure(message: str, *errors: type[BaseException]) -> Iterator[None]:
    """One of ``errors`` raised inside becomes the CLIError ``<message><error>``."""
    try:
        yield
    except errors as exc:
        raise CLIError(f"{message}{exc}") from None


def _ignore_paths(values: Optional[list[str]]) -> list[str]:
    from controllers.lib.oci.artifact import DEFAULT_IGNORE_PATHS
    from flux_cli.flags import split_list

    return list(DEFAULT_IGNORE_PATHS) if values is None else split_list(values)


def _artifact_ref(url: str) -> "Reference":
    from controllers.lib.oci.registry import InvalidReference, parse_artifact_url

    with _failure("", InvalidReference):
        return parse_artifact_url(url)


def _address(url: str) -> str:
    """``oci://host/repo:tag`` → ``host/repo:tag`` (what flux prints)."""
    return url.removeprefix("oci://")


def _client(a: App, ref: "Reference", *, creds: str, provider: str, insecure: bool) -> "RegistryClient":
    """A registry client with ``--creds`` or the local Docker config's credentials."""
    from controllers.lib.oci import registry as oci_registry

    OCI_PROVIDER.check(provider, "--provider", code=2)
    if provider != "generic":
        a.terminal.action("logging in to registry with provider credentials")
        raise CLIError(f"error during login with provider: could not login to provider {provider} with url "
                       f"{ref.name}: cloud provider login is not supported by fluxpy")
    credentials = None
    if creds:
        a.terminal.action("logging in to registry with credentials")
        with _failure("could not login with credentials: ", ValueError):
            credentials = oci_registry.parse_creds(creds)
    else:
        credentials = oci_registry.local_docker_credentials(ref)
    return oci_registry.client_for(ref, credentials=credentials, insecure=insecure, timeout=a.timeout)


def _connect(a: App, url: str, *, creds: str, provider: str, insecure: bool) -> tuple["Reference", "RegistryClient"]:
    """The artifact reference of ``url`` and a client for its registry (see :func:`_client`)."""
    ref = _artifact_ref(url)
    return ref, _client(a, ref, creds=creds, provider=provider, insecure=insecure)


def _source_path(path: str, *, reason: bool = True) -> tuple[str, str | None]:
    """``--path`` (``-`` reads stdin into a temporary .yaml file, removed by the caller); CLIError if absent."""
    import os
    import sys
    import tempfile

    if not path:
        raise CLIError(f'invalid path "{path}"')
    temp = None
    if path == "-":
        data = sys.stdin.buffer.read().rstrip(b"\r\n")
        fd, temp = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        path = temp
    if not os.path.exists(path):
        detail = f": stat {path}: no such file or directory" if reason else ""
        raise CLIError(f"invalid path '{path}', must point to an existing directory or file{detail}")
    return path, temp


def _remove(temp: str | None) -> None:
    import contextlib
    import os

    if temp:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


@push_app.command("artifact")
@handle_errors
def push_artifact(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The artifact address, oci://<registry>/<repository>[:<tag>]."),
    path: str = typer.Option("", "--path", "-f", help="Path to the directory or file with the manifests "
                                                      "('-' reads stdin)."),
    source: str = typer.Option("", "--source", help="The source address, e.g. the Git URL."),
    revision: str = typer.Option("", "--revision", help="The source revision in the format "
                                                        "'<branch|tag>@sha1:<commit-sha>'."),
    creds: str = CREDS_OPTION,
    provider: str = PROVIDER_OPTION,
    ignore_paths: Optional[list[str]] = IGNORE_OPTION,
    annotations: Optional[list[str]] = typer.Option(None, "--annotations", "-a",
                                                    help="Custom OCI annotations in the format '<key>=<value>' "
                                                         "(repeatable)."),
    output: str = typer.Option("", "--output", "-o", help="Print the artifact's digest as 'json' or 'yaml'."),
    reproducible: bool = typer.Option(False, "--reproducible",
                                      help="Set the created timestamp to '1970-01-01T00:00:00Z' so equal "
                                           "content gives equal digests."),
    insecure: bool = insecure_option("pushing"),
) -> None:
    """Build a tarball from a directory or file and push it as a Flux OCI artifact."""
    import json
    import os
    import tempfile

    from controllers.lib.oci import artifact as oci_artifact
    from controllers.lib.oci import registry as oci_registry

    a: App = ctx.obj
    if not source:
        raise CLIError("--source is required")
    if not revision:
        raise CLIError("--revision is required")
    if output not in ("", "json", "yaml"):
        raise CLIError(f"invalid output format {output!r}: expected 'json' or 'yaml'")
    extra: dict[str, str] = {}
    for annotation in annotations or []:
        parts = annotation.split("=")
        if len(parts) != 2:
            raise CLIError(f"invalid annotation {annotation}, must be in the format key=value")
        extra[parts[0]] = parts[1]
    ref = _artifact_ref(url)
    src, temp = _source_path(path)
    try:
        client = _client(a, ref, creds=creds, provider=provider, insecure=insecure)
        if not output:
            a.terminal.action(f"pushing artifact to {_address(url)}")
        created = "1970-01-01T00:00:00Z" if reproducible else None
        with tempfile.TemporaryDirectory(prefix="fluxpy-push-") as tmp, client:
            tarball = os.path.join(tmp, "artifact.tgz")
            with _failure("pushing artifact failed: ", oci_registry.OCIError, OSError):
                oci_artifact.build_tarball(src, tarball, _ignore_paths(ignore_paths))
                digest = oci_artifact.push_artifact(client, ref, tarball,
                                                    oci_artifact.artifact_annotations(source, revision, extra, created))
    finally:
        _remove(temp)
    info = {"url": f"oci://{ref.name}@{digest}", "repository": ref.name, "tag": ref.tag or "latest",
            "digest": digest}
    if output == "json":
        a.terminal.line(json.dumps(info, indent=2))
    elif output == "yaml":
        import yaml

        a.terminal.out.write(yaml.safe_dump(info, sort_keys=True))
    else:
        a.terminal.success(f"artifact successfully pushed to {ref.name}@{digest}")


@pull_app.command("artifact")
@handle_errors
def pull_artifact(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The artifact address, oci://<registry>/<repository>[:<tag>|@<digest>]."),
    output: str = typer.Option("", "--output", "-o", help="Directory to extract the artifact content to."),
    creds: str = CREDS_OPTION,
    provider: str = PROVIDER_OPTION,
    insecure: bool = insecure_option("pulling"),
) -> None:
    """Download an OCI artifact and extract its first layer into a directory."""
    import os
    import shutil
    import tempfile

    from controllers.lib.oci import artifact as oci_artifact
    from controllers.lib.oci import registry as oci_registry
    from controllers.lib.archive import UnsafeArchive, extract_tarball

    a: App = ctx.obj
    if not output:
        raise CLIError("output path cannot be empty")
    if not os.path.isdir(output):
        raise CLIError(f'invalid output path "{output}": stat {output}: not a directory or missing')
    ref, client = _connect(a, url, creds=creds, provider=provider, insecure=insecure)
    a.terminal.action(f"pulling artifact from {_address(url)}")
    with client, tempfile.TemporaryDirectory(prefix="fluxpy-pull-") as tmp:
        with _failure("", oci_registry.OCIError, UnsafeArchive, OSError):
            manifest = client.image_manifest(ref)
            layer = oci_artifact.select_layer(manifest)
            blob = os.path.join(tmp, "layer")
            client.download_blob(ref.repository, layer.digest, blob)
            if oci_artifact.is_gzip(blob):
                extract_tarball(blob, output, max_size=-1)
            else:
                shutil.copyfile(blob, output)
    meta = oci_artifact.ArtifactMetadata.from_annotations(manifest.annotations)
    if meta.source:
        a.terminal.success(f"source {meta.source}")
    if meta.revision:
        a.terminal.success(f"revision {meta.revision}")
    a.terminal.success(f"digest {ref.name}@{manifest.digest}")
    a.terminal.success(f"artifact content extracted to {output}")


@tag_app.command("artifact")
@handle_errors
def tag_artifact(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The artifact address, oci://<registry>/<repository>:<tag>."),
    tags: Optional[list[str]] = typer.Option(None, "--tag", help="Tag name (comma-separated or repeated)."),
    creds: str = CREDS_OPTION,
    provider: str = PROVIDER_OPTION,
    insecure: bool = insecure_option("tagging"),
) -> None:
    """Add tags to an artifact in the same repository."""
    from controllers.lib.oci import registry as oci_registry
    from flux_cli.flags import split_list

    a: App = ctx.obj
    new_tags = split_list(tags)
    if not new_tags:
        raise CLIError("--tag is required")
    ref, client = _connect(a, url, creds=creds, provider=provider, insecure=insecure)
    a.terminal.action("tagging artifact")
    with client:
        for tag in new_tags:
            with _failure("tagging artifact failed: ", oci_registry.OCIError):
                target = ref.with_tag(tag)
                manifest = client.get_manifest(ref)
                client.put_manifest(target, manifest.raw, manifest.media_type)
            a.terminal.success(f"artifact tagged as {target}")


@list_app.command("artifacts")
@handle_errors
def list_artifacts(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The repository address, oci://<registry>/<repository>."),
    filter_semver: str = typer.Option("", "--filter-semver", help="Only tags within this semver range."),
    filter_regex: str = typer.Option("", "--filter-regex", help="Only tags matching this regular expression."),
    creds: str = CREDS_OPTION,
    provider: str = PROVIDER_OPTION,
    insecure: bool = insecure_option("listing"),
) -> None:
    """List the tags of a repository with their digest, source and revision (newest tag names first)."""
    import re

    from controllers.lib.oci import artifact as oci_artifact
    from controllers.lib.oci import registry as oci_registry
    from controllers.lib.semver import InvalidConstraint, InvalidVersion, new_constraint, parse_version

    a: App = ctx.obj
    ref = _artifact_ref(url)
    repository = _address(url)
    constraint = pattern = None
    if filter_semver:
        with _failure(f"semver '{filter_semver}' parse error: ", InvalidConstraint):
            constraint = new_constraint(filter_semver)
    if filter_regex:
        with _failure(f"regex '{filter_regex}' parse error: ", re.error):
            pattern = re.compile(filter_regex)
    rows = []
    with _client(a, ref, creds=creds, provider=provider, insecure=insecure) as client:
        with _failure("listing tags failed: ", oci_registry.OCIError):
            tags = sorted(client.list_tags(ref.repository), reverse=True)
        for tag in tags:
            if tag.endswith(oci_registry.COSIGN_SUFFIXES):
                continue
            if constraint is not None:
                try:
                    if not constraint.check(parse_version(tag)):
                        continue
                except InvalidVersion:
                    continue
            if pattern is not None and not pattern.search(tag):
                continue
            with _failure("fetching manifest failed: ", oci_registry.OCIError):
                tagged = ref.with_tag(tag)
                meta = oci_artifact.ArtifactMetadata.from_annotations(client.get_manifest(tagged).annotations)
                digest = client.head_manifest(tagged).digest
            rows.append([f"{repository}:{tag}", digest, meta.source, meta.revision])
    a.terminal.table(["ARTIFACT", "DIGEST", "SOURCE", "REVISION"], rows)


@build_app.command("artifact")
@handle_errors
def build_artifact(
    ctx: typer.Context,
    path: str = typer.Option("", "--path", "-p", help="Path to the directory or file with the manifests "
                                                      "('-' reads stdin)."),
    output: str = typer.Option("artifact.tgz", "--output", "-o", help="Where to write the artifact tarball."),
    ignore_paths: Optional[list[str]] = IGNORE_OPTION,
) -> None:
    """Build the tarball ``push artifact`` would push, without pushing it."""
    from controllers.lib.oci import artifact as oci_artifact

    a: App = ctx.obj
    src, temp = _source_path(path, reason=False)
    try:
        a.terminal.action(f"building artifact from {src}")
        with _failure("building artifact failed, error: ", OSError):
            oci_artifact.build_tarball(src, output, _ignore_paths(ignore_paths))
    finally:
        _remove(temp)
    a.terminal.success(f"artifact created at {output}")


@diff_app.command("artifact")
@handle_errors
def diff_artifact(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The artifact address, oci://<registry>/<repository>[:<tag>|@<digest>]."),
    path: str = typer.Option("", "--path", help="Path to the directory or file with the manifests."),
    creds: str = CREDS_OPTION,
    provider: str = PROVIDER_OPTION,
    ignore_paths: Optional[list[str]] = IGNORE_OPTION,
    insecure: bool = insecure_option("pulling"),
) -> None:
    """Compare a local directory or file with the content of a published artifact (exit 1 when they differ).

    The local tarball is built as ``push artifact`` builds it; equal layer digests mean no change. Layers
    compressed by another tool (flux's Go gzip) are compared by their entries (names, types, modes, content).
    """
    import os
    import tarfile
    import tempfile

    from controllers.lib.oci import artifact as oci_artifact
    from controllers.lib.oci import registry as oci_registry

    a: App = ctx.obj
    if not path:
        raise CLIError(f'invalid path "{path}"')
    ref = _artifact_ref(url)
    if not os.path.exists(path):
        raise CLIError(f"invalid path '{path}', must point to an existing directory or file")
    with _client(a, ref, creds=creds, provider=provider, insecure=insecure) as client, \
            tempfile.TemporaryDirectory(prefix="fluxpy-diff-") as tmp:
        local = os.path.join(tmp, "artifact.tgz")
        with _failure("building artifact failed: ", OSError):
            digest = oci_artifact.build_tarball(path, local, _ignore_paths(ignore_paths))
        with _failure("", oci_registry.OCIError, OSError, tarfile.TarError):
            layer = oci_artifact.select_layer(client.image_manifest(ref))
            same = layer.digest == digest and layer.size == os.path.getsize(local)
            if not same:
                remote = os.path.join(tmp, "remote.tgz")
                client.download_blob(ref.repository, layer.digest, remote)
                same = oci_artifact.is_gzip(remote) and \
                    list(oci_artifact.tar_entries(remote)) == list(oci_artifact.tar_entries(local))
    if not same:
        raise CLIError("the remote artifact contents differs from the local one")
    a.terminal.success("no changes detected")
