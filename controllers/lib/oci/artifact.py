"""Flux's OCI artifact format, on top of the registry client (``registry.py``).

Artifacts are built and read exactly as ``flux push artifact`` (fluxcd/pkg/oci) does: a gzip tarball layer
of media type ``application/vnd.cncf.flux.content.v1.tar+gzip``, a config of media type
``application/vnd.cncf.flux.config.v1+json`` and the ``org.opencontainers.image.created|source|revision``
manifest annotations.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import gzip
import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from controllers.lib import ignore
from controllers.lib.archive import walk_tree  # one walk order for every archive
from controllers.lib.oci.registry import (OCI_MANIFEST, Descriptor, HashingWriter, Manifest, OCIError, Reference,
                                          RegistryClient, go_json)

# --- media types and annotations -----------------------------------------------------------------------
FLUX_CONFIG_MEDIA_TYPE = "application/vnd.cncf.flux.config.v1+json"
FLUX_MEDIA_TYPE_PREFIX = "application/vnd.cncf.flux.content.v1"
FLUX_CONTENT_MEDIA_TYPE = f"{FLUX_MEDIA_TYPE_PREFIX}.tar+gzip"

CREATED_ANNOTATION = "org.opencontainers.image.created"
SOURCE_ANNOTATION = "org.opencontainers.image.source"
REVISION_ANNOTATION = "org.opencontainers.image.revision"

#: ``flux build|push|diff artifact``'s default --ignore-paths (sourceignore ExcludeVCS + ExcludeExt).
DEFAULT_IGNORE_PATHS = (".git/", ".gitignore", ".gitmodules", ".gitattributes", "*.jpg", "*.jpeg", "*.gif",
                        "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip")


@dataclasses.dataclass
class ArtifactMetadata:
    """What ``pull`` and ``list`` report of an artifact (fluxcd/pkg/oci Metadata)."""

    url: str = ""
    digest: str = ""
    created: str = ""
    source: str = ""
    revision: str = ""
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_annotations(cls, annotations: dict[str, str], **kw: Any) -> "ArtifactMetadata":
        return cls(created=annotations.get(CREATED_ANNOTATION, ""), source=annotations.get(SOURCE_ANNOTATION, ""),
                   revision=annotations.get(REVISION_ANNOTATION, ""), annotations=dict(annotations), **kw)


def build_tarball(source: str | os.PathLike, dest: str | os.PathLike, ignore_paths: Iterable[str] = ()) -> str:
    """Pack a directory (or one file) as ``flux build artifact`` does; returns the tarball's digest.

    Entries in lexical walk order with the root as ``.``, real permission bits, no owner and zero times;
    symlinks and special files left out; a single file becomes one entry named after it. ``ignore_paths``
    are .gitignore patterns relative to the directory (no defaults added: the flag's default carries them).
    """
    src = Path(source).absolute()
    if not src.exists():
        raise FileNotFoundError(f"invalid source dir path: {src}")
    patterns = ignore.read_patterns("\n".join(ignore_paths))
    matcher = ignore.Matcher(patterns)
    leave_out = (lambda rel, is_dir: matcher.excludes(rel.split("/"), is_dir)) if patterns else None
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = HashingWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=6) as gz:  # type: ignore[arg-type]
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    if src.is_dir():
                        for rel, entry, st in walk_tree(src, leave_out):
                            _add_real_entry(tar, rel, entry.path if entry else str(src), st)
                    else:  # a single file is never ignored (Flux matches patterns below the path given)
                        _add_real_entry(tar, src.name, str(src), src.stat())
        os.chmod(tmp, 0o640)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return hashing.digest


def _add_real_entry(tar: tarfile.TarFile, rel: str, path: str, st: os.stat_result) -> None:
    import stat as _stat

    info = tarfile.TarInfo(rel)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    info.mode = _stat.S_IMODE(st.st_mode)
    if _stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        return
    info.size = st.st_size
    with open(path, "rb") as f:
        tar.addfile(info, f)


def uncompressed_digest(tarball: str | os.PathLike) -> str:
    """sha256 of a gzip file's uncompressed content (the layer's diff ID)."""
    h = hashlib.sha256()
    with gzip.open(tarball, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def artifact_annotations(source: str, revision: str, extra: dict[str, str] | None = None,
                         created: str | None = None) -> dict[str, str]:
    """Flux's manifest annotations: created (now, RFC 3339 UTC), source, revision, then ``extra``."""
    if not created:
        created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations = {CREATED_ANNOTATION: created, SOURCE_ANNOTATION: source, REVISION_ANNOTATION: revision}
    annotations.update(extra or {})
    return annotations


def artifact_config(diff_id: str) -> bytes:
    """The config blob ``flux push artifact`` (go-containerregistry's empty image + one layer) uploads."""
    zero = "0001-01-01T00:00:00Z"
    return go_json({"architecture": "", "created": zero, "history": [{"created": zero}], "os": "",
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}})


def artifact_manifest(config: Descriptor, layers: list[Descriptor], annotations: dict[str, str]) -> bytes:
    """An OCI image manifest in go-containerregistry's field order."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
                           "layers": [layer.to_json() for layer in layers]}
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return go_json(doc)


def push_artifact(client: RegistryClient, ref: Reference, tarball: str | os.PathLike,
                  annotations: dict[str, str], media_type: str = FLUX_CONTENT_MEDIA_TYPE) -> str:
    """Upload a built tarball as a Flux artifact tagged ``ref``; returns the manifest digest."""
    layer = Descriptor(media_type, client.upload_blob(ref.repository, tarball), os.path.getsize(tarball))
    config_blob = artifact_config(uncompressed_digest(tarball))
    config = Descriptor(FLUX_CONFIG_MEDIA_TYPE, client.upload_blob(ref.repository, config_blob), len(config_blob))
    return client.put_manifest(ref, artifact_manifest(config, [layer], annotations), OCI_MANIFEST)


def select_layer(manifest: Manifest, media_type: str = "") -> Descriptor:
    """The layer of ``media_type`` (the first layer when empty), worded as Flux's selectLayer."""
    layers = manifest.layers
    if not layers:
        raise OCIError("no layers found in artifact")
    if not media_type:
        return layers[0]
    for layer in layers:
        if layer.media_type == media_type:
            return layer
    raise OCIError(f"failed to find layer with media type '{media_type}' in artifact")


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def tar_entries(tarball: str | os.PathLike) -> Iterator[tuple[str, str, int, str]]:
    """(name, type, mode, sha256 of content) of every entry of a (gzip) tarball, names normalised."""
    with tarfile.open(tarball, mode="r:*") as tar:
        for member in tar:
            name = member.name.strip("/")
            name = "." if name in ("", ".") else name.removeprefix("./")
            digest = ""
            if member.isfile():
                f = tar.extractfile(member)
                digest = hashlib.sha256(f.read() if f else b"").hexdigest()
            kind = "dir" if member.isdir() else "file" if member.isfile() else "other"
            yield name, kind, member.mode & 0o7777, digest
