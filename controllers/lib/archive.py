"""Archives, safely: the content-only tar layout every artifact uses and its safe extraction.

As Flux's tar/securejoin helpers: :func:`walk_tree` walks a directory in Go's lexical order (symlinks and
special files left out); :func:`extract_tarball` rejects ``..`` and absolute paths, links that escape the
destination and special files, and caps the extracted size; :func:`secure_join` resolves a path inside a
root like Go's securejoin. Used by the source-controller's storage, the kustomize-controller's fetch, OCI
artifacts and the CLI.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

#: Modes of archive entries (Flux's DefaultDirMode, DefaultFileMode, DefaultExeFileMode).
DIR_MODE, FILE_MODE, EXE_FILE_MODE = 0o750, 0o600, 0o700

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
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:  # EOFError: a truncated gzip
        raise UnsafeArchive(f"invalid tarball: {exc}") from None
    finally:
        fileobj.close()
