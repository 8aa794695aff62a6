"""``fluxpy build helmrelease NAME`` and ``fluxpy diff helmrelease NAME``: a HelmRelease's next upgrade,
previewed (Flux has no way to do this).

Both render the release the helm-controller would make now (:func:`controllers.lib.preview.render_helm_release`
over :func:`controllers.lib.helm_release.render_next`:
the chart artifact of the HelmRelease's source in the cluster, its ``valuesFrom`` and ``values``, then each
``--values FILE`` merged over them, the post renderers): ``build`` prints the manifests (then the hooks),
``diff`` compares them with the cluster by a server-side dry run as helm-controller, the objects the upgrade
would delete included (:func:`controllers.lib.helm_release.diff_release`), printed as ``diff ks`` prints
(exit 0 no differences, 1 differences, 2 an error).
"""
from __future__ import annotations

import tempfile
from typing import List, Optional

import typer

from flux_cli.app import App, CLIError, describe_error, handle_errors
from flux_cli.commands.artifact import diff_app
from flux_cli.commands.groups import build_app

NAME = typer.Argument(None, metavar="NAME", help="The HelmRelease's name.")
VALUES = typer.Option(None, "--values", help="A local values file merged over the release's values "
                                             "(repeatable, merged in order).")


def _values_files(paths: List[str] | None) -> list[dict]:
    import yaml

    out = []
    for path in paths or []:
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except OSError as exc:
            raise CLIError(f"failed to read values file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            from controllers.lib.kustomize.tree import yaml_error

            raise CLIError(f"failed to parse values file {path}: {yaml_error(exc)}") from None
        if not isinstance(data, dict):
            raise CLIError(f"values file {path}: expected a YAML mapping of values")
        out.append(data)
    return out


def _render(a: App, name: str | None, values: List[str] | None, directory: str) -> tuple[dict, dict]:
    """The live HelmRelease and the release its next upgrade would make."""
    from controllers.api.helm import HELM_RELEASE
    from controllers.lib.preview import PreviewError, render_helm_release
    from controllers.runtime.kube import KubeError

    if not name:
        raise CLIError("helmrelease name is required")
    extra = _values_files(values)
    try:
        hr = a.kube.get(HELM_RELEASE, name, a.namespace)
    except KubeError as exc:
        raise CLIError(f"failed to get helmrelease object: {exc.message}") from None
    try:
        release = render_helm_release(a.kube, hr, directory, extra_values=extra, timeout=a.timeout)
    except PreviewError as exc:
        raise CLIError(str(exc)) from None
    return hr, release


def _build_helmrelease(ctx: typer.Context, name: Optional[str] = NAME, values: Optional[List[str]] = VALUES) -> None:
    """Render the manifests the HelmRelease's next upgrade would apply (then its hooks) and print them."""
    a: App = ctx.obj
    with tempfile.TemporaryDirectory(prefix="fluxpy-build-hr-") as tmp:
        _, release = _render(a, name, values, tmp)
    text = release.get("manifest") or ""
    for hook in release.get("hooks") or []:
        text += f"---\n# Hook: {', '.join(hook.get('events') or [])}\n{hook.get('manifest', '')}"
    if text.strip():
        a.terminal.line(text.rstrip("\n"))


def _diff_helmrelease(ctx: typer.Context, name: Optional[str] = NAME, values: Optional[List[str]] = VALUES) -> None:
    """Diff what the HelmRelease's next upgrade would apply against the cluster (exit 0: none, 1: differences,
    2: error)."""
    from controllers.lib.kustomize.diff import render_diff
    from controllers.lib.preview import release_diff
    from flux_cli.commands.diff import CHANGED_MESSAGE

    a: App = ctx.obj
    try:
        with tempfile.TemporaryDirectory(prefix="fluxpy-diff-hr-") as tmp:
            hr, release = _render(a, name, values, tmp)
        diff = release_diff(a.kube, hr, release).result
    except CLIError as exc:
        raise CLIError(str(exc), 2 if exc.code == 1 else exc.code) from None
    except Exception as exc:  # noqa: BLE001 - every failure of a diff exits 2, as flux's diff ks
        described = describe_error(exc)
        if described is None:
            raise
        raise CLIError(described[0], 2) from None
    output = render_diff(diff, color=a.terminal._styled(a.terminal.out))
    if output:
        a.terminal.out.write(output)
        a.terminal.out.flush()
    if diff.errors:
        raise CLIError("\n".join(diff.errors), 2)
    if diff.changed:
        raise CLIError(CHANGED_MESSAGE, 1)


for _verb, _group, _func in (("build", build_app, _build_helmrelease), ("diff", diff_app, _diff_helmrelease)):
    _group.command("helmrelease")(handle_errors(_func))
    _group.command("hr", hidden=True)(handle_errors(_func))
