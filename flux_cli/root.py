"""The root Typer application and its global flags. Command modules add their commands to :data:`app`;
:mod:`flux_cli.main` imports those a command line needs (so a command module never imports ``main``: no import
cycle)."""
from __future__ import annotations

from typing import Optional

import typer
from typer.core import TyperGroup

from flux_cli.app import DEFAULT_TIMEOUT, App, default_namespace
from flux_cli.terminal import Terminal


class CommandGroup(TyperGroup):
    """A group whose help lists each sub-command with the first sentence of its help, whole and wrapped (click
    cuts it to the width left on the line, ending in "...")."""

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, command.get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def command_group(help: str) -> typer.Typer:
    """A group of sub-commands (``fluxpy create``, ``fluxpy bootstrap`` ...); shows its help when run alone."""
    return typer.Typer(help=help, no_args_is_help=True, cls=CommandGroup)


app = typer.Typer(
    cls=CommandGroup,
    name="fluxpy",
    help="fluxpy keeps Kubernetes clusters in sync with Git, speaking Flux v2's APIs.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help and usage errors, as flux's; Typer's rich help costs ~130 ms of imports
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
