"""The root Typer application and its global flags. Command modules add their commands to :data:`app`;
:mod:`flux_cli.main` imports those a command line needs (so a command module never imports ``main``: no import
cycle)."""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import DEFAULT_TIMEOUT, App, default_namespace
from flux_cli.terminal import Terminal

app = typer.Typer(
    name="fluxpy",
    help="fluxpy keeps Kubernetes clusters in sync with Git, speaking Flux v2's APIs.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Optional[str] = typer.Option(None, "--kubeconfig", help="Path to the kubeconfig file."),
    context: Optional[str] = typer.Option(None, "--context", help="The kubeconfig context to use."),
    namespace: Optional[str] = typer.Option(None, "-n", "--namespace",
                                            help="The namespace scope (default flux-system or $FLUX_SYSTEM_NAMESPACE)."),
    timeout: str = typer.Option(DEFAULT_TIMEOUT, "--timeout", help="Timeout for this operation."),
    verbose: bool = typer.Option(False, "--verbose", help="Print generated objects and debug detail."),
) -> None:
    from controllers.api.duration import parse_duration

    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timeout") from None
    ctx.obj = App(kubeconfig=kubeconfig, context=context, namespace=namespace or default_namespace(),
                  timeout=seconds, verbose=verbose, terminal=Terminal(verbose=verbose))
