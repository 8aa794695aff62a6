"""Artifact storage: files under ``<kind>/<namespace>/<name>/`` in a base directory, served over HTTP.

As Flux's storage (fluxcd/pkg/artifact/storage):

- an artifact's path is ``<kind lower>/<namespace>/<name>/<filename>`` and its URL
  ``http://<advertised address>/<path>``;
- :meth:`Storage.archive` packs a directory as a gzip tarball whose bytes depend only on the content:
  entries in lexical walk order, no owner, zero times, Flux's modes (directories 0750, files 0600,
  executable files 0700), symlinks and other special files left out — equal content, equal digest;
- files are written to a temporary file and renamed, so a reader never sees half an artifact;
  :meth:`Storage.link` points a link next to them (``latest.tar.gz``, ``index.yaml``) at the newest one the
  same way;
- :meth:`Storage.garbage_collect` keeps the current artifact and the newest others up to the retention
  count (and drops those older than the retention TTL);
- :class:`ArtifactServer` serves the files (GET/HEAD) — the manager runs it only while leading.

:func:`controllers.lib.archive.extract_tarball` is the safe counterpart every consumer uses: it rejects ``..`` and absolute paths,
links that escape the destination and special files, and caps the extracted size.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from controllers.runtime.conditions import now
from controllers.runtime.endpoints import ThreadedServer, parse_addr
from controllers.lib.archive import (  # noqa: F401 - storage's archive layout
    _CHUNK, DIR_MODE, EXE_FILE_MODE, FILE_MODE, MAX_UNTAR_SIZE, ArchiveFilter, UnsafeArchive, _add_entry, file_digest,
    walk_tree,
)

#: Flux's defaults of --artifact-retention-records and --artifact-retention-ttl.
RETENTION_RECORDS = 2
RETENTION_TTL = 60.0
#: The link next to an object's artifacts that points at the newest one (:meth:`Storage.link`).
LATEST_LINK = "latest.tar.gz"


def artifact_dir(kind_name: str, namespace: str, name: str) -> str:
    """``<kind lower>/<namespace>/<name>``."""
    return f"{kind_name.lower()}/{namespace}/{name}"


class DigestingWriter(io.RawIOBase):
    """A write-only stream that hashes (sha256) and counts what goes through it to ``target``."""

    def __init__(self, target: BinaryIO):
        self.target, self.hash, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: int = 0o600) -> Iterator[DigestingWriter]:
    """Write ``target`` through a :class:`DigestingWriter` into a temporary file next to it, renamed into
    place (with ``mode``) only when the block succeeds: readers never see a partial file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            stream = DigestingWriter(f)
            yield stream
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Storage:
    """The artifacts of one source-controller, under ``base_dir``; URLs use ``advertised_address``."""

    def __init__(self, base_dir: str | os.PathLike, advertised_address: str, *,
                 retention_records: int = RETENTION_RECORDS, retention_ttl: float = RETENTION_TTL):
        self.base_dir = Path(base_dir).absolute()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.advertised_address = advertised_address
        self.retention_records, self.retention_ttl = retention_records, retention_ttl
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._digests: dict[str, tuple[tuple, str]] = {}

    # ------------------------------------------------------------------ paths

    def artifact_path(self, kind_name: str, namespace: str, name: str, filename: str) -> str:
        """``<kind lower>/<namespace>/<name>/<filename>``."""
        return f"{artifact_dir(kind_name, namespace, name)}/{filename}"

    def url_for(self, path: str) -> str:
        """The HTTP address of a stored path (the advertised address may carry its own scheme)."""
        address = self.advertised_address
        if not address.startswith(("http://", "https://")):
            address = f"http://{address}"
        return f"{address.rstrip('/')}/{path.lstrip('/')}"

    def local_path(self, path: str) -> Path:
        """The file of a stored path; ValueError when the path would leave the storage directory."""
        local = (self.base_dir / path.lstrip("/")).resolve()
        if local != self.base_dir and self.base_dir not in local.parents:
            raise ValueError(f"artifact path {path!r} is outside the storage directory")
        return local

    # ------------------------------------------------------------------ writing

    def _artifact(self, path: str, digest: str, size: int) -> dict:
        return {"path": path, "url": self.url_for(path), "digest": digest, "size": size, "lastUpdateTime": now()}

    @contextlib.contextmanager
    def _atomic(self, path: str) -> Iterator["DigestingWriter"]:
        target = self.local_path(path)
        with atomic_file(target) as stream:
            yield stream
        self._remember(target, stream.digest)

    def archive(self, path: str, source_dir: str | os.PathLike, *, ignore: ArchiveFilter | None = None) -> dict:
        """Pack ``source_dir`` as a normalised tar.gz at ``path``; return the artifact (without revision)."""
        root = Path(source_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"invalid dir path: {root}")
        with self._atomic(path) as stream:
            with gzip.GzipFile(filename="", mode="wb", fileobj=stream, mtime=0, compresslevel=6) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for rel, entry, st in walk_tree(root, ignore):
                        _add_entry(tar, rel, entry, st)
        return self._artifact(path, stream.digest, stream.size)

    def store_bytes(self, path: str, data: bytes) -> dict:
        """Store ``data`` at ``path``; return the artifact (without revision)."""
        with self._atomic(path) as stream:
            stream.write(data)
        return self._artifact(path, stream.digest, stream.size)

    def store_file(self, path: str, src_file: str | os.PathLike) -> dict:
        """Copy ``src_file`` to ``path``; return the artifact (without revision)."""
        with self._atomic(path) as stream, open(src_file, "rb") as src:
            shutil.copyfileobj(src, stream, _CHUNK)
        return self._artifact(path, stream.digest, stream.size)

    def link(self, path: str, name: str) -> str:
        """Point the link ``name`` next to the stored ``path`` at it (Flux's Storage.Symlink, e.g.
        ``latest.tar.gz`` or ``index.yaml``): a relative symlink made aside and renamed into place, so
        readers see the old target or the new one. Returns the link's URL, "" when it could not be made."""
        local = self.local_path(path)
        link, tmp = local.parent / name, local.parent / f".{name}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(local.name)
            os.replace(tmp, link)
        except OSError:
            return ""
        return self.url_for(f"{path.rsplit('/', 1)[0]}/{name}")

    # ------------------------------------------------------------------ reading

    def _remember(self, local: Path, digest: str) -> None:
        st = local.stat()
        self._digests[str(local)] = ((st.st_ino, st.st_size, st.st_mtime_ns), digest)

    def digest_of(self, path: str) -> str | None:
        """``sha256:<hex>`` of a stored regular file (cached while the file is unchanged), None if absent."""
        try:
            local = self.local_path(path)
            st = os.lstat(local)
        except (ValueError, OSError):
            return None
        if not os.path.isfile(local) or os.path.islink(local):
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._digests.get(str(local))
        if cached and cached[0] == key:
            return cached[1]
        digest = file_digest(local)
        self._digests[str(local)] = (key, digest)
        return digest

    def has(self, artifact: dict | None) -> bool:
        """Whether the artifact's file exists and has the artifact's digest."""
        if not artifact or not artifact.get("path") or not artifact.get("digest"):
            return False
        return self.digest_of(artifact["path"]) == artifact["digest"]

    # ------------------------------------------------------------------ clean-up

    def lock(self, kind_name: str, namespace: str, name: str) -> threading.Lock:
        """The lock of one object's artifacts (use as ``with storage.lock(...):``)."""
        key = artifact_dir(kind_name, namespace, name)
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def garbage_collect(self, kind_name: str, namespace: str, name: str, current_path: str,
                        keep: int | None = None, ttl: float | None = None) -> list[str]:
        """Remove the object's old artifacts: those older than ``ttl`` seconds, then the oldest until
        ``keep`` remain; the current one is always kept. Returns the removed storage paths."""
        keep = self.retention_records if keep is None else keep
        ttl = self.retention_ttl if ttl is None else ttl
        directory = self.local_path(artifact_dir(kind_name, namespace, name))
        current = self.local_path(current_path) if current_path else None
        files: list[tuple[float, Path]] = []
        for entry in os.scandir(directory) if directory.is_dir() else ():
            if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".lock") \
                    and not entry.name.startswith("."):
                files.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
        files.sort(key=lambda item: item[0])
        wall = time.time()
        garbage = [p for mtime, p in files if p != current and ttl is not None and wall - mtime > ttl]
        remaining = len(files) - len(garbage)
        for _, p in files:
            if remaining <= keep:
                break
            if p != current and p not in garbage:
                garbage.append(p)
                remaining -= 1
        removed = []
        for p in garbage:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                self._digests.pop(str(p), None)
                removed.append(str(p.relative_to(self.base_dir)))
        return removed

    def remove_all(self, kind_name: str, namespace: str, name: str) -> None:
        """Remove every artifact of an object (when it is deleted)."""
        directory = self.local_path(artifact_dir(kind_name, namespace, name))
        shutil.rmtree(directory, ignore_errors=True)
        prefix = f"{directory}{os.sep}"
        for key in [k for k in self._digests if k.startswith(prefix)]:
            self._digests.pop(key, None)



# --------------------------------------------------------------------------- serving


class ArtifactServer:
    """Serves the storage's files over HTTP (GET and HEAD; no directory listings)."""

    def __init__(self, storage: Storage, addr: str):
        self.storage, self.addr = storage, addr
        self._server: ThreadedServer | None = None
        self.port: int | None = None

    def start(self) -> "ArtifactServer":
        if self._server is not None:
            return self
        bind = parse_addr(self.addr)
        if bind is None:
            raise ValueError(f"invalid storage address {self.addr!r}")
        storage = self.storage

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                try:
                    local = storage.local_path(path)
                    f = open(local, "rb") if local.is_file() else None
                except (ValueError, OSError):
                    f = None
                if f is None:
                    data = b"404 page not found\n"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                    return
                with f:
                    st = os.fstat(f.fileno())
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(st.st_size))
                    self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
                    self.end_headers()
                    if body:
                        shutil.copyfileobj(f, self.wfile, _CHUNK)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        self._server = ThreadedServer(bind, Handler, "artifact-server").start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None
