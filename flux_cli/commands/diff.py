"""``fluxpy diff kustomization NAME --path DIR``: what applying local manifests would change, as ``flux diff ks``.

The Kustomization comes from the cluster (``-n``), or from ``--kustomization-file``; the local directory is
built as the controller would build it (:func:`controllers.lib.kustomize.build.build_local`), then every object is
dry-run applied with the controller's field manager and owner labels and compared with the live object
(:func:`controllers.lib.kustomize.diff.diff_kustomization`); with ``spec.prune`` the objects pruning would delete
are listed too. Output is flux's (``► Deployment/apps/web drifted`` and a diff). Exit status: 0 no
differences, 1 differences, 2 an error.
"""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from flux_cli.app import App, CLIError, describe_error, handle_errors
from flux_cli.commands.artifact import diff_app  # the ``diff`` group (``diff artifact`` lives there)

CHANGED_MESSAGE = "identified at least one change, exiting with non-zero exit code"


def _diff_kustomization(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="The Kustomization's name."),
    path: str = typer.Option("", "--path", help="Path to a local directory that matches the specified "
                                                "Kustomization.spec.path."),
    kustomization_file: str = typer.Option("", "--kustomization-file",
                                           help="Path to the Flux Kustomization YAML file."),
    ignore_paths: Optional[List[str]] = typer.Option(
        None, "--ignore-paths", help="Set paths to ignore in .gitignore format (comma-separated or repeated)."),
    progress_bar: str = typer.Option("true", "--progress-bar", metavar="BOOL",
                                     help="Boolean to set the progress bar (a spinner while computing the diff)."),
    strict_substitute: bool = typer.Option(
        False, "--strict-substitute", help="When enabled, the post build substitutions will fail if a var without a "
                                           "default value is declared in files but is missing from the input vars."),
) -> None:
    """Diff a Kustomization's local manifests against the cluster (exit 0: none, 1: differences, 2: error)."""
    a: App = ctx.obj
    if progress_bar.strip().lower() not in ("true", "false", "1", "0", "t", "f"):
        raise CLIError(f'invalid argument "{progress_bar}" for "--progress-bar" flag: expected true or false', 2)
    try:
        output, changed = compute_diff(a, name, path, kustomization_file, ignore_paths,
                                       progress_bar.strip().lower() in ("true", "1", "t"), strict_substitute)
    except CLIError as exc:
        raise CLIError(str(exc), 2 if exc.code == 1 else exc.code) from None
    except Exception as exc:  # noqa: BLE001 - every failure of a diff exits 2, as flux
        described = describe_error(exc)
        if described is None:
            raise
        raise CLIError(described[0], 2) from None
    if output:
        a.terminal.out.write(output)
        a.terminal.out.flush()
    if changed:
        raise CLIError(CHANGED_MESSAGE, 1)


def compute_diff(a: App, name: str | None, path: str, kustomization_file: str, ignore_paths, progress_bar: bool,
                 strict_substitute: bool) -> tuple[str, bool]:
    """The rendered diff and whether anything would change; CLIError (exit 2) on any failure."""
    import contextlib

    from controllers.lib.kustomize.build import build_local
    from controllers.lib.kustomize.diff import diff_kustomization, render_diff
    from controllers.lib.kustomize.errors import BuildError
    from controllers.runtime.apply import ResourceManager
    from flux_cli.commands.build import live_kustomization, load_kustomization_file
    from flux_cli.flags import split_list

    if not name:
        raise CLIError("kustomization name is required")
    if not path or not os.path.isdir(path):
        raise CLIError(f'invalid resource path "{path}"')
    if kustomization_file and not os.path.isfile(kustomization_file):
        raise CLIError(f'invalid kustomization file "{kustomization_file}"')
    kustomization = live_kustomization(a, name)  # as flux: needed even when a file gives the spec
    if kustomization_file:
        from_file = load_kustomization_file(kustomization_file, name, a.namespace)
        # the file's spec, the cluster's status (what prune would compare against)
        kustomization = {**from_file, "status": kustomization.get("status") or {}}
        kustomization.setdefault("metadata", {}).setdefault("namespace", a.namespace)
    spinner = a.terminal.spinner("processing inventory") if progress_bar and a.terminal.interactive \
        else contextlib.nullcontext()
    with spinner:
        try:
            objects = build_local(path, kustomization, kube=a.kube, strict_substitution=strict_substitute,
                                  ignore_paths=split_list(ignore_paths), timeout=a.timeout)
        except BuildError as exc:
            raise CLIError(exc.message) from None
        diff = diff_kustomization(ResourceManager(a.kube), objects, kustomization)
    output = render_diff(diff, color=a.terminal._styled(a.terminal.out))
    if diff.errors:
        if output:
            a.terminal.out.write(output)
            a.terminal.out.flush()
        raise CLIError("\n".join(diff.errors))
    return output, diff.changed


diff_kustomization_command = diff_app.command("kustomization")(handle_errors(_diff_kustomization))
diff_app.command("ks", hidden=True)(handle_errors(_diff_kustomization))
