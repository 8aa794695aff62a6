"""The ArtifactGenerator reconciler (source.extensions.fluxcd.io/v1beta1), as Flux 2.7's source-watcher.

An ArtifactGenerator reads the artifacts of GitRepositories, OCIRepositories and Buckets (``spec.sources``,
each known by an alias) and produces ExternalArtifacts (``spec.artifacts``) by copy operations:

- ``from: "@alias/<pattern>"``: a path (a file is copied, a directory copied as a sub-directory — ``@alias/``
  is the whole source) or a glob in Go's ``fs.Glob`` syntax (``*``, ``?``, ``[...]`` within one path
  element; ``**`` is no more than ``*`` there, but ``dir/**`` copies the contents of ``dir`` recursively
  without the ``dir/`` prefix); ``exclude`` takes doublestar globs (``**`` spans directories);
- ``to: "@artifact/<path>"``: a trailing ``/`` (or an existing directory) copies into that directory;
- ``strategy: Merge`` deep-merges YAML into an existing file (maps merged, lists replaced, as Helm values).

Each artifact is stored as ``externalartifact/<ns>/<name>/<adler32 of the files>.tar.gz`` (Flux's default
exclusions apply), with revision ``latest@<digest>`` unless ``revision: "@alias"`` takes the source's;
``originRevision: "@alias"`` records the source's (origin) revision in the artifact's metadata. The
ExternalArtifact objects are applied (labels ``app.kubernetes.io/managed-by`` and
``source.extensions.fluxcd.io/generator: <uid>``, ``spec.sourceRef`` to the generator) with a Ready status;
those no longer generated are deleted with their files. ``status.observedSourcesDigest`` (a digest of the
sources' artifacts) and ``status.inventory`` let an unchanged generator skip the work ("no drift").

The annotation ``source.extensions.fluxcd.io/reconcile: disabled`` pauses a generator; its finalizer is
``source.extensions.fluxcd.io/finalizer``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
import zlib
from pathlib import Path
from typing import Iterable

from controllers.api import meta
from controllers.api.objects import dig, find_condition
from controllers.api.source import (ARTIFACT_GENERATOR, EXTERNAL_ARTIFACT, GENERATOR_SOURCE_KINDS, SOURCE_KINDS,
                                    SOURCE_WATCHER)
from controllers.runtime import conditions as cond
from controllers.runtime.conditions import Conditions
from controllers.runtime.controller import ReconcileContext, Watch
from controllers.runtime.flags import HTTP_RETRY, NO_CROSS_NAMESPACE_REFS, add_option_flags, options_from_args
from controllers.runtime.kube import KubeError, NotFound
from controllers.runtime.outcomes import RetryableError, StalledError, Success, ready_conditions
from controllers.runtime.predicates import artifact_revision_changed
from controllers.source import common
from controllers.lib.ignore import archive_filter, glob_regex
from controllers.source.storage import Storage
from controllers.lib.fetch import DEFAULT_RETRIES, FetchError, fetch_artifact
from controllers.lib.index import ReferenceIndex
from controllers.lib.values import merge_maps

GENERATOR_LABEL = "source.extensions.fluxcd.io/generator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ORIGIN_REVISION_KEY = "org.opencontainers.image.revision"
DISABLED_VALUE = "disabled"
# reasons
RECONCILIATION_DISABLED = "ReconciliationDisabled"
ACCESS_DENIED = "AccessDenied"
VALIDATION_FAILED = "ValidationFailed"
SOURCE_FETCH_FAILED = "SourceFetchFailed"
# messages
MSG_IN_PROGRESS = "Reconciliation in progress"
MSG_DISABLED = "Reconciliation is disabled"
#: An ArtifactGenerator is reconciled at least hourly (it has no spec.interval).
REQUEUE_AFTER = 3600.0
#: The kinds a generator reads, by Kind name.
INPUT_KINDS = {k.kind: k for k in SOURCE_KINDS if k.kind in GENERATOR_SOURCE_KINDS}


class CopyError(Exception):
    """A copy operation that cannot be applied (bad pattern, missing file, escaping path, bad YAML)."""


# --------------------------------------------------------------------------- glob semantics

def _go_match(pattern: str, name: str) -> bool:
    """Go's path.Match of one path element; CopyError on a malformed pattern."""
    rx = glob_regex(pattern)
    if rx is None:
        raise CopyError("syntax error in pattern")
    return bool(rx.match(name))


def _has_meta(path: str) -> bool:
    return any(c in path for c in "*?[\\")


def _clean_parts(path: str) -> list[str] | None:
    """Path elements of a relative path, or None when it is absolute or climbs out with ``..``."""
    if path.startswith("/"):
        return None
    norm = posixpath.normpath(path) if path else "."
    if norm == "..":
        return None
    parts = [] if norm == "." else norm.split("/")
    return None if parts and parts[0] == ".." else parts


def go_glob(root: Path, pattern: str) -> list[str]:
    """Go's ``fs.Glob`` over the directory ``root``: slash-separated matches, in directory order."""
    if not _has_meta(pattern):
        parts = _clean_parts(pattern)
        if parts is None or pattern in ("", ".") or posixpath.normpath(pattern) != pattern:
            return []
        return [pattern] if _lexists(root, parts) else []
    directory, _, file = pattern.rpartition("/")
    _go_match(file, "")  # validate
    directory = directory or "."
    if not _has_meta(directory):
        return _glob_dir(root, directory, file)
    if directory == pattern:
        raise CopyError("syntax error in pattern")
    found: list[str] = []
    for d in go_glob(root, directory):
        found += _glob_dir(root, d, file)
    return found


def _lexists(root: Path, parts: list[str]) -> bool:
    return os.path.lexists(root.joinpath(*parts)) if parts else True


def _glob_dir(root: Path, directory: str, pattern: str) -> list[str]:
    parts = _clean_parts(directory)
    if parts is None or (directory != "." and posixpath.normpath(directory) != directory):
        return []
    try:
        names = sorted(os.listdir(root.joinpath(*parts)))
    except OSError:
        return []
    return [name if directory == "." else f"{directory}/{name}" for name in names if _go_match(pattern, name)]


def _doublestar_regex(pattern: str) -> re.Pattern:
    """doublestar's Match syntax as a regex: ``**`` as a whole element spans directories, ``{a,b}``
    alternatives; ValueError when malformed."""
    out: list[str] = []
    i, n, depth = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        at_start = i == 0 or pattern[i - 1] == "/"
        if pattern.startswith("**", i) and at_start and (i + 2 == n or pattern[i + 2] == "/"):
            if i + 2 == n:
                if out and out[-1] == "/":  # "a/**" also matches "a"
                    out[-1] = "(?:/.*)?"
                else:
                    out.append(".*")
                i += 2
            else:
                out.append("(?:.*/)?")
                i += 3
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise ValueError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^!" else i + 1)
            if j < 0:
                raise ValueError("syntax error in pattern")
            body = pattern[i + 1:j]
            if body[:1] in ("^", "!"):
                body = "^" + body[1:]
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = j
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise ValueError("syntax error in pattern")
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error:
        raise ValueError("syntax error in pattern") from None


def excluded(path: str, patterns: Iterable[str]) -> bool:
    """Whether ``path`` matches one of the doublestar ``patterns``."""
    return any(_doublestar_regex(p).match(path) for p in patterns)


# --------------------------------------------------------------------------- copy operations

@dataclasses.dataclass
class _Roots:
    """The source tree an operation reads and the staging tree it writes, with escape checks."""

    src: Path
    dst: Path

    def source(self, rel: str) -> Path:
        return _resolve(self.src, rel, "statat")

    def target(self, rel: str) -> Path:
        return _resolve(self.dst, rel, "openat")


def _resolve(root: Path, rel: str, op: str) -> Path:
    parts = _clean_parts(rel)
    if parts is None:
        raise CopyError(f"{op} {rel}: path escapes from parent")
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise CopyError(f"{op} {rel}: path escapes from parent")
    return path


def parse_copy_source(source: str) -> tuple[str, str]:
    """``@alias/pattern`` → (alias, pattern)."""
    if not source.startswith("@"):
        raise CopyError("source must start with '@'")
    alias, sep, pattern = source[1:].partition("/")
    if not sep:
        raise CopyError("source format must be '@alias/pattern'")
    return alias, pattern


def parse_copy_destination(destination: str) -> str:
    """``@artifact/path`` → path."""
    if not destination.startswith("@artifact/"):
        raise CopyError("destination must start with '@artifact/'")
    return destination[len("@artifact/"):]


def apply_copy_operations(operations: list[dict], sources: dict[str, Path], staging: Path) -> None:
    """Apply the copy operations in order (later ones overwrite earlier ones)."""
    for op in operations:
        try:
            _apply_copy_operation(op, sources, staging)
        except (CopyError, OSError) as exc:
            detail = exc if isinstance(exc, CopyError) else _os_error(exc)
            raise CopyError(f"failed to apply copy operation from '{op.get('from')}' to '{op.get('to')}': "
                            f"{detail}") from None


def _os_error(exc: OSError) -> str:
    return f"{exc.strerror.lower() if exc.strerror else exc}" + (f": {exc.filename}" if exc.filename else "")


def _apply_copy_operation(op: dict, sources: dict[str, Path], staging: Path) -> None:
    try:
        alias, pattern = parse_copy_source(op.get("from", ""))
    except CopyError as exc:
        raise CopyError(f"invalid copy source '{op.get('from', '')}': {exc}") from None
    try:
        dest = parse_copy_destination(op.get("to", ""))
    except CopyError as exc:
        raise CopyError(f"invalid copy destination '{op.get('to', '')}': {exc}") from None
    if alias not in sources:
        raise CopyError(f"source alias '{alias}' not found")
    excludes = list(op.get("exclude") or [])
    for p in excludes:
        try:
            _doublestar_regex(p)
        except ValueError:
            raise CopyError(f"invalid exclude pattern '{p}'") from None
    roots = _Roots(sources[alias], staging)
    merge = op.get("strategy") == "Merge"
    if not any(c in pattern for c in "*?[]"):
        _copy_single(roots, pattern, dest, op.get("to", "").endswith("/"), excludes, merge)
        return
    try:
        matches = go_glob(roots.src, pattern)
    except CopyError as exc:
        raise CopyError(f"invalid glob pattern '{pattern}': {exc}") from None
    if not matches:
        raise CopyError(f"no files match pattern '{pattern}' in source '{alias}'")
    matches = [m for m in matches if not excluded(m, excludes)]
    if not matches:
        raise CopyError(f"all files matching pattern '{pattern}' in source '{alias}' were excluded")
    for match in matches:
        target = _glob_destination(pattern, match, dest)
        try:
            _copy_path(roots, match, target, excludes, merge)
        except (CopyError, OSError) as exc:
            detail = exc if isinstance(exc, CopyError) else _os_error(exc)
            raise CopyError(f"failed to copy file '{match}' to '{target}': {detail}") from None


def _join(*parts: str) -> str:
    """Go's filepath.Join: joined and cleaned, "" for nothing."""
    joined = "/".join(p for p in parts if p)
    return posixpath.normpath(joined) if joined else ""


def _glob_destination(pattern: str, match: str, dest: str) -> str:
    """``dir/**`` strips ``dir/`` from the match (cp -r dir/** dest/); other globs keep the whole path."""
    if pattern.endswith("/**"):
        prefix = pattern[:-3] + "/"
        if match.startswith(prefix):
            return _join(dest, match[len(prefix):])
    return _join(dest, match)


def _copy_single(roots: _Roots, pattern: str, dest: str, dest_is_dir: bool, excludes: list[str],
                 merge: bool) -> None:
    """A path without glob characters, with cp semantics (a directory is copied as a sub-directory)."""
    src_path = posixpath.normpath(pattern) if pattern else "."
    source = roots.source(src_path)
    try:
        info = os.stat(source)
    except FileNotFoundError:
        raise CopyError(f"source '{src_path}' does not exist") from None
    except OSError as exc:
        raise CopyError(f"failed to stat source '{src_path}': {_os_error(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        _copy_path(roots, src_path, _join(dest, posixpath.basename(src_path) if src_path != "." else ""),
                   excludes, merge)
        return
    if excluded(src_path, excludes):
        return
    if dest_is_dir or not dest or roots.target(dest).is_dir():
        dest = _join(dest, posixpath.basename(src_path))
    _copy_path(roots, src_path, dest, excludes, merge)


def _copy_path(roots: _Roots, src: str, dest: str, excludes: list[str], merge: bool) -> None:
    source = roots.source(src)
    if source.is_dir():
        _copy_dir(roots, src, dest, excludes)
    elif merge and dest and roots.target(dest).exists():
        _merge_file(source, roots.target(dest))
    else:
        _copy_file(source, roots, dest)


def _copy_dir(roots: _Roots, src: str, dest: str, excludes: list[str]) -> None:
    """Copy a directory tree; ``excludes`` match paths relative to ``src`` (skipping whole directories)."""
    roots.target(dest).mkdir(parents=True, exist_ok=True)
    base = roots.source(src)

    def walk(directory: Path, rel: str) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if excluded(sub, excludes):
                continue
            if entry.is_dir(follow_symlinks=False):
                roots.target(_join(dest, sub)).mkdir(parents=True, exist_ok=True)
                walk(Path(entry.path), sub)
            else:
                _copy_file(roots.source(_join(src, sub)), roots, _join(dest, sub))

    walk(base, "")


def _copy_file(source: Path, roots: _Roots, dest: str) -> None:
    if not dest:
        raise CopyError("open .: is a directory")
    parent = posixpath.dirname(dest)
    if parent:
        roots.target(parent).mkdir(parents=True, exist_ok=True)
    target = roots.target(dest)
    if target.is_symlink():
        target.unlink()
    shutil.copyfile(source, target)
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode))


def _load_yaml_map(path: Path) -> dict:
    """Every document of a (multi-document) YAML file merged into one map."""
    import yaml

    out: dict = {}
    try:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise CopyError(f"cannot unmarshal YAML document: expected a map, got {type(doc).__name__}")
            out = merge_maps(out, doc)
    except yaml.YAMLError as exc:
        raise CopyError(f"error reading YAML document: {exc}") from None
    return out


def _merge_file(source: Path, target: Path) -> None:
    import yaml

    merged = merge_maps(_load_yaml_map(target), _load_yaml_map(source))
    target.write_text(yaml.safe_dump(merged, default_flow_style=False, sort_keys=True))
    os.chmod(target, 0o644)


# --------------------------------------------------------------------------- building

def dir_hash(directory: Path, prefix: str) -> str:
    """source-watcher's content hash: Adler-32 over ``"<adler32 hex>  <prefix>/<path>\\n"`` of every file,
    in path order, as a decimal string (the artifact's file name)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(directory):
        rel = os.path.relpath(dirpath, directory)
        for name in filenames:
            files.append((posixpath.join(prefix, name if rel == "." else f"{rel}/{name}"),
                          os.path.join(dirpath, name)))
    total = zlib.adler32(b"")
    for name, path in sorted(files, key=lambda f: f[0].encode()):
        if "\n" in name:
            raise CopyError("filenames with newlines are not supported")
        file_sum = zlib.adler32(b"")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                file_sum = zlib.adler32(chunk, file_sum)
        total = zlib.adler32(f"{file_sum:x}  {name}\n".encode(), total)
    return str(total)


def build_artifact(storage: Storage, output: dict, sources: dict[str, Path], namespace: str,
                   workspace: Path) -> dict:
    """Stage the output artifact's files, store them as a tarball and return the artifact (revision
    ``latest@<digest>``)."""
    name = output["name"]
    staging = workspace / "artifacts" / name
    staging.mkdir(parents=True, exist_ok=True)
    try:
        apply_copy_operations(output.get("copy") or [], sources, staging)
    except CopyError as exc:
        raise CopyError(f"failed to apply copy operations: {exc}") from None
    contents = dir_hash(staging, name)
    path = storage.artifact_path(EXTERNAL_ARTIFACT.kind, namespace, name, f"{contents}.tar.gz")
    try:
        with storage.lock(EXTERNAL_ARTIFACT.kind, namespace, name):
            artifact = storage.archive(path, staging, ignore=archive_filter([]))
    except (OSError, ValueError) as exc:
        raise CopyError(f"failed to create artifact: {exc}") from None
    return {**artifact, "revision": f"latest@{artifact['digest']}"}


# --------------------------------------------------------------------------- sources

@dataclasses.dataclass(frozen=True)
class ObservedSource:
    """What a generator saw of one source's artifact."""

    digest: str
    revision: str
    url: str
    origin_revision: str = ""

    def __str__(self) -> str:
        return f"digest={self.digest},revision={self.revision},url={self.url}"


def hash_observed_sources(sources: dict[str, ObservedSource]) -> str:
    """``sha256:<hex>`` of the sorted ``alias=[digest=...,revision=...,url=...]`` entries joined by ``|``."""
    parts = sorted(f"{alias}=[{src}]" for alias, src in sources.items())
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


# --------------------------------------------------------------------------- the reconciler

@dataclasses.dataclass
class Options:
    """source-watcher's own settings (its flags)."""

    no_cross_namespace_refs: bool = False
    """Sources must be in the generator's namespace."""
    http_retry: int = DEFAULT_RETRIES
    """Retries of an artifact download."""


#: source-watcher's own flags (Flux's names; the defaults are the Options fields').
FLAGS = (NO_CROSS_NAMESPACE_REFS, HTTP_RETRY)


class ArtifactGeneratorReconciler(common.SourceReconciler):
    """Reconciles ArtifactGenerators (see the module docstring)."""

    kind = ARTIFACT_GENERATOR
    finalizer = meta.ARTIFACT_GENERATOR_FINALIZER
    #: source-watcher writes only the runtime's conditions on an ArtifactGenerator.
    conditions = Conditions(owned=(cond.READY, cond.RECONCILING, cond.STALLED),
                            summarize=(cond.STALLED, cond.RECONCILING),
                            negative_polarity=(cond.STALLED, cond.RECONCILING))
    #: The field manager of the ExternalArtifacts (Flux's controller name).
    field_manager = SOURCE_WATCHER

    def __init__(self, storage: Storage, server=None):
        super().__init__(storage, server)
        self.options = Options()
        self.index = ReferenceIndex()  # generator key -> its sources (Kind, namespace, name)

    # ------------------------------------------------------------------ runtime hooks

    def interval(self, obj: dict) -> float:
        return REQUEUE_AFTER

    @staticmethod
    def suspended(obj: dict) -> bool:
        """``source.extensions.fluxcd.io/reconcile: disabled`` (any case) pauses the generator."""
        value = ((obj.get("metadata") or {}).get("annotations") or {}).get(meta.ARTIFACT_GENERATOR_RECONCILE_ANNOTATION)
        return value is not None and value.lower() == DISABLED_VALUE

    def watches(self) -> list[Watch]:
        return [Watch(kind, self._generators_for, predicate=artifact_revision_changed)
                for kind in INPUT_KINDS.values()]

    def _generators_for(self, source: dict) -> list[str]:
        """Keys of the generators reading ``source`` (known from their last reconciliation)."""
        if not dig(source, "status.artifact"):
            return []
        return self.index.keys_for((source.get("kind"), source["metadata"].get("namespace"),
                                    source["metadata"]["name"]))

    def _remember_sources(self, obj: dict) -> None:
        ns = obj["metadata"]["namespace"]
        self.index.update(f"{ns}/{obj['metadata']['name']}",
                          {(s.get("kind"), s.get("namespace") or ns, s.get("name")) for s in obj["spec"].get("sources") or []})

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        if self.suspended(obj):  # when the runtime does not honour suspended() itself
            ctx.event("Warning", RECONCILIATION_DISABLED, MSG_DISABLED)
            return Success(MSG_DISABLED, reason=RECONCILIATION_DISABLED, requeue_after=0, notify=False)
        self._remember_sources(obj)
        self._validate(obj)
        status = obj.setdefault("status", {})
        try:
            observed = self._observe_sources(ctx, obj)
        except (KubeError, CopyError) as exc:
            raise self._source_failure(ctx, f"get sources failed: {getattr(exc, 'message', exc)}") from None
        digest = hash_observed_sources(observed)
        drift = self._drift(ctx, obj, digest)
        if not drift:
            message = f"No drift detected, {len(status.get('inventory') or [])} artifact(s) up to date"
            ctx.log.info(message)
            ctx.event("Normal", cond.READY, message)
            ready = find_condition(obj, cond.READY) or {}
            return Success(ready.get("message") or message, reason=ready.get("reason") or cond.SUCCEEDED,
                           notify=False)
        ctx.log.info(MSG_IN_PROGRESS, reason=drift)
        ctx.progress(MSG_IN_PROGRESS)
        workspace = Path(tempfile.mkdtemp(prefix="ag-"))
        try:
            try:
                local = self._fetch_sources(observed, workspace / "sources")
            except FetchError as exc:
                raise self._source_failure(ctx, f"fetch sources failed: {exc.message}") from None
            refs = [self._produce(ctx, obj, output, observed, local, workspace)
                    for output in obj["spec"].get("artifacts") or []]
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        current = {(r["namespace"], r["name"]) for r in refs}
        orphans = [r for r in status.get("inventory") or [] if (r["namespace"], r["name"]) not in current]
        self._remove_external_artifacts(ctx, orphans)
        for ref in refs:
            try:
                self.storage.garbage_collect(EXTERNAL_ARTIFACT.kind, ref["namespace"], ref["name"],
                                             self._artifact_path(ref))
            except (OSError, ValueError) as exc:
                ctx.log.error("failed to garbage collect artifacts", error=exc)
        status["inventory"] = refs
        status["observedSourcesDigest"] = digest
        message = f"reconciliation succeeded, generated {len(refs)} artifact(s)"
        ctx.event("Normal", cond.READY, message)
        return Success(message, notify=False)

    def _validate(self, obj: dict) -> None:
        """source-watcher's spec checks: unique aliases and artifact names, known revision aliases and no
        cross-namespace sources when those are disallowed; a failure stalls the generator."""
        aliases: set[str] = set()
        ns = obj["metadata"]["namespace"]
        for src in obj["spec"].get("sources") or []:
            if src["alias"] in aliases:
                raise StalledError(f"duplicate source alias '{src['alias']}' found", reason=VALIDATION_FAILED)
            aliases.add(src["alias"])
            if self.options.no_cross_namespace_refs and src.get("namespace") and src["namespace"] != ns:
                raise StalledError(f"cross-namespace reference to source {src['kind']}/{src['namespace']}/"
                                   f"{src['name']} is not allowed", reason=ACCESS_DENIED)
        names: set[str] = set()
        for output in obj["spec"].get("artifacts") or []:
            if output["name"] in names:
                raise StalledError(f"duplicate artifact name '{output['name']}' found", reason=VALIDATION_FAILED)
            revision = (output.get("revision") or "").removeprefix("@")
            if revision and revision not in aliases:
                raise StalledError(f"artifact {output['name']} revision source alias '{revision}' not found",
                                   reason=VALIDATION_FAILED)
            names.add(output["name"])

    @staticmethod
    def _source_failure(ctx: ReconcileContext, message: str) -> RetryableError:
        return RetryableError(message, reason=SOURCE_FETCH_FAILED, requeue_after=ctx.requeue_dependency)

    @staticmethod
    def _observe_sources(ctx: ReconcileContext, obj: dict) -> dict[str, ObservedSource]:
        observed = {}
        for src in obj["spec"].get("sources") or []:
            ns = src.get("namespace") or obj["metadata"]["namespace"]
            kind = INPUT_KINDS.get(src.get("kind", ""))
            if kind is None:
                raise CopyError(f"source `{src.get('name')}` kind '{src.get('kind')}' not supported")
            try:
                source = ctx.kube.get(kind, src["name"], ns)
            except NotFound:
                raise
            except KubeError as exc:
                raise CopyError(f"unable to get source '{ns}/{src['name']}': {exc.message}") from None
            artifact = dig(source, "status.artifact")
            if not artifact:
                raise CopyError(f"source '{kind.kind}/{ns}/{src['name']}' is not ready")
            observed[src["alias"]] = ObservedSource(
                digest=artifact.get("digest", ""), revision=artifact.get("revision", ""), url=artifact.get("url", ""),
                origin_revision=(artifact.get("metadata") or {}).get(ORIGIN_REVISION_KEY, ""))
        return observed

    def _fetch_sources(self, observed: dict[str, ObservedSource], directory: Path) -> dict[str, Path]:
        local = {}
        for alias, src in observed.items():
            fetch_artifact({"url": src.url, "digest": src.digest}, directory / alias, retries=self.options.http_retry,
                           user_agent="fluxpy-source-watcher")
            local[alias] = directory / alias
        return local

    def _produce(self, ctx: ReconcileContext, obj: dict, output: dict, observed: dict[str, ObservedSource],
                 local: dict[str, Path], workspace: Path) -> dict:
        """Build one output artifact and apply its ExternalArtifact; returns the inventory entry."""
        ns, name = obj["metadata"]["namespace"], output["name"]
        try:
            artifact = build_artifact(self.storage, output, local, ns, workspace)
        except CopyError as exc:
            raise RetryableError(f"{name} build failed: {exc}", reason=meta.BUILD_FAILED_REASON) from None
        revision_alias = (output.get("revision") or "").removeprefix("@")
        if revision_alias in observed:
            artifact["revision"] = observed[revision_alias].revision
        origin_alias = (output.get("originRevision") or "").removeprefix("@")
        if output.get("originRevision"):
            artifact.setdefault("metadata", {})
            if origin_alias in observed:
                src = observed[origin_alias]
                artifact["metadata"][ORIGIN_REVISION_KEY] = src.origin_revision or src.revision
        try:
            self._apply_external_artifact(ctx, obj, name, artifact)
        except KubeError as exc:
            raise RetryableError(f"{name} reconcile failed: failed to apply ExternalArtifact: {exc.message}",
                                 reason=meta.RECONCILIATION_FAILED_REASON) from None
        if self._in_inventory(obj, name, ns, artifact["digest"]):
            ctx.log.info(f"ExternalArtifact/{ns}/{name} is up to date")
        else:
            message = f"ExternalArtifact/{ns}/{name} reconciled with revision {artifact['revision']}"
            ctx.log.info(message)
            ctx.event("Normal", cond.READY, message)
        return {"name": name, "namespace": ns, "digest": artifact["digest"],
                "filename": posixpath.basename(artifact["path"])}

    def _apply_external_artifact(self, ctx: ReconcileContext, obj: dict, name: str, artifact: dict) -> None:
        ns = obj["metadata"]["namespace"]
        labels = {MANAGED_BY_LABEL: self.field_manager, GENERATOR_LABEL: obj["metadata"]["uid"]}
        ea = {"apiVersion": EXTERNAL_ARTIFACT.api_version, "kind": EXTERNAL_ARTIFACT.kind,
              "metadata": {"name": name, "namespace": ns, "labels": labels},
              "spec": {"sourceRef": {"apiVersion": ARTIFACT_GENERATOR.api_version, "kind": ARTIFACT_GENERATOR.kind,
                                     "name": obj["metadata"]["name"], "namespace": ns}}}
        applied = ctx.kube.apply(ea, field_manager=self.field_manager, force=True)
        status = {"apiVersion": ea["apiVersion"], "kind": ea["kind"], "metadata": {"name": name, "namespace": ns},
                  "status": {"artifact": artifact,
                             "conditions": ready_conditions(applied, Success("Artifact is ready"))}}
        ctx.kube.apply(status, field_manager=self.field_manager, force=True, subresource="status")

    @staticmethod
    def _in_inventory(obj: dict, name: str, namespace: str, digest: str) -> bool:
        return any(r.get("name") == name and r.get("namespace") == namespace and r.get("digest") == digest
                   for r in dig(obj, "status.inventory") or [])

    def _artifact_path(self, ref: dict) -> str:
        return self.storage.artifact_path(EXTERNAL_ARTIFACT.kind, ref["namespace"], ref["name"], ref["filename"])

    def _drift(self, ctx: ReconcileContext, obj: dict, digest: str) -> str:
        """Why the artifacts must be rebuilt ('' when they need not), as source-watcher decides."""
        status = obj.get("status") or {}
        ready = find_condition(obj, cond.READY)
        if cond.is_false(obj, cond.READY):
            return "NotReady"
        if (ready or {}).get("observedGeneration") != obj["metadata"].get("generation"):
            return "GenerationChanged"
        if status.get("observedSourcesDigest") != digest:
            return "SourcesChanged"
        inventory = status.get("inventory") or []
        if len(inventory) != len(obj["spec"].get("artifacts") or []):
            return "ArtifactsChanged"
        for ref in inventory:
            artifact = {"path": self._artifact_path(ref), "digest": ref["digest"]}
            if self.storage.digest_of(artifact["path"]) is None:
                return "ArtifactMissing"
            if not self.storage.has(artifact):
                ctx.log.error("Artifact integrity verification failed, deleting corrupted artifact",
                              artifact=f"ExternalArtifact/{ref['namespace']}/{ref['name']}")
                try:
                    self.storage.local_path(artifact["path"]).unlink()
                except (OSError, ValueError):
                    pass
                return "ArtifactCorrupted"
        try:
            listed = ctx.kube.list(EXTERNAL_ARTIFACT, obj["metadata"]["namespace"],
                                   label_selector=f"{GENERATOR_LABEL}={obj['metadata']['uid']}")["items"]
        except KubeError:
            return "ExternalArtifactsNotFound"
        if len(listed) != len(inventory) or not all(
                self._in_inventory(obj, ea["metadata"]["name"], ea["metadata"]["namespace"],
                                   dig(ea, "status.artifact.digest") or "") for ea in listed):
            return "ExternalArtifactsChanged"
        return ""

    def _remove_external_artifacts(self, ctx: ReconcileContext, refs: list[dict]) -> None:
        """Delete ExternalArtifacts and their files (errors are logged: a later run retries)."""
        for ref in refs:
            try:
                self.storage.remove_all(EXTERNAL_ARTIFACT.kind, ref["namespace"], ref["name"])
                ctx.log.info(f"ExternalArtifact/{ref['namespace']}/{ref['name']} deleted from storage")
            except (OSError, ValueError) as exc:
                ctx.log.error("Failed to delete artifact from storage", error=exc)
            try:
                ctx.kube.delete(EXTERNAL_ARTIFACT, ref["name"], ref["namespace"])
                ctx.log.info(f"ExternalArtifact/{ref['namespace']}/{ref['name']} deleted from cluster")
            except KubeError as exc:
                ctx.log.error("Failed to delete ExternalArtifact", error=exc)

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        self._remove_external_artifacts(ctx, dig(obj, "status.inventory") or [])
        self.index.remove(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """source-watcher's own flags: the artifact storage, ``--no-cross-namespace-refs``, ``--http-retry``."""
    common.add_arguments(parser)
    add_option_flags(parser, Options, FLAGS)


def new_reconciler(args: argparse.Namespace) -> ArtifactGeneratorReconciler:
    """Factory for ``controllers.components`` (source-watcher)."""
    reconciler = ArtifactGeneratorReconciler.from_args(args, SOURCE_WATCHER)
    reconciler.options = options_from_args(Options, args, FLAGS)
    return reconciler
