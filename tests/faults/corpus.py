"""The bad-input corpus: one YAML file per case under ``tests/faults/corpus/<group>/``.

A case describes how to break a Kustomization that applied a good revision, and what it must say::

    about: one line, what is wrong
    files:                     # the bad revision's files (the harness adds good.yaml, its ConfigMap at v=2)
      bad.yaml: |
        ...
    archive:                   # instead of files: the entries of a hand-made tarball (see :func:`build_archive`)
      - {name: ../escape.yaml, content: "..."}
    artifact: {digest: ...}    # instead: the good artifact announced with a wrong digest, or {missing: true}
    spec: {path: ./missing}    # a merge patch of the Kustomization's spec (undone when the case is repaired)
    objects: [...]             # objects created first (e.g. a second Kustomization of a dependency cycle)
    sops: {encrypt: [secret.yaml], decrypt_with: other-key | same-key | missing-secret, tamper: true}
    expect:
      reason: BuildFailed      # Ready=False with this reason
      message: [fragments]     # each in Ready's message
      stalled: true            # optional: Stalled=True too
      rejected: [fragments]    # instead: the apiserver refuses the spec patch with this message

``{case}`` in files, objects and the spec patch is replaced by the case's name (the Kustomization, its source
and its good ConfigMap are all named so). A case whose files hold a ``kustomization.yaml`` lists
``good.yaml`` in it itself.

The groups of sources and HelmReleases (``credentials``, ``helmrelease``; harness
:mod:`tests.faults.test_corpus_sources`) use ``about``, ``expect``, ``objects`` and ``spec`` as above (the spec
being the HelmRelease's), and for a source::

    source: git-http-basic     # which kind of source against which server (the harness's SOURCES)
    wrong:                     # how its credentials go wrong, once a good revision is stored
      credentials: {password: not-the-password}   # fields of the good credentials replaced in their Secret;
                                                  # {generate: ssh-key | host-key}: a fresh key not trusted
      secretRef: null          # or {name: ...}: the spec's secretRef replaced (null: no Secret at all)

The message fragments may name ``{namespace}`` and ``{url}`` (the source's URL), filled in by the harness.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CORPUS = Path(__file__).parent / "corpus"


@dataclass
class Case:
    name: str
    group: str
    about: str
    reason: str | None
    message: list[str]
    stalled: bool = False
    rejected: list[str] | None = None
    files: dict[str, str] | None = None
    archive: list[dict] | None = None
    artifact: dict | None = None
    spec: dict | None = None
    objects: list[dict] = field(default_factory=list)
    sops: dict | None = None
    source: str | None = None
    wrong: dict | None = None

    @property
    def label(self) -> str:
        return f"{self.group}/{self.name}"


def _substitute(value, name: str):
    return json.loads(json.dumps(value).replace("{case}", name)) if value is not None else None


def load_cases(group: str) -> list[Case]:
    """The cases of ``corpus/<group>/``, sorted by file name (the case's name is the file's stem); only
    those whose name holds ``$CORPUS_CASES`` when it is set (to debug one case)."""
    cases = []
    for path in sorted((CORPUS / group).glob("*.yaml")):
        if os.environ.get("CORPUS_CASES", "") not in path.stem:
            continue
        raw = yaml.safe_load(path.read_text())
        name = path.stem
        expect = _substitute(raw.pop("expect"), name)
        message = expect.get("message") or []
        cases.append(Case(name=name, group=group, about=raw.pop("about"), reason=expect.get("reason"),
                          message=[message] if isinstance(message, str) else message,
                          stalled=bool(expect.get("stalled")), rejected=expect.get("rejected"),
                          **{k: _substitute(v, name) for k, v in raw.items()}))
    return cases


def build_archive(entries: list[dict]) -> bytes:
    """A gzipped tarball of ``entries``, each ``{name, ...}`` with one of: ``content`` (a file), ``zeros`` (a
    file of that many zero bytes, streamed: a decompression bomb stays small), ``symlink`` or ``hardlink``
    (the target), ``type`` (chr, blk, fifo, dir); or a whole artifact that is no tarball: ``{raw: text}``,
    ``{gzip_of: text}``, ``{truncate: n, entries: [...]}``."""
    if len(entries) == 1 and "raw" in entries[0]:
        return entries[0]["raw"].encode()
    if len(entries) == 1 and "gzip_of" in entries[0]:
        return gzip.compress(entries[0]["gzip_of"].encode())
    if len(entries) == 1 and "truncate" in entries[0]:
        return build_archive(entries[0]["entries"])[:entries[0]["truncate"]]
    buffer = io.BytesIO()
    types = {"chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry["name"])
            info.mode = 0o644
            data = None
            if "content" in entry:
                data = io.BytesIO(entry["content"].encode())
                info.size = len(entry["content"].encode())
            elif "zeros" in entry:
                data, info.size = _Zeros(entry["zeros"]), entry["zeros"]
            elif "symlink" in entry:
                info.type, info.linkname = tarfile.SYMTYPE, entry["symlink"]
            elif "hardlink" in entry:
                info.type, info.linkname = tarfile.LNKTYPE, entry["hardlink"]
            else:
                info.type = types[entry["type"]]
                info.mode = 0o755 if entry["type"] == "dir" else 0o644
            tar.addfile(info, data)
    return buffer.getvalue()


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read in chunks (tarfile copies from it without holding it in memory)."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)
