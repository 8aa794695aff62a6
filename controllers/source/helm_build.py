"""Building a HelmChart's artifact as Flux's source-controller does (its chart builders), with the real
``helm`` doing the packaging.

- :func:`build_remote`: a chart from a repository (HTTP index or OCI): the version is resolved (exact, else
  the newest matching the semver range), the archive pulled as is — or unpacked, its values merged and
  packaged again when ``valuesFiles`` or version metadata ask for it;
- :func:`build_local`: a chart directory (or packaged chart) inside a source artifact (GitRepository,
  Bucket): paths may not leave the source, ``valuesFiles`` are relative to the source root, missing
  dependencies are resolved (:class:`DependencyManager`) and the chart is packaged with ``helm package``;
- a build is skipped when the stored chart already has the name and version (unless ``force``), as Flux;
- failures are :class:`BuildError` with Flux's reasons (InvalidChartReference, ChartPullError,
  MetadataPatchError, ValuesFilesError, DependencyBuildError, ChartPackageError); the first three need a
  spec change to go away (:attr:`BuildError.persistent`).
"""
from __future__ import annotations

import dataclasses
import io
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.parse
from pathlib import Path
from typing import Callable, Protocol

import yaml

from controllers.lib import semver
from controllers.lib.helm import HelmCLI, HelmError
from controllers.source import helm_client, helm_index
from controllers.lib.archive import UnsafeArchive, extract_tarball, secure_join
from controllers.lib.values import merge_maps

VALUES_FILE = "values.yaml"
CHART_FILE = "Chart.yaml"
#: Flux's RemoteReference name rule (``^([-a-z0-9]+/?\.?)+$``), written without nested repetition.
_CHART_NAME = re.compile(r"^[-a-z0-9]+(?:(?:/\.?|\.)[-a-z0-9]+)*(?:/\.?|\.)?$")


@dataclasses.dataclass(frozen=True)
class BuildReason:
    reason: str
    summary: str


CHART_REFERENCE = BuildReason("InvalidChartReference", "invalid chart reference")
CHART_PULL = BuildReason("ChartPullError", "chart pull error")
METADATA_PATCH = BuildReason("MetadataPatchError", "chart metadata patch error")
VALUES_FILES = BuildReason("ValuesFilesError", "values files merge error")
DEPENDENCY_BUILD = BuildReason("DependencyBuildError", "dependency build error")
CHART_PACKAGE = BuildReason("ChartPackageError", "chart package error")
UNKNOWN = BuildReason("Unknown", "unknown build error")
#: Failures recorded on BuildFailed (the others on FetchFailed).
BUILD_REASONS = (METADATA_PATCH, VALUES_FILES, DEPENDENCY_BUILD, CHART_PACKAGE)
_PERSISTENT = (CHART_REFERENCE, METADATA_PATCH, VALUES_FILES)


class BuildError(Exception):
    """A failed build: ``reason`` (Flux's BuildErrorReason) and the message ``<summary>: <cause>``."""

    def __init__(self, reason: BuildReason, cause: str, build: "Build | None" = None):
        super().__init__(f"{reason.summary}: {cause}")
        self.reason, self.cause, self.build = reason, cause, build

    @property
    def persistent(self) -> bool:
        return self.reason in _PERSISTENT


@dataclasses.dataclass
class Build:
    """A (possibly partial) build: chart name and version once known, ``path`` once complete."""

    name: str = ""
    version: str = ""
    path: str = ""
    values_files: list[str] | None = None
    resolved_dependencies: int = 0
    packaged: bool = False

    @property
    def has_metadata(self) -> bool:
        return bool(self.name and self.version)

    @property
    def complete(self) -> bool:
        return self.has_metadata and bool(self.path)

    def summary(self) -> str:
        """Flux's build summary: ``packaged 'name' chart with version 'v' and merged values files [a b]``."""
        if not self.has_metadata:
            return "no chart build"
        action = ("packaged" if self.packaged else "pulled") if self.path else "new"
        text = f"{action} '{self.name}' chart with version '{self.version}'"
        if self.values_files:
            text += f" and merged values files [{' '.join(self.values_files)}]"
        return text


@dataclasses.dataclass
class BuildOptions:
    values_files: list[str] = dataclasses.field(default_factory=list)
    ignore_missing_values_files: bool = False
    version_metadata: str = ""
    """SemVer build metadata added to the chart's version (``1.2.3+<metadata>``)."""
    cached_chart: str = ""
    """Local path of the stored chart, compared by name and version to skip the build."""
    cached_values_files: list[str] | None = None
    force: bool = False

    def effective_values_files(self) -> list[str]:
        """The values files, except a lone ``values.yaml`` (the chart's own: nothing to merge)."""
        if len(self.values_files) == 1 and posixpath.normpath(self.values_files[0]) == VALUES_FILE:
            return []
        return list(self.values_files)

    @property
    def requires_packaging(self) -> bool:
        return bool(self.effective_values_files() or self.version_metadata)


class ChartRepository(Protocol):
    """What a build needs of a repository (helm_client's HTTP and OCI repositories)."""

    def chart_version(self, name: str, wanted: str) -> dict: ...

    def download(self, chart_version: dict) -> bytes: ...


# --------------------------------------------------------------------------- chart metadata


def _merge_requirements(meta: dict, requirements: bytes | None) -> dict:
    if requirements:
        meta.update({k: v for k, v in helm_index.load_chart_metadata(requirements).items() if v is not None})
    if not meta.get("apiVersion"):
        meta["apiVersion"] = "v1"
    return meta


def metadata_from_dir(directory: Path) -> dict:
    """Chart.yaml (+ requirements.yaml) of a chart directory; OSError/IndexError_ when unreadable."""
    chart_file = directory / CHART_FILE
    meta = helm_index.load_chart_metadata(chart_file.read_bytes())
    requirements = directory / "requirements.yaml"
    data = None
    if requirements.exists() or requirements.is_symlink():
        if requirements.is_dir():
            raise ValueError("'requirements.yaml' is a directory")
        if requirements.stat().st_size > helm_index.MAX_CHART_FILE_SIZE:
            raise ValueError(f"size of 'requirements.yaml' exceeds '{helm_index.MAX_CHART_FILE_SIZE}' bytes limit")
        data = requirements.read_bytes()
    return _merge_requirements(meta, data)


def metadata_from_archive(archive: bytes | str | os.PathLike) -> dict:
    """Chart.yaml (+ requirements.yaml) of a packaged chart, with Helm's path checks; ValueError when it
    is not a chart archive."""
    data = archive if isinstance(archive, bytes) else Path(archive).read_bytes()
    if len(data) > helm_index.MAX_CHART_SIZE:
        raise ValueError(f"size of chart exceeds '{helm_index.MAX_CHART_SIZE}' bytes limit")
    meta: dict | None = None
    requirements = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if member.isdir() or member.type in (tarfile.XGLTYPE, tarfile.XHDTYPE):
                    continue
                parts = member.name.replace("\\", "/").split("/")
                rel = "/".join(parts[1:])
                if rel.startswith("/"):
                    raise ValueError("chart illegally contains absolute paths")
                clean = posixpath.normpath(rel) if rel else "."
                if clean == ".":
                    raise ValueError(f"chart illegally contains content outside the base directory: {member.name}")
                if clean.startswith(".."):
                    raise ValueError("chart illegally references parent directory")
                if re.match(r"^[a-zA-Z]:/", clean):
                    raise ValueError("chart contains illegally named files")
                if len(parts) != 2 or parts[1] not in (CHART_FILE, "requirements.yaml"):
                    continue
                if member.size > helm_index.MAX_CHART_FILE_SIZE:
                    raise ValueError(f"size of '{member.name}' exceeds '{helm_index.MAX_CHART_FILE_SIZE}' bytes limit")
                content = tar.extractfile(member).read()
                if parts[1] == CHART_FILE:
                    meta = {**(meta or {}), **helm_index.load_chart_metadata(content)}
                else:
                    requirements = content
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(str(exc) or "invalid chart archive") from None
    if meta is None:
        raise ValueError(f"no '{CHART_FILE}' found")
    return _merge_requirements(meta, requirements)


def validate(meta: dict) -> None:
    """Helm's metadata validation; ValueError with its message."""
    error = helm_index.validate_metadata(meta)
    if error:
        raise ValueError(error)


def _with_metadata(version: str, metadata: str) -> str:
    try:
        return str(semver.new_version(version).with_metadata(metadata))
    except semver.InvalidVersion as exc:
        message = str(exc)
        if message.startswith("invalid metadata"):
            raise BuildError(METADATA_PATCH, f"failed to set SemVer metadata on chart version: {exc}") from None
        raise BuildError(METADATA_PATCH, f"failed to parse version from chart metadata as SemVer: {exc}") from None


def _cached(result: Build, opts: BuildOptions) -> bool:
    """Use the stored chart when it has the same name and version (and no rebuild is forced)."""
    if not opts.cached_chart or opts.force:
        return False
    try:
        meta = metadata_from_archive(opts.cached_chart)
        validate(meta)
    except (ValueError, OSError, helm_index.IndexError_):
        return False
    if (meta.get("name"), meta.get("version")) != (result.name, result.version):
        return False
    result.path = opts.cached_chart
    result.values_files = opts.effective_values_files()
    if opts.cached_values_files is not None:
        result.values_files = opts.cached_values_files
    result.packaged = opts.requires_packaging
    return True


# --------------------------------------------------------------------------- values


def _values_of(data: bytes, reference: str) -> dict:
    try:
        values = yaml.safe_load(data) if data.strip() else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"unmarshaling values from '{reference}' failed: "
                         f"error converting YAML to JSON: yaml: {getattr(exc, 'problem', None) or exc}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"unmarshaling values from '{reference}' failed: error unmarshaling JSON: "
                         f"json: cannot unmarshal {type(values).__name__} into Go value of type "
                         "map[string]interface {}")
    return values


def _encode_values(values: dict) -> bytes:
    return yaml.safe_dump(values, sort_keys=True, default_flow_style=False, allow_unicode=True).encode() \
        if values else b""


def _overwrite_values(chart_dir: Path, values: dict | None) -> bool:
    """Replace the chart's values.yaml with the merged values; whether it changed (Flux reports the
    values files only then)."""
    if values is None:
        return False
    target = chart_dir / VALUES_FILE
    if not target.is_file():
        raise BuildError(VALUES_FILES, f"failed to locate values file: {VALUES_FILE}")
    data = _encode_values(values)
    if target.read_bytes() == data:
        return False
    target.write_bytes(data)
    return True


# --------------------------------------------------------------------------- paths


def _inside(root: Path, path: Path) -> bool:
    root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


def copy_chart(src: Path, dest: Path, workdir: Path) -> None:
    """Copy a chart directory, following symlinks that stay inside ``workdir`` (Flux's secure loader
    refuses the others)."""
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink() and not _inside(workdir, path):
                raise ValueError(f"cannot load '{path.relative_to(src)}': symlink target is outside the "
                                 "source")
    shutil.copytree(src, dest, symlinks=False)


def _single_root(directory: Path) -> Path:
    entries = [p for p in directory.iterdir()]
    if len(entries) != 1 or not entries[0].is_dir():
        raise ValueError("chart archive must contain one top-level directory")
    return entries[0]


def _unpack(archive: bytes, dest: Path) -> Path:
    try:
        extract_tarball(archive, dest, max_size=helm_index.MAX_CHART_SIZE * 10)
    except UnsafeArchive as exc:
        raise ValueError(str(exc)) from None
    return _single_root(dest)


# --------------------------------------------------------------------------- remote charts


def build_remote(repo: ChartRepository, helm: HelmCLI, name: str, wanted: str, out: Path,
                 opts: BuildOptions) -> Build:
    """Pull (and, for values files or version metadata, repackage) a chart of a repository into ``out``."""
    if not name:
        raise BuildError(CHART_REFERENCE, "no name set for remote chart reference")
    if not _CHART_NAME.match(name):
        raise BuildError(CHART_REFERENCE, f"invalid chart name '{name}': a valid name must be lower case letters "
                                          "and numbers and MAY be separated with dashes (-), slashes (/) or "
                                          "periods (.)")
    try:
        cv = repo.chart_version(name, wanted)
    except (helm_index.ChartReferenceError, semver.InvalidConstraint) as exc:
        raise BuildError(CHART_REFERENCE, f"failed to get chart version for remote reference: {exc}") from None
    except (helm_client.FetchError, HelmError, helm_index.IndexError_) as exc:
        raise BuildError(CHART_PULL, f"failed to get chart version for remote reference: {exc}") from None
    result = Build(name=cv["name"], version=cv["version"])
    if opts.version_metadata:
        result.version = _with_metadata(result.version, opts.version_metadata)
    if _cached(result, opts):
        return result
    try:
        data = repo.download(cv)
    except (helm_client.FetchError, HelmError) as exc:
        raise BuildError(CHART_PULL, f"failed to download chart for remote reference: {exc}") from None

    if not opts.requires_packaging:
        try:
            meta = metadata_from_archive(data)
            validate(meta)
        except (ValueError, helm_index.IndexError_) as exc:
            raise BuildError(CHART_PULL, f"failed to load chart metadata from written chart: {exc}") from None
        out.write_bytes(data)
        result.path = str(out)
        return result

    with tempfile.TemporaryDirectory(prefix="chart-build-") as tmp:
        try:
            chart_dir = _unpack(data, Path(tmp) / "chart")
        except ValueError as exc:
            raise BuildError(CHART_PACKAGE, f"failed to load downloaded chart: {exc}", result) from None
        try:
            merged, used = _merge_chart_values(chart_dir, opts.values_files, opts.ignore_missing_values_files)
        except ValueError as exc:
            raise BuildError(VALUES_FILES, f"failed to merge chart values: {exc}", result) from None
        if _overwrite_values(chart_dir, merged):
            result.values_files = used
        _package(helm, chart_dir, result, out)
    return result


def _merge_chart_values(chart_dir: Path, paths: list[str], ignore_missing: bool) -> tuple[dict, list[str]]:
    """Flux's mergeChartValues: files of the chart itself (``values.yaml`` is the chart's values)."""
    merged: dict = {}
    used: list[str] = []
    for path in paths:
        clean = posixpath.normpath(path.replace("\\", "/"))
        if clean == VALUES_FILE:
            data = (chart_dir / VALUES_FILE).read_bytes() if (chart_dir / VALUES_FILE).is_file() else b""
            merged = merge_maps(merged, _values_of(data, path))
            used.append(path)
            continue
        target = chart_dir / clean
        inside = not clean.startswith("../") and clean != ".." and not clean.startswith("/")
        excluded = clean.split("/")[0] in ("templates", "charts") or clean in (CHART_FILE, "Chart.lock")
        if not inside or excluded or not target.is_file():
            if ignore_missing:
                continue
            raise ValueError(f"no values file found at path '{path}'")
        merged = merge_maps(merged, _values_of(target.read_bytes(), path))
        used.append(path)
    return merged, used


def _package(helm: HelmCLI, chart_dir: Path, result: Build, out: Path) -> None:
    """``helm package`` the chart at the build's version into ``out``."""
    with tempfile.TemporaryDirectory(prefix="chart-package-") as dest:
        try:
            archive = helm.package(chart_dir, dest, result.version)
        except HelmError as exc:
            raise BuildError(CHART_PACKAGE, f"failed to package chart: {exc}", result) from None
        shutil.move(str(archive), out)
    result.path = str(out)
    result.packaged = True


# --------------------------------------------------------------------------- local charts


def build_local(helm: HelmCLI, workdir: Path, chart_path: str, out: Path, opts: BuildOptions,
                dependencies: "DependencyManager") -> Build:
    """Build the chart at ``chart_path`` inside ``workdir`` (an unpacked source artifact) into ``out``."""
    if not chart_path:
        raise BuildError(CHART_REFERENCE, "no path set for local chart reference")
    if chart_path.startswith("/"):
        raise BuildError(CHART_REFERENCE, "local chart reference path is expected to be relative")
    workdir = Path(os.path.realpath(workdir))
    try:
        path = secure_join(workdir, chart_path)
    except ValueError as exc:
        raise BuildError(CHART_REFERENCE, str(exc)) from None
    shown = "/" + str(path.relative_to(workdir)) if path != workdir else "/"
    try:
        if not path.exists():
            raise ValueError(f"stat {shown}: no such file or directory")
        meta = metadata_from_dir(path) if path.is_dir() else metadata_from_archive(path)
        validate(meta)
    except FileNotFoundError:
        raise BuildError(CHART_REFERENCE, f"open {shown}/{CHART_FILE}: no such file or directory") from None
    except (ValueError, OSError, helm_index.IndexError_) as exc:
        raise BuildError(CHART_REFERENCE, str(exc)) from None

    result = Build(name=meta["name"], version=meta["version"])
    if opts.version_metadata:
        result.version = _with_metadata(result.version, opts.version_metadata)
    is_dir = path.is_dir()
    requires_packaging = is_dir or opts.requires_packaging
    if _cached(result, opts):
        result.packaged = requires_packaging
        return result
    if not requires_packaging:
        shutil.copyfile(path, out)
        result.path = str(out)
        return result

    merged: dict | None = None
    used: list[str] = []
    if opts.effective_values_files():
        try:
            merged, used = merge_file_values(workdir, opts.values_files, opts.ignore_missing_values_files)
        except ValueError as exc:
            raise BuildError(VALUES_FILES, str(exc), result) from None

    with tempfile.TemporaryDirectory(prefix="chart-build-") as tmp:
        try:
            if is_dir:
                chart_dir = Path(tmp) / "chart" / meta["name"]
                copy_chart(path, chart_dir, workdir)
            else:
                chart_dir = _unpack(path.read_bytes(), Path(tmp) / "chart")
        except (ValueError, OSError) as exc:
            raise BuildError(CHART_PACKAGE, str(exc), result) from None
        if _overwrite_values(chart_dir, merged):
            result.values_files = used
        if is_dir:
            try:
                result.resolved_dependencies = dependencies.build(helm, workdir, str(path.relative_to(workdir)),
                                                                  chart_dir, meta)
            except ValueError as exc:
                raise BuildError(DEPENDENCY_BUILD, str(exc), result) from None
        _package(helm, chart_dir, result, out)
    result.packaged = True
    return result


def merge_file_values(workdir: Path, paths: list[str], ignore_missing: bool) -> tuple[dict, list[str]]:
    """Flux's mergeFileValues: values files relative to the source root, never outside it."""
    merged: dict = {}
    used: list[str] = []
    for path in paths:
        target = secure_join(workdir, path)
        shown = "/" + str(target.relative_to(workdir)) if target != workdir else ""
        if not target.exists():
            if ignore_missing:
                continue
            raise ValueError(f"no values file found at path '{shown}' (reference '{path}')")
        if not target.is_file():
            raise ValueError(f"no values file found at path '{shown}' (reference '{path}')")
        merged = merge_maps(merged, _values_of(target.read_bytes(), path))
        used.append(path)
    return merged, used


# --------------------------------------------------------------------------- dependencies


def _subchart_names(charts_dir: Path) -> list[str]:
    names = []
    if not charts_dir.is_dir():
        return names
    for entry in sorted(charts_dir.iterdir()):
        try:
            if entry.is_dir() and (entry / CHART_FILE).is_file():
                names.append(metadata_from_dir(entry).get("name") or entry.name)
            elif entry.is_file() and entry.name.endswith(".tgz"):
                names.append(metadata_from_archive(entry).get("name") or entry.name)
        except (ValueError, OSError, helm_index.IndexError_):
            continue
    return names


def _requirements(chart_dir: Path, meta: dict) -> list[dict]:
    lock = chart_dir / "Chart.lock"
    if not lock.is_file() and (chart_dir / "requirements.lock").is_file():
        lock = chart_dir / "requirements.lock"
    if lock.is_file():
        try:
            locked = yaml.safe_load(lock.read_text()) or {}
            if isinstance(locked, dict) and isinstance(locked.get("dependencies"), list):
                return [d for d in locked["dependencies"] if isinstance(d, dict)]
        except yaml.YAMLError:
            pass
    return [d for d in meta.get("dependencies") or [] if d]


def _is_local(dep: dict) -> bool:
    repository = dep.get("repository") or ""
    return repository == "" or repository.startswith("file://")


class DependencyManager:
    """Adds the dependencies missing from a chart's ``charts/`` (Flux's DependencyManager): local ones
    (``file://`` or empty repository) packaged from the source, remote ones pulled from the repository
    ``resolve(url)`` returns (one per normalised URL)."""

    def __init__(self, resolve: Callable[[str], ChartRepository]):
        self.resolve = resolve
        self._repositories: dict[str, ChartRepository] = {}

    def build(self, helm: HelmCLI, workdir: Path, chart_rel: str, chart_dir: Path, meta: dict) -> int:
        """Fetch the missing dependencies into ``chart_dir/charts``; how many were added."""
        requirements = _requirements(chart_dir, meta)
        present = _subchart_names(chart_dir / "charts")
        if len(present) == len(requirements):
            return 0
        missing = {}
        for dep in requirements:
            key = dep.get("alias") or dep.get("name") or ""
            if key not in present:
                missing[key] = dep
        (chart_dir / "charts").mkdir(exist_ok=True)
        for key, dep in missing.items():
            if _is_local(dep):
                try:
                    self._add_local(helm, workdir, chart_rel, chart_dir, dep)
                except (ValueError, OSError, helm_index.IndexError_, HelmError) as exc:
                    raise ValueError(f"failed to add local dependency '{key}': {exc}") from None
            else:
                try:
                    self._add_remote(chart_dir, dep)
                except (ValueError, helm_client.FetchError, HelmError, helm_index.IndexError_,
                        helm_index.ChartReferenceError, semver.InvalidConstraint) as exc:
                    raise ValueError(f"failed to add remote dependency '{key}': {exc}") from None
        return len(missing)

    def _add_local(self, helm: HelmCLI, workdir: Path, chart_rel: str, chart_dir: Path,
                   dep: dict) -> None:
        repository = dep.get("repository") or ""
        if repository:
            parsed = urllib.parse.urlsplit(repository)
            rel = posixpath.join(chart_rel, parsed.netloc + parsed.path)
        else:
            rel = posixpath.join(chart_rel, "charts", dep.get("name") or "")
        path = secure_join(workdir, rel)
        shown = "/" + str(path.relative_to(workdir))
        if not path.exists():
            raise ValueError(f"no chart found at '{shown}' (reference '{repository}')")
        try:
            constraint = semver.new_constraint(dep.get("version") or "*")
        except semver.InvalidConstraint as exc:
            raise ValueError(f"invalid version/constraint format '{dep.get('version')}': {exc}") from None
        try:
            meta = metadata_from_dir(path) if path.is_dir() else metadata_from_archive(path)
            validate(meta)
        except (ValueError, OSError, helm_index.IndexError_) as exc:
            raise ValueError(f"failed to load chart from '{shown}' (reference '{repository}'): {exc}") from None
        version = semver.new_version(meta["version"])
        if not constraint.check(version):
            raise ValueError(f"can't get a valid version for constraint '{dep.get('version')}'")
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="chart-dep-") as tmp:
                copy = Path(tmp) / meta["name"]
                copy_chart(path, copy, workdir)
                helm.package(copy, chart_dir / "charts")
        else:
            shutil.copyfile(path, chart_dir / "charts" / path.name)

    def _add_remote(self, chart_dir: Path, dep: dict) -> None:
        url = helm_index.normalize_url(dep.get("repository") or "")
        if url.startswith("@"):
            raise ValueError(f"aliased repository dependency is not supported: {url}")
        if not url.startswith(("oci://", "http://", "https://")):
            raise ValueError(f"invalid dependency repository URL: {url}")
        repo = self._repositories.get(url)
        if repo is None:
            try:
                repo = self.resolve(url)
            except (ValueError, helm_client.FetchError, helm_client.AccessError, helm_index.IndexError_) as exc:
                raise ValueError(f"failed to get chart repository for URL '{url}': {exc}") from None
            self._repositories[url] = repo
        name, wanted = dep.get("name") or "", dep.get("version") or ""
        try:
            cv = repo.chart_version(name, wanted)
        except (helm_index.ChartReferenceError, helm_client.FetchError, semver.InvalidConstraint) as exc:
            raise ValueError(f"failed to get chart '{name}' version '{wanted}' from "
                             f"'{dep.get('repository')}': {exc}") from None
        try:
            data = repo.download(cv)
        except (helm_client.FetchError, HelmError) as exc:
            raise ValueError(f"chart download of version '{cv['version']}' failed: {exc}") from None
        try:
            validate(metadata_from_archive(data))
        except (ValueError, helm_index.IndexError_) as exc:
            raise ValueError(f"failed to load downloaded archive of version '{cv['version']}': {exc}") from None
        (chart_dir / "charts" / f"{name}-{cv['version']}.tgz").write_bytes(data)
