"""``fluxpy debug helmrelease NAME``: what flux's ``debug hr`` prints — exactly one of ``--show-status`` (the
status, as YAML), ``--show-values`` (the final values composed from ``valuesFrom`` and ``values``; this prints
Secret values) or ``--show-history`` (the release snapshots)."""
from __future__ import annotations

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app, command_group

debug_app = command_group("Debug Flux resources.")
app.add_typer(debug_app, name="debug")

STATUS_DOCS = "# Status documentation: https://fluxcd.io/flux/components/helm/helmreleases/#helmrelease-status"
HISTORY_DOCS = "# History documentation: https://fluxcd.io/flux/components/helm/helmreleases/#history"


def _debug_helmrelease(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the HelmRelease."),
    show_status: bool = typer.Option(False, "--show-status", help="Print the status of the Helm release."),
    show_values: bool = typer.Option(False, "--show-values", help="Print the final values of the Helm release."),
    show_history: bool = typer.Option(False, "--show-history",
                                      help="Print the reconciliation history of the Helm release."),
) -> None:
    """Debug a HelmRelease (prints Secret values with --show-values)."""
    from controllers.api.helm import HELM_RELEASE
    from controllers.lib.values import ValuesReferenceError, chart_values
    from controllers.runtime.kube import NotFound

    a: App = ctx.obj
    if sum((show_status, show_values, show_history)) != 1:
        raise CLIError("exactly one of --show-status, --show-values, or --show-history must be set")
    try:
        release = a.kube.get(HELM_RELEASE, name, a.namespace)
    except NotFound:
        raise CLIError(f"HelmRelease '{a.namespace}/{name}' not found") from None
    status = release.get("status") or {}
    if show_status:
        a.terminal.line(STATUS_DOCS)
        a.terminal.yaml([status])
    elif show_history:
        a.terminal.line(HISTORY_DOCS)
        a.terminal.yaml([status.get("history") or []])
    else:
        spec = release.get("spec") or {}
        try:
            values = chart_values(a.kube, a.namespace, spec.get("values"), spec.get("valuesFrom"))
        except ValuesReferenceError as exc:
            raise CLIError(str(exc)) from None
        a.terminal.yaml([values])


debug_helmrelease = debug_app.command("helmrelease")(handle_errors(_debug_helmrelease))
debug_app.command("hr", hidden=True)(handle_errors(_debug_helmrelease))
