"""``fluxpy build kustomization NAME --path DIR``: build local manifests as the cluster's Kustomization would.

As ``flux build kustomization``: the Kustomization comes from the cluster (``-n``), or from
``--kustomization-file`` (which wins; with ``--dry-run`` the cluster is not contacted and ``substituteFrom``
is skipped); the build (:func:`controllers.lib.kustomize.build.build_local`) runs on a copy of the directory and
the result is printed as flux prints it: every object as YAML followed by ``---``.
"""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.groups import build_app


def load_kustomization_file(path: str, name: str, namespace: str) -> dict:
    """The Kustomization named ``name`` (in ``namespace`` or without one) among the documents of ``path``."""
    import yaml

    from controllers.api.meta import KUSTOMIZE_GROUP

    try:
        with open(path) as f:
            documents = list(yaml.safe_load_all(f))
    except OSError as exc:
        raise CLIError(f"failed to read kustomization file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        from controllers.lib.kustomize.tree import yaml_error

        raise CLIError(f"failed to unmarshall kustomization file {path}: {yaml_error(exc)}") from None
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        meta = doc.get("metadata") or {}
        if (str(doc.get("apiVersion", "")).startswith(KUSTOMIZE_GROUP + "/") and doc.get("kind") == "Kustomization"
                and meta.get("name") == name and meta.get("namespace", "") in (namespace, "")):
            return doc
    raise CLIError(f"failed to get kustomization object: failed find kustomization with name '{name}' and "
                   f"namespace '{namespace}' in file '{path}'")


def _build_kustomization(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="The Kustomization's name."),
    path: str = typer.Option("", "--path", help="Path to the manifests location."),
    kustomization_file: str = typer.Option("", "--kustomization-file",
                                           help="Path to the Flux Kustomization YAML file."),
    ignore_paths: Optional[List[str]] = typer.Option(
        None, "--ignore-paths", help="Paths to ignore, in .gitignore format (comma-separated or repeated)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Dry run mode: no cluster access (needs --kustomization-file)."),
    strict_substitute: bool = typer.Option(
        False, "--strict-substitute", help="Fail when a variable without a default is missing from the input vars."),
) -> None:
    """Build a Kustomization's manifests from a local directory and print them."""
    from controllers.lib.kustomize.build import build_local, objects_to_yaml
    from flux_cli.flags import split_list

    a: App = ctx.obj
    if not name:
        raise CLIError("kustomization name is required")
    if not path or not os.path.isdir(path):
        raise CLIError(f'invalid resource path "{path}"')
    if dry_run and not kustomization_file:
        raise CLIError("dry-run mode requires a kustomization file")
    if kustomization_file and not os.path.isfile(kustomization_file):
        raise CLIError(f'invalid kustomization file "{kustomization_file}"')
    # as flux, a live build needs the Kustomization in the cluster even when a file gives its spec
    kustomization = None if dry_run else live_kustomization(a, name)
    if kustomization_file:
        kustomization = load_kustomization_file(kustomization_file, name, a.namespace)
    objects = build_local(path, kustomization, kube=None if dry_run else a.kube, dry_run=dry_run,
                          strict_substitution=strict_substitute, ignore_paths=split_list(ignore_paths),
                          timeout=a.timeout)
    manifests = objects_to_yaml(objects)
    if manifests:
        a.terminal.line(manifests.removesuffix("\n"))


def live_kustomization(a: App, name: str) -> dict:
    """The Kustomization in the cluster."""
    from controllers.api.kinds import kind_by_name
    from controllers.runtime.kube import KubeError

    try:
        return a.kube.get(kind_by_name("kustomization"), name, a.namespace)
    except KubeError as exc:
        raise CLIError(f"failed to get kustomization object: {exc.message}") from None


build_kustomization = build_app.command("kustomization")(handle_errors(_build_kustomization))
build_app.command("ks", hidden=True)(handle_errors(_build_kustomization))
