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

:func:`extract_tarball` is the safe counterpart every consumer uses: it rejects ``..`` and absolute paths,
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
from controllers.runtime.endpoints import parse_addr

#: Modes of archive entries (Flux's DefaultDirMode, DefaultFileMode, DefaultExeFileMode).
DIR_MODE, FILE_MODE, EXE_FILE_MODE = 0o750, 0o600, 0o700
#: Flux's defaults of --artifact-retention-records and --artifact-retention-ttl.
RETENTION_RECORDS = 2
RETENTION_TTL = 60.0
#: The link next to an object's artifacts that points at the newest one (:meth:`Storage.link`).
LATEST_LINK = "latest.tar.gz"
#: How many symlinks :func:`secure_join` follows in one path (Go's securejoin).
MAX_SYMLINKS = 255
#: What :func:`extract_tarball` extracts at most (bytes of file content), as Flux's untar default.
MAX_UNTAR_SIZE = 100 << 20
_CHUNK = 1 << 16

#: ``filter(relative_posix_path, is_dir) -> True`` leaves the entry out of an archive.
ArchiveFilter = Callable[[str, bool], bool]


class UnsafeArchive(ValueError):
    """A tarball with an entry that would land outside the destination (or is not a file/dir/link)."""


class SymlinkLoop(OSError, ValueError):
    """:func:`secure_join` met more than :data:`MAX_SYMLINKS` links (an OSError, as Go's ELOOP, and a
    ValueError, as the other bad paths)."""


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


def secure_join(root: str | os.PathLike, unsafe: str) -> Path:
    """``root/unsafe`` resolved like Go's securejoin: ``..`` and symlinks (relative or absolute) are
    followed as if ``root`` were the filesystem root, so the result never leaves ``root``; a chain of more
    than :data:`MAX_SYMLINKS` links is :class:`SymlinkLoop`."""
    root = Path(os.path.realpath(root))
    parts: list[str] = []
    pending = unsafe.replace("\\", "/").split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        candidate = root.joinpath(*parts, part)
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                raise SymlinkLoop(f"too many levels of symbolic links in {unsafe!r}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                parts = []
            pending = link.split("/") + pending
            continue
        parts.append(part)
    return root.joinpath(*parts)


def file_digest(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


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


def walk_tree(root: Path, ignore: ArchiveFilter | None) -> Iterator[tuple[str, os.DirEntry | None, os.stat_result]]:
    """Regular files and directories under ``root`` (root first as "."), lexical order per directory,
    like Go's filepath.Walk; symlinks and special files are skipped, ignored directories still walked
    (so an explicit ``!`` pattern can bring a file back, as in Flux)."""
    yield ".", None, root.stat()

    def children(directory: Path, prefix: str) -> Iterator[tuple[str, os.DirEntry, os.stat_result]]:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            rel = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if not (ignore and ignore(rel, True)):
                    yield rel, entry, st
                yield from children(Path(entry.path), f"{rel}/")
            elif entry.is_file(follow_symlinks=False):
                if not (ignore and ignore(rel, False)):
                    yield rel, entry, st

    yield from children(root, "")


def _add_entry(tar: tarfile.TarFile, rel: str, entry: os.DirEntry | None, st: os.stat_result) -> None:
    info = tarfile.TarInfo(rel)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if entry is None or entry.is_dir(follow_symlinks=False):
        info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
        tar.addfile(info)
        return
    info.mode = EXE_FILE_MODE if st.st_mode & 0o111 else FILE_MODE
    info.size = st.st_size
    with open(entry.path, "rb") as f:
        tar.addfile(info, f)


# --------------------------------------------------------------------------- extraction


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def extract_tarball(src: str | os.PathLike | bytes, dest: str | os.PathLike, *,
                    max_size: int = MAX_UNTAR_SIZE) -> None:
    """Extract a (gzip-compressed or plain) tarball into ``dest`` safely.

    Raises :class:`UnsafeArchive` for an entry with an absolute path or ``..`` component, a symlink or
    hard link whose target is outside ``dest``, a special file (device, fifo), or content beyond
    ``max_size`` bytes (a negative value disables the cap). File modes are kept (owner bits forced on for
    directories), owners and times are not.
    """
    root = os.path.realpath(dest)
    os.makedirs(root, exist_ok=True)
    fileobj = io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else open(src, "rb")
    total = 0
    try:
        with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
            for member in tar:
                name = member.name
                parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
                if name.startswith("/") or "\\" in name or ".." in parts:
                    raise UnsafeArchive(f"tar contained invalid name {name!r}")
                if not parts:
                    continue
                target = os.path.join(root, *parts)
                parent = os.path.realpath(os.path.dirname(target))
                if not _inside(root, parent):
                    raise UnsafeArchive(f"tar entry {name!r} would be written outside the destination")
                total += member.size if member.isfile() else 0
                if 0 <= max_size < total:
                    raise UnsafeArchive(f"tar {name!r} is bigger than max archive size of {max_size} bytes")
                if member.isdir():
                    os.makedirs(target, mode=0o700 | (member.mode & 0o777), exist_ok=True)
                elif member.isfile():
                    os.makedirs(parent, exist_ok=True)
                    if os.path.islink(target):
                        os.unlink(target)
                    with tar.extractfile(member) as data, open(target, "wb") as out:
                        shutil.copyfileobj(data, out, _CHUNK)
                    os.chmod(target, member.mode & 0o777 or FILE_MODE)
                elif member.issym():
                    link = member.linkname
                    resolved = os.path.normpath(os.path.join(os.path.dirname(target), link))
                    if os.path.isabs(link) or not _inside(root, resolved) \
                            or not _inside(root, os.path.realpath(resolved)):
                        raise UnsafeArchive(f"tar entry {name!r} is a symlink to {link!r}, outside the destination")
                    os.makedirs(parent, exist_ok=True)
                    if os.path.lexists(target):
                        os.unlink(target)
                    os.symlink(link, target)
                elif member.islnk():
                    link_parts = [p for p in member.linkname.split("/") if p not in ("", ".")]
                    if member.linkname.startswith("/") or ".." in link_parts:
                        raise UnsafeArchive(f"tar entry {name!r} links to {member.linkname!r}, outside the destination")
                    source = os.path.realpath(os.path.join(root, *link_parts))
                    if not _inside(root, source) or not os.path.isfile(source):
                        raise UnsafeArchive(f"tar entry {name!r} links to {member.linkname!r}, outside the destination")
                    os.makedirs(parent, exist_ok=True)
                    shutil.copyfile(source, target)
                else:
                    raise UnsafeArchive(f"tar entry {name!r} has an unsupported file type")
    except tarfile.TarError as exc:
        raise UnsafeArchive(f"invalid tarball: {exc}") from None
    finally:
        fileobj.close()


# --------------------------------------------------------------------------- serving


class ArtifactServer:
    """Serves the storage's files over HTTP (GET and HEAD; no directory listings)."""

    def __init__(self, storage: Storage, addr: str):
        self.storage, self.addr = storage, addr
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
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

        self._server = http.server.ThreadingHTTPServer(bind, Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"artifact-server-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._thread:
            self._thread.join(5)
