"""``fluxpy migrate [-f PATH]``: move Flux objects off deprecated API versions before an upgrade, as
``flux migrate``.

Cluster mode (no ``-f``): for every Flux CRD, each object is written back once at the storage version (a
merge patch that changes nothing but makes the apiserver re-encode it; managed-field entries of older
versions are renamed so server-side apply keeps its owners), then the CRD's ``status.storedVersions`` is
reduced to the storage version, so the next Flux minor version can stop serving the old ones.

File mode (``-f PATH``): in every file under PATH with one of ``--extensions``, each ``apiVersion:`` of a
Flux kind whose version is older than the target Flux version's (``--version``, default 2.7) is rewritten
in place, text-only (comments, order and templates survive). Unlike flux, the ``kind:`` may be anywhere in
the same mapping, not only on the next line. ``--dry-run`` only lists the changes; without ``--yes`` the
command asks first.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

#: Flux minor versions whose latest API versions differ from this one's kinds table (2.7), by kind.
#: A kind absent from a version's map did not exist then.
OLDER_FLUX = {"2.6": {"ImageRepository": "v1beta2", "ImagePolicy": "v1beta2", "ImageUpdateAutomation": "v1beta2",
                      "ArtifactGenerator": None}}
CURRENT_FLUX = "2.7"

_API_VERSION = re.compile(r"^\s*(?:-\s+)?apiVersion:\s*(?P<value>[\"']?[\w.\-/]+[\"']?)\s*(?:#.*)?$")
_KIND = re.compile(r"^\s*(?:-\s+)?kind:\s*[\"']?(?P<kind>\w+)[\"']?\s*(?:#.*)?$")


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """One ``apiVersion:`` line to rewrite: ``line`` is 0-based."""

    file: Path
    line: int
    kind: str
    old: str
    new: str


def latest_versions(flux_version: str) -> dict[tuple[str, str], str]:
    """``{(group, kind): version}`` of the latest API versions of Flux ``flux_version`` (e.g. "2.6")."""
    from controllers.api.kinds import KINDS

    if flux_version not in (CURRENT_FLUX, *OLDER_FLUX):
        raise CLIError(f"version {flux_version} is not supported, supported versions are: "
                       f"{', '.join((CURRENT_FLUX, *OLDER_FLUX))}")
    overrides = OLDER_FLUX.get(flux_version, {})
    latest = {}
    for kind in KINDS:
        version = overrides.get(kind.kind, kind.version)
        if version is not None:
            latest[(kind.group, kind.kind)] = version
    return latest


def detect_upgrades(path: Path, text: str, latest: dict[tuple[str, str], str]) -> list[Upgrade]:
    """The ``apiVersion:`` lines of ``text`` naming a Flux kind at a version other than ``latest``'s."""
    lines = text.split("\n")
    upgrades = []
    for number, line in enumerate(lines):
        match = _API_VERSION.match(line)
        if not match:
            continue
        group, _, version = match["value"].strip("\"'").rpartition("/")
        kind = _kind_of_mapping(lines, number)
        new = latest.get((group, kind)) if kind else None
        if new and version != new:
            upgrades.append(Upgrade(path, number, kind, version, new))
    return upgrades


def _key_column(line: str) -> int:
    """Where a line's key starts: "    kind: X" and "  - kind: X" are both at column 4."""
    return len(line) - len(line.lstrip(" -"))


def _kind_of_mapping(lines: list[str], number: int) -> str | None:
    """The ``kind:`` of the YAML mapping that holds the ``apiVersion:`` at line ``number``, looked for
    among the mapping's own keys before and after it (nested values and other list items are skipped)."""
    column = _key_column(lines[number])
    item_start = lines[number].lstrip(" ").startswith("- ")
    for step in ((1,) if item_start else (-1, 1)):
        index = number + step
        while 0 <= index < len(lines):
            line, stripped = lines[index], lines[index].strip()
            index += step
            if stripped.startswith(("---", "...")):
                break
            if not stripped or stripped.startswith("#"):
                continue
            starts_item = stripped.startswith("- ")
            if _key_column(line) == column:
                if starts_item and step == 1:
                    break  # going down: the next list item
                match = _KIND.match(line)
                if match:
                    return match["kind"]
                if starts_item:
                    break  # going up: the first key of this list item, above it is another item
            elif len(line) - len(line.lstrip(" ")) < column:
                break  # a parent key
    return None


def _files(root: Path, extensions: list[str]) -> list[Path]:
    if not root.exists():
        raise CLIError(f"failed to stat path {root}: no such file or directory")
    if root.is_file():
        if not any(root.name.endswith(ext) for ext in extensions):
            raise CLIError(f"file {root} does not match the specified extensions: {', '.join(extensions)}")
        return [root]
    found = []
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        found += [Path(directory) / n for n in sorted(names) if any(n.endswith(ext) for ext in extensions)]
    return [f for f in found if f.is_file() and not f.is_symlink()]


def migrate_files(a: App, root: Path, extensions: list[str], flux_version: str, *, dry_run: bool,
                  yes: bool) -> None:
    """File mode: list, confirm and rewrite the apiVersion lines under ``root``."""
    term = a.terminal
    latest = latest_versions(flux_version)
    term.action("starting migration of custom resources")
    by_file: dict[Path, tuple[str, list[Upgrade]]] = {}
    for file in _files(root, extensions):
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"failed to read file {file}: {exc}") from None
        upgrades = detect_upgrades(file, text, latest)
        for up in upgrades:
            term.generate(f"{file}:{up.line + 1}: {up.kind} {up.old} -> {up.new}")
        if upgrades:
            by_file[file] = (text, upgrades)
    if not by_file:
        term.success("no custom resources found that require migration")
        return
    if dry_run:
        term.success("dry-run mode enabled, no changes will be made")
        return
    if not yes and not term.confirm("Are you sure you want to proceed with the above upgrades"):
        raise CLIError("migration aborted: nothing was changed (pass --yes to skip the question)")
    for file, (text, upgrades) in by_file.items():
        lines = text.split("\n")
        for up in upgrades:
            lines[up.line] = re.sub(rf"/{re.escape(up.old)}\b", f"/{up.new}", lines[up.line], count=1)
        tmp = file.with_name(f".{file.name}.fluxpy-migrate")
        tmp.write_text("\n".join(lines))
        os.chmod(tmp, file.stat().st_mode & 0o7777)
        os.replace(tmp, file)  # whole files only: an interrupted run leaves each file old or new
        term.success(f"file {file} migrated successfully")
    term.success("custom resources migrated successfully")


def migrate_cluster(a: App) -> None:
    """Cluster mode: every Flux object re-stored at its storage version, then storedVersions trimmed."""
    from controllers.api.builtin import CRD
    from controllers.api.kinds import KINDS
    from controllers.runtime.kube import Conflict, NotFound

    term, kube = a.terminal, a.kube
    term.action("starting migration of custom resources")
    for kind in KINDS:
        try:
            crd = kube.get(CRD, kind.crd_name)
        except NotFound:
            term.warning(f"{kind.crd_name} not found, skipping")
            continue
        storage = next((v["name"] for v in crd["spec"]["versions"] if v.get("storage")), "")
        if not storage:
            raise CLIError(f"no storage version found for CRD {kind.crd_name}")
        resource = kind.at(storage) if storage in kind.served_versions else kind
        for obj in kube.list(resource)["items"]:
            _restore(kube, resource, obj, f"{kind.group}/{storage}", NotFound)
            meta = obj["metadata"]
            term.success(f"{kind.kind}/{meta.get('namespace', '')}/{meta['name']} migrated to version {storage}")
        stored = (crd.get("status") or {}).get("storedVersions") or []
        if stored != [storage]:
            for attempt in range(5):
                crd.setdefault("status", {})["storedVersions"] = [storage]
                try:
                    kube.replace(CRD, crd, subresource="status")
                    break
                except Conflict:
                    if attempt == 4:
                        raise
                    crd = kube.get(CRD, kind.crd_name)
            term.success(f"{kind.crd_name} migrated to storage version {storage}")
    term.success("custom resources migrated successfully")


def _restore(kube, resource, obj: dict, api_version: str, not_found: type) -> None:
    """Write ``obj`` back at ``api_version``: its managed fields renamed to it, or an empty merge patch."""
    meta = obj["metadata"]
    stale = [i for i, entry in enumerate(meta.get("managedFields") or []) if entry.get("apiVersion") != api_version]
    if stale:
        patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}]
        patch += [{"op": "replace", "path": f"/metadata/managedFields/{i}/apiVersion", "value": api_version}
                  for i in stale]
        patch_type = "json"
    else:
        patch, patch_type = {}, "merge"
    try:
        kube.patch(resource, meta["name"], patch, meta.get("namespace"), patch_type=patch_type)
    except not_found:
        pass  # deleted meanwhile: nothing left to migrate


@app.command("migrate")
@handle_errors
def migrate(
    ctx: typer.Context,
    path: str = typer.Option("", "--path", "-f", help="the path to the directory containing the manifests to "
                                                      "migrate"),
    extensions: str = typer.Option(".yaml,.yml", "--extensions", "-e",
                                   help="the file extensions to consider when migrating manifests, only "
                                        "applicable with --path"),
    version: str = typer.Option("", "--version", "-v",
                                help="the target Flux minor version to migrate manifests to, only applicable "
                                     "with --path (defaults to 2.7, the version fluxpy speaks)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="skip confirmation prompts when migrating manifests, only "
                                                      "applicable with --path"),
    dry_run: bool = typer.Option(False, "--dry-run", help="simulate the migration of manifests without making any "
                                                        "changes, only applicable with --path"),
) -> None:
    """Migrate the Flux custom resources to their latest API version (run before a Flux minor upgrade).

    Without --path, every Flux object stored in the cluster is re-stored at its storage version (needs
    cluster-admin); with --path, the manifests under it are rewritten.
    """
    a: App = ctx.obj
    if not path:
        if dry_run or version:
            raise CLIError("--dry-run and --version apply only with --path")
        migrate_cluster(a)
        return
    exts = [e.strip() for e in extensions.split(",") if e.strip()]
    if not exts:
        raise CLIError("--extensions: expected at least one file extension, e.g. .yaml,.yml")
    migrate_files(a, Path(path), exts, version or CURRENT_FLUX, dry_run=dry_run, yes=yes)
