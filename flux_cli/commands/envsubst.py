"""``fluxpy envsubst [--strict]``: Flux's post-build variable substitution on stdin, with the environment.

As ``flux envsubst``: each line of stdin is substituted on its own (``${var}``, ``${var:=default}``, ``$${var}``
escapes, ...) and written to stdout; with ``--strict`` a ``${var}`` of an unset variable is an error.
"""
from __future__ import annotations

import os
import sys

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app


@app.command("envsubst")
@handle_errors
def envsubst(
    ctx: typer.Context,
    strict: bool = typer.Option(False, "--strict", help="Fail if a variable without a default value is declared "
                                                        "in the input but is missing from the environment."),
) -> None:
    """Substitute environment variables in stdin (as Flux's post-build substitution) and print the result."""
    from controllers.lib.kustomize.envsubst import EnvsubstError, expand

    a: App = ctx.obj
    variables = dict(os.environ)
    for line in sys.stdin:
        try:
            a.terminal.line(expand(line.rstrip("\n").removesuffix("\r"), variables, strict=strict))
        except EnvsubstError as exc:
            raise CLIError(str(exc)) from None
